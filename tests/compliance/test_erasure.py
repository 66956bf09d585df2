"""Erasure of a data subject on SQLite and PostgreSQL: rows gone, keys shredded, models flagged."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from keel.compliance import RETRAIN_TAG, render_erasure
from keel.errors import NotFoundError
from keel.workspace import Workspace
from tests.compliance._helpers import ALICE, dump_metadata, setup_orders, train_on


def test_locate_finds_the_versions_and_the_index_holds_only_keyed_hashes(ws: Workspace) -> None:
    setup_orders(ws)
    found = ws.compliance.locate(ALICE)
    assert [(f.dataset, f.version, f.rows, f.erased) for f in found] == [
        ("orders", 1, 2, False),
        ("orders", 2, 2, False),
    ]
    assert ws.compliance.locate("nobody@example.org") == []
    with ws._governor.db.read() as session:
        from sqlalchemy import select

        from keel.store._schema_compliance import SubjectIndexRow

        subjects = list(session.execute(select(SubjectIndexRow.subject)).scalars())
    assert len(subjects) == 4  # alice, bob, carol (part 1) and dave (part 2)
    assert all(len(s) == 32 and "@" not in s for s in subjects)


def test_erase_rewrites_shreds_flags_and_reports(ws: Workspace, tmp_path: Path) -> None:
    setup_orders(ws)
    model = train_on(ws, "orders", 2)
    other = train_on(ws, "orders", 2, model="unrelated-later")  # also trained on v2
    report = ws.compliance.erase(ALICE)

    assert report.state == "done" and report.kind == "subject"
    assert [(v.dataset, v.version, v.rows_removed, v.replaced_by) for v in report.versions] == [
        ("orders", 1, 2, None),
        ("orders", 2, 2, 3),
    ]
    assert report.versions[1].tags_moved == ("latest",)
    assert report.parts == {"shredded": 1, "deleted": 0, "absent": 0}
    assert set(report.models_flagged) == {
        f"churn:{model.version}",
        f"unrelated-later:{other.version}",
    }

    # the new version has every row but the subject's, and is what `latest` reads
    latest = ws.datasets.read("orders")
    assert ALICE not in latest["customer"].to_list()
    assert sorted(latest["customer"].to_list()) == [
        "bob@example.org",
        "carol@example.org",
        "dave@example.org",
    ]
    assert ws.datasets.get("orders").tags == {"latest": 3}
    new = ws.datasets.version("orders", 3)
    assert new.transform is not None and new.transform["kind"] == "erasure"
    assert new.transform["removed_rows"] == 2
    assert (new.erased, new.replaced_by) == (False, None)
    old = ws.datasets.version("orders", 2)
    assert (old.erased, old.replaced_by) == (True, 3)
    assert ws.datasets.version("orders", 1).erased

    # the old versions are gone for good, with a clear error
    for number in (1, 2):
        with pytest.raises(NotFoundError, match="erased") as caught:
            ws.datasets.read("orders", number)
        assert caught.value.details.get("erased") is True

    # the models trained on them are flagged in the registry and audited
    flagged = ws.models.version("churn", model.version)
    assert flagged.tags[RETRAIN_TAG].startswith("required:")
    assert {e.object_id for e in ws.audit.events(action="model.flag_retrain")} == {
        model.id,
        other.id,
    }
    (event,) = ws.audit.events(action="compliance.erase")
    assert event.details["subject"] == report.subject

    # no table holds the raw id: index, plan, report, audit, statistics were all checked
    assert ALICE not in dump_metadata(ws)
    assert ALICE not in json.dumps(report.to_dict())
    assert ALICE not in render_erasure(report)

    # lineage records the replacement as a transform of the erased version
    graph = ws.lineage.graph(f"dataset_version:{new.id}", direction="up", depth=2)
    assert f"dataset_version:{ws.datasets.version('orders', 2).id}" in {str(n) for n in graph.nodes}

    # a second request finds nothing left, and says so
    again = ws.compliance.erase(ALICE)
    assert again.versions == () and "nothing to erase" in again.notes[0]
    assert ws.compliance.locate(ALICE) == []


def test_user_tags_move_to_the_replacement_and_latest_stays_put(ws: Workspace) -> None:
    ws.datasets.ingest("orders", pl.DataFrame({"customer": [ALICE, "bob"], "n": [1, 2]}))
    ws.datasets.ingest("orders", pl.DataFrame({"customer": ["bob"], "n": [3]}))  # v2: no alice
    ws.datasets.tag("orders", "gold", 1)
    ws.compliance.declare("orders", purpose="p", lawful_basis="contract", subject_column="customer")
    report = ws.compliance.erase(ALICE)
    (erased,) = report.versions
    assert (erased.version, erased.replaced_by, erased.tags_moved) == (1, 3, ("gold",))
    tags = ws.datasets.get("orders").tags
    assert tags == {"gold": 3, "latest": 2}  # latest was not affected: it stays on v2
    assert ws.datasets.read("orders", "gold")["customer"].to_list() == ["bob"]


def test_an_interrupted_erasure_resumes_without_doing_work_twice(ws: Workspace) -> None:
    setup_orders(ws)

    def crash(what: str, done: int, total: int) -> None:
        if what == "shred":
            raise KeyboardInterrupt("killed while shredding")

    with pytest.raises(KeyboardInterrupt):
        ws.compliance.erase(ALICE, progress=crash)
    (pending,) = ws.compliance.erasures()
    assert pending.state == "running" and "resume" in pending.notes[0]
    assert ws.datasets.get("orders").versions == 3  # the replacement was written

    report = ws.compliance.erase(ALICE)
    assert report.id == pending.id and report.state == "done"
    assert ws.datasets.get("orders").versions == 3  # found, not written again
    assert [v.replaced_by for v in report.versions] == [None, 3]
    assert ws.compliance.erasure(report.id).state == "done"
    with pytest.raises(NotFoundError, match="erased"):
        ws.datasets.read("orders", 1)


def test_dry_run_changes_nothing(ws: Workspace) -> None:
    setup_orders(ws)
    plan = ws.compliance.erase(ALICE, dry_run=True)
    assert plan.dry_run and plan.state == "planned"
    assert [(v.version, v.tags_moved) for v in plan.versions] == [(1, ()), (2, ("latest",))]
    assert ws.datasets.get("orders").versions == 2
    assert ALICE in ws.datasets.read("orders", 1)["customer"].to_list()
    assert ws.compliance.erasures() == []


def test_identical_parts_in_an_undeclared_dataset_are_erased_and_reported(ws: Workspace) -> None:
    from tests.compliance._helpers import orders

    setup_orders(ws)
    ws.datasets.ingest("copy", orders(ALICE, "bob@example.org", "carol@example.org", ALICE))
    same = ws.datasets.version("copy", 1).parts[0].digest
    assert same == ws.datasets.version("orders", 1).parts[0].digest  # stored once
    report = ws.compliance.erase(ALICE)
    assert ("copy", 1, None) in [(v.dataset, v.version, v.replaced_by) for v in report.versions]
    assert any("declares no subject column" in note and "copy:1" in note for note in report.notes)
    assert any("not searched" in note and "copy" in note for note in report.notes)
    with pytest.raises(NotFoundError, match="erased"):
        ws.datasets.read("copy")


def test_published_moves_with_its_version_and_the_replacement_stays_published(
    ws: Workspace,
) -> None:
    setup_orders(ws)
    ws.datasets.validate("orders", [{"kind": "not_null", "column": "customer"}], version=1)
    ws.datasets.publish("orders", 1)
    report = ws.compliance.erase(ALICE)
    by_version = {v.version: v for v in report.versions}
    assert by_version[1].replaced_by == 3 and by_version[1].tags_moved == ("published",)
    assert by_version[2].replaced_by == 4 and by_version[2].tags_moved == ("latest",)
    assert ws.datasets.get("orders").tags == {"latest": 4, "published": 3}
    published = ws.datasets.version("orders", "published")
    assert published.version == 3 and published.published
    assert ALICE not in ws.datasets.read("orders", "published")["customer"].to_list()


def test_an_append_during_the_erasure_is_erased_too_and_latest_keeps_it(ws: Workspace) -> None:
    from tests.compliance._helpers import orders

    setup_orders(ws)
    appended: list[int] = []

    def append_meanwhile(what: str, done: int, total: int) -> None:
        # before v2 is rewritten, someone appends to it (reusing its parts), with new rows
        # of the subject too
        if what == "rewrite" and not appended:
            v = ws.datasets.ingest("orders", orders("erin@example.org", ALICE), mode="append")
            appended.append(v.version)

    report = ws.compliance.erase(ALICE, progress=append_meanwhile)
    assert appended == [3]
    by_version = {v.version: v for v in report.versions}
    assert set(by_version) == {1, 2, 3}
    assert by_version[3].replaced_by is not None and by_version[3].rows_removed == 3
    latest = ws.datasets.read("orders")
    assert ALICE not in latest["customer"].to_list()
    assert "erin@example.org" in latest["customer"].to_list()  # the append was kept
    assert ws.datasets.get("orders").tags["latest"] == by_version[3].replaced_by
    for number in (1, 2, 3):
        with pytest.raises(NotFoundError, match="erased"):
            ws.datasets.read("orders", number)
    assert [loc for loc in ws.compliance.locate(ALICE) if not loc.erased] == []


def test_a_resumed_erasure_also_erases_rows_that_arrived_meanwhile(ws: Workspace) -> None:
    from tests.compliance._helpers import orders

    setup_orders(ws)

    def crash(what: str, done: int, total: int) -> None:
        if what == "shred":
            raise KeyboardInterrupt("killed while shredding")

    with pytest.raises(KeyboardInterrupt):
        ws.compliance.erase(ALICE, progress=crash)
    ws.datasets.ingest("orders", orders(ALICE, "frank@example.org"), mode="append")
    report = ws.compliance.erase(ALICE)
    assert report.state == "done"
    assert ALICE not in ws.datasets.read("orders")["customer"].to_list()
    assert "frank@example.org" in ws.datasets.read("orders")["customer"].to_list()
    assert [loc for loc in ws.compliance.locate(ALICE) if not loc.erased] == []


def test_locate_and_a_dry_run_are_audited_with_the_hashed_subject(ws: Workspace) -> None:
    setup_orders(ws)
    ws.compliance.locate(ALICE)
    plan = ws.compliance.erase(ALICE, dry_run=True)
    (located,) = ws.audit.events(action="compliance.locate")
    (planned,) = ws.audit.events(action="compliance.erase.plan")
    assert located.details["subject"] == plan.subject == planned.details["subject"]
    assert located.details["versions"] == 2 and planned.details["versions"] == [
        "orders:1",
        "orders:2",
    ]
    assert ALICE not in json.dumps([e.details for e in ws.audit.events()])


def test_a_subject_column_holding_lists_is_refused_or_skipped(ws: Workspace) -> None:
    from keel.errors import InvalidInputError

    setup_orders(ws)
    ws.datasets.ingest("baskets", pl.DataFrame({"who": [[ALICE], ["bob"]], "n": [1, 2]}))
    with pytest.raises(InvalidInputError, match="String"):
        ws.compliance.declare("baskets", purpose="p", lawful_basis="contract", subject_column="who")
    # declared before the column changed type: skipped and reported, the rest still works
    ws.datasets.ingest("tickets", pl.DataFrame({"who": [ALICE], "n": [1]}))
    ws.compliance.declare("tickets", purpose="p", lawful_basis="contract", subject_column="who")
    ws.datasets.ingest("tickets", pl.DataFrame({"who": [[ALICE]], "n": [2]}))
    assert {(loc.dataset, loc.version) for loc in ws.compliance.locate(ALICE)} == {
        ("orders", 1),
        ("orders", 2),
        ("tickets", 1),
    }
    report = ws.compliance.erase(ALICE)
    assert any("tickets (who: List" in note for note in report.notes)


def test_a_second_request_for_a_running_erasure_is_refused_not_run_twice(ws: Workspace) -> None:
    from keel.errors import ConflictError

    setup_orders(ws)
    refused: list[str] = []

    def retry_meanwhile(what: str, done: int, total: int) -> None:
        if what == "rewrite" and not refused:
            with pytest.raises(ConflictError, match="another request") as caught:
                ws.compliance.erase(ALICE)  # a client retrying after its timeout
            refused.append(str(caught.value))

    report = ws.compliance.erase(ALICE, progress=retry_meanwhile)
    assert refused and report.state == "done"
    assert ws.datasets.get("orders").versions == 3  # one replacement, written once
    assert len(ws.compliance.erasures()) == 1


def test_a_part_indexed_twice_at_once_is_kept_once(ws: Workspace) -> None:
    from keel.store import ErasureRepository

    pid = ws.ctx.project_id
    digest = "sha256:" + "ab" * 32
    with ws._governor.db.write() as session:
        assert ErasureRepository(session, pid).add_index(digest, "customer", {"x" * 32: 1})
    with ws._governor.db.write() as session:  # a concurrent refresh that lost the race
        assert not ErasureRepository(session, pid).add_index(digest, "customer", {"y" * 32: 2})
    with ws._governor.db.read() as session:
        assert ErasureRepository(session, pid).parts_of("x" * 32) == {digest: 1}
        assert ErasureRepository(session, pid).parts_of("y" * 32) == {}


def test_only_one_erasure_per_subject_and_one_retention_run_can_be_running(
    ws: Workspace,
) -> None:
    from keel.errors import ConflictError
    from keel.store import ErasureRepository

    pid = ws.ctx.project_id
    for kind, subject in (("subject", "s" * 32), ("retention", None)):
        with ws._governor.db.write() as session:
            ErasureRepository(session, pid).add_erasure(
                kind=kind, subject=subject, plan={}, requested_by="user:a"
            )
        with pytest.raises(ConflictError), ws._governor.db.write() as session:
            ErasureRepository(session, pid).add_erasure(
                kind=kind, subject=subject, plan={}, requested_by="user:b"
            )
    with ws._governor.db.write() as session:  # another subject may run alongside
        ErasureRepository(session, pid).add_erasure(
            kind="subject", subject="t" * 32, plan={}, requested_by="user:a"
        )
