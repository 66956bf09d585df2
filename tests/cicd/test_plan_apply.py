"""plan / apply / export on SQLite and PostgreSQL: idempotent, audited, converging after a crash."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from keel.cicd import Change, LiveEffects, load_project, validate_text
from keel.errors import InvalidInputError
from keel.workspace import Workspace
from tests.cicd._project import CORE, write_project


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    project = tmp_path / "repo"
    project.mkdir()
    write_project(project, CORE)
    return project


def _events(ws: Workspace, prefix: str) -> list[str]:
    return [e.action for e in ws.audit.events(limit=10_000) if e.action.startswith(prefix)]


def test_apply_creates_everything_once_and_a_second_apply_changes_nothing(
    ws: Workspace, folder: Path
) -> None:
    path = folder / "keel.yaml"
    first = ws.project_file.plan(path)
    total = len(first.changes)
    assert first.count("create") == total and total == 14
    assert first.changes[0].kind == "source" and first.changes[-1].kind == "role"

    result = ws.project_file.apply(path)
    assert result.plan.count("create") == total
    assert result.notes["role/user:alice"] == "granted maintainer"
    assert result.notes["model/churn"] == "registered model created"
    assert result.notes["environment/production"].startswith("policies: production v1")
    assert result.notes["trigger/nightly"] == "schedule trigger synced"
    triggers = {t.name: t for t in ws.pipelines.triggers()}
    assert triggers["nightly"].spec == {"cron": "0 3 * * *"}
    assert triggers["on-data"].spec == {"dataset": "customers"}
    assert ws.models.get("churn").description == "Churn classifier"
    assert [p.name for p in ws.policies.list()] == ["production"]
    # one governed write per change, in the audit chain
    assert len(_events(ws, "project.apply.create")) == total

    again = ws.project_file.apply(path)
    assert again.plan.count("unchanged") == total and not again.plan.pending
    assert len(_events(ws, "project.apply.")) == total
    assert len(ws.policies.list(include_history=True)) == 1
    assert ws.audit.verify().ok


def test_updates_show_a_diff_and_deletes_undo_live_effects(ws: Workspace, folder: Path) -> None:
    path = folder / "keel.yaml"
    ws.project_file.apply(path)
    text = (
        CORE.replace("Churn classifier", "Churn classifier v2")
        .replace('"0 3 * * *"', '"30 4 * * *"')
        .replace("  on-data:\n    pipeline: train\n    dataset: customers\n", "")
    )
    path.write_text(text)
    plan = ws.project_file.plan(path)
    ops = {(c.op, c.kind, c.name) for c in plan.pending}
    assert ops == {
        ("update", "model", "churn"),
        ("update", "trigger", "nightly"),
        ("delete", "trigger", "on-data"),
    }
    nightly = next(c for c in plan.pending if c.name == "nightly")
    assert '-  "schedule": "0 3 * * *"' in nightly.diff
    assert '+  "schedule": "30 4 * * *"' in nightly.diff
    rendered = plan.render()
    assert "~ update trigger nightly" in rendered and "- delete trigger on-data" in rendered
    assert rendered.endswith("Plan: 0 to create, 2 to update, 1 to delete, 11 unchanged.")

    ws.project_file.apply(path)
    triggers = {t.name: t for t in ws.pipelines.triggers()}
    assert triggers["nightly"].spec == {"cron": "30 4 * * *"}
    assert triggers["on-data"].enabled is False
    assert ws.models.get("churn").description == "Churn classifier v2"
    assert not ws.project_file.plan(path).pending
    assert len(_events(ws, "project.apply.update")) == 2
    assert len(_events(ws, "project.apply.delete")) == 1


def test_an_invalid_file_applies_nothing(ws: Workspace, folder: Path) -> None:
    path = folder / "keel.yaml"
    path.write_text(CORE.replace("model: churn", "model: nope"))
    with pytest.raises(InvalidInputError, match="nothing was applied"):
        ws.project_file.apply(path)
    assert ws.project_file.service.current(ws.ctx) == {}
    assert _events(ws, "project.apply.") == []


class _Crash(LiveEffects):
    """Live effects that die at the n-th change, as a killed apply would."""

    def __init__(self, ws: Workspace, root: Path, *, after: int) -> None:
        super().__init__(ws, root=root)
        self.left = after

    def apply(self, change: Change) -> str | None:
        if self.left == 0:
            raise KeyboardInterrupt("killed")
        self.left -= 1
        return super().apply(change)


def test_an_interrupted_apply_converges_when_rerun(ws: Workspace, folder: Path) -> None:
    project = load_project(folder / "keel.yaml")
    service = ws.project_file.service
    with pytest.raises(KeyboardInterrupt):
        service.apply(ws.ctx, project, effects=_Crash(ws, folder, after=9))
    half = service.plan(ws.ctx, project)
    assert half.count("unchanged") == 9 and half.count("create") == 5
    assert service.lock_holder(ws.ctx) is None  # the lock was released on the way out

    result = ws.project_file.apply(folder / "keel.yaml")
    assert result.plan.count("create") == 5
    assert not service.plan(ws.ctx, project).pending
    assert len(_events(ws, "project.apply.create")) == 14
    assert ws.models.get("churn").description == "Churn classifier"


def test_a_lock_left_by_a_dead_process_is_taken_over(ws: Workspace, folder: Path) -> None:
    import socket
    from datetime import timedelta

    from keel.store import ProjectStateRepository

    with ws._governor.db.write() as session:
        ProjectStateRepository(session, ws.ctx.project_id).try_lock(
            "01HZZZZZZZZZZZZZZZZZZZZZZZ",
            f"user:ghost@{socket.gethostname()}:{2**22 + os.getpid()}",
            lease=timedelta(hours=1),
        )
    assert ws.project_file.service.lock_holder(ws.ctx) is not None
    assert ws.project_file.apply(folder / "keel.yaml", wait=0).plan.count("create") == 14


def test_a_live_lock_makes_a_second_apply_fail_cleanly(ws: Workspace, folder: Path) -> None:
    from datetime import timedelta

    from keel.errors import ConflictError
    from keel.store import ProjectStateRepository

    with ws._governor.db.write() as session:
        ProjectStateRepository(session, ws.ctx.project_id).try_lock(
            "01HZZZZZZZZZZZZZZZZZZZZZZZ", "user:other@elsewhere:1", lease=timedelta(hours=1)
        )
    with pytest.raises(ConflictError, match=r"Another apply .* \(user:other@elsewhere:1, since"):
        ws.project_file.apply(folder / "keel.yaml", wait=0.3)
    assert ws.project_file.service.current(ws.ctx) == {}
    assert ws.project_file.force_unlock() == "user:other@elsewhere:1"
    assert ws.project_file.apply(folder / "keel.yaml", wait=0).plan.count("create") == 14


def test_export_writes_a_valid_file_that_plans_as_unchanged(ws: Workspace, folder: Path) -> None:
    ws.project_file.apply(folder / "keel.yaml")
    ws.models.create("hand-made", description="made outside keel.yaml")
    exported = ws.project_file.export_yaml()
    data = yaml.safe_load(exported)
    assert data["models"]["hand-made"] == {"description": "made outside keel.yaml"}
    assert data["deployments"]["churn-prod"]["strategy"] == "canary"
    _, issues = validate_text(exported, file="exported.yaml", root=folder)
    assert issues == []
    target = folder / "exported.yaml"
    target.write_text(exported)
    plan = ws.project_file.plan(target)
    assert [(c.op, c.kind, c.name) for c in plan.pending] == [("create", "model", "hand-made")]


def test_export_marks_pipelines_it_only_knows_from_triggers(ws: Workspace, folder: Path) -> None:
    from keel.cicd import PIPELINE_PLACEHOLDER

    ws.pipelines.create_trigger(
        "hand-trigger", pipeline="hand-made", kind="schedule", spec={"cron": "0 1 * * *"}
    )
    data = ws.project_file.export()
    assert data["pipelines"]["hand-made"] == PIPELINE_PLACEHOLDER
    assert f"written as '{PIPELINE_PLACEHOLDER}'" in ws.project_file.export_yaml()
