"""Retention when content-addressed parts are shared: a part is destroyed only where it has
expired everywhere it is held (identical bytes in another dataset are that dataset's data)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from keel import clock
from keel.errors import NotFoundError
from keel.store._schema_data import DatasetVersionRow
from keel.workspace import Workspace
from tests.compliance._helpers import ALICE, orders


def _age(ws: Workspace, dataset: str, version: int, days: int) -> None:
    with ws._governor.db.write() as session:
        row = session.get(DatasetVersionRow, ws.datasets.version(dataset, version).id)
        assert row is not None
        row.created_at = clock.now() - timedelta(days=days)


def _declare(ws: Workspace, dataset: str, days: int | None) -> None:
    ws.compliance.declare(
        dataset,
        purpose="p",
        lawful_basis="contract",
        retention_days=days,
        subject_column="customer",
    )


def test_identical_bytes_in_a_dataset_with_a_longer_retention_are_not_destroyed(
    ws: Workspace,
) -> None:
    frame = orders(ALICE, "bob@example.org")
    ws.datasets.ingest("short", frame)
    ws.datasets.ingest("long", frame)  # the same bytes: one stored part, two datasets
    shared = ws.datasets.version("short", 1).parts[0].digest
    assert ws.datasets.version("long", 1).parts[0].digest == shared
    _declare(ws, "short", 30)
    _declare(ws, "long", 365)
    _age(ws, "short", 1, 45)
    _age(ws, "long", 1, 10)

    plan = ws.compliance.enforce_retention(dry_run=True)
    assert [(v.dataset, v.version) for v in plan.versions] == [("short", 1)]
    assert any("would be kept" in n and "long" in n for n in plan.notes)

    report = ws.compliance.enforce_retention()
    assert [(v.dataset, v.version, v.replaced_by) for v in report.versions] == [("short", 1, None)]
    assert report.parts == {"shredded": 0, "deleted": 0, "absent": 0}
    assert any("were kept, not shredded" in n and "long" in n for n in report.notes)
    assert ws.datasets.version("short", 1).erased
    # long's own copy is within its 365 days: all there, untouched
    assert ws.datasets.read("long")["customer"].to_list() == [ALICE, "bob@example.org"]
    assert not ws.datasets.version("long", 1).erased

    # once long's retention has passed too, the part goes
    _age(ws, "long", 1, 400)
    later = ws.compliance.enforce_retention()
    assert [(v.dataset, v.version) for v in later.versions] == [("long", 1)]
    assert later.parts == {"shredded": 1, "deleted": 0, "absent": 0}
    with pytest.raises(NotFoundError, match="erased"):
        ws.datasets.read("long", 1)


def test_an_append_reusing_an_expired_part_is_rewritten_and_a_copy_elsewhere_kept(
    ws: Workspace,
) -> None:
    first = orders(ALICE, "bob@example.org")
    ws.datasets.ingest("orders", first)
    ws.datasets.ingest("orders", orders("dave@example.org"), mode="append")  # v2 reuses v1's part
    ws.datasets.ingest("archive", first)  # the same bytes, kept for another purpose
    _declare(ws, "orders", 30)
    _declare(ws, "archive", None)  # no retention period: kept until someone decides
    _age(ws, "orders", 1, 45)

    report = ws.compliance.enforce_retention()
    by_version = {(v.dataset, v.version): v for v in report.versions}
    assert set(by_version) == {("orders", 1), ("orders", 2)}
    assert by_version[("orders", 2)].replaced_by == 3
    # orders' latest no longer holds the expired rows, though the bytes stay for archive
    assert ws.datasets.read("orders")["customer"].to_list() == ["dave@example.org"]
    assert ws.datasets.get("orders").tags == {"latest": 3}
    assert ws.datasets.read("archive")["customer"].to_list() == [ALICE, "bob@example.org"]
    assert report.parts["shredded"] == 0
    assert any("(now orders:3)" in n for n in report.notes)
    assert ws.compliance.enforce_retention().versions == ()


def test_identical_bytes_committed_elsewhere_during_the_run_are_kept(ws: Workspace) -> None:
    first = orders(ALICE, "bob@example.org")
    ws.datasets.ingest("orders", first)
    ws.datasets.ingest("orders", orders("dave@example.org"), mode="append")
    _declare(ws, "orders", 30)
    _age(ws, "orders", 1, 45)
    committed: list[int] = []

    def meanwhile(what: str, done: int, total: int) -> None:
        if what == "rewrite" and not committed:
            committed.append(ws.datasets.ingest("fresh", first).version)

    report = ws.compliance.enforce_retention(progress=meanwhile)
    assert committed == [1]
    assert report.parts["shredded"] == 0
    assert ws.datasets.read("fresh")["customer"].to_list() == [ALICE, "bob@example.org"]
    assert ws.datasets.read("orders")["customer"].to_list() == ["dave@example.org"]


def test_a_retention_run_planned_while_another_finished_writes_no_second_replacement(
    ws: Workspace, backend: str, tmp_path: Path
) -> None:
    from keel.workspace import connect
    from tests.conftest import make_settings

    ws.datasets.ingest("orders", orders(ALICE, "bob@example.org"))
    ws.datasets.ingest("orders", orders("dave@example.org"), mode="append")
    _declare(ws, "orders", 30)
    _age(ws, "orders", 1, 45)
    other = connect(settings=make_settings(tmp_path / "home", backend), principal="user:tester")
    enforcer = ws.compliance._e._retention
    plan = enforcer.plan
    first: list[str] = []

    def plan_then_another_run_ends(*args: object, **kwargs: object) -> object:
        made = plan(*args, **kwargs)  # type: ignore[arg-type]
        if not first:  # a scheduler replica's run, started at the same moment, ends first
            first.append(other.compliance.enforce_retention().id)
        return made

    enforcer.plan = plan_then_another_run_ends  # type: ignore[method-assign]
    try:
        report = ws.compliance.enforce_retention()
    finally:
        enforcer.plan = plan  # type: ignore[method-assign]
        other.close()
    assert report.versions == ()
    assert any(n.startswith(f"already erased by {first[0]}") for n in report.notes)
    # one replacement of v2 (by the first run), and latest on it
    kinds = [(v.version, (v.transform or {}).get("kind")) for v in ws.datasets.versions("orders")]
    assert kinds == [(1, None), (2, None), (3, "retention")]
    assert ws.datasets.get("orders").tags == {"latest": 3}
    assert ws.datasets.read("orders")["customer"].to_list() == ["dave@example.org"]
