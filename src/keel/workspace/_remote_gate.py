"""The dataset gate over HTTP: validation, publishing, classification and anonymization.

All of it runs on the server, next to the data; the project's pseudonymization key never
leaves it, and blob garbage collection is the server host's housekeeping.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from keel import errors
from keel.data import DatasetGate, DatasetVersion, GcReport, StoredReport, VersionRef
from keel.governance import Context
from keel.workspace._http import HttpClient
from keel.workspace._http import base_path as _base
from keel.workspace._http import segment as _seg

if TYPE_CHECKING:
    from keel.data import DatasetService

__all__ = ["RemoteDatasetGate"]


class RemoteDatasetGate(DatasetGate):
    """DatasetGate over HTTP: validation, publishing, labels and anonymization."""

    COMPOSED: ClassVar[frozenset[str]] = frozenset()
    SERVER_ONLY: ClassVar[frozenset[str]] = frozenset({"gc", "on_publish", "pseudonym_key"})

    def __init__(self, http: HttpClient, datasets: DatasetService) -> None:
        self._http = http
        self._datasets = datasets

    def _path(self, ctx: Context, name: str, action: str) -> str:
        return f"{_base(ctx)}/datasets/{_seg(name)}/{action}"

    def validate(
        self,
        ctx: Context,
        name: str,
        suite: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        version: VersionRef = None,
        reference: VersionRef = None,
    ) -> StoredReport:
        checks: Any = dict(suite) if isinstance(suite, Mapping) else [dict(c) for c in suite]
        body = {"suite": checks, "version": version, "reference": reference}
        path = self._path(ctx, name, "validate")
        return self._http.call("POST", path, json=body, into=StoredReport)

    def reports(self, ctx: Context, name: str, version: VersionRef = None) -> list[StoredReport]:
        params = {"version": version}
        path = self._path(ctx, name, "reports")
        return self._http.call("GET", path, params=params, into=list[StoredReport])

    def report_html(self, ctx: Context, report_id: str) -> str:
        path = f"{_base(ctx)}/validation-reports/{_seg(report_id)}"
        return str(self._http.call("GET", path)["html"])

    def publish(self, ctx: Context, name: str, version: VersionRef = None) -> DatasetVersion:
        path = self._path(ctx, name, "publish")
        return self._http.call("POST", path, json={"version": version}, into=DatasetVersion)

    def classify(
        self, ctx: Context, name: str, version: VersionRef = None, *, sample_size: int = 10_000
    ) -> DatasetVersion:
        body = {"version": version, "sample_size": sample_size}
        path = self._path(ctx, name, "classify")
        return self._http.call("POST", path, json=body, into=DatasetVersion)

    def override(
        self,
        ctx: Context,
        name: str,
        column: str,
        *,
        sensitivity: str,
        categories: Sequence[str] = (),
        reason: str,
        version: VersionRef = None,
    ) -> DatasetVersion:
        body = {
            "column": column,
            "sensitivity": sensitivity,
            "categories": list(categories),
            "reason": reason,
            "version": version,
        }
        path = self._path(ctx, name, "override")
        return self._http.call("POST", path, json=body, into=DatasetVersion)

    def anonymize(
        self,
        ctx: Context,
        name: str,
        steps: Sequence[Mapping[str, Any]],
        *,
        version: VersionRef = None,
        target: str | None = None,
    ) -> DatasetVersion:
        body = {"steps": [dict(step) for step in steps], "version": version, "target": target}
        path = self._path(ctx, name, "anonymize")
        return self._http.call("POST", path, json=body, into=DatasetVersion)

    def pseudonym_key(self, ctx: Context) -> bytes:
        raise errors.PermissionDeniedError(
            "The project's pseudonymization key never leaves the server: anonymize on the "
            "server with ws.datasets.anonymize(...)."
        )

    def on_publish(self, callback: Callable[[Context, str, int], None]) -> None:
        raise errors.InvalidInputError(
            "Publish listeners run beside the store, where versions are published (the "
            "server fires the dataset triggers itself); a client cannot register one."
        )

    def gc(
        self, ctx: Context, *, dry_run: bool = False, older_than_seconds: float = 3600.0
    ) -> GcReport:
        raise errors.InvalidInputError(
            "Dataset gc runs beside the store (it deletes blobs in the server's store); run "
            "`keel datasets gc` on the server's host."
        )
