"""Approvals: who may decide, one vote each, N distinct approvers, rejection closes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.errors import ConflictError, NotFoundError, PermissionDeniedError
from keel.governance import Permission, PolicyDeniedError
from keel.workspace import Workspace, connect
from tests.conftest import make_settings

TWO_APPROVERS = """
name: two-approvers
gates: [deployment.create]
rules:
  - id: two
    approvals: {min: 2}
"""


@pytest.fixture
def team(tmp_path: Path) -> Iterator[dict[str, Workspace]]:
    settings = make_settings(tmp_path / "home")
    owner = connect(settings=settings, principal="user:owner")
    members = {"owner": owner}
    for name, role in (("a", "maintainer"), ("b", "maintainer"), ("v", "viewer")):
        owner.projects.grant(f"user:{name}", role)
        members[name] = connect(settings=settings, principal=f"user:{name}")
    try:
        yield members
    finally:
        for ws in members.values():
            ws.close()


def _deploy(ws: Workspace) -> None:
    ws.policies.gate(
        "deployment.create",
        subject="deployment:churn-prod",
        context={},
        permission=Permission.DEPLOYMENT_WRITE,
    )


def test_two_distinct_approvers_are_needed(team: dict[str, Workspace]) -> None:
    owner = team["owner"]
    owner.policies.apply(TWO_APPROVERS)
    with pytest.raises(PolicyDeniedError) as denied:
        _deploy(owner)
    request_id = denied.value.details["approval_id"]
    with pytest.raises(PermissionDeniedError, match=r"approval\.decide"):
        team["v"].approvals.approve(request_id)
    assert team["a"].approvals.approve(request_id).status == "pending"
    with pytest.raises(ConflictError, match="already voted"):
        team["a"].approvals.approve(request_id)
    with pytest.raises(PolicyDeniedError, match="has 1"):
        _deploy(owner)
    assert team["b"].approvals.approve(request_id).status == "approved"
    _deploy(owner)
    request = owner.approvals.get(request_id)
    assert [v["principal"] for v in request.votes] == ["user:a", "user:b"]
    denials = owner.audit.events(action="approval.approve")
    assert [e.outcome for e in denials] == ["denied", "success", "success"]


def test_rejection_closes_the_request_and_a_new_one_opens(team: dict[str, Workspace]) -> None:
    owner = team["owner"]
    owner.policies.apply(TWO_APPROVERS)
    with pytest.raises(PolicyDeniedError) as first:
        _deploy(owner)
    first_id = first.value.details["approval_id"]
    team["a"].approvals.approve(first_id)
    assert team["b"].approvals.reject(first_id, comment="not now").status == "rejected"
    with pytest.raises(PolicyDeniedError) as second:
        _deploy(owner)
    assert second.value.details["approval_id"] != first_id
    statuses = sorted(r.status for r in owner.approvals.list(status=None))
    assert statuses == ["pending", "rejected"]
    with pytest.raises(NotFoundError):
        owner.approvals.approve("NOPE")
