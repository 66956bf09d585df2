"""Stream messages to rows: a message that cannot be a row is a reject, never a blocked stream;
two writers appending to one dataset at once both keep their rows."""

from __future__ import annotations

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
    assert reasons[0].startswith("message 2: field 'n': ") and "2.75" in reasons[0]
    assert reasons[0].endswith("is not a Int64")
    assert "['colour'] are not columns of the dataset" in reasons[1]
    assert "'four' is not a Int64" in reasons[2]
    assert f"'{MESSAGE_ID}' is reserved" in reasons[3]
    assert "['_raw'] are not columns" in reasons[4]
    assert '"colour": "red"' in rejects[1].text


def test_values_of_mixed_types_in_one_field_are_placed_message_by_message() -> None:
    frame, rejects = message_rows(_messages({"n": 1}, {"n": "x"}, {"n": 3}), SCHEMA)
    assert frame["n"].to_list() == [1, 3]
    assert [r.line for r in rejects] == [2]


def test_the_first_batch_fixes_the_columns_and_a_null_field_is_text() -> None:
    frame, rejects = message_rows(_messages({"n": 1, "note": None}, {"n": 2}), None)
    assert rejects == []
    assert frame.schema == pl.Schema({MESSAGE_ID: pl.String(), "n": pl.Int64, "note": pl.String})
    # a field whose values mix types in the first batch is text: every value is kept
    frame, rejects = message_rows(_messages({"n": 1}, {"n": "two"}, {"n": 3}), None)
    assert frame["n"].to_list() == ["1", "two", "3"] and rejects == []


def test_concurrent_appends_keep_every_writers_rows(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home")
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

    threads = [threading.Thread(target=writer, args=(s,)) for s in (0, 100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with connect(settings=settings, principal="user:tester") as ws:
        values = sorted(ws.datasets.read("t")["n"].to_list())
        assert values == [-1, *range(12), *range(100, 112)]
        assert ws.datasets.version("t").version == 25


def test_an_append_whose_schema_no_longer_matches_the_latest_is_refused(
    local_ws: Workspace,
) -> None:
    local_ws.datasets.ingest("t", FrameSource(pl.DataFrame({"n": [1]})))
    with pytest.raises(Exception, match="schema"):
        local_ws.datasets.ingest("t", FrameSource(pl.DataFrame({"m": ["x"]})), mode="append")
    assert local_ws.datasets.read("t")["n"].to_list() == [1]
