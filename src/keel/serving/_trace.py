"""Tracing one served prediction back to the data its model learned from.

A model server gives every predicted row an id (``PREDICTION_ID``: a 26-character sortable id
whose first ten characters are the millisecond it was made, then ``-N`` for row N of a
request of several rows). The trace finds the row in the prediction log by reading only the
batches logged around that millisecond, and joins it with what an auditor asks next: which
deployment revision routed it, which model version answered, its late label, and the lineage
graph upstream of the log — model version, run, dataset versions, validations, sources.

Each logged (deployment, model version) pair is one ``prediction_log`` node of the lineage
graph, linked ``model_version → prediction_log`` (predicted) and ``deployment →
prediction_log`` (logged) when its first batch is stored.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from keel.errors import InvalidInputError
from keel.governance import Context
from keel.lineage import LineageGraph, LineageService, Node
from keel.store import DeploymentRepository, GroundTruthRepository, RegistryRepository

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from keel.store._schema_serving import DeploymentRow, PredictionLogBatchRow

__all__ = [
    "PREDICTION_ID",
    "TRACE_WINDOW",
    "PredictionTrace",
    "find_logged",
    "link_log",
    "log_node",
    "prediction_moment",
    "stored_json",
    "traced",
    "upstream_of",
]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
PREDICTION_ID = re.compile(r"^([0-9A-HJKMNP-TV-Z]{26})(?:-(0|[1-9][0-9]{0,8}))?$")
#: How far from its id's millisecond a prediction's logged timestamp is looked for: the id is
#: made just before the row is logged, so this only absorbs clock steps on the server.
TRACE_WINDOW = timedelta(minutes=10)


def prediction_moment(prediction_id: str) -> datetime:
    """The UTC millisecond encoded in a model server's prediction id.

    Raises InvalidInputError (saying what an id looks like) for anything else.
    """
    found = PREDICTION_ID.match(prediction_id) if len(prediction_id) <= 36 else None
    if found is None:
        raise InvalidInputError(
            f"{prediction_id[:40]!r} is not a prediction id: a model server returns ids of 26 "
            "characters (digits and capital letters), followed by -N for row N of a request "
            "of several rows, e.g. 01JCV7Z3K8Q4M2N6P9R5T1W0XY-3. Copy one from the "
            "'prediction_ids' of a predict response or the prediction_id column of the log.",
            prediction_id=prediction_id[:40],
        )
    millis = 0
    for char in found.group(1)[:10]:
        millis = millis * 32 + _CROCKFORD.index(char)
    try:
        return datetime.fromtimestamp(millis / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidInputError(
            f"{prediction_id!r} encodes no real time; copy the id from a predict response.",
            prediction_id=prediction_id,
        ) from None


def log_node(deployment_id: str, model_version_id: str) -> Node:
    """The lineage node of what ``deployment`` logged from one model version."""
    return Node("prediction_log", f"{deployment_id}.{model_version_id}")


def stored_json(text: Any) -> Any:
    """A logged JSON text (inputs, prediction, scores) as its value; other text as it is."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


@dataclass(frozen=True, slots=True)
class PredictionTrace:
    """One logged prediction, who served it, its label, and where its model came from.

    ``inputs`` shows personal-data features as ``[REDACTED]`` (they were redacted before they
    were logged). ``revision`` is the deployment revision in force when the row was logged
    (None if the deployment was created after it, which only a restored store can show).
    ``lineage`` walks upstream from ``log`` (the ``prediction_log`` node) through the model
    version that answered: its run, dataset versions, validations, sources.
    """

    prediction_id: str
    timestamp: datetime
    deployment: str
    deployment_id: str | None
    model: str
    version: int
    model_version_id: str | None
    variant: str
    request_id: str | None
    latency_ms: float | None
    inputs: Any
    prediction: Any
    score: float | None
    scores: Any
    labelled: bool
    label: Any
    revision: int | None
    revision_action: str | None
    revision_reason: str | None
    log: Node | None
    lineage: LineageGraph | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "prediction_id": self.prediction_id,
            "timestamp": self.timestamp.isoformat(),
            "deployment": self.deployment,
            "deployment_id": self.deployment_id,
            "model": self.model,
            "version": self.version,
            "model_version_id": self.model_version_id,
            "variant": self.variant,
            "request_id": self.request_id,
            "latency_ms": self.latency_ms,
            "inputs": self.inputs,
            "prediction": self.prediction,
            "score": self.score,
            "scores": self.scores,
            "labelled": self.labelled,
            "label": self.label,
            "revision": self.revision,
            "revision_action": self.revision_action,
            "revision_reason": self.revision_reason,
            "log": None if self.log is None else str(self.log),
            "lineage": None if self.lineage is None else self.lineage.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PredictionTrace:
        from keel.lineage import parse_node

        lineage = data.get("lineage")
        return cls(
            prediction_id=data["prediction_id"],
            timestamp=datetime.fromisoformat(data["timestamp"]),
            deployment=data["deployment"],
            deployment_id=data.get("deployment_id"),
            model=data["model"],
            version=int(data["version"]),
            model_version_id=data.get("model_version_id"),
            variant=data["variant"],
            request_id=data.get("request_id"),
            latency_ms=data.get("latency_ms"),
            inputs=data.get("inputs"),
            prediction=data.get("prediction"),
            score=data.get("score"),
            scores=data.get("scores"),
            labelled=bool(data.get("labelled")),
            label=data.get("label"),
            revision=data.get("revision"),
            revision_action=data.get("revision_action"),
            revision_reason=data.get("revision_reason"),
            log=parse_node(data["log"]) if data.get("log") else None,
            lineage=None if lineage is None else LineageGraph.from_dict(lineage),
        )


