"""The deployments contract (revisions, audit, prediction log batches), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from keel import clock
from keel.errors import ConflictError, NotFoundError, PermissionDeniedError
from keel.serving import Decision, PredictionLogger
from keel.serving._service import ServiceLogSink
from keel.workspace import Workspace, connect
from tests.serving.conftest import register_forest


@pytest.fixture
def models(ws: Workspace) -> Workspace:
    register_forest(ws, trees=3, seed=0, alias="champion")
    register_forest(ws, trees=3, seed=1, alias="challenger")
    return ws


def test_deployment_revisions_are_kept_audited_and_reloaded(models: Workspace) -> None:
    ws = models
    ws.deployments.deploy("churn@champion", environment="production")
    rolling = ws.deployments.deploy(
        "churn@challenger", environment="production", strategy="canary", steps=[5, 25, 100]
    )
    assert rolling.state.canary_weight == 0.05
    with pytest.raises(ConflictError, match="rolling out version 2"):
        ws.deployments.deploy("churn@challenger", environment="production")
    stepped = ws.deployments.promote("churn-production")
    assert stepped.state.canary_weight == 0.25
    decision = Decision("rollback", ("Error rate 9% vs 1%.",), {"psi": 0.01})
    service = ws.deployments.service
    with pytest.raises(ConflictError, match="moved on"):
        service.apply_decision(ws.ctx, "churn-production", decision, expected_revision=2)
    back = service.apply_decision(
        ws.ctx, "churn-production", decision, expected_revision=stepped.revision
    )
    assert back.state.phase == "rolled_back" and back.state.primary == 1
    again = ws.deployments.get("churn-production")
    assert again.state == back.state and again.revision == 4
    revisions = ws.deployments.revisions("churn-production")
    assert [r.action for r in revisions] == ["deploy", "deploy", "promote", "analysis.rollback"]
    assert revisions[-1].analysis == decision.to_dict()
    assert revisions[-1].reason == "Error rate 9% vs 1%."
    actions = [e.action for e in ws.audit.events() if e.action.startswith("deployment.")]
    assert actions.count("deployment.deploy") == 2
    assert "deployment.analysis.rollback" in actions
    with pytest.raises(NotFoundError, match="does not exist"):
        ws.deployments.get("nope")


def test_same_version_twice_is_a_conflict(models: Workspace) -> None:
    models.deployments.deploy("churn:1", environment="staging")
    with pytest.raises(ConflictError, match=r"already serves churn:1\."):
        models.deployments.deploy("churn@champion", environment="staging")


def test_a_contributor_may_not_deploy(models: Workspace) -> None:
    models.projects.grant("user:intern", "contributor")
    intern = connect(settings=models.settings, principal="user:intern")
    try:
        with pytest.raises(PermissionDeniedError, match=r"deployment\.write"):
            intern.deployments.deploy("churn@champion", environment="staging")
        assert intern.deployments.list() == []
    finally:
        intern.close()


def test_prediction_log_batches_land_exactly_once(models: Workspace) -> None:
    ws = models
    ws.deployments.deploy("churn@champion", environment="staging")
    logger = PredictionLogger(
        ServiceLogSink(ws.deployments.service, ws.ctx), batch_rows=7, flush_seconds=0.05
    )
    start = clock.now()
    for i in range(50):
        logger.log(
            prediction_id=f"p{i:03d}",
            deployment="churn-staging",
            model="churn",
            version=1,
            variant="primary",
            request_id=None,
            timestamp=start + timedelta(milliseconds=i),
            latency_ms=0.1,
            inputs={"f0": i, "email": "a@b.c"},
            prediction=i % 2,
        )
    logger.close()
    assert (logger.written, logger.dropped, logger.failed) == (50, 0, 0)
    frame = ws.deployments.read_predictions("churn-staging")
    assert frame["prediction_id"].to_list() == [f"p{i:03d}" for i in range(50)]
    # the same batch written again (a retry) is recorded once
    from keel.serving._predlog import _to_table

    row = ("p999", "churn-staging", "churn", 1, "primary", None, start, 0.1, "{}", "1")
    sink = ServiceLogSink(ws.deployments.service, ws.ctx)
    sink.write_batch("churn-staging", "retry-key", _to_table([row]))
    sink.write_batch("churn-staging", "retry-key", _to_table([row]))
    frame = ws.deployments.read_predictions("churn-staging")
    assert frame.height == 51
    window = ws.deployments.read_predictions(
        "churn-staging",
        since=start + timedelta(milliseconds=10),
        until=start + timedelta(milliseconds=20),
    )
    assert window["prediction_id"].to_list() == [f"p{i:03d}" for i in range(10, 20)]
