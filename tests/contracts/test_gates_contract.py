"""The policy gates of the registry, approvals and signatures, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from keel.errors import ConflictError, IntegrityError, PermissionDeniedError
from keel.governance import PolicyDeniedError
from keel.store._schema import ModelVersionRow
from keel.store._schema_policy import ModelSignatureRow
from keel.workspace import Workspace, connect
from tests.conftest import make_settings

EXAMPLE = Path(__file__).parents[2] / "examples" / "policies" / "production.yaml"
FEATURES = {"inputs": [{"name": "tenure"}, {"name": "monthly_charges"}]}


@pytest.fixture
def gated(backend: str, tmp_path: Path) -> Iterator[tuple[Workspace, Workspace]]:
    """The owner's workspace and a reviewer's (maintainer), in a store located in 'ae'."""
    settings = make_settings(tmp_path / "home", backend, region="ae")
    owner = connect(settings=settings, principal="user:tester")
    owner.projects.grant("user:reviewer", "maintainer")
    reviewer = connect(settings=settings, principal="user:reviewer")
    try:
        yield owner, reviewer
    finally:
        reviewer.close()
        owner.close()


def _register(
    ws: Workspace, *, auc: float, di: float, features: dict[str, object] = FEATURES
) -> int:
    version = ws.models.register(
        "churn",
        artifact=b"onnx-bytes-" + str(auc).encode(),
        format="onnx",
        metrics={"auc": auc, "disparate_impact": di},
        signature=features,
    )
    return version.version


def test_without_policies_everything_allowed_today_is_allowed(ws: Workspace) -> None:
    version = _register(ws, auc=0.1, di=0.1)
    ws.models.set_alias("churn", "production", version)
    assert ws.models.version("churn@production").version == version
    assert ws.policies.decisions() == []
    assert ws.approvals.list(status=None) == []


def test_production_policy_needs_a_second_approver(
    gated: tuple[Workspace, Workspace],
) -> None:
    owner, reviewer = gated
    applied = owner.policies.apply_file(EXAMPLE)
    assert (applied.name, applied.version) == ("production", 1)
    assert owner.policies.apply_file(EXAMPLE).version == 1  # same text, same version
    version = _register(owner, auc=0.91, di=0.86)
    owner.models.set_alias("churn", "staging", version)  # not production: allowed

    with pytest.raises(PolicyDeniedError, match="second-approver") as denied:
        owner.models.set_alias("churn", "production", version)
    approval_id = denied.value.details["approval_id"]
    assert approval_id
    [request] = owner.approvals.list()
    assert request.id == approval_id and request.requester == "user:tester"
    with pytest.raises(PermissionDeniedError, match="second person"):
        owner.approvals.approve(approval_id)
    assert reviewer.approvals.approve(approval_id, comment="looks good").status == "approved"
    with pytest.raises(ConflictError, match="already approved"):
        reviewer.approvals.reject(approval_id)

    move = owner.models.set_alias("churn", "production", version)
    assert move.to_version == version
    decisions = owner.policies.decisions(
        gate="alias.promote", subject=f"model:churn:{version}@production"
    )
    assert sorted(d.allowed for d in decisions) == [False, True]
    decisions = [d for d in decisions if d.allowed]
    assert decisions[0].policies == ("production@1",)
    assert decisions[0].evidence["production.auc"] == {"passed": True, "value": 0.91}
    outcomes = [e.outcome for e in owner.audit.events(action="policy.decide")]
    assert outcomes == ["allowed", "denied", "allowed"]  # staging, production twice
    assert owner.audit.verify().ok


def test_the_approver_cannot_promote_on_their_own_approval(
    gated: tuple[Workspace, Workspace],
) -> None:
    owner, reviewer = gated
    owner.policies.apply_file(EXAMPLE)
    version = _register(owner, auc=0.95, di=0.9)
    with pytest.raises(PolicyDeniedError) as denied:
        reviewer.models.set_alias("churn", "production", version)
    reviewer_request = denied.value.details["approval_id"]
    with pytest.raises(PolicyDeniedError, match="second-approver"):
        reviewer.models.set_alias("churn", "production", version)  # still pending
    assert [r.id for r in owner.approvals.list()] == [reviewer_request]
    owner.approvals.reject(reviewer_request, comment="no")
    with pytest.raises(PolicyDeniedError):
        reviewer.models.set_alias("churn", "production", version)


def test_weak_biased_or_restricted_models_are_denied_without_an_approval_request(
    gated: tuple[Workspace, Workspace],
) -> None:
    owner, _ = gated
    owner.policies.apply_file(EXAMPLE)
    weak = _register(owner, auc=0.7, di=0.6, features={"inputs": [{"name": "nationality"}]})
    with pytest.raises(PolicyDeniedError) as denied:
        owner.models.set_alias("churn", "production", weak)
    reasons = " ".join(denied.value.details["reasons"])
    for rule in ("production.auc", "production.disparate-impact", "no-restricted-features"):
        assert rule in reasons
    assert denied.value.details["approval_id"] is None
    assert owner.approvals.list() == []
    assert "production" not in owner.models.get("churn").aliases


def test_residency_outside_ae_is_denied(backend: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home", backend, region="eu-west-1")
    with connect(settings=settings, principal="user:tester") as ws:
        ws.policies.apply_file(EXAMPLE)
        version = _register(ws, auc=0.95, di=0.9)
        with pytest.raises(PolicyDeniedError, match="storage in 'eu-west-1'"):
            ws.models.set_alias("churn", "production", version)


def test_register_gate_and_rule_scoping(ws: Workspace) -> None:
    ws.policies.apply(
        "name: formats\ngates: [model.register]\nrules:\n"
        "  - id: onnx-only\n    require: {path: model.format, op: in, value: [onnx]}\n"
    )
    _register(ws, auc=0.9, di=0.9)
    with pytest.raises(PolicyDeniedError, match="onnx-only"):
        ws.models.register("churn", artifact=b"x", format="safetensors")
    assert sorted(d.allowed for d in ws.policies.decisions(gate="model.register")) == [
        False,
        True,
    ]


def test_versions_are_signed_and_verified_before_load(ws: Workspace) -> None:
    version = _register(ws, auc=0.9, di=0.9)
    found = ws.models.version("churn", version)
    assert ws.models.read_artifact("churn", version).startswith(b"onnx-bytes")
    db = ws._governor.db
    with db.write() as session:
        session.execute(
            update(ModelVersionRow)
            .where(ModelVersionRow.id == found.id)
            .values(format="safetensors")
        )
    with pytest.raises(IntegrityError, match="does not match what was signed"):
        ws.models.read_artifact("churn", version)
    with db.write() as session:
        session.execute(
            update(ModelVersionRow).where(ModelVersionRow.id == found.id).values(format="onnx")
        )
        session.execute(
            update(ModelSignatureRow)
            .where(ModelSignatureRow.model_version_id == found.id)
            .values(signature="A" * 88)
        )
    with pytest.raises(IntegrityError, match="does not verify with a trusted key"):
        ws.models.read_artifact("churn", version)
