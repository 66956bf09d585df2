"""Authorization fails closed, denials are audited, and projects never see each other."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from keel.governance import Permission, Role, allows
from keel.workspace import Workspace, connect
from tests.conftest import make_settings


def test_roles_grant_what_the_matrix_says() -> None:
    assert allows({"viewer"}, Permission.RUN_READ)
    assert not allows({"viewer"}, Permission.RUN_WRITE)
    assert allows({"contributor"}, Permission.RUN_WRITE)
    assert not allows({"contributor"}, Permission.MODEL_PROMOTE)
    assert allows({"maintainer"}, Permission.MODEL_PROMOTE)
    assert allows({"auditor"}, Permission.AUDIT_READ)
    assert not allows({"auditor"}, Permission.RUN_WRITE)
    assert all(allows({"owner"}, p) for p in Permission)


def test_unknown_or_missing_roles_grant_nothing() -> None:
    assert not any(allows(set(), p) for p in Permission)
    assert not any(allows({"superuser", "root"}, p) for p in Permission)


def test_every_role_and_permission_is_covered() -> None:
    from keel.governance._permissions import ROLE_PERMISSIONS

    assert set(ROLE_PERMISSIONS) == set(Role)


def _other(ws: Workspace, principal: str, tmp_path: Path, project: str | None = None) -> Workspace:
    settings = make_settings(
        ws.settings.home,
        ws.settings.db_url,
        project=project or ws.settings.project,
    )
    del tmp_path
    return connect(settings=settings, principal=principal)


def test_a_principal_without_a_role_is_denied_and_the_denial_audited(
    ws: Workspace, tmp_path: Path
) -> None:
    stranger = _other(ws, "user:stranger", tmp_path)
    try:
        with pytest.raises(PermissionDeniedError, match=r"run\.write"):
            stranger.runs.start(experiment="x", capture_env=False)
        with pytest.raises(PermissionDeniedError):
            stranger.runs.search()
    finally:
        stranger.close()
    denied = [e for e in ws.audit.events() if e.outcome == "denied"]
    assert [(e.principal, e.action) for e in denied] == [
        ("user:stranger", "run.create"),
        ("user:stranger", "run.search"),
    ]
    assert ws.audit.verify().ok


def test_viewer_reads_but_cannot_write_or_promote(ws: Workspace, tmp_path: Path) -> None:
    ws.models.register("m", artifact=b"x", format="onnx")
    ws.projects.grant("user:viewer", "viewer")
    viewer = _other(ws, "user:viewer", tmp_path)
    try:
        assert viewer.models.get("m").latest_version == 1
        with pytest.raises(PermissionDeniedError):
            viewer.models.set_alias("m", "champion", 1)
        with pytest.raises(PermissionDeniedError):
            viewer.audit.events()
    finally:
        viewer.close()
    with pytest.raises(InvalidInputError, match="Unknown role"):
        ws.projects.grant("user:x", "god")


def test_projects_are_isolated_even_by_id(ws: Workspace, tmp_path: Path) -> None:
    with ws.runs.start(experiment="secret", capture_env=False) as run:
        run.log_metrics({"auc": 0.9})
    ws.models.register("private", artifact=b"x", format="onnx")
    ws.projects.create("other")
    other = _other(ws, ws.ctx.principal, tmp_path, project="other")
    try:
        assert other.runs.search().runs == []
        with pytest.raises(NotFoundError):
            other.runs.get(run.id)
        with pytest.raises(NotFoundError):
            other.models.get("private")
        assert other.models.list() == []
    finally:
        other.close()
    assert {p.name for p in ws.projects.list()} == {"default", "other"}
