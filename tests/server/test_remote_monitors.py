"""``ws.monitors``, local and remote: the same assertions on a local workspace and on
``keel.connect(url, token=...)`` to a live server (on SQLite, and on PostgreSQL).

Prediction logs are written the way the model server writes them, beside the store (through
the local deployment service of whichever process owns the store).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

import keel
from keel.errors import AlreadyExistsError, InvalidInputError, NotFoundError, PermissionDeniedError
from keel.governance import Context
from keel.monitoring import Alert, AlertRule, LabelIngest, Monitor, MonitorReport
from keel.serving import DeploymentService
from keel.serving._predlog import _to_table
from keel.workspace import Workspace
from keel.workspace._remote import RemoteWorkspace
from tests.conftest import make_settings, reset_postgres
from tests.monitoring.conftest import (
    FEATURES,
    Sink,
    deploy_model,
    reference_frame,
    sink,  # noqa: F401  (the fixture: a local HTTP endpoint recording what it is sent)
    traffic,
)
from tests.server._live import LiveServer, live_server

Logger = Callable[[str, Sequence[dict[str, Any]], Sequence[Any]], list[str]]


@dataclass
class Either:
    ws: Workspace
    log: Logger  # writes one prediction log batch, as the model server does
    server: LiveServer | None = None


def _logger(service: DeploymentService, ctx: Context) -> Logger:
    from keel import clock

    def log(
        deployment: str, inputs: Sequence[dict[str, Any]], predictions: Sequence[Any]
    ) -> list[str]:
        first = clock.now() - timedelta(minutes=5)
        ids = [f"p{i}" for i in range(len(inputs))]
        rows = []
        for i, (pid, record, prediction) in enumerate(zip(ids, inputs, predictions, strict=True)):
            moment, latency = first + timedelta(milliseconds=10 * i), 2.0 + i % 5
            row = (pid, deployment, "churn", 1, "primary", None, moment, latency)
            rows.append((*row, json.dumps(record), json.dumps(prediction)))
        service.write_log_batch(ctx, deployment, f"batch-{len(ids)}", _to_table(rows))
        return ids

    return log


@pytest.fixture(params=["local", "remote", "remote-postgres"])
def either(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Either]:
    if request.param == "local":
        workspace = keel.connect(settings=make_settings(tmp_path / "home"), principal="user:t")
        try:
            yield Either(workspace, _logger(workspace.deployments.service, workspace.ctx))
        finally:
            workspace.close()
        return
    db_url = None
    if request.param == "remote-postgres":
        db_url = request.getfixturevalue("pg_url")
        reset_postgres(db_url)
    with live_server(tmp_path / "home", db_url) as server:
        workspace = keel.connect(server.url, token=server.token_for("admin", name="user:t"))
        logger = _logger(server.services.deployments, server.context_in("default"))
        try:
            yield Either(workspace, logger, server)
        finally:
            workspace.close()


def test_monitors_are_created_listed_read_and_deleted(either: Either) -> None:
    ws = either.ws
    deployed = deploy_model(ws)
    made = ws.monitors.create(
        "churn",
        reference="customers",
        deployment=deployed.deployment,
        target="label",
        window="count:1000",
        thresholds={"a": {"metric": "psi", "drift": 0.25}},
    )
    assert isinstance(made, Monitor)
    assert (made.name, made.reference, made.deployment, made.window) == (
        "churn",
        "customers:1",
        deployed.deployment,
        "count:1000",
    )
    assert made.features == ("a", "b", "c", "plan")
    assert made.thresholds["a"]["drift"] == 0.25 and made.created_by == "user:t"
    assert ws.monitors.get("churn") == made
    assert [m.name for m in ws.monitors.list()] == ["churn"]
    with pytest.raises(AlreadyExistsError, match="exists"):
        ws.monitors.create("churn", reference="customers", deployment=deployed.deployment)
    with pytest.raises(InvalidInputError, match="exactly one"):
        ws.monitors.create("other", reference="customers")
    with pytest.raises(NotFoundError, match="No deployment 'nowhere'"):
        ws.monitors.create("other", reference="customers", deployment="nowhere")
    replaced = ws.monitors.create(
        "churn", reference="customers:1", model="churn", window="time:1h", replace=True
    )
    assert (replaced.id, replaced.model, replaced.window) == (made.id, "churn", "time:1h")
    ws.monitors.delete("churn")
    assert ws.monitors.list() == []
    with pytest.raises(NotFoundError, match="churn"):
        ws.monitors.get("churn")


def test_labels_a_run_its_report_alerts_and_html(
    either: Either,
    sink: Sink,  # noqa: F811  (the imported fixture)
    tmp_path: Path,
) -> None:
    ws = either.ws
    deployed = deploy_model(ws)
    ws.monitors.create(
        "churn",
        reference="customers:1",
        deployment=deployed.deployment,
        target="label",
        window="count:1000",
    )
    inputs, predicted, truth = traffic(deployed.model, 200, shift=2.0)
    ids = either.log(deployed.deployment, inputs, predicted)
    labels = [{"prediction_id": i, "label": t} for i, t in zip(ids, truth, strict=True)]
    stored = ws.monitors.ingest_labels([*labels[:150], {"prediction_id": "z"}])
    assert isinstance(stored, LabelIngest)
    assert (stored.received, stored.stored, stored.invalid) == (151, 150, 1)
    assert stored.problems == ("record 150: no label",)
    again = ws.monitors.ingest_labels(labels[:10])
    assert (again.stored, again.duplicates) == (0, 10)
    rest = tmp_path / "late.csv"
    pl.DataFrame(labels[150:]).write_csv(rest)
    from_file = ws.monitors.ingest_labels(rest, deployment=deployed.deployment)
    assert (from_file.stored, from_file.matched) == (50, 50)
    found = ws.monitors.service.labels.find(ws.ctx, ["p0", "p199", "unknown", "x" * 200])
    assert found == {"p0": truth[0], "p199": truth[199]}

    hook = {"type": "webhook", "url": sink.url, "allow_private": True}
    rule = ws.monitors.add_rule(
        "drift-high", monitor="churn", metric="drift.share", threshold=0.2, channels=[hook]
    )
    assert isinstance(rule, AlertRule)
    assert (rule.metric, rule.comparison, rule.threshold) == ("drift.share", ">", 0.2)
    assert [(c["type"], c["url"]) for c in rule.channels] == [("webhook", sink.url)]
    assert [r.name for r in ws.monitors.rules(monitor="churn")] == ["drift-high"]
    with pytest.raises(NotFoundError, match="No monitor 'ghost'"):
        ws.monitors.add_rule("x", monitor="ghost", metric="drift.share", threshold=0.2)

    report = ws.monitors.run("churn")
    assert isinstance(report, MonitorReport)
    assert (report.monitor, report.status, report.rows) == ("churn", "drift", 200)
    assert report.quality is not None and report.quality["coverage"] == 1.0
    assert "a" in report.drift["drifted"]
    assert [a["rule"] for a in report.alerts] == ["drift-high"]
    assert ws.monitors.report(report.id) == report
    assert [r.id for r in ws.monitors.reports("churn")] == [report.id]
    firing = ws.monitors.alerts(state="firing")
    assert [(a.rule, a.monitor, a.state) for a in firing] == [("drift-high", "churn", "firing")]
    assert isinstance(firing[0], Alert) and firing[0].report_id == report.id
    assert ws.monitors.service.alerts.get(ws.ctx, firing[0].id).id == firing[0].id
    assert ws.monitors.wait_deliveries(timeout=30)
    sent = ws.monitors.alerts(state="firing")[0].deliveries
    assert [(d.kind, d.event, d.status) for d in sent] == [("webhook", "firing", "sent")]
    assert len(sink.received) == 1 and b"drift-high" in sink.received[0][1]

    # a batch with no drift: its report is "ok", and the alert resolves
    batch = reference_frame(500, seed=7).select(FEATURES)
    later = report.created_at + timedelta(minutes=30)
    calm = ws.monitors.run("churn", current=batch, now=later)
    assert (calm.status, calm.rows, calm.window_start, calm.created_at) == ("ok", 500, None, later)
    assert [a["state"] for a in calm.alerts] == ["resolved"]
    assert [a.rule for a in ws.monitors.alerts(state="resolved")] == ["drift-high"]
    assert ws.monitors.alerts(state="firing") == []
    assert [r.id for r in ws.monitors.reports("churn", limit=1)] == [calm.id]
    assert ws.monitors.wait_deliveries(timeout=30)
    resolved = ws.monitors.alerts(state="resolved")[0].deliveries
    assert [(d.event, d.status) for d in resolved] == [("firing", "sent"), ("resolved", "sent")]
    assert len(sink.received) == 2

    page = ws.monitors.html("churn")
    assert page.lstrip().lower().startswith("<!doctype html>")
    assert "Monitor churn" in page
    written = ws.monitors.write_html("churn", tmp_path / "churn.html")
    assert written.read_text(encoding="utf-8") == ws.monitors.html("churn")

    ws.monitors.delete_rule("drift-high")
    assert ws.monitors.rules() == []
    with pytest.raises(NotFoundError, match="monitor report"):
        ws.monitors.report("0" * 32)


def test_remote_refuses_what_runs_beside_the_store_and_checks_roles(tmp_path: Path) -> None:
    with live_server(tmp_path / "home") as server:
        ws = keel.connect(server.url, token=server.token_for("admin", name="user:t"))
        viewer = keel.connect(server.url, token=server.token_for("viewer"))
        try:
            assert isinstance(ws, RemoteWorkspace)
            with pytest.raises(InvalidInputError, match="keel scheduler"):
                ws.monitors.run_due()
            with pytest.raises(InvalidInputError, match="webhook channel"):
                ws.monitors.on_fire(lambda ctx, alert, firings: None)
            with pytest.raises(InvalidInputError, match="evaluated by the Keel server"):
                ws.monitors.service.alerts.evaluate(ws.ctx, "churn", "r")
            deployed = deploy_model(ws)
            ws.monitors.create("churn", reference="customers", deployment=deployed.deployment)
            assert [m.name for m in viewer.monitors.list()] == ["churn"]
            with pytest.raises(PermissionDeniedError):
                viewer.monitors.run("churn")
            with pytest.raises(PermissionDeniedError):
                viewer.monitors.ingest_labels([{"prediction_id": "p0", "label": 1}])
            with pytest.raises(PermissionDeniedError):
                viewer.monitors.run("churn", current=reference_frame(20).select(FEATURES))
            with pytest.raises(NotFoundError, match="has no report yet"):
                ws.monitors.html("churn")
            # labels are read here and sent as JSON: NumPy scalars pass, other objects are refused
            sent = ws.monitors.ingest_labels([{"prediction_id": "p1", "label": np.int64(1)}])
            assert (sent.stored, ws.monitors.service.labels.find(ws.ctx, ["p1"])) == (1, {"p1": 1})
            with pytest.raises(InvalidInputError, match="record 1 holds a timedelta"):
                ws.monitors.ingest_labels(
                    [
                        {"prediction_id": "p2", "label": 1},
                        {"prediction_id": "p3", "label": timedelta(1)},
                    ]
                )
        finally:
            viewer.close()
            ws.close()
