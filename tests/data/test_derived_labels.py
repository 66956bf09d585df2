"""A derived version's labels come from its rows as well as its parent's column names: a step
that writes personal data under another name (a derive, a function, a rename swap, a join) must
not launder it; and a column labelled confidential or restricted keeps no row's value in
metadata even without a personal-data category."""

from __future__ import annotations

from datetime import date

import polars as pl

from keel.workspace import Workspace


def _customers() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "email": [f"user{i}@example.com" for i in range(40)],
            "notes": [f"note {i}" for i in range(40)],
            "amount": [float(i) for i in range(40)],
        }
    )


def _label(version: object, column: str) -> tuple[str, list[str]]:
    labels = version.classification["columns"][column]  # type: ignore[attr-defined]
    return labels["sensitivity"], labels["categories"]


def test_personal_data_written_under_another_name_keeps_its_label(local_ws: Workspace) -> None:
    d = local_ws.datasets
    d.ingest("c", _customers())
    d.classify("c")
    overwritten = d.transform("c", [{"op": "derive", "column": "notes", "expr": "email"}])
    assert _label(overwritten, "notes") == ("confidential", ["contact.email"])
    moved = d.transform(
        "c",
        function=lambda f: f.with_columns(pl.col("email").alias("notes")).drop("email"),
        version=1,
    )
    assert _label(moved, "notes") == ("confidential", ["contact.email"])
    assert moved.sensitivity == "confidential"
    swap = [{"op": "rename", "mapping": {"email": "notes", "notes": "email"}}]
    swapped = d.transform("c", swap, version=1)
    assert _label(swapped, "notes") == ("confidential", ["contact.email"])
    assert _label(swapped, "email")[1] == ["contact.email"]  # kept by name: never lowered
    assert "min" not in swapped.stats["notes"]


def test_a_join_bringing_labelled_columns_in_is_labelled(local_ws: Workspace) -> None:
    d = local_ws.datasets
    d.ingest(
        "orders", pl.DataFrame({"cid": list(range(40)), "total": [1.0 * i for i in range(40)]})
    )
    d.classify("orders")
    people = pl.DataFrame(
        {
            "cid": list(range(40)),
            "email": [f"p{i}@example.ae" for i in range(40)],
            "birth_date": [date(1960, 1, 1 + i % 28) for i in range(40)],
        }
    )
    joined = d.transform("orders", function=lambda f: f.join(people, on="cid"))
    assert _label(joined, "email") == ("confidential", ["contact.email"])
    assert _label(joined, "birth_date")[1] == ["date_of_birth"]
    assert set(joined.stats["birth_date"]) == {"count", "nulls"}


def test_a_restricted_override_withholds_values_without_a_category(local_ws: Workspace) -> None:
    d = local_ws.datasets
    d.ingest("o", pl.DataFrame({"salary": [1000.0 * i for i in range(40)], "n": list(range(40))}))
    d.classify("o")
    d.override("o", "salary", sensitivity="restricted", reason="HR pay data")
    assert set(d.version("o").stats["salary"]) == {"count", "nulls"}
    assert d.version("o").stats["n"]["max"] == 39
    bonus = d.transform("o", [{"op": "derive", "column": "bonus", "expr": "salary * 0.1"}])
    assert _label(bonus, "bonus")[0] == "restricted"
    assert set(bonus.stats["bonus"]) == {"count", "nulls"}
    assert set(bonus.stats["salary"]) == {"count", "nulls"}