def find_logged(
    prediction_id: str,
    moment: datetime,
    batches: Sequence[PredictionLogBatchRow],
    read: Callable[[str], bytes],
) -> dict[str, Any] | None:
    """The logged row of ``prediction_id`` in ``batches`` (nearest ``moment`` read first)."""
    import polars as pl

    def distance(batch: PredictionLogBatchRow) -> timedelta:
        first, last = _utc(batch.first_at), _utc(batch.last_at)
        if first <= moment <= last:
            return timedelta(0)
        return min(abs(first - moment), abs(last - moment))

    for batch in sorted(batches, key=distance):
        frame = pl.read_parquet(io.BytesIO(read(batch.digest)))
        hit = frame.filter(pl.col("prediction_id") == prediction_id)
        if hit.height:
            return hit.row(0, named=True)
    return None


def traced(session: Session, project_id: str, row: dict[str, Any]) -> PredictionTrace:
    """``row`` of the log joined with its deployment revision, model version and label
    (``lineage`` is left None: the caller walks it under its own permission)."""
    deployments = DeploymentRepository(session, project_id)
    stamp = _utc(row["timestamp"])
    deployment = deployments.get(row["deployment"])
    revision = None
    if deployment is not None:
        earlier = [r for r in deployments.revisions(deployment.id) if _utc(r.created_at) <= stamp]
        revision = earlier[-1] if earlier else None
    version_id = _version_id(RegistryRepository(session, project_id), row["model"], row["version"])
    labels = GroundTruthRepository(session, project_id).find([row["prediction_id"]])
    known = row["prediction_id"] in labels
    return PredictionTrace(
        prediction_id=row["prediction_id"],
        timestamp=stamp,
        deployment=row["deployment"],
        deployment_id=None if deployment is None else deployment.id,
        model=row["model"],
        version=int(row["version"]),
        model_version_id=version_id,
        variant=row["variant"],
        request_id=row.get("request_id"),
        latency_ms=row.get("latency_ms"),
        inputs=stored_json(row.get("inputs")),
        prediction=stored_json(row.get("prediction")),
        score=row.get("score"),
        scores=stored_json(row.get("scores")),
        labelled=known,
        label=json.loads(labels[row["prediction_id"]]) if known else None,
        revision=None if revision is None else revision.revision,
        revision_action=None if revision is None else revision.action,
        revision_reason=None if revision is None else revision.reason,
        log=(
            log_node(deployment.id, version_id)
            if deployment is not None and version_id is not None
            else None
        ),
        lineage=None,
    )


def link_log(
    session: Session,
    ctx: Context,
    deployment: DeploymentRow | None,
    served: Iterable[tuple[str, int]],
) -> None:
    """Link each (model, version) ``deployment`` logged rows of to its ``prediction_log``
    node (``model_version → prediction_log``, ``deployment → prediction_log``); a link
    already made is not repeated. Rows of an unknown deployment or version link nothing."""
    if deployment is None:
        return
    registry = RegistryRepository(session, ctx.project_id)
    for model, version in sorted(served):
        version_id = _version_id(registry, model, version)
        if version_id is None:
            continue
        node = log_node(deployment.id, version_id)
        LineageService.link(session, ctx, Node("model_version", version_id), node, "predicted")
        LineageService.link(session, ctx, Node("deployment", deployment.id), node, "logged")


def upstream_of(
    lineage: LineageService, ctx: Context, log: Node, model_version_id: str, depth: int
) -> LineageGraph:
    """The lineage of a prediction: its log's own edges, then upstream of the model version
    only — not of the deployment, whose later versions and their retraining came after it.
    Logs stored before logs were linked start at the model version."""
    first = lineage.graph(ctx, log, depth=1, direction="up")
    version = Node("model_version", model_version_id)
    if version not in {edge.upstream for edge in first.upstream}:
        return lineage.graph(ctx, version, depth=depth, direction="up")
    if depth == 1:
        return first
    rest = lineage.graph(ctx, version, depth=depth - 1, direction="up")
    return LineageGraph(
        root=log,
        upstream=[*first.upstream, *rest.upstream],
        truncated=rest.truncated,  # the deployment's upstream is left out by design
    )


def _version_id(registry: RegistryRepository, model: str, version: int) -> str | None:
    found = registry.model(model)
    row = None if found is None else registry.version(found.id, int(version))
    return None if row is None else row.id


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
