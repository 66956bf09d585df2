"""Routes of datasets: versions, ingest from uploads, downloads, the gate, labels, transforms.

Thin like every router: parse, call the dataset service or gate (which authorize and audit),
serialise. Files reach the server through the upload staging area (``POST .../uploads``) and
are referenced here by upload id; the server never reads a path or URL a client names.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path as FsPath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, StreamingResponse

from keel.data import Dataset, Source, StoredReport, VersionDiff, source_for
from keel.data._sources import BATCH_ROWS, BlobSink, SourceBatch
from keel.errors import InvalidInputError, KeelError, NotFoundError
from keel.governance import Permission
from keel.server._deps import Caller, ServicesDep, ok
from keel.server._responses import DatasetVersionOut
from keel.server._tables import stream_table
from keel.types import new_id

__all__ = ["reports", "router"]

router = APIRouter(prefix="/api/v1/projects/{project}/datasets", tags=["datasets"])
reports = APIRouter(prefix="/api/v1/projects/{project}/validation-reports", tags=["datasets"])

DatasetName = Annotated[str, Path(min_length=1, max_length=256)]
Ref = Annotated[str, Path(min_length=1, max_length=128, description="A number or a tag.")]
Name = Annotated[str, Field(min_length=1, max_length=256)]
Text = Annotated[str, Field(max_length=10_000)]
VersionRef = Annotated[int, Field(ge=1, lt=2**31)] | Annotated[str, Field(max_length=128)] | None
Steps = Annotated[list[dict[str, Any]], Field(max_length=1000)]
#: Kinds of file a client may upload for ingest (SQL and folders are read by the client).
UploadKind = Literal["csv", "parquet", "json", "ndjson", "archive"]


def version_ref(text: str | int | None) -> int | str | None:
    """A path or body reference: a version number, or a tag."""
    if isinstance(text, str) and text.isdigit() and len(text) < 10:
        return int(text)
    return text


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IngestBody(_Body):
    upload_id: Annotated[str, Field(min_length=1, max_length=64)]
    kind: UploadKind
    mode: Literal["new", "append"] = "new"
    description: Text = ""
    part_rows: Annotated[int, Field(ge=1, le=50_000_000)] = BATCH_ROWS
    options: dict[Annotated[str, Field(max_length=64)], Any] | None = None
    source: dict[Annotated[str, Field(max_length=64)], Any] | None = None


class TagVersionBody(_Body):
    version: Annotated[int, Field(ge=1, lt=2**31)]


class TransformBody(_Body):
    steps: Steps
    version: VersionRef = None
    target: Name | None = None
    description: Text = ""


class DeriveBody(_Body):
    upload_id: Annotated[str, Field(min_length=1, max_length=64)]
    module: Annotated[str, Field(min_length=1, max_length=300)]
    qualname: Annotated[str, Field(min_length=1, max_length=300)]
    version: VersionRef = None
    target: Name | None = None
    #: The client called the function on each part: the upload holds a row group per call.
    per_part: bool = False


class ValidateBody(_Body):
    suite: dict[str, Any] | Annotated[list[dict[str, Any]], Field(max_length=1000)]
    version: VersionRef = None
    reference: VersionRef = None


class VersionBody(_Body):
    version: VersionRef = None


class ClassifyBody(_Body):
    version: VersionRef = None
    sample_size: Annotated[int, Field(ge=1, le=1_000_000)] = 10_000


class OverrideBody(_Body):
    column: Name
    sensitivity: Annotated[str, Field(min_length=1, max_length=32)]
    categories: Annotated[list[Annotated[str, Field(max_length=128)]], Field(max_length=100)] = []
    reason: Text
    version: VersionRef = None


class AnonymizeBody(_Body):
    steps: Steps
    version: VersionRef = None
    target: Name | None = None


class UseBody(_Body):
    version: Annotated[int, Field(ge=1, lt=2**31)] | Annotated[str, Field(max_length=128)]
    consumer: Annotated[str, Field(min_length=3, max_length=300)]
    relation: Annotated[str, Field(min_length=1, max_length=64)] = "used_by"


class RejectOut(BaseModel):
    """A row the source could not read."""

    line: int | None = Field(description="The row's line in the file (1 is the first row).")
    reason: str
    text: str | None = Field(description="The row as read, cut to a bounded length.")


class ReportHtmlOut(BaseModel):
    """A validation report's stored HTML page, as text (the client renders it, or not)."""

    id: str
    html: str


