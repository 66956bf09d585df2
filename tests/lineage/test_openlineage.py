"""OpenLineage export: RunEvents that validate against the official 2-0-2 schemas."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

from keel.lineage import (
    OPENLINEAGE_SCHEMA_URL,
    LineageEdge,
    LineageService,
    Node,
    NodeDescription,
    assertions_from_validation,
    build_run_events,
    openlineage_schemas,
)
from keel.workspace import Workspace

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CORE = "https://openlineage.io/spec/2-0-2/OpenLineage.json"
FACETS = "https://openlineage.io/spec/facets"


def _validator(schema_id: str) -> Draft202012Validator:
    schemas = openlineage_schemas()
    registry: Registry = Registry().with_resources(
        (key, Resource.from_contents(value)) for key, value in schemas.items()
    )
    return Draft202012Validator(
        schemas[schema_id], registry=registry, format_checker=FormatChecker()
    )


def assert_valid(events: list[dict[str, Any]]) -> None:
    """Each event against the core schema, and each facet against its own facet schema."""
    core = _validator(CORE)
    facet_validators = {
        "schema": _validator(f"{FACETS}/1-2-0/SchemaDatasetFacet.json"),
        "version": _validator(f"{FACETS}/1-0-1/DatasetVersionDatasetFacet.json"),
        "jobType": _validator(f"{FACETS}/2-0-4/JobTypeJobFacet.json"),
        "dataQualityAssertions": _validator(
            f"{FACETS}/1-1-0/DataQualityAssertionsDatasetFacet.json"
        ),
    }
    for event in events:
        errors = [e.message for e in core.iter_errors(event)]
        assert not errors, errors
        groups = [event["job"].get("facets", {})]
        for dataset in (*event["inputs"], *event["outputs"]):
            groups += [dataset.get("facets", {}), dataset.get("inputFacets", {})]
        for group in groups:
            for name, facet in group.items():
                assert facet["_schemaURL"].split("#")[0] in openlineage_schemas()
                errors = [e.message for e in facet_validators[name].iter_errors({name: facet})]
                assert not errors, (name, errors)


def test_the_vendored_schemas_are_the_official_2_0_2_ones() -> None:
    schemas = openlineage_schemas()
    assert CORE in schemas
    assert f"{CORE}#/$defs/RunEvent" == OPENLINEAGE_SCHEMA_URL
    assert "RunEvent" in schemas[CORE]["$defs"]
    licence = Path(__file__).parents[2] / "src/keel/lineage/schemas/LICENSE"
    assert "Apache License" in licence.read_text()


def _edges() -> list[tuple[LineageEdge, datetime]]:
    chain = [
        ("source", "s3", "dataset_version", "01JDV1AAAAAAAAAAAAAAAAAAAA", "ingested"),
        ("dataset", "d", "dataset_version", "01JDV1AAAAAAAAAAAAAAAAAAAA", "version_of"),
        ("dataset_version", "01JDV1AAAAAAAAAAAAAAAAAAAA", "transform", "t1", "input"),
        ("transform", "t1", "dataset_version", "01JDV2AAAAAAAAAAAAAAAAAAAA", "produced"),
        ("dataset_version", "01JDV2AAAAAAAAAAAAAAAAAAAA", "validation", "v1", "validated"),
        ("dataset_version", "01JDV1AAAAAAAAAAAAAAAAAAAA", "validation", "v1", "reference"),
        ("validation", "v1", "dataset_version", "01JDV2AAAAAAAAAAAAAAAAAAAA", "gated"),
        (
            "dataset_version",
            "01JDV2AAAAAAAAAAAAAAAAAAAA",
            "run",
            "01JRUNAAAAAAAAAAAAAAAAAAAA",
            "used",
        ),
        ("run", "01JRUNAAAAAAAAAAAAAAAAAAAA", "model_version", "mv1", "produced"),
        ("pipeline_run", "p", "step_run", "s", "contains"),
    ]
    return [
        (LineageEdge(Node(a, b), Node(c, d), rel), T0 + timedelta(minutes=i))
        for i, (a, b, c, d, rel) in enumerate(chain)
    ]


def _describe(node: Node) -> NodeDescription | None:
    if node == Node("dataset_version", "01JDV2AAAAAAAAAAAAAAAAAAAA"):
        return NodeDescription(
            name="credit@2", version="2", fields=(("age", "Int64"), ("x", "String"))
        )
    if node.type == "validation":
        checks = {
            "checks": [
                {
                    "name": "nn",
                    "kind": "not_null",
                    "column": "age",
                    "level": "warning",
                    "passed": False,
                    "observed": 3,
                    "threshold": {"max_fraction": 0},
                }
            ]
        }
        return NodeDescription(
            name="validate credit@2", assertions=assertions_from_validation(checks)
        )
    return None


def test_jobs_datasets_and_facets_follow_the_graph() -> None:
    events = build_run_events(_edges(), namespace="keel://default", describe=_describe)
    assert_valid(events)
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"] * 4
    by_job = {e["job"]["name"]: e for e in events if e["eventType"] == "COMPLETE"}
    assert set(by_job) == {
        "keel.ingested",
        "transform:t1",
        "validate credit@2",
        "run:01JRUNAAAAAAAAAAAAAAAAAAAA",
    }
    ingest = by_job["keel.ingested"]
    assert [d["name"] for d in ingest["inputs"]] == ["source:s3"]
    assert [d["name"] for d in ingest["outputs"]] == ["dataset_version:01JDV1AAAAAAAAAAAAAAAAAAAA"]
    transform = by_job["transform:t1"]
    out = transform["outputs"][0]
    assert out["name"] == "credit@2" and out["facets"]["version"]["datasetVersion"] == "2"
    assert [f["name"] for f in out["facets"]["schema"]["fields"]] == ["age", "x"]
    assert transform["job"]["facets"]["jobType"]["jobType"] == "TRANSFORM"
    validation = by_job["validate credit@2"]
    assert validation["outputs"] == []  # gating is not producing
    assertion = validation["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"][0]
    assert assertion == {
        "assertion": "not_null",
        "success": False,
        "name": "nn",
        "severity": "warn",
        "column": "age",
        "expected": '{"max_fraction": 0}',
        "actual": "3",
    }
    run = by_job["run:01JRUNAAAAAAAAAAAAAAAAAAAA"]
    assert [d["name"] for d in run["outputs"]] == ["model_version:mv1"]
    # run ids are stable UUIDs; a Keel ULID keeps its 128 bits
    again = build_run_events(_edges(), namespace="keel://default", describe=_describe)
    assert [e["run"]["runId"] for e in again] == [e["run"]["runId"] for e in events]
    start = next(e for e in events if e["job"]["name"] == "transform:t1")
    assert start["eventTime"] == (T0 + timedelta(minutes=2)).isoformat()
    assert by_job["transform:t1"]["eventTime"] == (T0 + timedelta(minutes=3)).isoformat()


def test_the_openlineage_client_reads_the_events_the_same_way() -> None:
    from openlineage.client.event_v2 import (
        InputDataset,
        Job,
        OutputDataset,
        Run,
        RunEvent,
        RunState,
    )
    from openlineage.client.generated import data_quality_assertions_dataset as dq
    from openlineage.client.generated import dataset_version_dataset, job_type_job, schema_dataset
    from openlineage.client.serde import Serde

    def facets(raw: dict[str, Any]) -> dict[str, Any]:
        made: dict[str, Any] = {}
        for name, facet in raw.items():
            body = {k: v for k, v in facet.items() if not k.startswith("_")}
            if name == "schema":
                fields = [schema_dataset.SchemaDatasetFacetFields(**f) for f in body["fields"]]
                made[name] = schema_dataset.SchemaDatasetFacet(fields=fields)
            elif name == "version":
                made[name] = dataset_version_dataset.DatasetVersionDatasetFacet(**body)
            elif name == "jobType":
                made[name] = job_type_job.JobTypeJobFacet(**body)
            else:
                made[name] = dq.DataQualityAssertionsDatasetFacet(
                    assertions=[dq.Assertion(**a) for a in body["assertions"]]
                )
        return made

    for event in build_run_events(_edges(), namespace="keel://p", describe=_describe):
        client_event = RunEvent(
            eventType=RunState[event["eventType"]],
            eventTime=event["eventTime"],
            run=Run(runId=event["run"]["runId"]),
            job=Job(
                namespace=event["job"]["namespace"],
                name=event["job"]["name"],
                facets=facets(event["job"]["facets"]),
            ),
            inputs=[
                InputDataset(
                    namespace=d["namespace"],
                    name=d["name"],
                    facets=facets(d.get("facets", {})),
                    inputFacets=facets(d.get("inputFacets", {})),
                )
                for d in event["inputs"]
            ],
            outputs=[
                OutputDataset(
                    namespace=d["namespace"], name=d["name"], facets=facets(d.get("facets", {}))
                )
                for d in event["outputs"]
            ],
            producer=event["producer"],
        )
        theirs = Serde.to_dict(client_event)
        assert theirs["schemaURL"] == event["schemaURL"]
        assert (
            theirs["job"]["facets"]["jobType"]["_schemaURL"]
            == (event["job"]["facets"]["jobType"]["_schemaURL"])
        )
        for mine, their in zip(
            event["inputs"] + event["outputs"], theirs["inputs"] + theirs["outputs"], strict=True
        ):
            for group in ("facets", "inputFacets"):
                for name, facet in mine.get(group, {}).items():
                    assert their[group][name]["_schemaURL"] == facet["_schemaURL"]
        assert_valid([json.loads(Serde.to_json(client_event))])


def _link(ws: Workspace, up: Node, down: Node, relation: str) -> None:
    with ws._governor.db.write() as session:
        LineageService.link(session, ws.ctx, up, down, relation)


def test_export_reads_the_whole_project_graph(ws: Workspace) -> None:
    for edge, _ in _edges():
        _link(ws, edge.upstream, edge.downstream, edge.relation)
    events = ws.lineage.openlineage_events()
    assert_valid(events)
    assert len(events) == 8
    assert {e["job"]["namespace"] for e in events} == {"keel://default"}
    times = [datetime.fromisoformat(e["eventTime"]) for e in events]
    assert all(abs(datetime.now(UTC) - t) < timedelta(minutes=5) for t in times)


def test_keel_lineage_export_writes_json_lines(tmp_path: Path) -> None:
    import polars as pl

    from keel.workspace import connect
    from tests.conftest import make_settings

    home = tmp_path / "home"
    with connect(settings=make_settings(home)) as ws:  # the same local principal as the CLI
        ws.datasets.ingest("credit", pl.DataFrame({"age": [30, 40], "email": ["a@b.co", "c@d.ae"]}))
        ws.datasets.validate("credit", [{"kind": "range", "column": "age", "max": 35}])
        ws.datasets.ingest(
            "credit", pl.DataFrame({"age": [50], "email": ["e@f.ae"]}), mode="append"
        )
        ws.datasets.validate("credit", [{"kind": "not_null", "column": "age"}], reference=1)
    env = {**os.environ, "KEEL_HOME": str(home)}
    env.pop("KEEL_DB_URL", None)
    out = tmp_path / "events.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "keel.cli", "lineage", "export", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert_valid(events)
    validation = next(e for e in events if e["job"]["name"] == "validate credit@1")
    dataset = validation["inputs"][0]
    assert dataset["name"] == "credit@1"
    assert [f["name"] for f in dataset["facets"]["schema"]["fields"]] == ["age", "email"]
    checks = dataset["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert [(c["assertion"], c["success"]) for c in checks] == [("range", False)]
    # a check of version 2 against version 1 asserts on version 2 only
    compared = next(e for e in events if e["job"]["name"] == "validate credit@2")
    facets = {i["name"]: "inputFacets" in i for i in compared["inputs"]}
    assert facets == {"credit@2": True, "credit@1": False}
    assert "Wrote" in done.stderr
    nowhere = subprocess.run(
        [sys.executable, "-m", "keel.cli", "lineage", "export", "--out", str(tmp_path / "no/x")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert nowhere.returncode == 2 and "Cannot write the OpenLineage events" in nowhere.stderr
    assert "Traceback" not in nowhere.stderr
    stdout = subprocess.run(
        [sys.executable, "-m", "keel.cli", "lineage", "export"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    ).stdout
    assert [json.loads(line) for line in stdout.splitlines()] == events
