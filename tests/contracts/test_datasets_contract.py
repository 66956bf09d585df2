"""The dataset contract, run on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import polars as pl
import pytest

from keel.errors import ConflictError, InvalidInputError, NotFoundError, PermissionDeniedError
from keel.governance import Role
from keel.workspace import Workspace, connect


def _loans(n: int = 1000, offset: int = 0) -> pl.DataFrame:
    ids = list(range(offset, offset + n))
    return pl.DataFrame(
        {
            "id": ids,
            "amount": [float(i % 97) * 10.5 for i in ids],
            "grade": [("A", "B", "C")[i % 3] for i in ids],
            "email": [f"user{i}@example.com" for i in ids],
        }
    )


def test_versions_are_immutable_content_addressed_and_read_back_in_every_format(
    ws: Workspace,
) -> None:
    frame = _loans()
    v1 = ws.datasets.ingest("loans", frame, part_rows=300)
    assert (v1.version, v1.row_count, len(v1.parts)) == (1, 1000, 4)
    assert v1.schema == [
        ("id", "Int64"),
        ("amount", "Float64"),
        ("grade", "String"),
        ("email", "String"),
    ]
    assert v1.stats["amount"]["max"] == 96 * 10.5 and v1.stats["id"]["nulls"] == 0
    assert v1.tags == ["latest"] and v1.digest.startswith("sha256:")
    assert ws.datasets.read("loans").equals(frame)
    assert ws.datasets.read("loans", 1, format="pandas")["id"].tolist() == frame["id"].to_list()
    assert ws.datasets.read("loans", "latest", format="arrow").num_rows == 1000
    # The same content again is the same version, not a new one.
    assert ws.datasets.ingest("loans", frame, part_rows=300).id == v1.id
    assert [v.version for v in ws.datasets.versions("loans")] == [1]
    for part in v1.parts:
        assert ws.blobs.exists(part.digest, scope=ws.ctx.project_id)


def test_append_reuses_unchanged_parts_and_refuses_another_schema(ws: Workspace) -> None:
    v1 = ws.datasets.ingest("loans", _loans(600), part_rows=300)
    v2 = ws.datasets.ingest("loans", _loans(100, offset=600), mode="append", part_rows=300)
    assert v2.version == 2 and v2.row_count == 700 and v2.parents == [v1.id]
    assert [p.digest for p in v2.parts[:2]] == [p.digest for p in v1.parts]
    diff = ws.datasets.diff("loans", 1, 2)
    assert (diff.parts_shared, diff.parts_added, diff.parts_removed) == (2, 1, 0)
    assert diff.rows_before == 600 and diff.rows_after == 700
    assert ws.datasets.read("loans", 2)["id"].to_list() == list(range(700))
    wrong = _loans(10).with_columns(pl.col("amount").cast(pl.String))
    with pytest.raises(InvalidInputError, match=r"do not match the schema.*amount"):
        ws.datasets.ingest("loans", wrong, mode="append")
    assert [v.version for v in ws.datasets.versions("loans")] == [1, 2]


def test_transform_records_steps_lineage_and_a_new_version(ws: Workspace) -> None:
    ws.datasets.ingest("loans", _loans(100))
    v2 = ws.datasets.transform(
        "loans",
        [
            {"op": "filter", "where": "amount > 100"},
            {"op": "derive", "column": "amount_k", "expr": "amount / 1000"},
            {"op": "drop_columns", "columns": ["grade"]},
        ],
    )
    got = ws.datasets.read("loans", v2.version)
    assert got.columns == ["id", "amount", "email", "amount_k"]
    assert got["amount"].min() > 100
    assert v2.transform is not None and v2.transform["kind"] == "steps"
    assert v2.transform["removed_columns"] == ["grade"]
    diff = ws.datasets.diff("loans", 1, 2)
    assert {(c.column, c.change) for c in diff.changes} >= {
        ("grade", "removed"),
        ("amount_k", "added"),
    }
    graph = ws.lineage.graph(f"dataset_version:{v2.id}", direction="up")
    relations = {(e.upstream.type, e.relation) for e in graph.upstream}
    assert ("transform", "produced") in relations and ("dataset_version", "input") in relations
    fn = ws.datasets.transform("loans", function=lambda f: f.head(3), version=1, target="sample")
    assert fn.dataset == "sample" and ws.datasets.read("sample").height == 3


def test_validation_gate_blocks_publish_until_checks_pass(ws: Workspace) -> None:
    ws.datasets.ingest("loans", _loans(50))
    with pytest.raises(ConflictError, match="no validation report"):
        ws.datasets.publish("loans")
    suite = [
        {"kind": "range", "column": "amount", "min": 0, "max": 100},
        {"kind": "not_null", "column": "id"},
        {"kind": "allowed_values", "column": "grade", "values": ["A", "B"], "level": "warning"},
    ]
    failed = ws.datasets.validate("loans", suite)
    assert not failed.passed and failed.errors == 1 and failed.warnings == 1
    assert "<html" in ws.datasets.report_html(failed.id).lower()
    with pytest.raises(ConflictError, match="failed the validation gate"):
        ws.datasets.publish("loans")
    with pytest.raises(NotFoundError, match="no tag 'published'"):
        ws.datasets.read("loans", "published")
    with pytest.raises(ConflictError, match="not published"):
        ws.datasets.read("loans", 1, require_published=True)
    # Clip the outliers in a new version, validate it, and publish it: warnings pass.
    v2 = ws.datasets.transform("loans", [{"op": "clip", "column": "amount", "upper": 100.0}])
    passed = ws.datasets.validate("loans", suite, version=v2.version)
    assert passed.passed and passed.warnings == 1
    published = ws.datasets.publish("loans", v2.version)
    assert published.published and "published" in published.tags
    assert ws.datasets.read("loans", "published").height == 50
    assert [r.passed for r in ws.datasets.reports("loans", 1)] == [False]
    events = ws.audit.events(action="dataset.publish")
    assert len(events) == 1 and events[0].details["warnings"] == 1


def test_classification_override_and_propagation_through_anonymization(ws: Workspace) -> None:
    ws.datasets.ingest("loans", _loans(200))
    labelled = ws.datasets.classify("loans")
    assert labelled.classification is not None
    assert labelled.classification["columns"]["email"]["categories"] == ["contact.email"]
    email_level = labelled.classification["columns"]["email"]["sensitivity"]
    assert email_level in ("confidential", "restricted")
    # A derived version keeps the labels; an anonymized one drops the cause.
    derived = ws.datasets.transform("loans", [{"op": "drop_nulls"}])
    assert derived.classification is not None
    assert derived.classification["columns"]["email"]["sensitivity"] == email_level
    anon = ws.datasets.anonymize(
        "loans", [{"kind": "pseudonymize", "columns": ["email"]}], version=1
    )
    assert anon.classification is not None
    assert anon.classification["columns"]["email"]["categories"] == []
    assert anon.transform is not None and anon.transform["record"]["pseudonymized"] == ["email"]
    first = ws.datasets.read("loans", anon.version)["email"].to_list()
    again = ws.datasets.anonymize(
        "loans", [{"kind": "pseudonymize", "columns": ["email"]}], version=1
    )
    assert ws.datasets.read("loans", again.version)["email"].to_list() == first  # stable key
    assert first[0] != "user0@example.com"
    with pytest.raises(InvalidInputError, match="reason"):
        ws.datasets.override("loans", "grade", sensitivity="restricted", reason="", version=1)
    over = ws.datasets.override(
        "loans", "grade", sensitivity="restricted", reason="credit grade is regulated", version=1
    )
    assert over.sensitivity == "restricted"
    event = ws.audit.events(action="dataset.classification_override")[0]
    assert event.details["reason"] == "credit grade is regulated"


def test_rejects_are_kept_with_line_numbers(ws: Workspace, tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "bad.csv"
    path.write_text("id,amount\n1,2.5\n2,oops\n3\n4,1.0,9\n5,3.0\n", encoding="utf-8")
    version = ws.datasets.ingest("bad", path, schema={"amount": "float64"})
    assert version.row_count == 2 and version.rejected_rows == 3
    rejects = ws.datasets.rejects("bad")
    assert rejects["line"].to_list() == [3, 4, 5]
    assert "oops" in rejects["reason"][0] and "fields" in rejects["reason"][1]


def test_permissions_fail_closed(ws: Workspace) -> None:
    ws.datasets.ingest("loans", _loans(10))
    ws.projects.grant("user:viewer", Role.VIEWER.value)
    ws.projects.grant("user:contrib", Role.CONTRIBUTOR.value)
    settings = ws.settings
    with connect(settings=settings, principal="user:viewer") as viewer:
        assert viewer.datasets.read("loans").height == 10
        with pytest.raises(PermissionDeniedError):
            viewer.datasets.ingest("loans", _loans(5))
    with connect(settings=settings, principal="user:contrib") as contrib:
        contrib.datasets.validate("loans", [{"kind": "not_null", "column": "id"}])
        with pytest.raises(PermissionDeniedError, match=r"dataset\.publish"):
            contrib.datasets.publish("loans")
        with pytest.raises(PermissionDeniedError, match=r"dataset\.classify"):
            contrib.datasets.classify("loans")


def test_tags_and_unknown_names(ws: Workspace) -> None:
    ws.datasets.ingest("loans", _loans(10))
    ws.datasets.ingest("loans", _loans(20))
    assert ws.datasets.tag("loans", "golden", 1).tags == ["golden"]
    assert ws.datasets.version("loans", "golden").version == 1
    assert ws.datasets.get("loans").tags == {"golden": 1, "latest": 2}
    with pytest.raises(InvalidInputError, match="managed by Keel"):
        ws.datasets.tag("loans", "published", 1)
    with pytest.raises(NotFoundError, match="does not exist"):
        ws.datasets.read("nope")
    with pytest.raises(NotFoundError, match="no version 9"):
        ws.datasets.read("loans", 9)
    assert [d.name for d in ws.datasets.list()] == ["loans"]