#: ``GET .../data`` streams a file, not JSON: what it answers in each ``format``.
_TABLE_FILE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The version's rows: Parquet (a row group per part) or CSV, by "
        "``format``; the file name is in Content-Disposition.",
        "content": {
            "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
            "text/csv": {"schema": {"type": "string"}},
        },
    }
}


class _Uploaded:
    """A staged file read by its adapter, described as the client described its source."""

    def __init__(
        self, inner: Source, described: dict[str, Any], *, staged: FsPath, empty: FsPath | None
    ) -> None:
        self._inner = inner
        self._described = described
        self._staged = staged
        self._empty = empty

    def describe(self) -> dict[str, Any]:
        """The adapter's settings (delimiter, detected schema…) under the client's own
        description: the version records where the client's data came from, never where the
        server staged it."""
        own = {k: v for k, v in self._inner.describe().items() if k not in ("url", "path")}
        hidden = _hidden(own, str(self._staged), _display_name(self._described))
        assert isinstance(hidden, dict)
        return {**hidden, **self._described}

    def batches(self, sink: BlobSink) -> Iterator[SourceBatch]:
        return _checked(self._inner.batches(sink), self._empty)


def _checked(batches: Iterator[SourceBatch], parquet: FsPath | None) -> Iterator[SourceBatch]:
    """The batches; a Parquet file without rows still gives its columns (as locally)."""
    import polars as pl

    seen = False
    try:
        for batch in batches:
            seen = True
            yield batch
        if not seen and parquet is not None:
            yield SourceBatch(pl.DataFrame(schema=pl.read_parquet_schema(parquet)))
    except (TypeError, LookupError, OSError) as exc:
        raise InvalidInputError(f"The uploaded file cannot be read: {str(exc)[:300]}") from exc


#: Adapter options a client may set on an upload (limits such as an archive's stay the server's).
_OPTIONS: dict[str, dict[str, type]] = {
    "csv": {"delimiter": str, "header": bool, "encoding": str, "schema": dict, "quote_char": str},
    "json": {"lines": bool, "schema": dict},
    "ndjson": {"schema": dict},
}


def _check_options(kind: str, options: dict[str, Any]) -> None:
    allowed = _OPTIONS.get(kind, {})
    for key, value in options.items():
        expected = allowed.get(key)
        if expected is None:
            raise InvalidInputError(
                f"Option {key!r:.60} is not accepted for a {kind} upload; accepted: "
                f"{', '.join(allowed) or 'none'}.",
                option=key[:60],
            )
        if key == "quote_char" and value is None:  # a file that quotes nothing
            continue
        if not isinstance(value, expected) or (
            isinstance(value, dict)
            and not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
        ):
            raise InvalidInputError(
                f"Option {key!r} must be a {expected.__name__}"
                + (" of column names to type names." if expected is dict else "."),
                option=key,
            )


def _display_name(client: dict[str, Any] | None) -> str:
    """How the client named what it uploaded (its file's path or URL), else ``upload``."""
    for key in ("url", "path"):
        value = (client or {}).get(key)
        if isinstance(value, str) and value:
            return value[:500]
    return "upload"


def _hidden(value: Any, staged: str, display: str) -> Any:
    """``value`` (a string, or a dict or list of them) with the staged path as ``display``."""
    if isinstance(value, str):
        return value.replace(staged, display)
    if isinstance(value, dict):
        return {k: _hidden(v, staged, display) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_hidden(v, staged, display) for v in value]
    return value


@contextmanager
def _shown_as(staged: FsPath, display: str) -> Iterator[None]:
    """Errors raised while reading a staged upload name the client's file, not the staging path.

    The adapters put the path they read in the message and ``details``, as they should locally;
    here that path is the server's (``<home>/uploads/<project>/<id>``), which tells a client the
    server's layout and nothing it can act on. The error keeps its class (so its status).
    """
    try:
        yield
    except KeelError as exc:
        path = str(staged)
        exc.message = str(_hidden(exc.message, path, display))
        exc.args = (exc.message,)
        exc.details = _hidden(exc.details, path, display)
        raise


