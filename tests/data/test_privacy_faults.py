"""Regression tests for privacy faults: masking short values, non-ASCII digits, labels that
anonymization, overrides and re-classification must keep, personal data in reports, phones
typed as integers, nested columns, the recorded k, and mixed contact columns."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from keel.data._anonymize import apply_anonymization, k_anonymity, parse_steps
from keel.data._checks import ValidationResult, parse_suite, run_suite
from keel.data._classify import classify_frame
from keel.data._detectors import detect_value, luhn_valid, redact_text
from keel.data._report import render_text
from keel.errors import InvalidInputError
from keel.workspace import Workspace

KEY = bytes(range(32))
ARABIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def emirates_id(i: int) -> str:
    body = f"7841990{i:07d}"
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


# --- 1. mask keep_last longer than a value ---------------------------------------------------


def test_mask_keeps_values_shorter_than_keep_last_without_exploding() -> None:
    frame = pl.DataFrame({"phone": ["0501234567", "", "12", None]})
    steps = parse_steps([{"kind": "mask", "columns": ["phone"], "keep_last": 4}])
    out, _ = apply_anonymization(frame, steps, key=KEY)
    assert out.get_column("phone").to_list() == ["******4567", "", "12", None]


# --- 2. non-ASCII digits ---------------------------------------------------------------------


def test_non_ascii_digits_are_read_as_ascii_and_never_crash() -> None:
    arabic_id = emirates_id(7).translate(ARABIC)
    assert detect_value(arabic_id) is not None
    assert detect_value(arabic_id).category == "national_id"  # type: ignore[union-attr]
    assert detect_value("60111111111" + "00".translate(ARABIC)) is None  # no crash; not a card
    other_id = emirates_id(8).translate(ARABIC)
    labels = classify_frame(
        pl.DataFrame({"ref": [arabic_id, other_id, "784-1990-1234567-1".translate(ARABIC)]})
    )
    assert labels.columns["ref"].categories == ("national_id",)
    frame = pl.DataFrame(
        {"ref": ["784-1990-1234567-1".translate(ARABIC), "ok"], "amount": [-1.0, 2.0]}
    )
    suite = parse_suite(
        [{"kind": "range", "column": "amount", "min": 0}, {"kind": "not_null", "column": "ref"}]
    )
    result = run_suite(frame, suite)
    assert not result.passed
    assert result.checks[0].failing_rows[0]["amount"] == -1.0


# --- 3. anonymization that changes nothing keeps the label ------------------------------------


@pytest.mark.parametrize(
    "step",
    [
        {"kind": "mask", "columns": ["emirates_id"], "keep_last": 15},
        {"kind": "generalize", "column": "emirates_id", "keep_first": 15},
    ],
)
def test_noop_anonymization_keeps_the_restricted_label(
    local_ws: Workspace, step: dict[str, object]
) -> None:
    ids = [emirates_id(i) for i in range(50)]
    local_ws.datasets.ingest("ids", pl.DataFrame({"emirates_id": ids, "n": list(range(50))}))
    assert local_ws.datasets.classify("ids").sensitivity == "restricted"
    derived = local_ws.datasets.anonymize("ids", [step], version=1)
    assert derived.sensitivity == "restricted"
    assert derived.classification is not None
    assert derived.classification["columns"]["emirates_id"]["categories"] == ["national_id"]
    assert derived.transform is not None
    assert derived.transform["record"]["retained"] == ["emirates_id"]
    # a real mask drops it
    masked = local_ws.datasets.anonymize(
        "ids", [{"kind": "mask", "columns": ["emirates_id"], "keep_last": 4}], version=1
    )
    assert masked.sensitivity == "internal"


# --- 4. override on a never-classified version -----------------------------------------------


def test_override_on_unclassified_version_classifies_the_rest_first(local_ws: Workspace) -> None:
    frame = pl.DataFrame({"emirates_id": [emirates_id(i) for i in range(30)], "grade": ["A"] * 30})
    local_ws.datasets.ingest("p", frame)
    v = local_ws.datasets.override("p", "grade", sensitivity="public", reason="grades are public")
    assert v.sensitivity == "restricted"
    assert v.classification is not None
    assert v.classification["columns"]["emirates_id"]["categories"] == ["national_id"]
    assert v.classification["columns"]["grade"]["sensitivity"] == "public"
    derived = local_ws.datasets.transform("p", [{"op": "filter", "where": "grade = 'A'"}])
    assert derived.sensitivity == "restricted"


# --- 5. re-classifying a derived version keeps what it inherited -------------------------------


def test_reclassify_derived_keeps_inherited_labels_and_overrides(local_ws: Workspace) -> None:
    frame = pl.DataFrame(
        {
            "id": list(range(100)),
            "diagnosis": [f"condition {i % 7}" for i in range(100)],
            "amount": [float(i) for i in range(100)],
        }
    )
    local_ws.datasets.ingest("patients", frame)
    local_ws.datasets.classify("patients")
    local_ws.datasets.override(
        "patients", "diagnosis", sensitivity="restricted", categories=["health"], reason="health"
    )
    v2 = local_ws.datasets.transform("patients", [{"op": "filter", "where": "amount > 10"}])
    assert v2.classification is not None
    assert "diagnosis" in v2.classification.get("overrides", {})
    again = local_ws.datasets.classify("patients", v2.version)
    assert again.sensitivity == "restricted"
    assert again.classification is not None
    assert again.classification["columns"]["diagnosis"]["categories"] == ["health"]
    assert "diagnosis" in again.classification["overrides"]


# --- 6. reports never show raw personal data -------------------------------------------------


def test_free_text_personal_data_is_redacted_where_it_stands() -> None:
    text = "call Fatima on 050 123 4567 or fatima.alhashimi@mail.ae, id " + emirates_id(3)
    redacted = redact_text(text)
    assert redacted == (
        "call Fatima on [redacted: contact.phone] or [redacted: contact.email], "
        "id [redacted: national_id]"
    )
    assert redact_text("order 12345 on 2024-01-05") == "order 12345 on 2024-01-05"


def test_validation_report_hides_new_categories_and_free_text(local_ws: Workspace) -> None:
    n = 40
    emails = [f"user{i}@example.com" for i in range(n)]
    ref = pl.DataFrame(
        {"id": list(range(n)), "email": emails, "notes": ["ok"] * n, "amount": [1.0] * n}
    )
    local_ws.datasets.ingest("cust", ref)
    note = "call Fatima on 050 123 4567 or fatima.alhashimi@mail.ae"
    cur = ref.with_columns(
        pl.Series("email", [*emails[:-1], "fatima.alhashimi@mail.ae"]),
        pl.Series("notes", ["ok"] * (n - 1) + [note]),
        pl.Series("amount", [1.0] * (n - 1) + [-5.0]),
    )
    local_ws.datasets.ingest("cust", cur)
    local_ws.datasets.classify("cust", 1)
    local_ws.datasets.classify("cust", 2)
    report = local_ws.datasets.validate(
        "cust",
        [
            {"kind": "new_categories", "column": "email", "max": 0},
            {"kind": "range", "column": "amount", "min": 0},
            {"kind": "regex", "column": "notes", "pattern": "^ok$"},
        ],
        version=2,
        reference=1,
    )
    assert not report.passed
    new = report.result["checks"][0]
    assert new["details"]["new"] == ["[redacted: contact.email]"] or new.get("new") == [
        "[redacted: contact.email]"
    ]
    outputs = [
        json.dumps(report.result),
        local_ws.datasets.report_html(report.id),
        render_text(ValidationResult.from_dict(report.result)),
    ]
    for output in outputs:
        assert "fatima.alhashimi" not in output
        assert "050 123 4567" not in output
    assert "[redacted: contact.phone]" in outputs[0]


# --- 7. phones typed as integers -------------------------------------------------------------


def test_phone_numbers_typed_as_integers_are_detected(tmp_path: Path, local_ws: Workspace) -> None:
    csv = tmp_path / "people.csv"
    csv.write_text(
        "id,mobile,mobile_intl\n"
        + "".join(f"{i},050{1000000 + i},97150{1000000 + i}\n" for i in range(50)),
        encoding="utf-8",
    )
    local_ws.datasets.ingest("people", csv)
    v = local_ws.datasets.classify("people")
    assert v.classification is not None
    columns = v.classification["columns"]
    assert columns["mobile"]["categories"] == ["contact.phone"]
    assert columns["mobile_intl"]["categories"] == ["contact.phone"]
    assert columns["id"]["sensitivity"] == "public"
    text = classify_frame(pl.DataFrame({"p": ["971501234567", "971 50 123 4567"]}))
    assert text.columns["p"].categories == ("contact.phone",)
    ids = classify_frame(pl.DataFrame({"order": list(range(100_000, 100_500))}))
    assert ids.columns["order"].sensitivity == "public"


# --- 8. nested columns -----------------------------------------------------------------------


def test_list_and_struct_columns_are_inspected() -> None:
    frame = pl.DataFrame(
        {
            "emails": [[f"u{i}@example.com", f"v{i}@example.ae"] for i in range(20)],
            "contact": [
                {"email": f"u{i}@example.com", "phone": "+971501234567"} for i in range(20)
            ],
            "tags": [["a", "b"]] * 20,
            "vector": [[0.1, 0.2]] * 20,
        }
    )
    labels = classify_frame(frame).columns
    assert labels["emails"].categories == ("contact.email",)
    assert set(labels["contact"].categories) == {"contact.email", "contact.phone"}
    assert labels["contact"].sensitivity == "confidential"
    assert labels["tags"].sensitivity == "internal"  # never below plain text
    assert labels["vector"].sensitivity == "public"  # floats hold no text, like a float column


# --- 9. the recorded k is the output's -------------------------------------------------------


def test_recorded_k_is_measured_on_the_final_output() -> None:
    frame = pl.DataFrame({"id": list(range(20)), "age": [30] * 10 + [40] * 10})
    steps = parse_steps(
        [
            {"kind": "k_anonymity", "quasi_identifiers": ["age"], "k": 10},
            {"kind": "suppress_rows", "where": "id >= 12"},
        ]
    )
    out, record = apply_anonymization(frame, steps, key=KEY)
    assert record.k == k_anonymity(out, ["age"])
    assert record.k is not None and record.k >= 10
    assert out.height == 10
    assert record.rows_suppressed == 10


# --- 10. mixed contact columns and padded emails ---------------------------------------------


def test_mixed_contact_column_and_padded_emails_are_personal() -> None:
    values = (
        [f"u{i}@example.com" for i in range(45)]
        + [f"+97150{1000000 + i}" for i in range(45)]
        + ["n/a"] * 10
    )
    label = classify_frame(pl.DataFrame({"contact": values})).columns["contact"]
    assert set(label.categories) == {"contact.email", "contact.phone"}
    assert label.sensitivity == "confidential"
    padded = classify_frame(pl.DataFrame({"e": [f" u{i}@example.com " for i in range(10)]}))
    assert padded.columns["e"].categories == ("contact.email",)


def test_reclassify_derived_never_drops_below_inherited_detection(local_ws: Workspace) -> None:
    refs = [emirates_id(i) if i < 60 else "none" for i in range(100)]
    local_ws.datasets.ingest("refs", pl.DataFrame({"n": list(range(100)), "ref": refs}))
    assert local_ws.datasets.classify("refs").sensitivity == "restricted"
    # 30 IDs among 70 rows: below the detection threshold, yet still national IDs
    derived = local_ws.datasets.transform("refs", [{"op": "filter", "where": "n >= 30"}])
    again = local_ws.datasets.classify("refs", derived.version)
    assert again.sensitivity == "restricted"
    assert again.classification is not None
    assert again.classification["columns"]["ref"]["categories"] == ["national_id"]


# --- after the second review ------------------------------------------------------------


def test_a_mask_hiding_one_character_keeps_the_label(local_ws: Workspace) -> None:
    cards = [f"4111111111{i:06d}" for i in range(40)]
    cards = [c[:-1] + str(next(d for d in range(10) if luhn_valid(c[:-1] + str(d)))) for c in cards]
    local_ws.datasets.ingest("c", pl.DataFrame({"card": cards}))
    assert local_ws.datasets.classify("c").sensitivity == "restricted"
    barely = local_ws.datasets.anonymize(
        "c", [{"kind": "mask", "columns": ["card"], "keep_last": 15}]
    )
    assert barely.sensitivity == "restricted"  # "*111111111110006" is still a card number
    local_ws.datasets.ingest("d", pl.DataFrame({"card": cards}))
    local_ws.datasets.classify("d")
    hidden = local_ws.datasets.anonymize(
        "d", [{"kind": "mask", "columns": ["card"], "keep_last": 4}]
    )
    assert hidden.sensitivity == "internal"  # "************0006": the cause is gone


def test_a_column_mostly_of_one_kind_names_the_other_kinds_it_holds() -> None:
    cards = ["4111111111111111", "5500000000000004", "340000000000009", "6011000000000004"]
    values = [f"user{i}@mail.ae" for i in range(55)] + [cards[i % 4] for i in range(40)]
    label = classify_frame(pl.DataFrame({"contact": values + [None] * 5})).columns["contact"]
    assert set(label.categories) == {"contact.email", "financial.payment_card"}
    assert label.sensitivity.value == "restricted"


def test_nine_digit_ids_are_not_phones_unless_the_column_says_so() -> None:
    numbers = pl.Series([500_000_000 + 37 * i for i in range(200)])
    found = classify_frame(pl.DataFrame({"order_id": numbers, "mobile": numbers})).columns
    assert found["order_id"].categories == () and found["order_id"].sensitivity.value == "public"
    assert found["mobile"].categories == ("contact.phone",)


@pytest.mark.parametrize(
    "text",
    [
        "call (050) 123 4567 now",
        "tel +971 (50) 123 4567",
        "phone 050/123/4567",
        "card 4111111111111111 123",
        "card 4111 1111 1111 1111 12",
    ],
)
def test_free_text_redaction_finds_bracketed_phones_and_cards_followed_by_digits(
    text: str,
) -> None:
    redacted = redact_text(text)
    assert "[redacted" in redacted
    assert "4567" not in redacted and "1111 1111" not in redacted and "11111111" not in redacted


def test_anonymizing_a_list_column_value_by_value_is_refused_clearly() -> None:
    frame = pl.DataFrame({"emails": [["a@x.ae", "b@y.ae"], ["c@z.ae"]]})
    steps = parse_steps([{"kind": "mask", "columns": ["emails"]}])
    with pytest.raises(InvalidInputError, match="hold lists or structs"):
        apply_anonymization(frame, steps, key=b"k" * 32)
