"""Personal-data detection: checksums verified, UAE formats, confidence, labels and propagation."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.data._classify import Classification, classify_frame, propagate
from keel.data._detectors import DETECTORS, Sensitivity, iban_valid, luhn_valid
from keel.errors import InvalidInputError

BY_NAME = {d.name: d for d in DETECTORS}


def _luhn_complete(body: str) -> str:
    """``body`` followed by the check digit that makes it Luhn-valid."""
    for digit in "0123456789":
        if luhn_valid(body + digit):
            return body + digit
    raise AssertionError("unreachable")


def _detect(detector: str, values: list[str]) -> list[bool]:
    return BY_NAME[detector].detect(pl.Series("v", values)).to_list()


def test_luhn_against_published_test_numbers() -> None:
    # card numbers that payment processors publish for testing
    assert all(luhn_valid(n) for n in ["4111111111111111", "5555555555554444", "378282246310005"])
    assert not luhn_valid("4111111111111112")
    assert not luhn_valid("41111111111111a1")


@given(st.sampled_from(["4", "51", "55", "2221", "6011"]), st.data())
@settings(max_examples=200, deadline=None)
def test_luhn_valid_card_numbers_are_detected_and_broken_ones_are_not(
    prefix: str, data: st.DataObject
) -> None:
    body = prefix + data.draw(
        st.text("0123456789", min_size=15 - len(prefix), max_size=15 - len(prefix))
    )
    valid = _luhn_complete(body)
    wrong = body + str((int(valid[-1]) + data.draw(st.integers(1, 9))) % 10)
    spaced = " ".join(valid[i : i + 4] for i in range(0, 16, 4))
    assert _detect("payment_card", [valid, wrong, spaced]) == [True, False, True]


@given(st.integers(1900, 2030), st.integers(0, 9_999_999), st.integers(1, 9))
@settings(max_examples=200, deadline=None)
def test_emirates_ids_carry_a_luhn_check_digit(year: int, serial: int, offset: int) -> None:
    valid = _luhn_complete(f"784{year}{serial:07d}")
    wrong = valid[:-1] + str((int(valid[-1]) + offset) % 10)
    dashed = f"{valid[:3]}-{valid[3:7]}-{valid[7:14]}-{valid[14]}"
    assert _detect("emirates_id", [valid, dashed, wrong, "785" + valid[3:]]) == [
        True,
        True,
        False,
        False,
    ]


def test_ibans_are_checked_by_mod_97_and_country_length() -> None:
    assert iban_valid("AE070331234567890123456")  # the UAE example: 23 characters
    assert iban_valid("GB82 WEST 1234 5698 7654 32")
    assert not iban_valid("GB82 WEST 1234 5698 7654 33")  # check digits do not match
    assert not iban_valid("AE07033123456789012345")  # one short for AE
    assert _detect("iban", ["ae07 0331 2345 6789 0123 456", "DE89370400440532013000", "XX"]) == [
        True,
        True,
        False,
    ]


def test_phone_numbers_in_uae_and_e164_formats() -> None:
    good = ["+971 50 123 4567", "00971501234567", "050-123-4567", "04 123 4567", "+44 20 7946 0958"]
    bad = ["12345", "hello", "+0 123", "2026-01-01"]
    assert _detect("phone", good) == [True] * len(good)
    assert _detect("phone", bad) == [False] * len(bad)


def test_ip_addresses_v4_and_v6() -> None:
    assert (
        _detect("ip_address", ["10.0.0.1", "::1", "2001:db8::8a2e:370:7334", "fe80::1%eth0"])
        == [True] * 4
    )
    assert _detect("ip_address", ["256.1.1.1", "1.2.3", "::g", "abc"]) == [False] * 4


@pytest.fixture
def people() -> pl.DataFrame:
    n = 200
    return pl.DataFrame(
        {
            "email": [f"user{i}@example.com" for i in range(n)],
            "mobile": [f"+97150{i:07d}" for i in range(n)],
            "eid": [_luhn_complete(f"7841990{i:07d}") for i in range(n)],
            "iban": ["AE070331234567890123456"] * n,
            "card": ["4111111111111111"] * n,
            "ip": [f"10.0.{i % 256}.1" for i in range(n)],
            "date_of_birth": pl.date_range(
                pl.date(1980, 1, 1), pl.date(1980, 1, 1) + pl.duration(days=n - 1), eager=True
            ),
            "first_name": ["Fatima", "Omar", "Priya", "John"] * (n // 4),
            "contact": ["Mohammed Al Hashimi", "Aisha Khan", "Sarah Jones", "Ravi Patel"]
            * (n // 4),
            "amount": [float(i) for i in range(n)],
            "comment": ["ok", "late", "n/a", "paid"] * (n // 4),
            "mostly_email": [f"u{i}@x.io" if i % 10 else "unknown" for i in range(n)],
        }
    )


def test_classify_frame_labels_each_column(people: pl.DataFrame) -> None:
    labels = classify_frame(people)
    got = {name: (c.categories, c.sensitivity, c.detector) for name, c in labels.columns.items()}
    R, C = Sensitivity.RESTRICTED, Sensitivity.CONFIDENTIAL  # noqa: N806
    assert got == {
        "email": (("contact.email",), C, "email"),
        "mobile": (("contact.phone",), C, "phone"),
        "eid": (("national_id",), R, "emirates_id"),
        "iban": (("financial.iban",), R, "iban"),
        "card": (("financial.payment_card",), R, "payment_card"),
        "ip": (("online.ip_address",), C, "ip_address"),
        "date_of_birth": (("date_of_birth",), C, "date_of_birth"),
        "first_name": (("person_name",), C, "person_name"),
        "contact": (("person_name",), C, "person_name"),
        "amount": ((), Sensitivity.PUBLIC, "none"),
        "comment": ((), Sensitivity.INTERNAL, "none"),
        "mostly_email": (("contact.email",), C, "email"),
    }
    assert labels.columns["mostly_email"].confidence == 0.9
    assert labels.columns["email"].samples == 200
    assert labels.sensitivity is Sensitivity.RESTRICTED


def test_sampling_is_bounded_and_seeded(people: pl.DataFrame) -> None:
    big = pl.concat([people] * 100)
    first = classify_frame(big, sample_size=500, seed=3)
    assert first.columns["email"].samples == 500
    assert first == classify_frame(big, sample_size=500, seed=3)
    with pytest.raises(InvalidInputError, match="sample_size"):
        classify_frame(big, sample_size=0)


def test_sensitivity_is_ordered() -> None:
    order = [Sensitivity.PUBLIC, Sensitivity.INTERNAL, Sensitivity.CONFIDENTIAL]
    assert sorted([*reversed(order), Sensitivity.RESTRICTED]) == [*order, Sensitivity.RESTRICTED]
    assert max(order) is Sensitivity.CONFIDENTIAL
    assert Classification().sensitivity is Sensitivity.PUBLIC


def test_labels_propagate_unless_anonymization_removed_the_cause(people: pl.DataFrame) -> None:
    parent = classify_frame(people)
    child = propagate(parent)
    assert child == parent and child.sensitivity is Sensitivity.RESTRICTED
    partly = propagate(parent, removed_columns=["eid", "iban"], anonymized_columns=["card"])
    assert "eid" not in partly.columns
    assert partly.columns["card"].sensitivity is Sensitivity.INTERNAL
    assert partly.columns["card"].detector == "anonymized"
    assert partly.sensitivity is Sensitivity.CONFIDENTIAL
    clean = propagate(
        parent,
        removed_columns=["eid", "iban", "card", "ip"],
        anonymized_columns=[
            "email",
            "mobile",
            "date_of_birth",
            "first_name",
            "contact",
            "mostly_email",
        ],
    )
    assert clean.sensitivity is Sensitivity.INTERNAL and clean.categories == ()


def test_classification_round_trips(people: pl.DataFrame) -> None:
    labels = classify_frame(people)
    assert Classification.from_dict(labels.to_dict()) == labels
    with pytest.raises(InvalidInputError, match="sensitivity"):
        Classification.from_dict({"columns": {"a": {"sensitivity": "secret"}}})


def test_numbers_stored_as_integers_and_categoricals_are_inspected() -> None:
    ids = [int(_luhn_complete(f"7841985{i:07d}")) for i in range(50)]
    frame = pl.DataFrame(
        {
            "national_no": ids,
            "counter": list(range(50)),
            "email": pl.Series([f"x{i}@mail.ae" for i in range(50)], dtype=pl.Categorical),
            "empty": pl.Series([None] * 50, dtype=pl.String),
        }
    )
    labels = classify_frame(frame).columns
    assert labels["national_no"].detector == "emirates_id"
    assert labels["counter"].sensitivity is Sensitivity.PUBLIC
    assert labels["email"].categories == ("contact.email",)
    assert (labels["empty"].sensitivity, labels["empty"].samples) == (Sensitivity.INTERNAL, 0)


def test_single_values_are_recognised_for_redaction() -> None:
    from keel.data._detectors import detect_value

    assert detect_value("ann@example.com").name == "email"  # type: ignore[union-attr]
    assert detect_value(4111111111111111).name == "payment_card"  # type: ignore[union-attr]
    assert detect_value("hello") is None
    assert detect_value(42) is None
    assert detect_value(True) is None
