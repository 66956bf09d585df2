"""Searches beyond the subject index: rejected-row samples and prediction logs.

Neither is indexed. A version's rejected rows are the source lines its ingest could not
read (its line, the reason, the raw text, at most 100,000 per version): a line mentions the
subject when it holds one of the subject's texts as a whole field (not inside a longer id:
``bob`` does not match ``bobby``). A model server logs each prediction's inputs (as JSON):
a logged row is the subject's when an input named like a subject column (the declared
column of a dataset, or the column a derived version has it under) holds one of the
subject's texts, compared as ids are (text as it is; integers as their digits).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keel.errors import NotFoundError
from keel.store import DeploymentRepository, GroundTruthRepository

if TYPE_CHECKING:
    from keel.blobs import BlobStore
    from keel.compliance._subjects import Progress
    from keel.governance import Context, Governor

__all__ = ["LoggedRows", "logged_predictions", "mentions", "rejected_lines"]

#: Characters that continue an id: a match must not have one right before or after it.
_ID_CHARS = r"\w.@+\-"


def mentions(texts: Iterable[str]) -> re.Pattern[str]:
    """A pattern that finds any of ``texts`` as a whole field of a line."""
    alternatives = "|".join(re.escape(t) for t in sorted(set(texts), key=len, reverse=True))
    return re.compile(rf"(?<![{_ID_CHARS}])(?:{alternatives})(?![{_ID_CHARS}])")


def rejected_lines(
    blobs: BlobStore, ctx: Context, digest: str, pattern: re.Pattern[str]
) -> list[dict[str, Any]] | None:
    """The rejected rows of one sample that mention the subject (None: the sample was
    erased already)."""
    import polars as pl

    try:
        frame = pl.read_parquet(io.BytesIO(blobs.get_bytes(digest, scope=ctx.project_id)))
    except NotFoundError:
        return None
    if "text" not in frame.columns:
        return []
    return [
        row
        for row in frame.iter_rows(named=True)
        if isinstance(row.get("text"), str) and pattern.search(row["text"])
    ]


def _as_text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str | int | float):
        return str(value)
    return None


@dataclass
class LoggedRows:
    """Logged predictions whose inputs name the subject, per deployment."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    per_deployment: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    unreadable: int = 0

    @property
    def total(self) -> int:
        return sum(self.per_deployment.values())


def logged_predictions(
    gov: Governor,
    blobs: BlobStore,
    ctx: Context,
    texts: set[str],
    fields: set[str],
    *,
    keep: int,
    progress: Progress | None = None,
) -> LoggedRows:
    """Every logged prediction whose inputs hold one of ``texts`` under one of ``fields``;
    at most ``keep`` of them kept whole (with their ground-truth label), all counted."""
    import polars as pl

    found = LoggedRows()
    with gov.db.read() as session:
        batches = [
            (b.deployment, b.digest)
            for b in DeploymentRepository(session, ctx.project_id).log_batches(
                None, since=None, until=None
            )
        ]
    found.batches = len(batches)
    if not batches or not texts or not fields:
        return found
    # as the logged JSON spells them (non-ASCII characters escaped)
    spelled = sorted({t for text in texts for t in (text, json.dumps(text)[1:-1])})
    inputs = pl.col("inputs").cast(pl.String)
    mentioned = pl.any_horizontal([inputs.str.contains(t, literal=True) for t in spelled])
    for number, (deployment, digest) in enumerate(batches, start=1):
        try:
            data = io.BytesIO(blobs.get_bytes(digest, scope=ctx.project_id))
        except NotFoundError:
            found.unreadable += 1
            continue
        # the inputs alone first: most batches do not mention the subject at all
        if pl.read_parquet(data, columns=["inputs"]).filter(mentioned).height:
            data.seek(0)
            near = pl.read_parquet(data).filter(mentioned)
            for row in near.iter_rows(named=True):
                try:
                    logged = json.loads(row["inputs"])
                except (TypeError, ValueError):
                    continue
                if not isinstance(logged, dict):
                    continue
                named = sorted(f for f in fields if _as_text(logged.get(f)) in texts)
                if not named:
                    continue
                found.per_deployment[deployment] = found.per_deployment.get(deployment, 0) + 1
                if len(found.rows) < keep:
                    found.rows.append(_row(row, logged, named, deployment))
        if progress is not None:
            progress("predictions", number, len(batches))
    if found.rows:
        with gov.db.read() as session:
            labels = GroundTruthRepository(session, ctx.project_id).find(
                str(r["prediction_id"]) for r in found.rows
            )
        for row in found.rows:
            label = labels.get(str(row["prediction_id"]))
            row["label"] = json.loads(label) if label is not None else None
    return found


def _row(
    row: dict[str, Any], logged: dict[str, Any], named: list[str], deployment: str
) -> dict[str, Any]:
    stamp: Any = row.get("timestamp")
    return {
        "prediction_id": row.get("prediction_id"),
        "deployment": deployment,
        "model": row.get("model"),
        "version": row.get("version"),
        "timestamp": stamp.isoformat() if stamp is not None else None,
        "matched_inputs": named,
        "inputs": logged,
        "prediction": row.get("prediction"),
        "score": row.get("score"),
        "scores": row.get("scores"),
    }
