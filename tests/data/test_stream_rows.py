"""Stream messages to rows: a message that cannot be a row is a reject, never a blocked stream;
two writers appending to one dataset at once both keep their rows."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import polars as pl
import pytest

from keel.data import FrameSource, Message
from keel.data._stream_rows import MESSAGE_ID, message_rows
from keel.workspace import Workspace, connect
from tests.conftest import make_settings

SCHEMA = {MESSAGE_ID: pl.String(), "n": pl.Int64(), "kind": pl.String(), "amount": pl.Float64()}


def _messages(*fields: dict[str, object]) -> list[Message]:
    return [Message(str(i + 1), dict(f)) for i, f in enumerate(fields)]


def test_fields_in_any_order_and_missing_ones_fit_the_columns() -> None:
    frame, rejects = message_rows(
        _messages({"kind": "a", "amount": 1.5, "n": 1}, {"n": 2}, {"amount": 3, "n": 3}),
        SCHEMA,
    )
    assert rejects == []
    assert frame.schema == pl.Schema(SCHEMA)
    assert frame.rows() == [("1", 1, "a", 1.5), ("2", 2, None, None), ("3", 3, None, 3.0)]


def test_a_message_that_cannot_be_a_row_is_a_reject_with_its_id_and_reason() -> None:
    frame, rejects = message_rows(
        _messages(
            {"n": 1, "kind": "a"},
            {"n": 2.75},  # would be truncated to 2: refused, not altered
            {"n": 3, "colour": "red"},  # no such column
            {"n": "four"},  # not a number
            {"n": 5, MESSAGE_ID: "forged"},  # would overwrite the id
            {"_raw": "not json"},  # a body that was not a JSON object
            {"n": 7},
        ),
        SCHEMA,
    )
    assert frame[MESSAGE_ID].to_list() == ["1", "7"]
    assert frame["n"].to_list() == [1, 7]
    assert [r.line for r in rejects] == [2, 3, 4, 5, 6]
    reasons = [r.reason for r in rejects]
    assert reasons[0] == "message 2: field 'n': 2.75 is not a Int64"
    assert "['colour'] are not columns of the dataset" in reasons[1]
    assert "'four' is not a Int64" in reasons[2]
    assert f"'{MESSAGE_ID}' is reserved" in reasons[3]
    assert "['_raw'] are not columns" in reasons[4]
    assert '"colour": "red"' in rejects[1].text


def test_values_of_mixed_types_in_one_field_are_placed_message_by_message() -> None:
    frame, rejects = message_rows(_messages({"n": 1}, {"n": "x"}, {"n": 3}), SCHEMA)
    assert frame["n"].to_list() == [1, 3]
    assert [r.line for r in rejects] == [2]


def test_the_first_batch_fixes_the_columns_from_the_kinds_of_their_values() -> None:
    frame, rejects = message_rows(
        _messages(
            {"n": 1, "note": None, "amount": 10, "ok": True},
            {"n": 2, "amount": 12.5, "ok": False},
        ),
        None,
    )
    assert rejects == []
    assert frame.schema == pl.Schema(
        {
            MESSAGE_ID: pl.String,
            "n": pl.Int64,
            "note": pl.String,
            "amount": pl.Float64,
            "ok": pl.Boolean,
        }
    )
    assert frame["amount"].to_list() == [10.0, 12.5]
    # other mixed kinds: the first value's kind; a message with another is a reject, never
    # turned into it (True is not 1, 2 is not "2")
    frame, rejects = message_rows(_messages({"n": 1}, {"n": "two"}, {"n": True}, {"n": 4}), None)
    assert frame["n"].to_list() == [1, 4] and [r.line for r in rejects] == [2, 3]


def test_values_are_refused_rather_than_changed() -> None:
    schema = {MESSAGE_ID: pl.String(), "s": pl.String(), "i": pl.Int64(), "f": pl.Float64()}
    frame, rejects = message_rows(
        _messages(
            {"s": 5},  # a number is not text
            {"i": True},  # a boolean is not a number
            {"i": 2**64},  # out of the column's range
            {"f": 2**60 + 1},  # a float would round it
            {"s": "x", "i": 3.0, "f": 2},  # 3.0 is the integer 3; 2 is the float 2.0
        ),
        schema,
    )
    assert [r.line for r in rejects] == [1, 2, 3, 4]
    assert frame.rows() == [("5", "x", 3, 2.0)]


def test_messages_into_a_dataset_that_did_not_come_from_a_stream() -> None:
    # No _message_id column: the rows have none (the ids are still recorded in the ledger),
    # and ISO dates fill a date column.
    schema = {"day": pl.Date(), "n": pl.Int64()}
    frame, rejects = message_rows(
        _messages({"day": "2024-01-02", "n": 1}, {"day": "not a day", "n": 2}), schema
    )
    assert frame.rows() == [(dt.date(2024, 1, 2), 1)]
    assert [r.line for r in rejects] == [2]


def test_text_that_is_exactly_a_value_fills_a_typed_column() -> None:
    # Redis streams carry only text: "3" is the integer 3, but "3.0" or " 3" are not
    schema = {"i": pl.Int64(), "f": pl.Float64(), "b": pl.Boolean(), "t": pl.Datetime("us")}
    frame, rejects = message_rows(
        _messages(
            {"i": "3", "f": "2.5", "b": "true", "t": "2024-01-02T10:30:00"},
            {"i": "3.0"},
            {"i": " 3"},
            {"b": "yes"},
        ),
        schema,
    )
    assert frame.rows() == [(3, 2.5, True, dt.datetime(2024, 1, 2, 10, 30))]
    assert [r.line for r in rejects] == [2, 3, 4]


def test_a_message_with_a_problem_is_a_reject_even_in_the_first_batch() -> None:
    bad = [Message(str(i), {"_raw": "x"}, None, "its body is not JSON") for i in range(3000)]
    frame, rejects = message_rows([*bad, Message("3000", {"n": 1})], None)
    assert frame.columns == [MESSAGE_ID, "n"] and frame["n"].to_list() == [1]
    assert len(rejects) == 3000 and rejects[0].reason == "message 0: its body is not JSON"


def test_concurrent_appends_keep_every_writers_rows(tmp_path: Path, backend: str) -> None:
    settings = make_settings(tmp_path / "home", backend)
    with connect(settings=settings, principal="user:tester") as first:
        first.datasets.ingest("t", FrameSource(pl.DataFrame({"n": [-1]})))
    errors: list[BaseException] = []

    def writer(start: int) -> None:
        try:
            with connect(settings=settings, principal="user:tester") as ws:
                for n in range(start, start + 12):
                    source = FrameSource(pl.DataFrame({"n": [n]}))
                    ws.datasets.ingest("t", source, mode="append")
        except BaseException as exc:  # raised again below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(s,)) for s in (0, 100, 200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with connect(settings=settings, principal="user:tester") as ws:
        values = sorted(ws.datasets.read("t")["n"].to_list())
        assert values == [-1, *range(12), *range(100, 112), *range(200, 212)]
        assert ws.datasets.version("t").version == 37


def test_an_append_whose_schema_no_longer_matches_the_latest_is_refused(
    local_ws: Workspace,
) -> None:
    local_ws.datasets.ingest("t", FrameSource(pl.DataFrame({"n": [1]})))
    with pytest.raises(Exception, match="schema"):
        local_ws.datasets.ingest("t", FrameSource(pl.DataFrame({"m": ["x"]})), mode="append")
    assert local_ws.datasets.read("t")["n"].to_list() == [1]
