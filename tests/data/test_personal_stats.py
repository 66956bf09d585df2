"""A version's statistics keep no row's value for a column labelled personal data: the least
and greatest date of birth (or integer phone number) would be one person's, kept in metadata
that outlives erasure and that every reader of the dataset sees."""

from __future__ import annotations

from datetime import date

import polars as pl

from keel.data._parts import merge_stats, without_personal_values
from keel.workspace import Workspace


def _people(low: int, high: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "date_of_birth": [
                date(1950 + i % 50, 1 + i % 12, 1 + i % 28) for i in range(low, high)
            ],
            "phone": [971501234000 + i for i in range(low, high)],
            "amount": [float(i) for i in range(low, high)],
        }
    )


def _value_stats(stats: dict[str, object]) -> set[str]:
    return set(stats) & {"min", "max", "mean", "std", "sum", "sumsq"}


def test_classifying_withholds_the_values_of_personal_columns(local_ws: Workspace) -> None:
    first = local_ws.datasets.ingest("people", _people(0, 40))
    assert first.stats["date_of_birth"]["min"] == "1950-01-01"  # before any label
    labelled = local_ws.datasets.classify("people")
    assert labelled.classification is not None
    assert labelled.classification["columns"]["date_of_birth"]["categories"] == ["date_of_birth"]
    assert labelled.classification["columns"]["phone"]["categories"] == ["contact.phone"]

    again = local_ws.datasets.version("people", 1)
    for column in ("date_of_birth", "phone"):
        assert _value_stats(again.stats[column]) == set(), again.stats[column]
        assert again.stats[column]["count"] == 40 and again.stats[column]["nulls"] == 0
        for part in again.parts:
            assert _value_stats(part.stats[column]) == set()
    # a column without personal data keeps everything
    assert again.stats["amount"]["min"] == 0.0 and again.stats["amount"]["max"] == 39.0
    assert again.stats["amount"]["mean"] == 19.5


def test_versions_made_from_a_labelled_one_keep_withholding(local_ws: Workspace) -> None:
    local_ws.datasets.ingest("people", _people(0, 40))
    local_ws.datasets.classify("people")
    appended = local_ws.datasets.ingest("people", _people(40, 80), mode="append")
    derived = local_ws.datasets.transform("people", [{"op": "drop_nulls"}])
    for made in (appended, derived):
        assert made.classification is not None
        for column in ("date_of_birth", "phone"):
            assert _value_stats(made.stats[column]) == set(), (made.version, column)
            assert all(_value_stats(p.stats[column]) == set() for p in made.parts)
        assert made.stats["amount"]["max"] == 79.0
        assert made.stats["amount"]["mean"] == 39.5


def test_a_mean_is_not_merged_from_only_the_parts_that_kept_their_sums() -> None:
    kept = {"x": {"count": 2, "nulls": 0, "sum": 10.0, "sumsq": 52.0, "min": 4, "max": 6}}
    withheld = {"x": {"count": 3, "nulls": 0}}
    merged = merge_stats([withheld, kept])
    assert merged["x"] == {"count": 5, "nulls": 0, "min": 4, "max": 6}
    assert merge_stats([kept])["x"]["mean"] == 5.0


def test_without_personal_values_leaves_unlabelled_manifests_alone() -> None:
    manifest = {
        "schema": [["d", "Date"]],
        "parts": [{"digest": "sha256:0", "rows": 1, "size": 1, "stats": {"d": {"min": "x"}}}],
        "stats": {"d": {"count": 1, "nulls": 0, "min": "x", "max": "x"}},
    }
    assert without_personal_values(manifest, None) == manifest
    unlabelled = {"columns": {"d": {"categories": [], "sensitivity": "internal"}}}
    assert without_personal_values(manifest, unlabelled) == manifest
    labelled = {"columns": {"d": {"categories": ["date_of_birth"]}}}
    stripped = without_personal_values(manifest, labelled)
    assert stripped["stats"]["d"] == {"count": 1, "nulls": 0}
    assert stripped["parts"][0]["stats"]["d"] == {}
    assert manifest["stats"]["d"]["min"] == "x"  # the input is not changed
