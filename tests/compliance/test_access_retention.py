"""Right of access (zip export) and retention enforcement, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from keel import clock
from keel.compliance import RETRAIN_TAG
from keel.errors import NotFoundError, PermissionDeniedError
from keel.store._schema_data import DatasetVersionRow
from keel.workspace import Workspace, connect
from tests.compliance._helpers import ALICE, setup_orders, train_on
from tests.conftest import make_settings


def test_access_exports_rows_models_and_records_as_a_zip(ws: Workspace, tmp_path: Path) -> None:
    setup_orders(ws)
    model = train_on(ws, "orders", 1)
    out = tmp_path / "export" / "alice.zip"
    export = ws.compliance.access(ALICE, out=out)
    assert set(export.rows) == {"orders@1", "orders@2"}
    assert [r["amount"] for r in export.rows["orders@1"]] == [1.0, 4.0]
    assert export.models == (f"churn:{model.version}",)
    assert export.records[0]["purpose"] == "billing"
    with zipfile.ZipFile(out) as archive:
        assert sorted(archive.namelist()) == [
            "rows/orders-v1.csv",
            "rows/orders-v2.csv",
            "subject.json",
        ]
        summary = json.loads(archive.read("subject.json"))
        table = list(csv.DictReader(io.StringIO(archive.read("rows/orders-v2.csv").decode())))
    assert summary["models"] == [f"churn:{model.version}"]
    assert [row["customer"] for row in table] == [ALICE, ALICE]
    (event,) = ws.audit.events(action="compliance.access")
    assert event.details == {"subject": export.subject, "versions": 2, "rows": 4}
    assert ALICE not in json.dumps(event.details)


def test_after_erasure_access_lists_the_erasure_and_no_rows(ws: Workspace) -> None:
    setup_orders(ws)
    erased = ws.compliance.erase(ALICE)
    export = ws.compliance.access(ALICE)
    assert export.rows == {}
    assert [e["id"] for e in export.erasures] == [erased.id]


def _age(ws: Workspace, dataset: str, version: int, days: int) -> None:
    """Pretend a version was created ``days`` ago."""
    with ws._governor.db.write() as session:
        found = ws.datasets.version(dataset, version)
        row = session.get(DatasetVersionRow, found.id)
        assert row is not None
        row.created_at = clock.now() - timedelta(days=days)


def test_retention_erases_expired_versions_but_keeps_parts_still_in_use(ws: Workspace) -> None:
    setup_orders(ws)  # retention 30 days; v2 appends to v1 and reuses its part
    ws.datasets.ingest(
        "orders", pl.DataFrame({"customer": ["erin"], "amount": [9.0], "note": ["x"]})
    )
    _age(ws, "orders", 1, 45)
    _age(ws, "orders", 2, 40)
    model = train_on(ws, "orders", 1)

    plan = ws.compliance.enforce_retention(dry_run=True)
    assert plan.dry_run and [(v.dataset, v.version) for v in plan.versions] == [
        ("orders", 1),
        ("orders", 2),
    ]
    assert ws.datasets.read("orders", 1).height == 4  # nothing changed
    assert ws.audit.events(action="compliance.retention.plan")

    report = ws.compliance.enforce_retention()
    assert report.state == "done" and len(report.versions) == 2
    assert report.parts["shredded"] == 2  # both parts of v1/v2; v3 shares none
    for number in (1, 2):
        with pytest.raises(NotFoundError, match="erased"):
            ws.datasets.read("orders", number)
    assert ws.datasets.read("orders", 3)["customer"].to_list() == ["erin"]
    assert ws.datasets.get("orders").tags == {"latest": 3}
    assert RETRAIN_TAG in ws.models.version("churn", model.version).tags
    assert ws.compliance.enforce_retention().versions == ()  # nothing left to do
    assert ws.compliance.retention() == []  # the report no longer lists erased versions


def test_retention_ages_a_part_by_the_version_that_introduced_it(ws: Workspace) -> None:
    setup_orders(ws)
    _age(ws, "orders", 1, 45)  # v1 expired; v2 (v1's part, reused, + one more) is live
    ws.datasets.tag("orders", "gold", 2)
    report = ws.compliance.enforce_retention()
    # v1's rows are 45 days old in v2 too: v2 is rewritten without them
    assert [(v.dataset, v.version, v.rows_removed, v.replaced_by) for v in report.versions] == [
        ("orders", 1, 4, None),
        ("orders", 2, 4, 3),
    ]
    assert set(report.versions[1].tags_moved) == {"gold", "latest"}
    assert report.parts == {"shredded": 1, "deleted": 0, "absent": 0}
    assert any("reusing expired parts" in note for note in report.notes)
    assert ws.datasets.get("orders").tags == {"gold": 3, "latest": 3}
    assert ws.datasets.read("orders")["customer"].to_list() == ["dave@example.org"]
    assert ws.datasets.version("orders", 3).transform["kind"] == "retention"
    for number in (1, 2):
        with pytest.raises(NotFoundError, match="erased"):
            ws.datasets.read("orders", number)
    assert ws.compliance.enforce_retention().versions == ()  # v3's rows are new


def test_subject_duties_need_compliance_admin(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home")
    with connect(settings=settings, principal="user:owner") as owner:
        setup_orders(owner)
        owner.projects.grant("user:dev", "maintainer")
        owner.projects.grant("user:auditor", "auditor")
        for who in ("user:dev", "user:auditor"):
            with connect(settings=settings, principal=who) as other:
                for call in (
                    lambda: other.compliance.locate(ALICE),
                    lambda: other.compliance.erase(ALICE),
                    lambda: other.compliance.access(ALICE),
                    lambda: other.compliance.enforce_retention(dry_run=True),
                    lambda: other.compliance.erasures(),
                ):
                    with pytest.raises(PermissionDeniedError, match=r"compliance\.admin"):
                        call()
        denied = owner.audit.events(outcome="denied")
        assert {e.action for e in denied} >= {"compliance.erase", "compliance.access"}
        assert owner.datasets.get("orders").versions == 2


def test_the_records_report_flags_a_subject_column_the_data_lacks(ws: Workspace) -> None:
    setup_orders(ws)
    ws.compliance.declare(
        "orders",
        purpose="billing",
        lawful_basis="contract",
        subject_column="client_id",
        retention_days=30,
        categories=["contact"],
    )
    (record,) = ws.compliance.records()
    assert record.problems == (
        "subject column 'client_id' is not a column of version 2: subjects cannot be found there",
    )
    assert record.subject_column == "client_id" and record.retention_days == 30
    assert ws.compliance.locate(ALICE) == []  # nothing indexed under a missing column


def test_the_scheduler_enforces_retention_hourly(ws: Workspace) -> None:
    setup_orders(ws)
    job = ws.compliance.retention_job(every=timedelta(hours=1))
    now = clock.now()
    assert job(now) is None  # nothing is past its 30 days yet
    _age(ws, "orders", 1, 45)
    _age(ws, "orders", 2, 40)
    assert job(now + timedelta(minutes=10)) is None  # ran 10 minutes ago: not again yet
    assert ws.datasets.read("orders", 1).height == 4  # ... so nothing was erased
    scheduler = ws.pipelines.scheduler(poll=0.0, jobs=[job])
    scheduler.tick(now + timedelta(hours=2))
    for number in (1, 2):
        with pytest.raises(NotFoundError, match="erased"):
            ws.datasets.read("orders", number)
    assert ws.audit.events(action="compliance.retention.start")
    assert job(now + timedelta(hours=4)) is None  # erased versions are not due again


def test_only_one_scheduler_replica_runs_the_retention_job_per_interval(ws: Workspace) -> None:
    setup_orders(ws)
    _age(ws, "orders", 1, 45)
    _age(ws, "orders", 2, 40)
    first = ws.compliance.retention_job(every=timedelta(hours=1))
    second = ws.compliance.retention_job(every=timedelta(hours=1))  # another replica
    now = clock.now()
    report = first(now)
    assert report is not None and len(report.versions) == 2
    assert second(now + timedelta(minutes=1)) is None  # the first holds the interval
    assert len(ws.audit.events(action="compliance.retention.start")) == 1
    assert second(now + timedelta(hours=2)) is None  # its turn: nothing due any more
