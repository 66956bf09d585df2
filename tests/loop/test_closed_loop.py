"""The closed loop end to end: alert -> retrain -> gates -> canary -> promote or roll back."""

from __future__ import annotations

import json
from typing import Any

from tests.loop.conftest import (
    DEPLOYMENT,
    MODEL,
    RULE,
    World,
    publish,
    replay,
    rows,
)

DRIFT = {
    "metric": "drift.a",
    "value": 0.93,
    "threshold": 0.25,
    "comparison": ">",
    "monitor": "loans",
    "message": "drift.a = 0.93 > 0.25",
}


def _deliver(world: World, alert_id: str = "alert-0001") -> list[Any]:
    return world.ws.loop.deliver(alert_id=alert_id, rule=RULE, details=DRIFT)


def _tick(world: World) -> Any:
    [cycle] = world.ws.loop.tick(resolve={world.pipeline.name: world.pipeline})
    return cycle


def test_a_better_challenger_is_canaried_promoted_and_becomes_champion(world: World) -> None:
    ws = world.ws
    # The population drifted (a moved) and the lending rule changed: the champion is worse.
    publish(ws, world.folder, rows(2, 2000, shift=1.0, threshold=1.0), tag="new")
    [firing] = _deliver(world)
    assert firing.trigger == "retrain-on-drift" and firing.cause["alert"] == "alert-0001"

    cycle = _tick(world)
    assert cycle.phase == "canary", cycle
    assert cycle.decision is not None and cycle.decision["register"] is True
    assert cycle.version == world.champion + 1 and cycle.canary_revision is not None
    deployment = ws.deployments.get(DEPLOYMENT)
    assert deployment.state.candidate == cycle.version and deployment.state.phase == "rolling"
    run = ws.pipelines.get(cycle.pipeline_run_id or "")
    assert run.trigger == "alert" and run.status.value == "FINISHED"
    assert run.cause is not None and run.cause["alert"] == "alert-0001"

    replay(ws, rows(7, 3000, shift=1.0, threshold=1.0))
    cycle = _tick(world)
    assert cycle.phase == "promoted", cycle
    assert ws.deployments.get(DEPLOYMENT).state.primary == cycle.version
    assert ws.models.version(f"{MODEL}@champion").version == cycle.version
    move = ws.models.alias_history(MODEL, "champion")[-1]
    assert "canary promoted" in move.reason and "alert 'loans-drift'" in move.reason

    # Lineage explains the new deployment revision: the alert, its drift, the run, the version.
    deployment = ws.deployments.get(DEPLOYMENT)
    graph = ws.lineage.graph(f"deployment:{deployment.id}", direction="up")
    edges = {(str(e.upstream), e.relation, str(e.downstream)) for e in graph.upstream}
    version_id = ws.models.version(f"{MODEL}:{cycle.version}").id
    revision = f"deployment_revision:{deployment.id}:{cycle.decision_revision}"
    assert ("alert:alert-0001", "triggered", f"pipeline_run:{cycle.pipeline_run_id}") in edges
    assert (f"pipeline_run:{cycle.pipeline_run_id}", "ran", f"run:{cycle.run_id}") in edges
    assert (f"run:{cycle.run_id}", "produced", f"model_version:{version_id}") in {
        (str(e.upstream), e.relation, str(e.downstream)) for e in graph.upstream
    } or any(str(e.upstream) == f"run:{cycle.run_id}" for e in graph.upstream)
    assert (f"model_version:{version_id}", "promoted", revision) in edges
    why = next(e.details for e in graph.upstream if e.relation == "triggered")
    assert why is not None and "drift.a = 0.93 > 0.25" in why["why"]
    assert "data drift of a" in why["why"]

    # Every hop is audited once, with its cause.
    actions = [e.action for e in ws.audit.events() if e.action.startswith("loop.")]
    assert actions == ["loop.retrain", "loop.canary", "loop.promote"]
    promote = next(e for e in ws.audit.events() if e.action == "loop.promote")
    assert promote.details["alert_id"] == "alert-0001"
    assert promote.details["version"] == cycle.version

    # A finished cycle never acts again: a person's later champion move stands.
    ws.models.set_alias(MODEL, "champion", world.champion, reason="back, by hand")
    assert _tick(world).phase == "promoted"
    assert ws.models.version(f"{MODEL}@champion").version == world.champion


def test_a_challenger_that_breaks_on_live_traffic_is_rolled_back(world: World) -> None:
    ws = world.ws
    # A units bug in the new extract: 'a' arrives shifted by +10. The model trained on it beats
    # the champion offline (on the same broken data) but live traffic has the real units.
    broken = rows(2, 2000, shift=1.0).with_columns(a=rows(2, 2000, shift=1.0)["a"] + 10.0)
    publish(ws, world.folder, broken, tag="broken")
    _deliver(world)
    cycle = _tick(world)
    assert cycle.phase == "canary" and cycle.decision is not None
    assert cycle.decision["register"] is True

    replay(ws, rows(8, 3000, shift=1.0))
    cycle = _tick(world)
    assert cycle.phase == "rolled_back", cycle
    state = ws.deployments.get(DEPLOYMENT).state
    assert state.primary == world.champion and state.phase == "rolled_back"
    assert ws.models.version(f"{MODEL}@champion").version == world.champion
    actions = [e.action for e in ws.audit.events() if e.action.startswith("loop.")]
    assert actions == ["loop.retrain", "loop.canary", "loop.rollback"]
    rollback = next(e for e in ws.audit.events() if e.action == "loop.rollback")
    assert "Prediction distribution shifted" in rollback.details["reason"] or (
        "Accuracy" in rollback.details["reason"]
    )