def _staged_source(
    staged: FsPath, kind: str, options: dict[str, Any] | None, client: dict[str, Any] | None
) -> Source:
    _check_options(kind, options or {})
    try:
        inner = source_for(str(staged), kind=kind, options=options)
    except TypeError as exc:
        raise InvalidInputError(
            f"Invalid options for a {kind} source: {str(exc)[:200]}. See docs/datasets.md for "
            "each adapter's options.",
            kind=kind,
        ) from exc
    described = dict(client or {})
    # The client describes where the data came from (a file, a frame, a SQL query read on its
    # side); whether the version holds files or rows is what the server reads.
    files = described.get("kind") in ("folder", "archive")
    if files != (kind == "archive"):
        described["kind"] = kind
    empty = staged if kind == "parquet" else None
    return _Uploaded(inner, described, staged=staged, empty=empty)


@router.get("", response_model=list[Dataset])
def list_datasets(ctx: Caller, s: ServicesDep) -> JSONResponse:
    return ok(s.datasets.list(ctx))


@router.get("/{dataset}", response_model=Dataset)
def get_dataset(dataset: DatasetName, ctx: Caller, s: ServicesDep) -> JSONResponse:
    return ok(s.datasets.get(ctx, dataset))


@router.get("/{dataset}/versions", response_model=list[DatasetVersionOut])
def list_versions(dataset: DatasetName, ctx: Caller, s: ServicesDep) -> JSONResponse:
    return ok(s.datasets.versions(ctx, dataset))


@router.get("/{dataset}/versions/{ref}", response_model=DatasetVersionOut)
def get_version(
    dataset: DatasetName,
    ref: Ref,
    ctx: Caller,
    s: ServicesDep,
    require_published: bool = False,
) -> JSONResponse:
    found = s.datasets.version(ctx, dataset, version_ref(ref), require_published=require_published)
    return ok(found)


@router.post("/{dataset}/ingest", status_code=201, response_model=DatasetVersionOut)
def ingest(dataset: DatasetName, body: IngestBody, ctx: Caller, s: ServicesDep) -> JSONResponse:
    """Ingest a staged upload (CSV, Parquet, JSON, NDJSON or a zip/tar archive of files)."""
    s.governor.check(ctx, Permission.DATASET_WRITE, action="dataset.ingest", object_type="dataset")
    staged = s.uploads.path(ctx.project_id, body.upload_id)
    with _shown_as(staged, _display_name(body.source)):
        source = _staged_source(staged, body.kind, body.options, body.source)
        version = s.datasets.ingest(
            ctx,
            dataset,
            source,
            mode=body.mode,
            description=body.description,
            part_rows=body.part_rows,
        )
    s.uploads.discard(ctx.project_id, body.upload_id)
    return ok(version, 201)


@router.get(
    "/{dataset}/versions/{ref}/data", response_class=StreamingResponse, responses=_TABLE_FILE
)
def read_version(
    dataset: DatasetName,
    ref: Ref,
    ctx: Caller,
    s: ServicesDep,
    format: Literal["parquet", "csv"] = "parquet",
    require_published: bool = False,
) -> StreamingResponse:
    """The version's rows as one Parquet (a row group per part) or CSV file, streamed."""
    import polars as pl

    found = s.datasets.version(ctx, dataset, version_ref(ref), require_published=require_published)
    # checked before the response starts: once streaming, an error can only cut the connection
    missing = [p.digest for p in found.parts if not s.blobs.exists(p.digest, scope=ctx.project_id)]
    if missing:
        raise NotFoundError(
            f"Version {found.version} of dataset '{found.dataset}' cannot be read: "
            f"{len(missing)} of its {len(found.parts)} part(s) were erased (a data subject's "
            "erasure or retention) or are missing from the blob store. Read the version that "
            "replaced it (`keel datasets versions` shows it) or restore the blob store.",
            dataset=found.dataset,
            version=found.version,
            erased=True,
        )
    frames = s.datasets.iter_frames(ctx, dataset, found.version)
    empty = pl.DataFrame(schema=dict.fromkeys(found.columns, pl.String))
    return stream_table(frames, empty=empty, format=format, name=f"{found.dataset}-{found.version}")


