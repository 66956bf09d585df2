"""keel plan sees changes made by hand since the last apply; apply revokes removed roles."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.governance import IdentityService
from keel.workspace import Workspace
from tests.cicd._project import CORE, write_project


@pytest.fixture
def path(tmp_path: Path) -> Path:
    folder = tmp_path / "repo"
    folder.mkdir()
    return write_project(folder, CORE)


def _bindings(ws: Workspace) -> dict[str, str]:
    identity = IdentityService(ws._governor)
    return {b.principal: b.role for b in identity.bindings(ws.ctx)}


def _pending(ws: Workspace, path: Path) -> set[tuple[str, str, str]]:
    return {(c.op, c.kind, c.name) for c in ws.project_file.plan(path).pending}


def test_a_role_removed_from_the_file_is_revoked(ws: Workspace, path: Path) -> None:
    ws.project_file.apply(path)
    assert _bindings(ws).get("user:alice") == "maintainer"
    path.write_text(CORE.replace("roles:\n  user:alice: maintainer\n", ""))
    result = ws.project_file.apply(path)
    assert result.notes["role/user:alice"] == "role binding revoked"
    assert "user:alice" not in _bindings(ws)
    assert not ws.project_file.plan(path).pending


def test_changes_made_by_hand_show_in_the_plan_and_apply_repairs_them(
    ws: Workspace, path: Path
) -> None:
    ws.project_file.apply(path)
    assert not _pending(ws, path)
    ws.projects.grant("user:alice", "owner")
    ws.models.update("churn", description="edited in the UI")
    ws.pipelines.create_trigger(
        "nightly", pipeline="train", kind="schedule", spec={"cron": "0 5 * * *"}, replace=True
    )
    plan = ws.project_file.plan(path)
    assert {(c.op, c.kind, c.name) for c in plan.pending} == {
        ("update", "role", "user:alice"),
        ("update", "model", "churn"),
        ("update", "trigger", "nightly"),
    }
    nightly = next(c for c in plan.pending if c.name == "nightly")
    assert '-  "schedule": "0 5 * * *"' in nightly.diff
    assert '+  "schedule": "0 3 * * *"' in nightly.diff
    ws.project_file.apply(path)
    assert _bindings(ws)["user:alice"] == "maintainer"
    assert ws.models.get("churn").description == "Churn classifier"
    assert {t.name: t.spec for t in ws.pipelines.triggers()}["nightly"] == {"cron": "0 3 * * *"}
    assert not _pending(ws, path)


def test_objects_deleted_by_hand_are_planned_as_creates(ws: Workspace, path: Path) -> None:
    ws.project_file.apply(path)
    IdentityService(ws._governor).revoke_role(ws.ctx, "user:alice")
    assert _pending(ws, path) == {("create", "role", "user:alice")}
    ws.project_file.apply(path)
    assert _bindings(ws)["user:alice"] == "maintainer"
