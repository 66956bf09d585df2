"""Monitors over prediction logs: windows, drift, quality with late labels, latency, lineage."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from keel import clock
from keel.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from keel.lineage import Node
from keel.workspace import Workspace
from tests.monitoring.conftest import Deployed, deploy_model, log_predictions, traffic


def test_a_monitor_reports_drift_quality_and_latency(ws: Workspace) -> None:
    d = deploy_model(ws)
    monitor = ws.monitors.create(
        "churn",
        reference="customers",
        deployment=d.deployment,
        target="label",
        window="count:1000",
        thresholds={"a": {"metric": "ks", "drift": 0.1, "warning": 0.05}},
    )
    assert monitor.reference == "customers:1" and monitor.features == ("a", "b", "c", "plan")
    inputs, predicted, truth = traffic(d.model, 600, shift=1.0)
    ids = log_predictions(ws, d.deployment, inputs, predicted)
    half = [
        {"prediction_id": pid, "label": t} for pid, t in zip(ids[:300], truth[:300], strict=True)
    ]
    ingested = ws.monitors.ingest_labels(half, deployment=d.deployment)
    assert (ingested.stored, ingested.matched, ingested.invalid) == (300, 300, 0)

    report = ws.monitors.run("churn")
    assert report.rows == 600 and report.status == "drift"
    features = {f["feature"]: f for f in report.drift["features"]}
    assert features["a"]["status"] == "drift" and features["a"]["metric"] == "ks"
    assert features["plan"]["kind"] == "categorical"
    assert report.drift["prediction"]["status"] in ("ok", "warning", "drift")
    quality = report.quality
    assert quality is not None
    assert quality["labelled"] == 300 and quality["coverage"] == pytest.approx(0.5)
    assert quality["task"] == "classification" and quality["status"] == "ok"
    assert 0.5 < quality["overall"]["accuracy"] <= 1.0
    assert quality["versions"][0]["version"] == d.version
    assert report.latency[0]["requests"] == 600 and report.latency[0]["p95_ms"] > 0
    json.dumps(report.to_dict(), allow_nan=False)

    stored = ws.monitors.reports("churn")
    assert [r.id for r in stored] == [report.id]
    assert ws.monitors.report(report.id).drift == report.drift
    graph = ws.lineage.graph(Node("monitor_report", report.id), direction="up")
    kinds = {n.type for n in graph.nodes}
    assert {"deployment", "dataset_version"} <= kinds


def test_late_labels_join_on_a_later_run(deployed: Deployed) -> None:
    ws = deployed.ws
    ws.monitors.create("m", reference="customers:1", deployment=deployed.deployment)
    inputs, predicted, truth = traffic(deployed.model, 200)
    ids = log_predictions(ws, deployed.deployment, inputs, predicted)
    first = ws.monitors.run("m")
    assert first.quality is not None and first.quality["status"] == "no_labels"
    assert "labels ingest" in first.quality["message"]
    ws.monitors.ingest_labels(
        [{"prediction_id": i, "label": t} for i, t in zip(ids, truth, strict=True)]
    )
    second = ws.monitors.run("m")
    assert second.quality is not None and second.quality["coverage"] == 1.0


def test_labels_that_arrive_before_their_predictions_are_logged(deployed: Deployed) -> None:
    ws = deployed.ws
    ws.monitors.create("m", reference="customers:1", deployment=deployed.deployment)
    inputs, predicted, truth = traffic(deployed.model, 50)
    early = ws.monitors.ingest_labels(
        [{"prediction_id": f"p{i}", "label": t} for i, t in enumerate(truth)],
        deployment=deployed.deployment,
    )
    assert (early.stored, early.matched) == (50, 0)  # nothing logged yet
    log_predictions(ws, deployed.deployment, inputs, predicted)
    report = ws.monitors.run("m")
    assert report.quality is not None and report.quality["labelled"] == 50


def test_duplicate_conflicting_and_invalid_labels_are_counted(
    deployed: Deployed, tmp_path: Path
) -> None:
    ws = deployed.ws
    ws.monitors.ingest_labels(
        [{"prediction_id": "x1", "label": 1}, {"prediction_id": "x2", "label": 0}]
    )
    path = tmp_path / "labels.csv"
    path.write_text("prediction_id,label\nx1,1\nx2,1\nx3,0\nx3,0\n,1\nx4,\n")
    result = ws.monitors.ingest_labels(path)
    assert result.received == 6
    assert (result.stored, result.duplicates, result.conflicts, result.invalid) == (1, 2, 1, 2)
    assert any("no prediction_id" in p for p in result.problems)
    assert any("no label" in p for p in result.problems)
    kept = ws.monitors.service.labels.find(ws.ctx, ["x1", "x2", "x3"])
    assert kept == {"x1": 1, "x2": 0, "x3": 0}  # the first label is kept
    replaced = ws.monitors.ingest_labels(path, on_conflict="replace")
    assert replaced.replaced == 1
    assert ws.monitors.service.labels.find(ws.ctx, ["x2"]) == {"x2": 1}


@pytest.mark.parametrize("suffix", [".parquet", ".ndjson", ".json"])
def test_label_files_of_every_format(deployed: Deployed, tmp_path: Path, suffix: str) -> None:
    frame = pl.DataFrame({"prediction_id": ["a", "b"], "label": [1, 0]})
    path = tmp_path / f"labels{suffix}"
    if suffix == ".parquet":
        frame.write_parquet(path)
    elif suffix == ".ndjson":
        frame.write_ndjson(path)
    else:
        path.write_text(json.dumps(frame.to_dicts()))
    assert deployed.ws.monitors.ingest_labels(path).stored == 2


def test_label_file_mistakes_are_explained(deployed: Deployed, tmp_path: Path) -> None:
    ws = deployed.ws
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("id,truth\n1,2\n")
    with pytest.raises(InvalidInputError, match="prediction_id and label"):
        ws.monitors.ingest_labels(wrong)
    with pytest.raises(InvalidInputError, match="No label file"):
        ws.monitors.ingest_labels(tmp_path / "absent.csv")
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(InvalidInputError, match="Unknown label file type"):
        ws.monitors.ingest_labels(tmp_path / "x.txt")


def test_time_windows_take_only_the_period(deployed: Deployed) -> None:
    ws = deployed.ws
    ws.monitors.create(
        "recent", reference="customers:1", deployment=deployed.deployment, window="time:1h"
    )
    now = clock.now()
    inputs, predicted, _ = traffic(deployed.model, 100)
    log_predictions(
        ws, deployed.deployment, inputs, predicted, start=now - timedelta(hours=3), prefix="old"
    )
    log_predictions(
        ws,
        deployed.deployment,
        inputs[:40],
        predicted[:40],
        start=now - timedelta(minutes=10),
        prefix="new",
    )
    report = ws.monitors.run("recent", now=now)
    assert report.rows == 40
    assert report.window_start is not None and report.window_start >= now - timedelta(hours=1)


def test_count_windows_take_the_newest_predictions(deployed: Deployed) -> None:
    ws = deployed.ws
    ws.monitors.create(
        "last", reference="customers:1", deployment=deployed.deployment, window="count:30"
    )
    inputs, predicted, _ = traffic(deployed.model, 100)
    now = clock.now()
    log_predictions(
        ws, deployed.deployment, inputs, predicted, start=now - timedelta(hours=2), prefix="old"
    )
    log_predictions(
        ws,
        deployed.deployment,
        inputs[:50],
        predicted[:50],
        start=now - timedelta(minutes=1),
        prefix="new",
    )
    report = ws.monitors.run("last")
    assert report.rows == 30
    assert report.window_start is not None and report.window_start >= now - timedelta(minutes=1)


def test_an_empty_window_and_an_all_null_feature(deployed: Deployed) -> None:
    ws = deployed.ws
    ws.monitors.create(
        "m", reference="customers:1", deployment=deployed.deployment, features=["a", "b", "zzz"]
    )
    empty = ws.monitors.run("m")
    assert empty.status == "no_data" and empty.rows == 0
    assert {f["status"] for f in empty.drift["features"]} == {
        "missing_in_current",
        "missing_in_reference",
    }
    inputs, predicted, _ = traffic(deployed.model, 60)
    for record in inputs:
        record["b"] = None
    log_predictions(ws, deployed.deployment, inputs, predicted)
    report = ws.monitors.run("m")
    statuses = {f["feature"]: f["status"] for f in report.drift["features"]}
    assert statuses["a"] in ("ok", "warning", "drift")  # compared (60 rows: noisy)
    assert (statuses["b"], statuses["zzz"]) == ("all_null", "missing_in_reference")
    json.dumps(report.to_dict(), allow_nan=False)


def test_batch_mode_monitors_a_frame(deployed: Deployed) -> None:
    ws = deployed.ws
    ws.monitors.create(
        "batch", reference="customers:1", deployment=deployed.deployment, target="label"
    )
    inputs, predicted, truth = traffic(deployed.model, 300, shift=2.0)
    frame = pl.DataFrame(inputs).with_columns(
        pl.Series("prediction", predicted), pl.Series("label", truth)
    )
    report = ws.monitors.run("batch", current=frame)
    assert report.status == "drift" and "a" in report.drift["drifted"]
    assert report.quality is not None and report.quality["coverage"] == 1.0


def test_a_model_monitor_watches_every_deployment_of_the_model(deployed: Deployed) -> None:
    ws = deployed.ws
    ws.monitors.create("by-model", reference="customers:1", model="churn")
    inputs, predicted, _ = traffic(deployed.model, 40)
    log_predictions(ws, deployed.deployment, inputs, predicted)
    assert ws.monitors.run("by-model").rows == 40


def test_definition_mistakes_are_explained(deployed: Deployed) -> None:
    ws = deployed.ws
    with pytest.raises(InvalidInputError, match="exactly one"):
        ws.monitors.create("m", reference="customers:1")
    with pytest.raises(NotFoundError, match="No deployment"):
        ws.monitors.create("m", reference="customers:1", deployment="nope")
    with pytest.raises(InvalidInputError, match="Invalid window"):
        ws.monitors.create(
            "m", reference="customers:1", deployment=deployed.deployment, window="weekly"
        )
    with pytest.raises(InvalidInputError, match="no column"):
        ws.monitors.create(
            "m", reference="customers:1", deployment=deployed.deployment, target="nope"
        )
    with pytest.raises(InvalidInputError, match="does not compare"):
        ws.monitors.create(
            "m",
            reference="customers:1",
            deployment=deployed.deployment,
            features=["a"],
            thresholds={"b": {"drift": 0.1}},
        )
    with pytest.raises(NotFoundError):
        ws.monitors.create("m", reference="nothing:1", deployment=deployed.deployment)
    ws.monitors.create("m", reference="customers:1", deployment=deployed.deployment)
    with pytest.raises(AlreadyExistsError):
        ws.monitors.create("m", reference="customers:1", deployment=deployed.deployment)
    replaced = ws.monitors.create(
        "m", reference="customers:1", deployment=deployed.deployment, window="time:2h", replace=True
    )
    assert replaced.window == "time:2h" and [m.name for m in ws.monitors.list()] == ["m"]
    ws.monitors.delete("m")
    with pytest.raises(NotFoundError, match="keel monitors list"):
        ws.monitors.get("m")


def test_scheduled_monitors_run_when_due_through_the_scheduler(deployed: Deployed) -> None:
    ws = deployed.ws
    made = ws.monitors.create(
        "nightly", reference="customers:1", deployment=deployed.deployment, schedule="0 3 * * *"
    )
    assert made.next_run_at is not None
    inputs, predicted, _ = traffic(deployed.model, 30)
    log_predictions(ws, deployed.deployment, inputs, predicted)
    assert ws.monitors.run_due(made.next_run_at - timedelta(minutes=1)) == []
    daemon = ws.pipelines.scheduler(jobs=[ws.monitors.run_due])
    daemon.tick(made.next_run_at + timedelta(seconds=1))
    reports = ws.monitors.reports("nightly")
    assert len(reports) == 1 and reports[0].rows == 30
    following = ws.monitors.get("nightly").next_run_at
    assert following is not None and following > made.next_run_at
    daemon.tick(made.next_run_at + timedelta(seconds=2))  # not due again: nothing runs
    assert len(ws.monitors.reports("nightly")) == 1


def test_a_stored_schedule_the_cron_rules_now_refuse_stops_alone(deployed: Deployed) -> None:
    # before: a schedule stored before the stricter cron rules (a sixth, seconds field) made
    # run_due raise on every tick, so no scheduled monitor ran at all
    from sqlalchemy import update

    from keel.store._schema_monitoring import MonitorRow

    ws = deployed.ws
    good = ws.monitors.create(
        "nightly", reference="customers:1", deployment=deployed.deployment, schedule="0 3 * * *"
    )
    ws.monitors.create(
        "legacy", reference="customers:1", deployment=deployed.deployment, schedule="0 3 * * *"
    )
    with ws._governor.db.write() as session:
        session.execute(
            update(MonitorRow).where(MonitorRow.name == "legacy").values(schedule="0 3 * * * *")
        )
    inputs, predicted, _ = traffic(deployed.model, 30)
    log_predictions(ws, deployed.deployment, inputs, predicted)
    assert good.next_run_at is not None
    reports = ws.monitors.run_due(good.next_run_at + timedelta(seconds=1))
    assert [r.rows for r in reports] == [30] and len(ws.monitors.reports("nightly")) == 1
    assert ws.monitors.get("legacy").next_run_at is None  # stopped until it is replaced
    assert ws.monitors.reports("legacy") == []


def test_the_html_report_is_self_contained_and_escaped(deployed: Deployed, tmp_path: Path) -> None:
    ws = deployed.ws
    ws.monitors.create("m", reference="customers:1", deployment=deployed.deployment, target="label")
    inputs, predicted, truth = traffic(
        deployed.model, 200, shift=1.5, plans=["basic", "<script>alert(1)</script>"]
    )
    ids = log_predictions(ws, deployed.deployment, inputs, predicted)
    ws.monitors.ingest_labels(
        [{"prediction_id": i, "label": t} for i, t in zip(ids, truth, strict=True)]
    )
    ws.monitors.add_rule("drift-high", monitor="m", metric="drift.share", threshold=0.1)
    ws.monitors.run("m")
    ws.monitors.run("m")
    page = ws.monitors.write_html("m", tmp_path / "report.html").read_text()
    assert page.startswith("<!doctype html>")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<svg" in page and "http://" not in page and "https://" not in page
    assert "drift-high" in page and "accuracy over time" in page
    assert page.count("<polyline") == 2