@router.get("/{dataset}/versions/{ref}/rejects", response_model=list[RejectOut])
def rejects(dataset: DatasetName, ref: Ref, ctx: Caller, s: ServicesDep) -> JSONResponse:
    """The rows the source could not read: ``[{line, reason, text}]`` (the first 100,000)."""
    return ok(s.datasets.rejects(ctx, dataset, version_ref(ref)).to_dicts())


@router.get("/{dataset}/diff", response_model=VersionDiff)
def diff(
    dataset: DatasetName,
    ctx: Caller,
    s: ServicesDep,
    before: Annotated[str, Query(min_length=1, max_length=128)],
    after: Annotated[str | None, Query(max_length=128)] = None,
) -> JSONResponse:
    return ok(s.datasets.diff(ctx, dataset, version_ref(before), version_ref(after)))


@router.put("/{dataset}/tags/{tag}", response_model=DatasetVersionOut)
def tag_version(
    dataset: DatasetName,
    tag: Annotated[str, Path(min_length=1, max_length=128)],
    body: TagVersionBody,
    ctx: Caller,
    s: ServicesDep,
) -> JSONResponse:
    return ok(s.datasets.tag(ctx, dataset, tag, body.version))


@router.post("/{dataset}/transform", status_code=201, response_model=DatasetVersionOut)
def transform(
    dataset: DatasetName, body: TransformBody, ctx: Caller, s: ServicesDep
) -> JSONResponse:
    """Apply cleansing steps to a version; the result is a new version with lineage."""
    made = s.datasets.transform(
        ctx,
        dataset,
        body.steps,
        version=version_ref(body.version),
        target=body.target,
        description=body.description,
    )
    return ok(made, 201)


@router.post("/{dataset}/derive", status_code=201, response_model=DatasetVersionOut)
def derive(dataset: DatasetName, body: DeriveBody, ctx: Caller, s: ServicesDep) -> JSONResponse:
    """Record a client-side function transform: the staged Parquet file is its result
    (recorded as kind ``client_function``, with the caller and the file's digest). With
    ``per_part`` each row group is the function's result on one part, stored as local mode
    stores it: one part (or more, past the part size) per row group."""
    s.governor.check(
        ctx, Permission.DATASET_WRITE, action="dataset.transform", object_type="dataset"
    )
    staged = s.uploads.path(ctx.project_id, body.upload_id)
    frames = _result_parts(staged) if body.per_part else [_result(staged)]
    digest = hashlib.sha256()
    with open(staged, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    source = s.datasets.version(ctx, dataset, version_ref(body.version))
    # the server did not run the function: it records what the client claims it ran, who
    # sent it, and the digest of the result the client uploaded. The frames go through the
    # same commit as a local function transform (one schema across parts, the columns it
    # removed recorded and their labels dropped), hence the service's own ``commit_frames``.
    with _shown_as(staged, "upload"):
        made = s.datasets.commit_frames(
            ctx,
            body.target or dataset,
            frames,
            parent=source,
            transform={
                "id": new_id(),
                "kind": "client_function",
                "function": f"{body.module}.{body.qualname}",
                "per_part": body.per_part,
                "input": source.id,
                "principal": ctx.principal,
                "upload_digest": f"sha256:{digest.hexdigest()}",
            },
        )
    s.uploads.discard(ctx.project_id, body.upload_id)
    return ok(made, 201)


_NOT_PARQUET = "The staged upload is not a readable Parquet file: {}"


def _result(staged: FsPath) -> Any:
    """The whole uploaded result as one frame (the function ran on the whole version)."""
    import polars as pl

    try:
        return pl.read_parquet(staged)
    except Exception as exc:  # polars raises its own error tree for a file that is not Parquet
        message = str(exc).replace(str(staged), "upload")[:200]
        raise InvalidInputError(_NOT_PARQUET.format(message)) from exc


def _result_parts(staged: FsPath) -> Iterator[Any]:
    """The uploaded result one row group (one call of the function) at a time; a result of
    no row groups still gives its columns, as a local empty result does."""
    import polars as pl
    import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]

    try:
        reader = pq.ParquetFile(str(staged))
    except Exception as exc:  # pyarrow raises ArrowInvalid for a file that is not Parquet
        message = str(exc).replace(str(staged), "upload")[:200]
        raise InvalidInputError(_NOT_PARQUET.format(message)) from exc
    with reader:
        if reader.num_row_groups == 0 and reader.schema_arrow.names:
            yield pl.DataFrame(schema=pl.read_parquet_schema(staged))
        for index in range(reader.num_row_groups):
            try:
                frame = pl.from_arrow(reader.read_row_group(index))
            except Exception as exc:  # a damaged row group: pyarrow's own errors
                message = str(exc).replace(str(staged), "upload")[:200]
                raise InvalidInputError(_NOT_PARQUET.format(message)) from exc
            assert isinstance(frame, pl.DataFrame)
            yield frame


