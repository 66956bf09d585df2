"""OpenLineage 2-0-2 export: the lineage graph as RunEvents.

Jobs are the graph's processing nodes (runs, pipeline and step runs, transforms, validations);
datasets are its data nodes (dataset versions, sources, model versions, prediction logs). An
edge ``dataset → job`` makes the dataset an input of the job's run, ``job → dataset`` an output;
an edge ``dataset → dataset`` (a version derived without a recorded job) becomes a run of a job
named after the relation. Each run yields a START and a COMPLETE event, at the times its first
and last edges were recorded.

Facets: ``jobType`` (JobTypeJobFacet 2-0-4) on every job; ``schema`` (SchemaDatasetFacet 1-2-0)
and ``version`` (DatasetVersionDatasetFacet 1-0-1) on datasets whose description is known; and
``dataQualityAssertions`` (DataQualityAssertionsDatasetFacet 1-1-0) on the input of a validation
whose results are known. The official JSON schemas these validate against are vendored in
``keel/lineage/schemas`` (Apache-2.0, see the LICENSE and README there).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.lineage._graph import LineageEdge, Node

if TYPE_CHECKING:
    from keel.governance import Context
    from keel.lineage._graph import LineageService

__all__ = [
    "OPENLINEAGE_SCHEMA_URL",
    "NodeDescription",
    "assertions_from_validation",
    "build_run_events",
    "export_openlineage",
    "openlineage_schemas",
]

OPENLINEAGE_SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
PRODUCER = "https://github.com/keel-mlops/keel"
_FACETS = "https://openlineage.io/spec/facets"
_JOB_TYPE_URL = f"{_FACETS}/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet"
_SCHEMA_URL = f"{_FACETS}/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet"
_VERSION_URL = f"{_FACETS}/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet"
_DQ_URL = (
    f"{_FACETS}/1-1-0/DataQualityAssertionsDatasetFacet.json"
    "#/$defs/DataQualityAssertionsDatasetFacet"
)

JOB_TYPES = {
    "run": "RUN",
    "pipeline_run": "PIPELINE",
    "step_run": "STEP",
    "transform": "TRANSFORM",
    "validation": "VALIDATION",
}
DATASET_TYPES = frozenset({"source", "dataset_version", "model_version", "prediction_log"})
_CROCKFORD = {c: i for i, c in enumerate("0123456789ABCDEFGHJKMNPQRSTVWXYZ")}
_KEEL_NAMESPACE = uuid.UUID("6f1c1f0e-7b55-4c1e-9a51-6b6565656c00")


@dataclass(frozen=True, slots=True)
class NodeDescription:
    """What the export may say about a node beyond its id.

    Attributes:
        name: a readable name (``credit@3`` for a dataset version); defaults to ``TYPE:ID``.
        version: the dataset version (for the ``version`` facet).
        fields: ``(column, type)`` pairs (for the ``schema`` facet).
        assertions: for a validation, its checks as ``assertions_from_validation`` returns.
    """

    name: str | None = None
    version: str | None = None
    fields: tuple[tuple[str, str], ...] = ()
    assertions: tuple[Mapping[str, Any], ...] = ()


Describe = Callable[[Node], NodeDescription | None]


@dataclass
class _Run:
    job: Node
    relation: str | None = None
    #: each input with the relation of its edge (a validation's ``validated`` or ``reference``)
    inputs: dict[Node, str] = field(default_factory=dict)
    outputs: dict[Node, None] = field(default_factory=dict)
    first: datetime | None = None
    last: datetime | None = None

    def seen(self, moment: datetime) -> None:
        self.first = moment if self.first is None else min(self.first, moment)
        self.last = moment if self.last is None else max(self.last, moment)


def run_uuid(node: Node, relation: str | None = None) -> str:
    """A stable UUID for a node: a Keel id (ULID) maps to its 128 bits, anything else to UUIDv5."""
    text = node.id.upper()
    if relation is None and len(text) == 26 and all(c in _CROCKFORD for c in text):
        value = 0
        for char in text:
            value = value * 32 + _CROCKFORD[char]
        if value < 1 << 128:
            return str(uuid.UUID(int=value))
    suffix = f"/{relation}" if relation else ""
    return str(uuid.uuid5(_KEEL_NAMESPACE, f"{node.type}:{node.id}{suffix}"))


def assertions_from_validation(result: Mapping[str, Any]) -> tuple[dict[str, Any], ...]:
    """The checks of a ``ValidationResult.to_dict()`` as OpenLineage data-quality assertions."""
    out = []
    for check in result.get("checks", ()):
        item: dict[str, Any] = {
            "assertion": str(check.get("kind", "")),
            "success": bool(check.get("passed")),
            "name": str(check.get("name", "")),
            "severity": "warn" if check.get("level") == "warning" else "error",
        }
        if check.get("column"):
            item["column"] = str(check["column"])
        for key, source in (("expected", "threshold"), ("actual", "observed")):
            if check.get(source) is not None:
                item[key] = json.dumps(check[source], default=str)[:500]
        out.append(item)
    return tuple(out)


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def build_run_events(
    edges: Iterable[tuple[LineageEdge, datetime]],
    *,
    namespace: str,
    describe: Describe | None = None,
    producer: str = PRODUCER,
) -> list[dict[str, Any]]:
    """OpenLineage RunEvents (START, then COMPLETE) for every job the edges touch. Pure."""
    runs: dict[tuple[Node, str | None], _Run] = {}

    def run_of(job: Node, relation: str | None = None) -> _Run:
        key = (job, relation)
        if key not in runs:
            runs[key] = _Run(job, relation)
        return runs[key]

    for edge, when in edges:
        moment = _as_utc(when)
        up, down = edge.upstream, edge.downstream
        if up.type in DATASET_TYPES and down.type in JOB_TYPES:
            run = run_of(down)
            run.inputs[up] = edge.relation
        elif up.type in JOB_TYPES and down.type in DATASET_TYPES:
            run = run_of(up)
            run.outputs[down] = None
        elif up.type in DATASET_TYPES and down.type in DATASET_TYPES:
            run = run_of(down, edge.relation)
            run.inputs[up] = edge.relation
            run.outputs[down] = None
        else:
            continue
        run.seen(moment)

    cache: dict[Node, NodeDescription | None] = {}

    def described(node: Node) -> NodeDescription | None:
        if node not in cache:
            cache[node] = describe(node) if describe is not None else None
        return cache[node]

    events: list[dict[str, Any]] = []
    for (job, relation), run in sorted(runs.items(), key=_order):
        events.extend(_events(job, relation, run, namespace, producer, described))
    return events


def _order(item: tuple[tuple[Node, str | None], _Run]) -> tuple[str, str, str]:
    (job, relation), run = item
    return (run.first.isoformat() if run.first else "", str(job), relation or "")


def _events(
    job: Node,
    relation: str | None,
    run: _Run,
    namespace: str,
    producer: str,
    described: Describe,
) -> list[dict[str, Any]]:
    if relation is None:
        info = described(job)
        job_name = (info.name if info and info.name else None) or f"{job.type}:{job.id}"
        job_type = JOB_TYPES[job.type]
        assertions = info.assertions if info else ()
    else:
        job_name, job_type, assertions = f"keel.{relation}", relation.upper(), ()
    job_facets = {
        "jobType": {
            "_producer": producer,
            "_schemaURL": _JOB_TYPE_URL,
            "processingType": "BATCH",
            "integration": "KEEL",
            "jobType": job_type,
        }
    }
    inputs = [_dataset(node, namespace, producer, described) for node in run.inputs]
    if assertions:  # on the version checked, not on the reference it was compared with
        checked = [
            i for node, i in zip(run.inputs, inputs, strict=True) if run.inputs[node] != "reference"
        ]
        for item in checked:
            item["inputFacets"] = {
                "dataQualityAssertions": {
                    "_producer": producer,
                    "_schemaURL": _DQ_URL,
                    "assertions": [dict(a) for a in assertions],
                }
            }
    # A validation "gates" the version it read: that is not an output it produced.
    made = [node for node in run.outputs if node not in run.inputs or relation is not None]
    outputs = [_dataset(node, namespace, producer, described) for node in made]
    run_id = run_uuid(job, relation)
    events = []
    for kind, moment in (("START", run.first), ("COMPLETE", run.last)):
        events.append(
            {
                "eventType": kind,
                "eventTime": (moment or datetime.fromtimestamp(0, UTC)).isoformat(),
                "producer": producer,
                "schemaURL": OPENLINEAGE_SCHEMA_URL,
                "run": {"runId": run_id},
                "job": {"namespace": namespace, "name": job_name, "facets": job_facets},
                "inputs": inputs,
                "outputs": outputs,
            }
        )
    return events


def _dataset(node: Node, namespace: str, producer: str, described: Describe) -> dict[str, Any]:
    info = described(node)
    facets: dict[str, Any] = {}
    if info is not None and info.fields:
        facets["schema"] = {
            "_producer": producer,
            "_schemaURL": _SCHEMA_URL,
            "fields": [
                {"name": name, "type": dtype, "ordinal_position": position}
                for position, (name, dtype) in enumerate(info.fields, start=1)
            ],
        }
    if info is not None and info.version is not None:
        facets["version"] = {
            "_producer": producer,
            "_schemaURL": _VERSION_URL,
            "datasetVersion": info.version,
        }
    name = (info.name if info and info.name else None) or f"{node.type}:{node.id}"
    out: dict[str, Any] = {"namespace": namespace, "name": name}
    if facets:
        out["facets"] = facets
    return out


def export_openlineage(
    service: LineageService,
    ctx: Context,
    *,
    describe: Describe | None = None,
    producer: str = PRODUCER,
) -> list[dict[str, Any]]:
    """Every edge of the caller's project as OpenLineage RunEvents (needs ``lineage.read``).

    The namespace is ``keel://<project>``. ``describe`` adds names, schemas, versions and
    validation results where the caller knows them (the data service does).
    """
    from sqlalchemy import select

    from keel.governance import Permission
    from keel.store._schema_lineage import LineageEdgeRow

    edges: list[tuple[LineageEdge, datetime]] = []
    with service._gov.read(
        ctx, Permission.LINEAGE_READ, "lineage.export", object_type="project"
    ) as session:
        stmt = (
            select(LineageEdgeRow)
            .where(LineageEdgeRow.project_id == ctx.project_id)
            .order_by(LineageEdgeRow.id)
            .execution_options(yield_per=1000)
        )
        for row in session.execute(stmt).scalars():
            edge = LineageEdge(
                Node(row.src_type, row.src_id), Node(row.dst_type, row.dst_id), row.relation
            )
            edges.append((edge, row.created_at))
    return build_run_events(
        edges, namespace=f"keel://{ctx.project_name}", describe=describe, producer=producer
    )


def openlineage_schemas() -> dict[str, dict[str, Any]]:
    """The vendored official JSON schemas, by ``$id`` (for validating exported events)."""
    folder = Path(__file__).with_name("schemas")
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        found[str(schema["$id"])] = schema
    return found
