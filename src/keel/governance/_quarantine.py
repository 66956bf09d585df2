"""Model supply chain, part 4: the service that scans, quarantines and signs, audited.

A pickle or joblib file is scanned (see ``_scanning``), stored as a blob, and recorded: a
rejected file stays ``quarantined``; a clean one is ``released`` only when a policy speaking
at the ``model.register`` gate allows it (context: ``model.format`` is ``pickle`` and
``scan.verdict`` is ``clean``) — with no such policy it stays quarantined. Nothing here ever
unpickles.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.errors import ConflictError
from keel.governance._context import Context
from keel.governance._decisions import PolicyDeniedError
from keel.governance._governor import Governor
from keel.governance._permissions import Permission
from keel.governance._policy import PolicyService
from keel.governance._scanning import ScanReport, scan_file
from keel.governance._supplychain import ModelSigner
from keel.store import SupplyChainRepository
from keel.store._schema_policy import QuarantineRow

if TYPE_CHECKING:
    from keel.blobs import BlobStore

__all__ = ["QuarantinedFile", "SupplyChainService"]


@dataclass(frozen=True, slots=True)
class QuarantinedFile:
    """A scanned file as recorded: released, or held in quarantine, and why."""

    id: str
    digest: str
    filename: str
    verdict: str
    status: str
    findings: tuple[dict[str, Any], ...]
    created_by: str
    created_at: datetime

    @property
    def is_released(self) -> bool:
        return self.status == "released"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "digest": self.digest,
            "filename": self.filename,
            "verdict": self.verdict,
            "status": self.status,
            "findings": list(self.findings),
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
        }


def _value(row: QuarantineRow) -> QuarantinedFile:
    return QuarantinedFile(
        id=row.id,
        digest=row.digest,
        filename=row.filename,
        verdict=row.verdict,
        status=row.status,
        findings=tuple(row.findings),
        created_by=row.created_by,
        created_at=row.created_at,
    )


class SupplyChainService:
    """Scans and quarantines unsafe-format files; signs versions registered before signing."""

    def __init__(
        self, governor: Governor, blobs: BlobStore, policies: PolicyService, signer: ModelSigner
    ) -> None:
        self._gov = governor
        self._blobs = blobs
        self._policies = policies
        self._signer = signer

    @property
    def signer(self) -> ModelSigner:
        return self._signer

    def scan(self, ctx: Context, path: str | Path, *, name: str = "model") -> QuarantinedFile:
        """Scan a pickle/joblib file, store it, and quarantine or release it."""
        self._gov.check(ctx, Permission.MODEL_WRITE, action="supplychain.scan", object_type="file")
        target = Path(path)
        report: ScanReport = scan_file(target)
        info = self._blobs.put_file(target, scope=ctx.project_id)
        findings = list(report.findings)
        status = "quarantined"
        if report.is_clean:
            try:
                decision = self._policies.gate(
                    ctx,
                    "model.register",
                    subject=f"file:{info.digest}",
                    context={
                        "model": {"name": name, "format": "pickle", "digest": info.digest},
                        "scan": report.to_dict(),
                    },
                    permission=Permission.MODEL_WRITE,
                )
            except PolicyDeniedError as exc:
                findings.append({"tool": "policy", "severity": "DENIED", "detail": str(exc)[:500]})
            else:
                if decision is not None:
                    status = "released"
                else:
                    findings.append(
                        {
                            "tool": "policy",
                            "severity": "NO_POLICY",
                            "detail": "no policy at model.register allows pickles; held",
                        }
                    )
        with self._gov.write(
            ctx, Permission.MODEL_WRITE, "supplychain.scan", object_type="quarantine"
        ) as work:
            row = SupplyChainRepository(work.session, ctx.project_id).quarantine(
                digest=info.digest,
                filename=target.name[:256],
                verdict=report.verdict,
                findings=findings,
                status=status,
                created_by=ctx.principal,
            )
            work.object_id = row.id
            work.details = {
                "digest": info.digest,
                "verdict": report.verdict,
                "status": status,
                "findings": len(findings),
            }
            return _value(row)

    def quarantined(self, ctx: Context, *, limit: int = 100) -> builtins.list[QuarantinedFile]:
        with self._gov.read(
            ctx, Permission.MODEL_READ, "supplychain.list", object_type="quarantine"
        ) as session:
            return [
                _value(r)
                for r in SupplyChainRepository(session, ctx.project_id).quarantined(limit=limit)
            ]

    def sign(self, ctx: Context, payload: str, version_id: str, *, what: str) -> None:
        """Sign a version that has no signature yet (one registered before signing existed)."""
        with self._gov.write(
            ctx,
            Permission.MODEL_WRITE,
            "model.sign",
            object_type="model_version",
            object_id=version_id,
        ) as work:
            repo = SupplyChainRepository(work.session, ctx.project_id)
            if repo.signature(version_id) is not None:
                raise ConflictError(
                    f"Model {what} is already signed; a signature is never replaced. Verify it "
                    f"with `keel supplychain verify`.",
                    model_version_id=version_id,
                )
            self._signer.sign_version(work.session, ctx.project_id, payload, version_id)
            work.details = {"key_id": self._signer.key_id, "model": what}
