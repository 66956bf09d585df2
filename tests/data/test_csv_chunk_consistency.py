"""The same CSV gives the same rows and rejects whatever its chunk size and whichever reader a
chunk goes to: Polars (the fast path) or the record-by-record reader (a chunk Polars refuses, or
that has a short line).

Spaces around a value of a column that is not text are not part of it on both paths (Polars
alone takes them before a number but not after it); text keeps them. A blank line is no row, and
does not send its chunk to the record-by-record reader.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from keel.data import CsvSource, _csv
from keel.data._csv_records import parse_records
from keel.errors import InvalidInputError
from tests.data._csv import read

SMALL = 1024  # the smallest chunk a CSV source reads
SCHEMA = {
    "id": "int64",
    "amount": "float64",
    "flag": "bool",
    "day": "date",
    "at": "datetime",
    "name": "string",
}
Outcome = tuple[list[tuple[Any, ...]], list[tuple[int, str, str]], dict[str, int]]


def _ingest(
    path: Path,
    chunk_bytes: int,
    monkeypatch: pytest.MonkeyPatch,
    *,
    by_records: Callable[[int], bool] = lambda piece: False,
    **options: Any,
) -> Outcome:
    """The rows, the rejects (line, reason, text) and ``pieces_read`` of ``path``, the pieces
    for which ``by_records(index)`` holds sent to the record-by-record reader."""
    source = CsvSource(str(path), chunk_bytes=chunk_bytes, **options)
    fast = source._parse_fast
    count = itertools.count()

    def forced(*args: Any) -> Any:
        return None if by_records(next(count)) else fast(*args)

    monkeypatch.setattr(source, "_parse_fast", forced)
    frame, rejects = read(source)
    return frame.rows(), [(r.line, r.reason, r.text) for r in rejects], dict(source.pieces_read)


# (name, how the pieces go): naturally, all record by record, every other one record by record
PATHS: list[tuple[str, Callable[[int], bool]]] = [
    ("natural", lambda piece: False),
    ("records", lambda piece: True),
    ("alternate", lambda piece: piece % 2 == 1),
]


# --- 1. spaces around values ------------------------------------------------------------------


def _spaced(i: int) -> str:
    """Row i: spaces or a tab before most numbers and dates (which Polars takes), after a few
    of them and around a few booleans and date-times (which it refuses, sending their chunk
    record by record), and around the text (which is kept)."""
    lead = ["", " ", "\t", "  "][i % 4]
    trail = " " if i % 97 == 5 else ""
    flag = "true" if i % 2 == 0 else "false"
    flag = f" {flag}\t" if i % 89 == 3 else flag
    at = f"2024-02-03 04:05:{i % 60:02d}" + (" " if i % 83 == 1 else "")
    return (
        f"{lead}{i}{trail},{lead}{i}.5,{flag},{lead}2024-01-{i % 28 + 1:02d}{trail},{at}, name {i} "
    )


def _spaced_expected(i: int) -> tuple[Any, ...]:
    day = dt.date(2024, 1, i % 28 + 1)
    return (i, i + 0.5, i % 2 == 0, day, dt.datetime(2024, 2, 3, 4, 5, i % 60), f" name {i} ")


def test_spaces_around_values_give_the_same_rows_on_both_paths_and_any_chunk_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ` 5` was read as 5 by Polars but rejected by the record-by-record cast, so a row with it
    # was a row or a reject depending on the chunk it fell in (and on what else was in it).
    lines = [_spaced(i) for i in range(1500)]
    lines[700] = "700,1.5,true,2024-01-01,2024-02-03 04:05:06,x,extra"  # a reject
    lines[1100] = " x1100 ,1.5,true,2024-01-01,2024-02-03 04:05:06,y"  # a reject
    path = tmp_path / "spaced.csv"
    path.write_text("\n".join([",".join(SCHEMA), *lines]) + "\n", encoding="utf-8")
    expected = [_spaced_expected(i) for i in range(1500) if i not in (700, 1100)]
    expected_rejects = [
        (702, "7 fields where the header has 6", lines[700]),
        (1102, "column 'id': cannot read ' x1100 ' as Int64", lines[1100]),
    ]
    seen: dict[tuple[int, str], dict[str, int]] = {}
    for chunk_bytes in (SMALL, 4000, _csv.CHUNK_BYTES):
        for name, by_records in PATHS:
            rows, rejects, pieces = _ingest(
                path, chunk_bytes, monkeypatch, by_records=by_records, schema=SCHEMA
            )
            assert rows == expected, (chunk_bytes, name)
            assert rejects == expected_rejects, (chunk_bytes, name)
            seen[chunk_bytes, name] = pieces
    # Left alone, small chunks take both paths: Polars read the ones with spaces only before
    # values, the record-by-record reader those with a boolean or date-time in spaces.
    assert seen[SMALL, "natural"]["polars"] > 10 and seen[SMALL, "natural"]["records"] > 10
    assert seen[SMALL, "records"]["polars"] == 0
    assert seen[_csv.CHUNK_BYTES, "natural"] == {"polars": 0, "records": 1}


@pytest.mark.parametrize(
    ("dtype", "values"),
    [
        (pl.Int64, ["5", "-5", "+5", "0005", "1e3", "5.0", "9223372036854775808", "x"]),
        (pl.UInt8, ["5", "300", "-1"]),
        (pl.Float64, ["2.5", ".5", "5.", "1E3", "inf", "-inf", "Infinity", "+2.5", "1,5"]),
        (pl.Boolean, ["true", "false", "True", "FALSE", "yes"]),
        (pl.Date, ["2024-01-02", "2024/01/02", "02/01/2024", "20240102", "2024-02-30"]),
        (
            pl.Datetime("us"),
            [
                "2024-01-02 03:04:05",
                "2024-01-02T03:04:05",
                "2024-01-02",
                "2024-01-02 03:04:05.123456",
                "2024-01-02T03:04:05Z",
                "2024-01-02T03:04:05+01:00",
                "2024-01-02 03:04",
                "nope",
            ],
        ),
        (pl.Datetime("us", "UTC"), ["2024-01-02 03:04:05", "2024-01-02T03:04:05+01:00"]),
    ],
)
def test_a_value_polars_reads_is_read_the_same_record_by_record(
    dtype: pl.DataType, values: list[str]
) -> None:
    # Compared with what the fast path does with the piece (Polars against the schema); the
    # record-by-record reader used to reject ` 5`, crash on a date-time it could not infer a
    # format from, and give a UTC date-time where the column has no time zone.
    schema = {"key": pl.String(), "value": dtype}

    def by_records(value: str) -> tuple[list[tuple[Any, ...]], int]:
        frame, rejects = parse_records(f"k,{value}\n".encode(), schema, ",", 2)
        assert frame.schema == pl.Schema(schema)
        return frame.rows(), len(rejects)

    agreed = 0
    for value in [*values, "", '""', "  ", '"  "']:
        for padded in (value, f" {value}", f"\t{value}", f'"{value}"', f'" {value}"'):
            try:
                data = f"k,{padded}\n".encode()
                fast = pl.scan_csv(data, has_header=False, schema=schema).collect().rows()
            except pl.exceptions.PolarsError:
                continue  # a piece Polars refuses goes record by record: nothing to agree with
            assert by_records(padded) == (fast, 0), padded
            agreed += 1
    for value in values:  # after the value too (Polars refuses those): the value alone
        for padded in (f"{value} ", f" {value}\t", f'" {value} "'):
            assert by_records(padded) == by_records(value), padded
    assert agreed >= len(values)


def test_a_date_time_piece_read_record_by_record_gives_rejects_not_a_crash(
    tmp_path: Path,
) -> None:
    # The first date-time of the piece was the one its format was inferred from: when it had
    # none, the whole ingest failed with Polars' "could not find an appropriate format".
    path = tmp_path / "t.csv"
    path.write_text(
        "id,at\n1,nope\n2,2024-01-02 03:04:05\n3,x,y\n4, 2024-01-02 03:04:05 \n", encoding="utf-8"
    )
    frame, rejects = read(CsvSource(str(path), schema={"at": "datetime"}))
    assert frame.schema == pl.Schema({"id": pl.Int64, "at": pl.Datetime("us")})
    assert frame.rows() == [
        (2, dt.datetime(2024, 1, 2, 3, 4, 5)),
        (4, dt.datetime(2024, 1, 2, 3, 4, 5)),
    ]
    assert [(r.line, r.reason) for r in rejects] == [
        (2, "column 'at': cannot read 'nope' as Datetime(time_unit='us', time_zone=None)"),
        (4, "3 fields where the header has 2"),
    ]


def test_a_column_named_like_a_pattern_is_read_record_by_record(tmp_path: Path) -> None:
    # Polars takes the name of a Series for a pattern of names in some of its methods: the
    # record-by-record cast of a column named '^day.*$' failed with an IndexError.
    path = tmp_path / "n.csv"
    path.write_text("*,^day.*$,n\n1,2024-01-02,a\n2, 2024-01-03 ,b\nx,y\n", encoding="utf-8")
    frame, rejects = read(CsvSource(str(path), schema={"*": "int64", "^day.*$": "date"}))
    assert frame.columns == ["*", "^day.*$", "n"]
    assert frame.rows() == [(1, dt.date(2024, 1, 2), "a"), (2, dt.date(2024, 1, 3), "b")]
    assert [(r.line, r.reason) for r in rejects] == [(4, "2 fields where the header has 3")]


# --- 2. blank lines ---------------------------------------------------------------------------


def _with_blank_lines(rows: list[str], newline: str) -> str:
    """``rows`` with a blank line after every 7th, three after every 50th, one before the first."""
    out = [""]
    for i, row in enumerate(rows):
        out.append(row)
        if i % 7 == 3:
            out.append("")
        if i % 50 == 10:
            out.extend(["", "", ""])
    return newline.join(out) + newline * 2


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("quoted", [False, True])
def test_blank_lines_are_skipped_by_polars_with_the_rows_of_the_record_by_record_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, newline: str, quoted: bool
) -> None:
    # A blank line used to send its chunk to the record-by-record reader (Polars reads it as a
    # row of nulls, and refuses a chunk that starts with one).
    def name(i: int) -> str:
        return f'"a,{i}{newline}{newline}b"' if quoted and i % 10 == 0 else f"n{i}"

    rows = [f"{i},{i}.5,{name(i)}" for i in range(1200)]
    rows[1150] = "1150,oops,n1150"  # a reject, its line counted over the blank lines before it
    path = tmp_path / "blank.csv"
    path.write_text(
        _with_blank_lines(["id,amount,name", *rows], newline), encoding="utf-8", newline=""
    )
    line = path.read_bytes().decode().split(newline).index(rows[1150]) + 1
    types = {"amount": "float64"}  # (inferred from the whole file, 'oops' would make it text)
    expected = [
        (i, i + 0.5, f"a,{i}{newline}{newline}b" if quoted and i % 10 == 0 else f"n{i}")
        for i in range(1200)
        if i != 1150
    ]
    for chunk_bytes in (SMALL, 1500, _csv.CHUNK_BYTES):
        for how, by_records in PATHS:
            rows_read, rejects, pieces = _ingest(
                path, chunk_bytes, monkeypatch, by_records=by_records, schema=types
            )
            assert rows_read == expected, (chunk_bytes, how)
            assert rejects == [
                (line, "column 'amount': cannot read 'oops' as Float64", "1150,oops,n1150")
            ], (chunk_bytes, how)
            if how == "natural":  # only the piece with the reject is read record by record
                assert pieces["records"] == 1, (chunk_bytes, pieces)
                assert pieces["polars"] > (5 if chunk_bytes < _csv.CHUNK_BYTES else -1), pieces


def test_rows_whose_last_field_is_empty_stay_rows_of_the_fast_path_among_blank_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A null in the last column is what a blank line and a short line look like to Polars too:
    # such a row (the first of a piece among them) stays a row, read by Polars.
    rows = [f"{i},{'' if i % 3 == 0 else f'n{i}'}" for i in range(600)]
    path = tmp_path / "e.csv"
    path.write_text(_with_blank_lines(["id,name", *rows], "\n"), encoding="utf-8")
    expected = [(i, None if i % 3 == 0 else f"n{i}") for i in range(600)]
    for _, by_records in PATHS:
        assert _ingest(path, SMALL, monkeypatch, by_records=by_records)[:2] == (expected, [])
    pieces = _ingest(path, SMALL, monkeypatch)[2]
    assert pieces["records"] == 0 and pieces["polars"] > 3
    # a line with a field too few is a reject (the only record-by-record piece)
    rows[500] = "500"
    path.write_text(_with_blank_lines(["id,name", *rows], "\n"), encoding="utf-8")
    line = path.read_text(encoding="utf-8").split("\n").index("500") + 1
    for _, by_records in PATHS:
        rows_read, rejects, _ = _ingest(path, SMALL, monkeypatch, by_records=by_records)
        assert rows_read == expected[:500] + expected[501:]
        assert rejects == [(line, "1 fields where the header has 2", "500")]
    assert _ingest(path, SMALL, monkeypatch)[2]["records"] == 1


def test_a_piece_that_starts_with_a_blank_line_is_read_by_polars(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first read of 1024 bytes ends just before a blank line, so the second piece starts
    # with it (Polars refuses a piece whose first line is blank: it takes its width from it).
    rows = [f"{i},{i}.5\n" for i in range(200)]
    head = "id,amount\n" + "".join(rows[:60])
    filler = "f" * (SMALL - len(head) - len(",0.5\n"))
    path = tmp_path / "b.csv"
    path.write_bytes(f"{head}{filler},0.5\n\n\r\n{''.join(rows[60:])}".encode())
    assert path.read_bytes()[SMALL - 1 : SMALL + 1] == b"\n\n"
    rows_read, rejects, pieces = _ingest(path, SMALL, monkeypatch, schema={"id": "string"})
    assert pieces["records"] == 0 and pieces["polars"] > 2
    assert rejects == []
    assert rows_read == [
        *((str(i), i + 0.5) for i in range(60)),
        (filler, 0.5),
        *((str(i), i + 0.5) for i in range(60, 200)),
    ]


def test_a_blank_line_in_a_one_column_file_is_no_row_on_either_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Polars read it as a null there, which the check for short lines let through (no
    # delimiter is missing from an empty line of a one-column file); record by record it was
    # skipped.
    path = tmp_path / "one.csv"
    path.write_bytes(b"name\na\n\nb\n\r\nc\n\n")
    for _, by_records in PATHS:
        rows, rejects, _ = _ingest(path, SMALL, monkeypatch, by_records=by_records)
        assert rows == [("a",), ("b",), ("c",)] and rejects == []
    assert _ingest(path, SMALL, monkeypatch)[2] == {"polars": 1, "records": 0}


# --- 3. the fix for a quote names both spellings ----------------------------------------------


def test_every_quoting_error_names_the_python_and_the_cli_spelling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "q.csv"
    rows = "".join(f"{i},x{i}\n" for i in range(300))
    cases = {
        "a lone quote": "id,name\n" + rows + '300,5" screen\n',
        "a quoted field never closed": "id,name\n" + rows + '300,"open\n301,x\n',
        "a first record never ended": 'id,"name\n' + rows,
    }
    monkeypatch.setattr(_csv, "_MAX_FIRST_RECORD", 2048)
    for case, text in cases.items():
        path.write_text(text, encoding="utf-8")
        with pytest.raises(InvalidInputError) as info:
            read(CsvSource(str(path), chunk_bytes=SMALL))
        message = str(info.value)
        assert "quote_char=None" in message and "--quote-char none" in message, case


def test_numbers_and_dates_after_a_space_are_typed_and_read_fast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # before: "id, 5" style files (a space after each delimiter) were typed all text
    path = tmp_path / "spaced.csv"
    lines = ["id, amount, day, name, code"]
    lines += [f"{i}, {i * 1.5}, 2024-01-{i % 28 + 1:02d}, n{i}, x{i} " for i in range(300)]
    path.write_text("\n".join(lines) + "\n")
    for chunk in (SMALL, 16 * 1024 * 1024):
        rows, rejects, pieces = _ingest(path, chunk, monkeypatch)
        assert rejects == [] and pieces["records"] == 0  # every piece on the fast path
        assert rows[3] == (3, 4.5, dt.date(2024, 1, 4), " n3", " x3 ")  # text keeps its spaces
    source = CsvSource(str(path))
    frame, _ = read(source)
    assert frame.schema == {
        "id": pl.Int64,
        "amount": pl.Float64,
        "day": pl.Date,
        "name": pl.String,
        "code": pl.String,
    }
    assert frame.height == 300
