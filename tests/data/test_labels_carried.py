"""Labels a version carries from its parent: appended raw rows are classified (an anonymized
column of the parent may hold personal data again), and a renamed column keeps its
personal-data category."""

from __future__ import annotations

import polars as pl

from keel.workspace import Workspace


def _emails(low: int, high: int) -> pl.DataFrame:
    return pl.DataFrame(
        {"email": [f"user{i}@example.com" for i in range(low, high)], "n": list(range(low, high))}
    )


def test_raw_rows_appended_to_an_anonymized_version_are_labelled_again(
    local_ws: Workspace,
) -> None:
    local_ws.datasets.ingest("c", _emails(0, 30))
    local_ws.datasets.classify("c")
    anonymized = local_ws.datasets.anonymize("c", [{"kind": "pseudonymize", "columns": ["email"]}])
    assert anonymized.classification is not None
    assert anonymized.classification["columns"]["email"]["detector"] == "anonymized"
    appended = local_ws.datasets.ingest("c", _emails(30, 60), mode="append")
    assert appended.classification is not None
    email = appended.classification["columns"]["email"]
    assert email["categories"] == ["contact.email"] and email["detector"] == "email"
    assert appended.sensitivity == "confidential"


def test_a_renamed_column_keeps_its_personal_data_category(local_ws: Workspace) -> None:
    local_ws.datasets.ingest("c", _emails(0, 30))
    local_ws.datasets.classify("c")
    for made in (
        local_ws.datasets.transform("c", [{"op": "rename", "mapping": {"email": "contact"}}]),
        local_ws.datasets.transform("c", function=lambda f: f.rename({"email": "to"}), version=1),
    ):
        assert made.classification is not None
        assert made.classification["categories"] == ["contact.email"]
        column = "contact" if "contact" in made.columns else "to"
        assert made.classification["columns"][column]["categories"] == ["contact.email"]


def test_a_renamed_column_keeps_its_audited_override(local_ws: Workspace) -> None:
    local_ws.datasets.ingest("c", _emails(0, 30))
    local_ws.datasets.classify("c")
    local_ws.datasets.override(
        "c", "email", sensitivity="restricted", categories=["contact.email"], reason="policy"
    )
    made = local_ws.datasets.transform("c", [{"op": "rename", "mapping": {"email": "contact"}}])
    assert made.classification is not None
    assert made.classification["columns"]["contact"]["sensitivity"] == "restricted"
    assert made.classification["overrides"]["contact"]["reason"] == "policy"
    assert made.sensitivity == "restricted"
