"""``keel plan`` read in plain SQL gives the full path's plan, and steps aside when it must."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from keel.cicd import Plan, load_project
from keel.governance import IdentityService
from keel.workspace import Workspace
from keel.workspace._read_only_plan import read_only_plan
from tests.cicd._project import CORE, VALID, write_project


@pytest.fixture
def path(tmp_path: Path) -> Path:
    folder = tmp_path / "repo"
    folder.mkdir()
    return write_project(folder, VALID)


def _quick(ws: Workspace, path: Path, principal: str = "user:tester") -> Plan | None:
    return read_only_plan(ws.settings, load_project(path), principal=principal)


def _same_as_full(ws: Workspace, path: Path) -> Plan:
    quick = _quick(ws, path)
    assert quick is not None
    full = ws.project_file.plan(load_project(path))
    assert quick.to_dict() == full.to_dict()
    assert quick.render(show_unchanged=True) == full.render(show_unchanged=True)
    return quick


def test_both_paths_plan_the_same_through_every_kind_of_drift(ws: Workspace, path: Path) -> None:
    first = _same_as_full(ws, path)
    assert first.count("create") == len(first.changes) and first.changes  # nothing applied yet
    ws.project_file.apply(path)
    applied = _same_as_full(ws, path)
    assert applied.count("unchanged") > 0
    # by hand: a role raised, a model described, a trigger rescheduled and one disabled
    ws.projects.grant("user:alice", "owner")
    ws.models.update("churn", description="edited in the UI")
    ws.pipelines.create_trigger(
        "nightly", pipeline="train", kind="schedule", spec={"cron": "0 5 * * *"}, replace=True
    )
    ws.pipelines.create_trigger(
        "on-data", pipeline="train", kind="dataset", spec={"dataset": "customers"},
        params={"epochs": 2}, enabled=False, replace=True,
    )  # fmt: skip
    drifted = _same_as_full(ws, path)
    assert {(c.op, c.kind, c.name) for c in drifted.pending} >= {
        ("update", "role", "user:alice"),
        ("update", "model", "churn"),
        ("update", "trigger", "nightly"),
        ("update", "trigger", "on-data"),
    }
    IdentityService(ws._governor).revoke_role(ws.ctx, "user:alice")
    assert ("create", "role", "user:alice") in {
        (c.op, c.kind, c.name) for c in _same_as_full(ws, path).pending
    }
    # the file changes too: resources dropped from it are planned as deletes
    path.write_text(CORE.replace("roles:\n  user:alice: maintainer\n", ""))
    edited = _same_as_full(ws, path)
    assert edited.count("delete") > 0


def test_a_principal_who_may_not_read_it_all_gets_the_full_path(ws: Workspace, path: Path) -> None:
    ws.project_file.apply(path)
    ws.projects.grant("user:viewer", "viewer")  # reads, but may not list role bindings
    assert _quick(ws, path, principal="user:viewer") is None
    assert _quick(ws, path, principal="user:stranger") is None  # no role at all
    assert _quick(ws, path) is not None


def test_a_store_it_cannot_read_so_gets_the_full_path(
    ws: Workspace, path: Path, tmp_path: Path
) -> None:
    project = load_project(path)
    other = ws.settings.model_copy(update={"project": "no-such-project"})
    assert read_only_plan(other, project, principal="user:tester") is None
    keyless = ws.settings.model_copy(update={"master_key_file": tmp_path / "gone.key"})
    assert read_only_plan(keyless, project, principal="user:tester") is None
    foreign = ws.settings.model_copy(update={"db_url": "mysql+pymysql://root@127.0.0.1/test"})
    assert read_only_plan(foreign, project, principal="user:tester") is None


def test_settings_connect_would_refuse_get_the_full_path(ws: Workspace, path: Path) -> None:
    project = load_project(path)
    assert read_only_plan(ws.settings, project, principal="user:tester") is not None
    signing = ws.settings.home / "signing.key"
    signing.chmod(0o644)  # readable by others: connect refuses it
    try:
        assert read_only_plan(ws.settings, project, principal="user:tester") is None
    finally:
        signing.chmod(0o600)
    for update in (
        {"key_provider": "env", "master_key": SecretStr("not-base64-of-32-bytes")},
        {"signing_key": "not-a-secret-reference"},
        {"signing_key_file": ws.settings.home / "not-yet.key"},  # connect would create it
    ):
        changed = ws.settings.model_copy(update=update)
        assert read_only_plan(changed, project, principal="user:tester") is None, update
    assert not (ws.settings.home / "not-yet.key").exists()


def test_a_url_sqlalchemy_might_read_otherwise_gets_the_full_path(
    ws: Workspace, path: Path
) -> None:
    project = load_project(path)
    url = ws.settings.resolved_db_url
    if url.startswith("sqlite"):
        odd = [url.replace("/keel.db", "/%6Beel.db"), url + "?timeout=5"]
    else:
        odd = [url + "?host=10.255.255.1&host=127.0.0.1", url + "?application_name=a+b"]
    for spelling in odd:
        changed = ws.settings.model_copy(update={"db_url": spelling})
        assert read_only_plan(changed, project, principal="user:tester") is None, spelling
