"""Late ground truth: read label records from files, frames or records, and store them once each.

A label names the prediction it belongs to by ``prediction_id`` (the id the model server
returned and logged). Labels may arrive long after the prediction, before its log batch is
written, more than once, or with a different value the second time: each case is counted
in the LabelIngest the call returns, and monitor runs join whatever is stored by then.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.errors import InvalidInputError, MissingDependencyError
from keel.governance import Context, Governor, Permission
from keel.monitoring._model import LabelIngest
from keel.store import DeploymentRepository, GroundTruthRepository

if TYPE_CHECKING:
    import polars as pl

    from keel.blobs import BlobStore

__all__ = ["LABEL_FORMATS", "LabelService", "read_label_records"]

LABEL_FORMATS = (".csv", ".parquet", ".ndjson", ".jsonl", ".json")
MAX_LABELS = 5_000_000
_MAX_ID = 128
_PROBLEMS = 10
_MISSING = object()  # a record without a "label" key


def _polars() -> Any:
    try:
        import polars as pl
    except ImportError as exc:
        raise MissingDependencyError("polars", extra="monitoring", purpose="Label files") from exc
    return pl


def _read_file(path: Path) -> pl.DataFrame:
    pl = _polars()
    if not path.is_file():
        raise InvalidInputError(f"No label file at {str(path)[:200]}.", path=str(path)[:200])
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pl.read_csv(path, infer_schema_length=10_000)  # type: ignore[no-any-return]
        if suffix == ".parquet":
            return pl.read_parquet(path)  # type: ignore[no-any-return]
        if suffix in (".ndjson", ".jsonl"):
            return pl.read_ndjson(path)  # type: ignore[no-any-return]
        if suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, Mapping) and isinstance(data.get("labels"), list):
                data = data["labels"]
            if not isinstance(data, list):
                raise InvalidInputError(
                    f"{path.name} must hold a JSON array of {{prediction_id, label}} objects."
                )
            return pl.DataFrame(data, infer_schema_length=None)  # type: ignore[no-any-return]
    except InvalidInputError:
        raise
    except Exception as exc:
        raise InvalidInputError(
            f"Cannot read labels from {path.name}: {str(exc)[:300]}", path=str(path)[:200]
        ) from exc
    raise InvalidInputError(
        f"Unknown label file type {suffix!r:.20}; use one of {', '.join(LABEL_FORMATS)}."
    )


def read_label_records(source: Any) -> list[tuple[Any, Any]]:
    """``(prediction_id, label)`` pairs from records, a frame, or a file path."""
    if isinstance(source, str | Path):
        source = _read_file(Path(source))
    if isinstance(source, Sequence) and not isinstance(source, str | bytes):
        pairs: list[tuple[Any, Any]] = []
        for index, item in enumerate(source):
            if not isinstance(item, Mapping):
                raise InvalidInputError(
                    f"Label record {index} is not an object; give {{'prediction_id': ..., "
                    "'label': ...}} records."
                )
            pairs.append((item.get("prediction_id"), item.get("label", _MISSING)))
        return pairs
    from keel.monitoring._profile import as_frame

    frame = as_frame(source)
    missing = [c for c in ("prediction_id", "label") if c not in frame.columns]
    if missing:
        raise InvalidInputError(
            f"The labels need columns prediction_id and label; missing {', '.join(missing)} "
            f"(found: {', '.join(frame.columns[:20])[:200]}).",
        )
    return list(
        zip(
            frame.get_column("prediction_id").to_list(),
            frame.get_column("label").to_list(),
            strict=True,
        )
    )


def _clean(pairs: Sequence[tuple[Any, Any]]) -> tuple[list[tuple[str, str]], list[str]]:
    good: list[tuple[str, str]] = []
    problems: list[str] = []
    for index, (pid, label) in enumerate(pairs):
        why = None
        if not isinstance(pid, str | int) or isinstance(pid, bool) or not str(pid).strip():
            why = "no prediction_id"
        elif len(str(pid)) > _MAX_ID:
            why = f"prediction_id longer than {_MAX_ID} characters"
        elif label is _MISSING or label is None:
            why = "no label"
        elif isinstance(label, float) and not math.isfinite(label):
            why = "label is not a finite number"
        elif not isinstance(label, str | int | float | bool):
            why = f"label is a {type(label).__name__}, not a number, string or boolean"
        if why is not None:
            problems.append(f"record {index}: {why}")
            continue
        good.append((str(pid).strip(), json.dumps(label)))
    return good, problems


class LabelService:
    """Stores late ground truth for a project (see the module docstring)."""

    def __init__(self, governor: Governor, blobs: BlobStore) -> None:
        self._gov = governor
        self._blobs = blobs

    def ingest(
        self,
        ctx: Context,
        source: Any,
        *,
        deployment: str | None = None,
        on_conflict: str = "keep",
    ) -> LabelIngest:
        """Store labels from ``source``: records, a frame, or a CSV/Parquet/NDJSON/JSON file.

        Args:
            deployment: the deployment the predictions came from; when given, ``matched``
                counts the stored labels whose prediction is already logged.
            on_conflict: ``keep`` the first label of a prediction, or ``replace`` it.
        """
        self._gov.check(
            ctx, Permission.MONITOR_WRITE, action="labels.ingest", object_type="ground_truth"
        )
        if on_conflict not in ("keep", "replace"):
            raise InvalidInputError("on_conflict is 'keep' or 'replace'.")
        pairs = read_label_records(source)
        if len(pairs) > MAX_LABELS:
            raise InvalidInputError(
                f"{len(pairs)} labels in one ingest; split the file (at most {MAX_LABELS})."
            )
        good, problems = _clean(pairs)
        with self._gov.write(
            ctx, Permission.MONITOR_WRITE, "labels.ingest", object_type="ground_truth"
        ) as work:
            written, batch = GroundTruthRepository(work.session, ctx.project_id).add(
                good, deployment=deployment, replace=on_conflict == "replace"
            )
            work.object_id = batch
            work.details = {
                "received": len(pairs),
                "stored": written.stored,
                "duplicates": written.duplicates,
                "conflicts": written.conflicts,
                "invalid": len(problems),
                "deployment": deployment,
            }
            digests = (
                [
                    b.digest
                    for b in DeploymentRepository(work.session, ctx.project_id).log_batches(
                        deployment, since=None, until=None
                    )
                ]
                if deployment
                else []
            )
        matched = self._matched(ctx, digests, {pid for pid, _ in good}) if deployment else None
        return LabelIngest(
            received=len(pairs),
            stored=written.stored,
            duplicates=written.duplicates,
            conflicts=written.conflicts,
            invalid=len(problems),
            replaced=written.replaced,
            matched=matched,
            problems=tuple(problems[:_PROBLEMS]),
            batch=batch,
        )

    def _matched(self, ctx: Context, digests: Sequence[str], ids: set[str]) -> int:
        import io

        pl = _polars()
        found = 0
        for digest in digests:
            data = self._blobs.get_bytes(digest, scope=ctx.project_id)
            logged = pl.read_parquet(io.BytesIO(data), columns=["prediction_id"])
            found += sum(1 for pid in logged.get_column("prediction_id").to_list() if pid in ids)
        return found

    def find(self, ctx: Context, prediction_ids: Sequence[str]) -> dict[str, Any]:
        """The stored label of each of ``prediction_ids`` that has one."""
        with self._gov.read(
            ctx, Permission.MONITOR_READ, "labels.read", object_type="ground_truth"
        ) as session:
            found = GroundTruthRepository(session, ctx.project_id).find(prediction_ids)
        return {pid: json.loads(text) for pid, text in found.items()}
