"""Classification false positives found in review: decimals and ids taken for phones, integer
ids whose names merely contain "contact" or "tel", and any "…_name" taken for person names."""

from __future__ import annotations

import random

import polars as pl
import pytest

from keel.data import classify_frame
from keel.data._detectors import DETECTORS

PHONE = next(d for d in DETECTORS if d.name == "phone")
N = 200


def _label(name: str, values: list[object]) -> tuple[tuple[str, ...], str]:
    column = classify_frame(pl.DataFrame({name: values})).columns[name]
    return column.categories, column.sensitivity.value


def _digits(rng: random.Random, width: int) -> str:
    return "".join(str(rng.randrange(10)) for _ in range(width))


# --- 1. decimals, signed amounts and bare-digit ids are not phones --------------------------


def _id_columns() -> dict[str, list[str]]:
    rng = random.Random(7)
    return {
        "score": [f"{rng.random():.8f}" for _ in range(N)],
        "delta": [f"+{rng.randrange(10**5, 10**6)}.{rng.randrange(10, 100)}" for _ in range(N)],
        "customer_no": ["00" + _digits(rng, 8) for _ in range(N)],
        "order_id": ["800" + _digits(rng, 7) for _ in range(N)],
        "tracking": ["0044" + _digits(rng, 10) for _ in range(N)],
        "parcel_ref": [f"0{2 + i % 2}{i:07d}" for i in range(N)],  # "020000013", ...
    }


@pytest.mark.parametrize("column", list(_id_columns()))
def test_decimals_and_bare_digit_ids_are_not_phones(column: str) -> None:
    values = _id_columns()[column]
    assert _label(column, values) == ((), "internal")
    assert not PHONE.detect_column(pl.Series(values), named=False).any()


def test_reviewers_exact_values_are_not_phones() -> None:
    values = ["0.13436424", "+441149.88", "0098652112", "8008441979", "00441234567890"]
    assert PHONE.detect_column(pl.Series(values), named=False).to_list() == [False] * 5
    # a decimal is never a phone, whatever the column is called
    assert PHONE.detect_column(pl.Series(values[:2]), named=True).to_list() == [False] * 2
    assert _label("mobile", ["0.23436424"] * N) == ((), "internal")


UAE_FORMATS = [
    "+971 50 123 4567",
    "+971501234567",
    "00971501234567",
    "050 123 4567",
    "050-123-4567",
    "(04) 123 4567",
    "+44 20 7946 0958",
    "050.123.4567",
    "971501234567",
]


def test_written_phone_formats_are_still_phones_in_any_column() -> None:
    assert PHONE.detect_column(pl.Series(UAE_FORMATS), named=False).to_list() == [True] * 9
    assert _label("value", UAE_FORMATS * 20) == (("contact.phone",), "confidential")


@pytest.mark.parametrize("column", ["phone", "mobile", "contact", "customer_phone", "mobileNo"])
def test_bare_national_digits_are_phones_in_a_phone_named_column(column: str) -> None:
    values = [f"050{1000000 + i}" for i in range(N)]
    assert _label(column, values) == (("contact.phone",), "confidential")
    assert _label("ref", values) == ((), "internal")


# --- 2. integer ids whose names merely contain a phone word ---------------------------------


def test_integer_ids_named_contact_id_or_hotel_id_are_public() -> None:
    frame = pl.DataFrame(
        {
            "contact_id": [500_000_000 + i * 17 for i in range(40)],
            "hotel_id": [512_345_678 + i for i in range(40)],
            "cancellation_no": [512_345_678 + i for i in range(40)],
            "telemetry_seq": [512_345_678 + i for i in range(40)],
            "contactId": [512_345_678 + i for i in range(40)],
            "num_contacts": [512_345_678 + i for i in range(40)],
        }
    )
    labels = classify_frame(frame).columns
    assert {
        name: (c.categories, c.sensitivity.value) for name, c in labels.items()
    } == dict.fromkeys(frame.columns, ((), "public"))


@pytest.mark.parametrize(
    "column", ["phone", "mobile_number", "tel", "hotel_tel", "contact", "MobileNo", "cell"]
)
def test_integer_phones_in_phone_named_columns_are_still_found(column: str) -> None:
    values = [501_234_567 + i for i in range(40)]
    assert _label(column, values) == (("contact.phone",), "confidential")


# --- 3. "…_name" columns that do not hold person names ---------------------------------------


@pytest.mark.parametrize(
    ("column", "values"),
    [
        ("store_name", ["Main St Branch", "Mall of the Emirates"]),
        ("merchant_name", ["Carrefour", "Lulu Hypermarket"]),
        ("plan_name", ["Gold", "Silver"]),
        ("event_name", ["page_view", "click"]),
        ("name", ["Widget Pro", "Gadget"]),
    ],
)
def test_names_of_things_are_not_person_names(column: str, values: list[str]) -> None:
    assert _label(column, values * (N // 2)) == ((), "internal")


@pytest.mark.parametrize(
    "column", ["first_name", "last_name", "customerName", "surname", "holder_name", "user_name"]
)
def test_person_named_columns_are_labelled_from_their_name(column: str) -> None:
    # surnames and unusual given names the dictionary does not know
    values = ["Okonkwo", "Van der Berg", "Al Suwaidi", "Xiadani"] * (N // 4)
    assert _label(column, values) == (("person_name",), "confidential")


def test_a_bare_name_column_needs_the_dictionary_to_vouch_for_people() -> None:
    # one value in four starts with a known given name: enough for "name", not for "label"
    values = ["Fatima Al Mansouri", "Okonkwo Eze", "Xiadani Ruiz", "Zephyrine Blanc"] * (N // 4)
    assert _label("name", values) == (("person_name",), "confidential")
    assert _label("guest_name", values) == (("person_name",), "confidential")
    assert _label("branch_name", values) == (("person_name",), "confidential")
    assert _label("label", values) == ((), "internal")
