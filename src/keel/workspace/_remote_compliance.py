"""Remote compliance and supply chain: ``ws.compliance`` and ``ws.supplychain`` over HTTP.

As in ``_remote_services``, each remote class subclasses what it stands for and maps every
public method to one route, so ``keel.connect(url)`` gives the same API as local mode and the
server runs the same service code. A subject id is sent in a JSON body, never in a URL.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from keel.compliance import AccessExport, ErasureReport, ErasureService, SubjectLocation
from keel.compliance._subjects import Progress, check_subject
from keel.governance import (
    ComplianceService,
    Context,
    EnvironmentAudit,
    Location,
    ProcessingRecord,
    QuarantinedFile,
    RetentionItem,
    SignatureInfo,
)
from keel.workspace._http import HttpClient
from keel.workspace._http import base_path as _base
from keel.workspace._http import segment as _seg
from keel.workspace._policies import SupplyChain

__all__ = ["RemoteComplianceService", "RemoteErasureService", "RemoteSupplyChain"]


def _c(ctx: Context) -> str:
    return f"{_base(ctx)}/compliance"


class RemoteComplianceService(ComplianceService):
    """Records of processing and locations over HTTP."""

    COMPOSED: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, http: HttpClient) -> None:
        self._http = http

    def declare(
        self,
        ctx: Context,
        dataset: str,
        *,
        purpose: str,
        lawful_basis: str,
        categories: Sequence[str] = (),
        subjects: Sequence[str] = (),
        allowed_regions: Sequence[str] = (),
        retention_days: int | None = None,
        subject_column: str | None = None,
    ) -> ProcessingRecord:
        body = {
            "purpose": purpose,
            "lawful_basis": lawful_basis,
            "categories": list(categories),
            "subjects": list(subjects),
            "allowed_regions": list(allowed_regions),
            "retention_days": retention_days,
            "subject_column": subject_column,
        }
        path = f"{_c(ctx)}/records/{_seg(dataset)}"
        return self._http.call("PUT", path, json=body, into=ProcessingRecord)

    def set_location(self, ctx: Context, name: str, *, kind: str, region: str) -> Location:
        path = f"{_c(ctx)}/locations/{_seg(name)}"
        return self._http.call("PUT", path, json={"kind": kind, "region": region}, into=Location)

    def locations(self, ctx: Context) -> builtins.list[Location]:
        return self._http.call("GET", f"{_c(ctx)}/locations", into=list[Location])

    def records(self, ctx: Context) -> builtins.list[ProcessingRecord]:
        return self._http.call("GET", f"{_c(ctx)}/records", into=list[ProcessingRecord])

    def retention(
        self, ctx: Context, *, now: datetime | None = None
    ) -> builtins.list[RetentionItem]:
        params = {"now": now.isoformat() if now else None}
        path = f"{_c(ctx)}/retention"
        return self._http.call("GET", path, params=params, into=list[RetentionItem])


class RemoteErasureService(ErasureService):
    """The subject index, access, erasure and retention over HTTP (the server does the work;
    ``progress`` is not reported remotely)."""

    COMPOSED: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, http: HttpClient) -> None:
        self._http = http

    def locate(
        self, ctx: Context, subject: str, *, progress: Progress | None = None
    ) -> builtins.list[SubjectLocation]:
        body = {"subject": check_subject(subject)}
        path = f"{_c(ctx)}/subjects/locate"
        return self._http.call("POST", path, json=body, into=list[SubjectLocation], long=True)

    def erase(
        self,
        ctx: Context,
        subject: str,
        *,
        dry_run: bool = False,
        progress: Progress | None = None,
    ) -> ErasureReport:
        body = {"subject": check_subject(subject), "dry_run": dry_run}
        data = self._http.call("POST", f"{_c(ctx)}/subjects/erase", json=body, long=True)
        return ErasureReport.from_dict(data)

    def access(
        self, ctx: Context, subject: str, *, progress: Progress | None = None
    ) -> AccessExport:
        body = {"subject": check_subject(subject)}
        data = self._http.call("POST", f"{_c(ctx)}/subjects/access", json=body, long=True)
        return AccessExport.from_dict(data)

    def enforce_retention(
        self,
        ctx: Context,
        *,
        dry_run: bool = False,
        now: datetime | None = None,
        progress: Progress | None = None,
    ) -> ErasureReport:
        body = {"dry_run": dry_run, "now": now.isoformat() if now else None}
        data = self._http.call("POST", f"{_c(ctx)}/retention/enforce", json=body, long=True)
        return ErasureReport.from_dict(data)

    def _job_slot(self, ctx: Context, owner: str, now: datetime, until: datetime) -> bool:
        # the server allows one retention run at a time; a client has no lease of its own
        return True

    def erasures(self, ctx: Context, *, limit: int = 100) -> builtins.list[ErasureReport]:
        data = self._http.call("GET", f"{_c(ctx)}/erasures", params={"limit": limit})
        return [ErasureReport.from_dict(item) for item in data]

    def erasure(self, ctx: Context, erasure_id: str) -> ErasureReport:
        data = self._http.call("GET", f"{_c(ctx)}/erasures/{_seg(erasure_id)}")
        return ErasureReport.from_dict(data)


class RemoteSupplyChain(SupplyChain):
    """``ws.supplychain`` over HTTP: signatures, ML-BOMs, audits, scans and quarantine."""

    def __init__(self, http: HttpClient, ctx: Context) -> None:
        self._http, self._ctx = http, ctx

    def _version(self, ref: str, version: int | str | None) -> str:
        from keel.tracking import parse_model_ref

        name, parsed = parse_model_ref(ref)
        chosen = version if version is not None else parsed
        selector = "latest" if chosen is None else chosen
        return f"{_base(self._ctx)}/supplychain/models/{_seg(name)}/versions/{_seg(selector)}"

    def verify(self, ref: str, version: int | str | None = None) -> SignatureInfo:
        path = f"{self._version(ref, version)}/signature"
        return self._http.call("GET", path, into=SignatureInfo)

    def sign(self, ref: str, version: int | str | None = None) -> SignatureInfo:
        path = f"{self._version(ref, version)}/sign"
        return self._http.call("POST", path, json={}, into=SignatureInfo)

    def scan(self, path: str | Path, *, name: str = "model") -> QuarantinedFile:
        target = Path(path)
        upload = self._http.upload(self._ctx.project_name, target)
        body = {"upload_id": upload, "filename": target.name, "name": name}
        route = f"{_base(self._ctx)}/supplychain/scan"
        return self._http.call("POST", route, json=body, into=QuarantinedFile, long=True)

    def quarantined(self, *, limit: int = 100) -> builtins.list[QuarantinedFile]:
        route = f"{_base(self._ctx)}/supplychain/quarantine"
        return self._http.call("GET", route, params={"limit": limit}, into=list[QuarantinedFile])

    def bom(self, ref: str, version: int | str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = self._http.call("GET", f"{self._version(ref, version)}/bom")
        return data

    def audit_environment(self, ref: str, version: int | str | None = None) -> EnvironmentAudit:
        path = f"{self._version(ref, version)}/environment-audit"
        return self._http.call("GET", path, into=EnvironmentAudit, long=True)
