"""Gate decisions about a model are selected by subject in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

from keel import clock
from keel.store import PolicyRepository
from keel.store._schema_policy import PolicyDecisionRow
from keel.types import new_id
from keel.workspace import Workspace


def _decide(ws: Workspace, subjects: list[str]) -> None:
    with ws._governor.db.write() as session:
        repo = PolicyRepository(session, ws.ctx.project_id)
        for subject in subjects:
            repo.add_decision(
                PolicyDecisionRow(
                    id=new_id(),
                    project_id=ws.ctx.project_id,
                    gate="model.promote",
                    subject=subject,
                    allowed=True,
                    reasons=[],
                    evidence={},
                    policies=[],
                    principal="user:tester",
                    request_id=new_id(),
                    created_at=clock.now(),
                )
            )


def test_a_models_decisions_survive_many_about_other_models(ws: Workspace) -> None:
    _decide(ws, ["model:churn", "model:churn:1", "model:churn:10@champion", "model:churn:1@prod"])
    _decide(ws, [f"model:other:{i}" for i in range(600)] + ["model:churner:1", "model:ch%rn:1"])
    service = ws.policies._s
    found = service.decisions(ws.ctx, subject_under="model:churn", limit=500)
    assert sorted(d.subject for d in found) == [
        "model:churn",
        "model:churn:1",
        "model:churn:10@champion",
        "model:churn:1@prod",
    ]
    one = service.decisions(ws.ctx, subject_under="model:churn:1", limit=500)
    assert sorted(d.subject for d in one) == ["model:churn:1", "model:churn:1@prod"]
    assert service.decisions(ws.ctx, subject_under="model:ch%", limit=500) == []