@router.post("/{dataset}/validate", status_code=201, response_model=StoredReport)
def validate(dataset: DatasetName, body: ValidateBody, ctx: Caller, s: ServicesDep) -> JSONResponse:
    report = s.dataset_gate.validate(
        ctx,
        dataset,
        body.suite,
        version=version_ref(body.version),
        reference=version_ref(body.reference),
    )
    return ok(report, 201)


@router.get("/{dataset}/reports", response_model=list[StoredReport])
def list_reports(
    dataset: DatasetName,
    ctx: Caller,
    s: ServicesDep,
    version: Annotated[str | None, Query(max_length=128)] = None,
) -> JSONResponse:
    return ok(s.dataset_gate.reports(ctx, dataset, version_ref(version)))


@router.post("/{dataset}/publish", response_model=DatasetVersionOut)
def publish(dataset: DatasetName, body: VersionBody, ctx: Caller, s: ServicesDep) -> JSONResponse:
    """Pass the gate: the version's latest report must have no failed error-level check."""
    return ok(s.dataset_gate.publish(ctx, dataset, version_ref(body.version)))


@router.post("/{dataset}/classify", response_model=DatasetVersionOut)
def classify(dataset: DatasetName, body: ClassifyBody, ctx: Caller, s: ServicesDep) -> JSONResponse:
    found = s.dataset_gate.classify(
        ctx, dataset, version_ref(body.version), sample_size=body.sample_size
    )
    return ok(found)


@router.post("/{dataset}/override", response_model=DatasetVersionOut)
def override(dataset: DatasetName, body: OverrideBody, ctx: Caller, s: ServicesDep) -> JSONResponse:
    found = s.dataset_gate.override(
        ctx,
        dataset,
        body.column,
        sensitivity=body.sensitivity,
        categories=body.categories,
        reason=body.reason,
        version=version_ref(body.version),
    )
    return ok(found)


@router.post("/{dataset}/anonymize", status_code=201, response_model=DatasetVersionOut)
def anonymize(
    dataset: DatasetName, body: AnonymizeBody, ctx: Caller, s: ServicesDep
) -> JSONResponse:
    made = s.dataset_gate.anonymize(
        ctx, dataset, body.steps, version=version_ref(body.version), target=body.target
    )
    return ok(made, 201)


@router.post("/{dataset}/uses", response_model=DatasetVersionOut)
def record_use(dataset: DatasetName, body: UseBody, ctx: Caller, s: ServicesDep) -> JSONResponse:
    """Link a version to what consumed it (``run:<id>`` …) in the lineage graph."""
    from keel.lineage import parse_node

    try:
        consumer = parse_node(body.consumer)
    except ValueError as exc:
        raise InvalidInputError(f"Invalid consumer: {str(exc)[:200]}") from exc
    found = s.datasets.record_use(
        ctx, dataset, version_ref(body.version), consumer, relation=body.relation
    )
    return ok(found)


@reports.get("/{report_id}", response_model=ReportHtmlOut)
def report_html(
    report_id: Annotated[str, Path(min_length=1, max_length=64)], ctx: Caller, s: ServicesDep
) -> JSONResponse:
    """The stored HTML page of a validation report, as ``{"id", "html"}`` (never rendered here)."""
    return ok({"id": report_id, "html": s.dataset_gate.report_html(ctx, report_id)})