def test_redelivered_alerts_and_repeated_ticks_change_nothing(world: World) -> None:
    ws = world.ws
    publish(ws, world.folder, rows(2, 2000, shift=1.0, threshold=1.0), tag="new")
    assert len(_deliver(world)) == 1
    first = _tick(world)
    assert _deliver(world) == []  # the same alert again: no new firing
    again = _tick(world)
    assert (again.firing_id, again.version, again.phase) == (
        first.firing_id,
        first.version,
        "canary",
    )
    assert len(ws.pipelines.runs()) == 1
    assert len(ws.models.versions(MODEL)) == 2
    deploys = [r for r in ws.deployments.revisions(DEPLOYMENT) if r.action == "deploy"]
    assert len(deploys) == 2  # the champion, then one canary
    actions = [e.action for e in ws.audit.events() if e.action.startswith("loop.")]
    assert actions == ["loop.retrain", "loop.canary"]


def test_a_challenger_that_does_not_win_is_kept_out(world: World) -> None:
    ws = world.ws
    # Nothing changed: the retrained model is no better than the champion by the margin.
    publish(ws, world.folder, rows(1, 1500), tag="same")
    _deliver(world)
    cycle = _tick(world)
    assert cycle.phase == "kept" and cycle.version is None
    assert cycle.decision is not None and "does not beat" in cycle.decision["reason"]
    assert ws.deployments.get(DEPLOYMENT).state.phase == "stable"
    assert [r.action for r in ws.deployments.revisions(DEPLOYMENT)] == ["deploy"]
    retrain = next(e for e in ws.audit.events() if e.action == "loop.retrain")
    assert json.dumps(retrain.details).count("alert-0001") >= 1


def test_a_failed_retraining_stops_the_cycle_and_says_why(world: World) -> None:
    ws = world.ws
    ws.models.delete_alias(MODEL, "champion", reason="test: nothing to rebuild from")
    _deliver(world)
    cycle = _tick(world)
    assert cycle.phase == "failed"
    assert "champion" in cycle.reason
    stop = next(e for e in ws.audit.events() if e.action == "loop.stop")
    assert stop.details["phase"] == "failed"


CHAMPION_POLICY = """
name: champions
gates: [alias.promote]
rules:
  - id: accuracy
    when: {{alias: champion}}
    require: {{path: model.metrics.accuracy, op: ">=", value: {floor}}}
    message: a champion needs held-out accuracy of at least {floor}
"""


def test_the_champion_move_goes_through_the_alias_gate(world: World) -> None:
    ws = world.ws
    ws.policies.apply(CHAMPION_POLICY.format(floor=0.5))
    publish(ws, world.folder, rows(2, 2000, shift=1.0, threshold=1.0), tag="new")
    _deliver(world)
    _tick(world)
    replay(ws, rows(7, 3000, shift=1.0, threshold=1.0))
    cycle = _tick(world)
    assert cycle.phase == "promoted"
    assert ws.models.version(f"{MODEL}@champion").version == cycle.version
    [decision] = ws.policies.decisions(gate="alias.promote", subject=None)[:1]
    assert decision.allowed and decision.subject == f"model:{MODEL}:{cycle.version}@champion"


def test_a_denied_champion_move_keeps_the_old_champion_and_says_why(world: World) -> None:
    ws = world.ws
    ws.policies.apply(CHAMPION_POLICY.format(floor=0.999))
    publish(ws, world.folder, rows(2, 2000, shift=1.0, threshold=1.0), tag="new")
    _deliver(world)
    _tick(world)
    replay(ws, rows(7, 3000, shift=1.0, threshold=1.0))
    cycle = _tick(world)
    assert cycle.phase == "promoted"  # the canary analysis promoted it on the deployment
    assert "The champion alias stays" in cycle.reason
    assert "at least 0.999" in cycle.reason
    assert ws.models.version(f"{MODEL}@champion").version == world.champion
    denied = [d for d in ws.policies.decisions(gate="alias.promote") if not d.allowed]
    assert denied and denied[0].subject == f"model:{MODEL}:{cycle.version}@champion"
    promote = next(e for e in ws.audit.events() if e.action == "loop.promote")
    assert "The champion alias stays" in promote.details["reason"]


