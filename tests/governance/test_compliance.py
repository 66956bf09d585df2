"""Records of processing, locations and retention over real dataset versions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from keel.errors import InvalidInputError, PermissionDeniedError
from keel.governance import retention_due
from keel.workspace import Workspace, connect
from tests.conftest import make_settings


def _ingest(ws: Workspace, name: str) -> None:
    frame = pl.DataFrame({"customer_id": [1, 2, 3], "email": ["a@x.ae", "b@x.ae", "c@x.ae"]})
    ws.datasets.ingest(name, frame)


def test_records_of_processing_report(local_ws: Workspace) -> None:
    _ingest(local_ws, "customers")
    _ingest(local_ws, "leads")
    record = local_ws.compliance.declare(
        "customers",
        purpose="Churn prediction for retention offers",
        lawful_basis="legitimate_interests",
        categories=["contact"],
        subjects=["customers"],
        allowed_regions=["AE"],
        retention_days=365,
        subject_column="customer_id",
    )
    assert record.declared and record.allowed_regions == ("ae",) and record.versions == 1
    report = {r.dataset: r for r in local_ws.compliance.records()}
    assert set(report) == {"customers", "leads"}
    assert report["leads"].problems == ("no record of processing declared",)
    assert report["customers"].lawful_basis == "legitimate_interests"
    assert report["customers"].subject_column == "customer_id"
    assert local_ws.audit.events(action="compliance.declare")


def test_declarations_are_checked(local_ws: Workspace) -> None:
    with pytest.raises(InvalidInputError, match="lawful basis"):
        local_ws.compliance.declare("d", purpose="x", lawful_basis="because")
    with pytest.raises(InvalidInputError, match="purpose"):
        local_ws.compliance.declare("d", purpose=" ", lawful_basis="consent")
    with pytest.raises(InvalidInputError, match="Invalid region"):
        local_ws.compliance.declare("d", purpose="x", lawful_basis="consent", allowed_regions=["?"])


def test_only_compliance_admins_declare(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path / "home")
    with connect(settings=settings, principal="user:owner") as owner:
        owner.projects.grant("user:dev", "contributor")
        with connect(settings=settings, principal="user:dev") as dev:
            with pytest.raises(PermissionDeniedError, match=r"compliance\.admin"):
                dev.compliance.declare("d", purpose="x", lawful_basis="consent")
            with pytest.raises(PermissionDeniedError, match=r"audit\.read"):
                dev.compliance.records()


def test_retention_job_finds_overdue_versions(local_ws: Workspace) -> None:
    _ingest(local_ws, "customers")
    local_ws.compliance.declare(
        "customers", purpose="x", lawful_basis="contract", retention_days=30
    )
    assert local_ws.compliance.retention() == []
    later = datetime.now(UTC) + timedelta(days=31)
    [due] = local_ws.compliance.retention(now=later)
    assert (due.dataset, due.version) == ("customers", 1)
    [event] = local_ws.audit.events(action="compliance.retention")[-1:]
    assert event.details["overdue"] == ["customers:1"]


def test_retention_due_is_pure() -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    old = now - timedelta(days=10)
    versions = [("a", 1, old), ("a", 2, now), ("b", 1, old)]
    due = retention_due(versions, {"a": 5, "b": None}, now)
    assert [(d.dataset, d.version) for d in due] == [("a", 1)]


def test_locations_carry_regions(local_ws: Workspace) -> None:
    local_ws.compliance.set_location("dubai-k8s", kind="deployment", region="ae")
    assert [loc.to_dict() for loc in local_ws.compliance.locations()] == [
        {"name": "dubai-k8s", "kind": "deployment", "region": "ae"}
    ]
    with pytest.raises(InvalidInputError):
        local_ws.compliance.set_location("x", kind="moon", region="ae")
