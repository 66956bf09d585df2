"""The audit chain contract: every governed write is audited, and tampering is detected."""

from __future__ import annotations

import io
import itertools
import json

from sqlalchemy import text

from keel.workspace import Workspace


def _engine(ws: Workspace):  # type: ignore[no-untyped-def]
    return ws._governor.db.engine


def test_every_write_appends_one_chained_event(ws: Workspace) -> None:
    with ws.runs.start(experiment="audit", capture_env=False) as run:
        run.log_metrics({"a": 1.0})
    ws.models.register("m", artifact=b"x", format="onnx")
    events = ws.audit.events()
    actions = [e.action for e in events]
    assert actions == [
        "project.bootstrap",
        "experiment.create",
        "run.create",
        "run.log_batch",
        "run.end",
        "model.create",
        "model.register",
    ]
    assert all(e.principal in {"user:tester", "system:keel"} for e in events)
    assert [e.seq for e in events] == list(range(1, 8))
    for before, after in itertools.pairwise(events):
        assert after.prev_hash == before.hash
    report = ws.audit.verify()
    assert report.ok and report.checked == 7


def test_altered_event_is_named_by_verify(ws: Workspace) -> None:
    for name in ("a", "b", "c"):
        ws.experiments.create(name)
    with _engine(ws).begin() as conn:
        conn.execute(text("UPDATE audit_events SET principal = 'user:mallory' WHERE seq = 3"))
    report = ws.audit.verify()
    assert not report.ok and report.broken is not None
    assert report.broken.seq == 3
    assert "altered" in report.broken.reason


def test_deleted_event_is_detected(ws: Workspace) -> None:
    for name in ("a", "b", "c"):
        ws.experiments.create(name)
    with _engine(ws).begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq = 2"))
    report = ws.audit.verify()
    assert report.broken is not None and report.broken.seq == 2
    assert "deleted" in report.broken.reason


def test_deleting_the_newest_events_is_detected(ws: Workspace) -> None:
    for name in ("a", "b", "c"):
        ws.experiments.create(name)
    with _engine(ws).begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq >= 3"))
    report = ws.audit.verify()
    assert report.broken is not None and "newest" in report.broken.reason


def test_reordered_events_are_detected(ws: Workspace) -> None:
    for name in ("a", "b", "c"):
        ws.experiments.create(name)
    with _engine(ws).begin() as conn:
        conn.execute(text("UPDATE audit_events SET seq = 100 WHERE seq = 2"))
        conn.execute(text("UPDATE audit_events SET seq = 2 WHERE seq = 3"))
        conn.execute(text("UPDATE audit_events SET seq = 3 WHERE seq = 100"))
    report = ws.audit.verify()
    assert report.broken is not None and report.broken.seq == 2


def test_export_writes_json_lines_that_match_the_chain(ws: Workspace) -> None:
    ws.experiments.create("x")
    out = io.StringIO()
    assert ws.audit.export(out) == 2
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["action"] for line in lines] == ["project.bootstrap", "experiment.create"]
    assert lines[1]["prev_hash"] == lines[0]["hash"]


def test_events_filter_by_outcome_and_action(ws: Workspace) -> None:
    ws.experiments.create("x")
    ws.experiments.create("y")
    created = ws.audit.events(action="experiment.create", outcome="success")
    assert [e.action for e in created] == ["experiment.create", "experiment.create"]
    assert ws.audit.events(outcome="denied") == []
