"""The read-only store (plain DB-API SQL) answers as the repositories do, on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from keel.store import (
    MonitorRepository,
    ProjectRepository,
    ProjectStateRepository,
    RegistryRepository,
    TriggerRepository,
    required_heads,
)
from keel.store._readonly import ReadOnlyStore, ReadOnlyStoreError
from keel.workspace import Workspace, connect
from tests.conftest import make_settings


@pytest.fixture
def filled(ws: Workspace) -> Workspace:
    """A project with bindings, triggers, a model, monitors and recorded resources."""
    ws.projects.grant("user:alice", "maintainer")
    ws.projects.grant("user:bob", "viewer")
    ws.models.create("churn", description="Churn classifier")
    ws.models.create("plain")
    ws.pipelines.create_trigger(
        "nightly", pipeline="train", kind="schedule", spec={"cron": "0 3 * * *"}
    )
    ws.pipelines.create_trigger(
        "on-data", pipeline="train", kind="dataset", spec={"dataset": "customers"},
        params={"epochs": 3, "tags": ["a", "ü"]}, enabled=False,
    )  # fmt: skip
    with ws._governor.db.write() as session:
        monitors = MonitorRepository(session, ws.ctx.project_id)
        for name in ("zeta", "alpha"):
            monitors.add(
                name=name, deployment="churn-prod", model=None, reference="customers:1",
                reference_version_id="v1", config={"features": ["age"]}, window_kind="count",
                window_size=100.0, schedule=None, next_run_at=None, created_by="user:tester",
            )  # fmt: skip
        state = ProjectStateRepository(session, ws.ctx.project_id)
        for kind, name, spec in (
            ("dataset", "customers", {"source": "crm", "nested": {"k": [1, 2.5, None]}}),
            ("role", "user:alice", {"role": "maintainer"}),
        ):
            state.put(kind, name, spec=spec, digest="sha256:" + "0" * 64, principal="user:t")
    return ws


def _open(ws: Workspace) -> ReadOnlyStore:
    store = ReadOnlyStore.open(ws.settings.resolved_db_url)
    assert store is not None
    return store


def test_every_query_matches_its_repository(filled: Workspace) -> None:
    ws, pid = filled, filled.ctx.project_id
    with ws._governor.db.read() as session, _open(ws) as store:
        projects = ProjectRepository(session)
        assert store.project_id(ws.ctx.project_name) == pid
        assert store.project_id("no-such-project") is None
        for who in ("user:tester", "user:alice", "user:nobody"):
            assert store.roles_of(pid, who) == projects.roles_of(pid, who)
        assert store.bindings(pid) == {r.principal: r.role for r in projects.bindings(pid)}
        assert store.bindings(pid)["user:bob"] == "viewer"
        resources = ProjectStateRepository(session, pid).resources()
        assert store.resources(pid) == {(r.kind, r.name): dict(r.spec) for r in resources}
        assert store.resources(pid)[("dataset", "customers")]["nested"] == {"k": [1, 2.5, None]}
        expected = [
            (r.name, r.pipeline, r.kind, dict(r.spec), dict(r.params), r.enabled)
            for r in TriggerRepository(session, pid).all()
        ]
        got = [
            (t.name, t.pipeline, t.kind, t.spec, t.params, t.enabled) for t in store.triggers(pid)
        ]
        assert got == expected
        assert got[1] == ("on-data", "train", "dataset", {"dataset": "customers"},
                          {"epochs": 3, "tags": ["a", "ü"]}, False)  # fmt: skip
        registry = RegistryRepository(session, pid)
        for name in ("churn", "plain"):
            row = registry.model(name)
            assert row is not None and store.model_description(pid, name) == row.description
        assert store.model_description(pid, "churn") == "Churn classifier"
        assert store.model_description(pid, "missing") is None
        listed = [m.name for m in MonitorRepository(session, pid).list()]
        assert store.monitor_names(pid) == listed == ["alpha", "zeta"]


def test_it_writes_nothing(filled: Workspace) -> None:
    with _open(filled) as store, pytest.raises(ReadOnlyStoreError):
        store._rows("DELETE FROM role_bindings")
    with filled._governor.db.read() as session:
        assert len(ProjectRepository(session).bindings(filled.ctx.project_id)) == 3


def _opens(url: str) -> bool:
    store = ReadOnlyStore.open(url)
    if store is not None:
        store.close()
    return store is not None


def test_an_outdated_or_foreign_store_is_not_opened(ws: Workspace) -> None:
    url = ws.settings.resolved_db_url
    assert _opens(url)
    head = sorted(required_heads())[0]
    remove = text("DELETE FROM alembic_version WHERE version_num = :v")
    with ws._governor.db.write() as session:
        session.execute(remove, {"v": head})
    try:
        assert not _opens(url)  # its SQL may not match an older schema
    finally:
        with ws._governor.db.write() as session:
            session.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": head})
    assert _opens(url)
    assert not _opens("mysql+pymysql://root@127.0.0.1/test")


def test_a_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "keel.db"
    assert ReadOnlyStore.open(f"sqlite:///{missing}") is None
    assert not missing.exists() and not missing.parent.exists()
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    assert ReadOnlyStore.open(f"sqlite:///{empty}") is None  # no schema at all
    assert empty.read_bytes() == b""


@pytest.fixture
def pg_ws(pg_url: str, tmp_path: Path) -> Iterator[Workspace]:
    from tests.conftest import reset_postgres

    reset_postgres(pg_url)
    workspace = connect(settings=make_settings(tmp_path / "home", pg_url), principal="user:t")
    try:
        yield workspace
    finally:
        workspace.close()


def test_a_postgres_url_in_any_spelling_opens(pg_ws: Workspace) -> None:
    url = pg_ws.settings.resolved_db_url
    rest = url.split("://", 1)[1]
    for spelling in (f"postgresql+psycopg://{rest}", f"postgresql://{rest}", f"postgres://{rest}"):
        store = ReadOnlyStore.open(spelling)
        assert store is not None
        with store:
            assert store.roles_of(pg_ws.ctx.project_id, "user:t") == frozenset({"owner"})
