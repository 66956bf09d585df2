"""Anonymization: masking, keyed pseudonyms, generalization, suppression, k-anonymity."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.data._anonymize import (
    AnonymizationRecord,
    apply_anonymization,
    collision_bound,
    enforce_k_anonymity,
    k_anonymity,
    parse_steps,
    pseudonym,
)
from keel.errors import InvalidInputError

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


@pytest.fixture
def people() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "card": ["4111111111111111", "5555555555554444", None, "378282246310005"],
            "customer": ["c-1", "c-2", "c-1", "c-3"],
            "age": [23, 37, 41, 38],
            "birth": [date(1990, 5, 3), date(1985, 1, 2), date(1970, 7, 7), date(1985, 9, 9)],
            "postcode": ["12345", "12399", "99999", "12301"],
            "income": [10.5, 99.0, 45.0, 120.0],
            "notes": ["a", "b", "c", "d"],
        }
    )


def _run(
    frame: pl.DataFrame, steps: list[dict[str, object]]
) -> tuple[pl.DataFrame, AnonymizationRecord]:
    return apply_anonymization(frame, parse_steps(steps), key=KEY)


def test_masking_full_and_keep_last(people: pl.DataFrame) -> None:
    out, record = _run(
        people,
        [
            {"kind": "mask", "columns": ["card"], "keep_last": 4},
            {"kind": "mask", "columns": "notes", "char": "#"},
        ],
    )
    assert out["card"].to_list() == [
        "************1111",
        "************4444",
        None,
        "***********0005",
    ]
    assert out["notes"].to_list() == ["#"] * 4
    assert record.masked == ("card", "notes")


def test_pseudonyms_are_keyed_hmac_and_stable(people: pl.DataFrame) -> None:
    out, record = _run(people, [{"kind": "pseudonymize", "columns": ["customer"]}])
    values = out["customer"].to_list()
    assert values[0] == values[2] != values[1]
    assert values[0] == pseudonym("c-1", KEY) and len(values[0]) == 16
    import hashlib
    import hmac

    assert values[0] == hmac.new(KEY, b"c-1", hashlib.sha256).hexdigest()[:16]
    assert record.pseudonymized == ("customer",) and record.anonymized_columns == ("customer",)
    again, _ = _run(people, [{"kind": "pseudonymize", "columns": ["customer"]}])
    assert again.equals(out)
    with pytest.raises(InvalidInputError, match="at least 16 bytes"):
        apply_anonymization(
            people, parse_steps([{"kind": "pseudonymize", "columns": ["customer"]}]), key=b"short"
        )


@given(st.text(max_size=50), st.integers(8, 64))
@settings(max_examples=200, deadline=None)
def test_pseudonyms_are_deterministic_per_key_and_differ_across_keys(
    value: str, length: int
) -> None:
    first = pseudonym(value, KEY, length)
    assert first == pseudonym(value, KEY, length) and len(first) == length
    assert first != pseudonym(value, OTHER_KEY, length)  # 2^-32 or less to collide by chance


def test_collision_bound_is_the_birthday_bound() -> None:
    assert collision_bound(1_000_000) == pytest.approx(1e12 / 2**65)
    assert collision_bound(1_000_000) < 3e-8
    assert collision_bound(10**12, 8) == 1.0


def test_generalization(people: pl.DataFrame) -> None:
    out, record = _run(
        people,
        [
            {"kind": "generalize", "column": "age", "bin_width": 10},
            {"kind": "generalize", "column": "income", "bins": [20, 100]},
            {"kind": "generalize", "column": "birth", "truncate": "year"},
            {"kind": "generalize", "column": "postcode", "keep_first": 3},
        ],
    )
    assert out["age"].to_list() == ["[20, 30)", "[30, 40)", "[40, 50)", "[30, 40)"]
    assert out["income"].to_list() == ["< 20", "[20, 100)", "[20, 100)", ">= 100"]
    assert out["birth"].to_list() == [
        date(1990, 1, 1),
        date(1985, 1, 1),
        date(1970, 1, 1),
        date(1985, 1, 1),
    ]
    assert out["postcode"].to_list() == ["123*", "123*", "999*", "123*"]
    assert record.generalized == ("age", "income", "birth", "postcode")


def test_suppression_and_k_anonymity(people: pl.DataFrame) -> None:
    out, record = _run(
        people,
        [
            {"kind": "suppress", "columns": ["notes", "card"]},
            {"kind": "suppress_rows", "where": "income > 100"},
            {"kind": "generalize", "column": "postcode", "keep_first": 3},
            {"kind": "k_anonymity", "quasi_identifiers": ["postcode"], "k": 2},
        ],
    )
    assert "notes" not in out.columns and "card" not in out.columns
    assert out["postcode"].to_list() == ["123*", "123*"]
    assert record.rows_in == 4 and record.rows_suppressed == 2 and record.k == 2
    assert record.suppressed_columns == ("notes", "card")
    assert record.generalized == ("postcode",)
    assert AnonymizationRecord.from_dict(record.to_dict()) == record


def test_a_suppressed_column_is_not_reported_as_masked(people: pl.DataFrame) -> None:
    _, record = _run(
        people,
        [{"kind": "mask", "columns": ["card"]}, {"kind": "suppress", "columns": ["card"]}],
    )
    assert record.masked == () and record.suppressed_columns == ("card",)


def test_k_anonymity_measure(people: pl.DataFrame) -> None:
    assert k_anonymity(people, ["customer"]) == 1
    assert k_anonymity(people.with_columns(pl.lit("x").alias("c")), ["c"]) == 4
    assert k_anonymity(people.head(0), ["customer"]) == 0
    with pytest.raises(InvalidInputError, match="nope"):
        k_anonymity(people, ["nope"])


@given(
    st.lists(st.tuples(st.integers(0, 3), st.sampled_from("abc")), max_size=60),
    st.integers(1, 8),
)
@settings(max_examples=200, deadline=None)
def test_enforced_k_anonymity_holds_or_the_result_is_empty(
    rows: list[tuple[int, str]], k: int
) -> None:
    frame = pl.DataFrame(rows, schema={"a": pl.Int64, "b": pl.String}, orient="row")
    out, suppressed = enforce_k_anonymity(frame, ["a", "b"], k)
    assert out.height + suppressed == frame.height
    assert out.height == 0 or k_anonymity(out, ["a", "b"]) >= k
    # suppression removes only rows of small groups: every big group is kept whole
    sizes = frame.group_by(["a", "b"]).len()
    assert out.height == int(sizes.filter(pl.col("len") >= k)["len"].sum())


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({"kind": "shred"}, "unknown kind; use one of: mask, pseudonymize"),
        ({"kind": "mask"}, "needs the field(s) columns"),
        ({"kind": "mask", "columns": []}, "non-empty list of column names"),
        ({"kind": "mask", "columns": ["a"], "keep": 1}, "unknown field(s) keep"),
        ({"kind": "generalize", "column": "a"}, "exactly one of bin_width"),
        ({"kind": "generalize", "column": "a", "truncate": "decade"}, "'truncate' must be one of"),
        ({"kind": "generalize", "column": "a", "bins": [3, 1]}, "strictly increasing numbers"),
        ({"kind": "k_anonymity", "quasi_identifiers": ["a"], "k": 1}, "integer from 2"),
        ({"kind": "suppress_rows", "where": "a >>> 1"}, "does not parse"),
        ({"kind": "pseudonymize", "columns": ["a"], "length": 4}, "integer from 8 to 64"),
    ],
)
def test_bad_steps_name_the_step_and_the_allowed_values(
    step: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_steps([{"kind": "suppress", "columns": ["x"]}, step])
    assert "step #2" in str(caught.value) and message in str(caught.value)


def test_steps_on_missing_or_wrongly_typed_columns_fail_clearly(people: pl.DataFrame) -> None:
    with pytest.raises(InvalidInputError, match="salary"):
        _run(people, [{"kind": "mask", "columns": ["salary"]}])
    with pytest.raises(InvalidInputError, match="binning needs a numeric column"):
        _run(people, [{"kind": "generalize", "column": "notes", "bin_width": 5}])