def test_a_real_monitor_alert_drives_the_loop_from_logged_predictions(world: World) -> None:
    """No hand-made alert: predictions are logged, the monitor sees the drift, the rule fires."""
    ws = world.ws
    ws.monitors.create(
        "loans",
        deployment=DEPLOYMENT,
        reference="loans:1",
        features=["a", "b", "c"],
        target="label",
        window="count:400",
    )
    ws.monitors.add_rule(RULE, monitor="loans", metric="drift.a", comparison=">", threshold=0.25)
    drifted = rows(9, 400, shift=1.5, threshold=1.0)
    _serve_only(ws, drifted)
    report = ws.monitors.run("loans")
    assert "a" in report.drift["drifted"]
    [alert] = ws.monitors.alerts(state="firing")
    assert alert.rule == RULE
    publish(ws, world.folder, rows(2, 2000, shift=1.0, threshold=1.0), tag="new")
    cycle = _tick(world)
    assert cycle.alert_id == alert.id and cycle.phase == "canary"
    assert "drift.a" in cycle.why and "data drift of a" in cycle.why
    # The monitor's own lineage joins the loop's: report -> alert -> pipeline run.
    graph = ws.lineage.graph(f"alert:{alert.id}", depth=2)
    relations = {(e.relation, str(e.downstream)) for e in graph.downstream}
    assert ("triggered", f"pipeline_run:{cycle.pipeline_run_id}") in relations
    assert any(e.relation == "raised" for e in graph.upstream)
    # Running the monitor again does not fire a second retraining: the alert stays open.
    ws.monitors.run("loans")
    assert [c.firing_id for c in ws.loop.cycles()] == [cycle.firing_id]


def _serve_only(ws: Any, frame: Any) -> None:
    """Serve the (stable) deployment and send ``frame``; stopping flushes the prediction log."""
    import httpx

    from keel.serving import ServeOptions, start_in_thread

    handle = start_in_thread(ws.deployments.server(ServeOptions(deployments=[DEPLOYMENT])))
    try:
        with httpx.Client(base_url=handle.url, timeout=30) as client:
            records = frame.select(["a", "b", "c"]).to_dicts()
            for first in range(0, len(records), 50):
                client.post(
                    f"/predict/{DEPLOYMENT}", json=records[first : first + 50]
                ).raise_for_status()
    finally:
        handle.stop()


def test_describe_alert_says_which_alert_and_what_drifted() -> None:
    from keel.monitoring import describe_alert

    text = describe_alert(
        {"rule": "r", "alert": "A1", "metric": "drift.share", "value": 0.5, "threshold": 0.2}
    )
    assert text == "alert 'r' (A1) fired: drift.share = 0.5 > 0.2 [data drift]"
    quality = describe_alert({"subject": "q", "event": "A2", "metric": "quality.accuracy"})
    assert quality.startswith("alert 'q' (A2) fired") and "quality drop (accuracy)" in quality
    assert "quality.accuracy [" in quality
    named = describe_alert(
        {"rule": "r", "alert": "A3", "metric": "drift.share", "drifted": ["car_value", "x"]}
    )
    assert "[data drift: car_value, x]" in named


def test_a_second_alert_waits_while_a_canary_is_rolling(world: World) -> None:
    ws = world.ws
    publish(ws, world.folder, rows(2, 2000, shift=1.0, threshold=1.0), tag="new")
    _deliver(world, "alert-0001")
    first = _tick(world)
    assert first.phase == "canary"
    publish(ws, world.folder, rows(3, 2000, shift=1.5, threshold=1.5), tag="newer")
    _deliver(world, "alert-0002")
    second, again = ws.loop.tick(resolve={world.pipeline.name: world.pipeline})
    assert second.alert_id == "alert-0002" and second.phase == "waiting"
    assert f"rolling out version {first.version}" in second.reason
    assert again.phase == "canary" and again.version == first.version
    assert ws.deployments.get(DEPLOYMENT).state.candidate == first.version


def test_the_loop_runs_unattended_in_its_own_thread(world: World) -> None:
    import threading
    import time

    ws = world.ws
    publish(ws, world.folder, rows(2, 2000, shift=1.0, threshold=1.0), tag="new")
    stop = threading.Event()
    thread = threading.Thread(
        target=ws.loop.serve,
        kwargs={"resolve": {world.pipeline.name: world.pipeline}, "poll": 0.2, "stop": stop},
        daemon=True,
    )
    thread.start()
    try:
        _deliver(world)

        def phase() -> str:
            found = ws.loop.cycles()
            return found[0].phase if found else "none"

        deadline = time.monotonic() + 120
        while phase() != "canary":
            assert time.monotonic() < deadline, phase()
            time.sleep(0.2)
        replay(ws, rows(7, 3000, shift=1.0, threshold=1.0))
        while phase() != "promoted" or ws.models.version(f"{MODEL}@champion").version == 1:
            rolled_back = [e.details for e in ws.audit.events() if e.action == "loop.rollback"]
            assert not rolled_back, f"the canary was rolled back: {rolled_back}"  # say why
            assert time.monotonic() < deadline, phase()
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive()
    actions = [e.action for e in ws.audit.events() if e.action.startswith("loop.")]
    assert actions == ["loop.retrain", "loop.canary", "loop.promote"]
