"""``ws.datasets``: the dataset services bound to one caller's Context (the SDK's face)."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.data._gate import DatasetGate
from keel.data._model import Dataset, DatasetVersion, GcReport, StoredReport, VersionDiff
from keel.data._service import DatasetService, VersionRef
from keel.data._sources import BATCH_ROWS, FrameSource, Source, source_for
from keel.data._streams import StreamSource
from keel.lineage import Node, parse_node

if TYPE_CHECKING:
    from collections.abc import Iterator

    import polars as pl

    from keel.blobs import BlobStore
    from keel.governance import Context, Governor

__all__ = ["Datasets"]


class Datasets:
    """Datasets of the workspace's project (see DatasetService and DatasetGate)."""

    def __init__(
        self, governor: Governor, blobs: BlobStore, ctx: Context, *, region: str | None = None
    ) -> None:
        self.service = DatasetService(governor, blobs, region=region)
        self.gate = DatasetGate(governor, blobs, self.service)
        self._ctx = ctx

    def ingest(
        self,
        name: str,
        source: Source | str | Path | Any,
        *,
        kind: str | None = None,
        mode: str = "new",
        description: str = "",
        part_rows: int = BATCH_ROWS,
        progress: Callable[[int], None] | None = None,
        **options: Any,
    ) -> DatasetVersion:
        """Ingest a Source, a path or URL (``kind`` and ``options`` pick and tune the adapter:
        ``delimiter``, ``header``, ``encoding``, ``schema``, ``quote_char`` for CSV;
        ``table``/``query`` for SQL), or an in-memory Polars, pandas or Arrow table."""
        if isinstance(source, str | Path):
            chosen: Source = source_for(str(source), kind=kind, options=options)
        elif hasattr(source, "batches") and hasattr(source, "describe"):
            chosen = source
        else:
            chosen = FrameSource(source)
        return self.service.ingest(
            self._ctx,
            name,
            chosen,
            mode=mode,
            description=description,
            part_rows=part_rows,
            progress=progress,
        )

    def ingest_stream(
        self,
        name: str,
        source: StreamSource,
        *,
        batch_size: int = 1000,
        timeout: float = 1.0,
        max_batches: int | None = None,
        schema: Mapping[str, str] | None = None,
    ) -> builtins.list[DatasetVersion]:
        """Micro-batch a Redis or NATS stream into appended versions, exactly once.

        ``schema`` types fields (``{"price": "float64"}``: bool, date, datetime, float32,
        float64, int8 … int64, uint8 … uint64, string) instead of inferring them from the
        first batch's values."""
        return self.service.ingest_stream(
            self._ctx,
            name,
            source,
            batch_size=batch_size,
            timeout=timeout,
            max_batches=max_batches,
            schema=schema,
        )

    def get(self, name: str) -> Dataset:
        return self.service.get(self._ctx, name)

    def list(self) -> builtins.list[Dataset]:
        return self.service.list(self._ctx)

    def versions(self, name: str) -> builtins.list[DatasetVersion]:
        return self.service.versions(self._ctx, name)

    def version(
        self, name: str, version: VersionRef = None, *, require_published: bool = False
    ) -> DatasetVersion:
        return self.service.version(self._ctx, name, version, require_published=require_published)

    def read(
        self,
        name: str,
        version: VersionRef = None,
        *,
        format: str = "polars",
        require_published: bool = False,
    ) -> Any:
        """The version as Polars (default), pandas (``format='pandas'``) or Arrow."""
        return self.service.read(
            self._ctx, name, version, format=format, require_published=require_published
        )

    def iter_frames(
        self, name: str, version: VersionRef = None, *, columns: Sequence[str] | None = None
    ) -> Iterator[pl.DataFrame]:
        """The version's parts one at a time (bounded memory); ``columns`` reads only those."""
        return self.service.iter_frames(self._ctx, name, version, columns=columns)

    def rejects(self, name: str, version: VersionRef = None) -> pl.DataFrame:
        return self.service.rejects(self._ctx, name, version)

    def diff(self, name: str, before: VersionRef, after: VersionRef = None) -> VersionDiff:
        return self.service.diff(self._ctx, name, before, after)

    def tag(self, name: str, tag: str, version: int) -> DatasetVersion:
        return self.service.tag(self._ctx, name, tag, version)

    def transform(
        self,
        name: str,
        steps: Sequence[Mapping[str, Any]] | None = None,
        *,
        function: Callable[[pl.DataFrame], pl.DataFrame] | None = None,
        per_part: bool = False,
        version: VersionRef = None,
        target: str | None = None,
    ) -> DatasetVersion:
        """A new version from cleansing ``steps`` or a ``function`` (``per_part=True`` calls a
        row-local function on each part instead of on the whole version)."""
        return self.service.transform(
            self._ctx,
            name,
            steps,
            function=function,
            per_part=per_part,
            version=version,
            target=target,
        )

    def validate(
        self,
        name: str,
        suite: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        version: VersionRef = None,
        reference: VersionRef = None,
    ) -> StoredReport:
        return self.gate.validate(self._ctx, name, suite, version=version, reference=reference)

    def reports(self, name: str, version: VersionRef = None) -> builtins.list[StoredReport]:
        return self.gate.reports(self._ctx, name, version)

    def report_html(self, report_id: str) -> str:
        return self.gate.report_html(self._ctx, report_id)

    def publish(self, name: str, version: VersionRef = None) -> DatasetVersion:
        return self.gate.publish(self._ctx, name, version)

    def classify(
        self, name: str, version: VersionRef = None, *, sample_size: int = 10_000
    ) -> DatasetVersion:
        return self.gate.classify(self._ctx, name, version, sample_size=sample_size)

    def override(
        self,
        name: str,
        column: str,
        *,
        sensitivity: str,
        categories: Sequence[str] = (),
        reason: str,
        version: VersionRef = None,
    ) -> DatasetVersion:
        return self.gate.override(
            self._ctx,
            name,
            column,
            sensitivity=sensitivity,
            categories=categories,
            reason=reason,
            version=version,
        )

    def anonymize(
        self,
        name: str,
        steps: Sequence[Mapping[str, Any]],
        *,
        version: VersionRef = None,
        target: str | None = None,
    ) -> DatasetVersion:
        return self.gate.anonymize(self._ctx, name, steps, version=version, target=target)

    def record_use(
        self, name: str, version: VersionRef, consumer: Node | str, *, relation: str = "used_by"
    ) -> DatasetVersion:
        """Link ``version`` to what consumed it (``run:<id>`` …) in the lineage graph."""
        node = parse_node(consumer) if isinstance(consumer, str) else consumer
        return self.service.record_use(self._ctx, name, version, node, relation=relation)

    def gc(self, *, dry_run: bool = False, older_than_seconds: float = 3600.0) -> GcReport:
        return self.gate.gc(self._ctx, dry_run=dry_run, older_than_seconds=older_than_seconds)
