"""The CSV source: detection, schema overrides, rejects with line numbers, bounded chunks."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from keel.data import CsvSource
from keel.errors import InvalidInputError
from tests.data._csv import read


def test_detects_semicolons_header_and_types(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("id;amount;day\n1;2.5;2024-01-02\n2;3.5;2024-01-03\n", encoding="utf-8")
    source = CsvSource(str(path))
    frame, rejects = read(source)
    assert rejects == []
    assert frame.schema == pl.Schema({"id": pl.Int64, "amount": pl.Float64, "day": pl.Date})
    assert source.describe()["delimiter"] == ";" and source.describe()["header"] is True


def test_headerless_file_gets_numbered_columns(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("1,2.5\n2,3.5\n3,4.5\n", encoding="utf-8")
    frame, _ = read(CsvSource(str(path)))
    assert frame.columns == ["column_1", "column_2"] and frame.height == 3


@pytest.mark.parametrize("encoding", ["cp1252", "utf-16", "utf-8-sig"])
def test_detects_the_encoding(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes("name,city\nJosé,Zürich\nRenée,Orléans\n".encode(encoding))
    frame, rejects = read(CsvSource(str(path)))
    assert rejects == []
    assert frame["name"].to_list() == ["José", "Renée"]
    assert frame.columns == ["name", "city"]


def test_bytes_invalid_in_the_encoding_are_rejected_not_dropped(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(b"name,n\nok,1\nbad\xff\xfe,2\nfine,3\n")
    frame, rejects = read(CsvSource(str(path), encoding="utf-8"))
    assert frame["name"].to_list() == ["ok", "fine"]
    assert [(r.line, "encoding" in r.reason) for r in rejects] == [(3, True)]


def test_malformed_rows_become_rejects_with_line_numbers_and_reasons(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text(
        'id,amount,note\n1,2.5,"a, quoted"\n2,x,b\n3,4.0\n4,5.0,c,d\n'
        '5,6.0,"multi\nline"\n6,7.0,e\n',
        encoding="utf-8",
    )
    frame, rejects = read(CsvSource(str(path), schema={"amount": "float64"}))
    assert frame["id"].to_list() == [1, 5, 6]
    assert frame["note"].to_list() == ["a, quoted", "multi\nline", "e"]
    assert [r.line for r in rejects] == [3, 4, 5]
    assert "cannot read 'x' as Float64" in rejects[0].reason
    assert rejects[1].reason == "2 fields where the header has 3"
    assert rejects[2].reason == "4 fields where the header has 3"


def test_a_piece_whose_every_row_is_rejected_gives_rejects_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("a,b,c\n1,2\n", encoding="utf-8")  # the only row is short
    frame, rejects = read(CsvSource(str(path)))
    assert frame.height == 0 and frame.columns == ["a", "b", "c"]
    assert [(r.line, r.reason) for r in rejects] == [(2, "2 fields where the header has 3")]
    # a truncated last line that forms a chunk of its own
    rows = "".join(f"{i},{i * 2},x{i}\n" for i in range(200))
    path.write_text("a,b,c\n" + rows + "200,400", encoding="utf-8")
    frame, rejects = read(CsvSource(str(path), chunk_bytes=256))
    assert frame["a"].to_list() == list(range(200))
    assert [r.line for r in rejects] == [202]


def test_small_chunks_keep_quoted_newlines_and_line_numbers(tmp_path: Path) -> None:
    rows = [f'{i},"text {i}\nsecond line"' for i in range(300)] + ["300,x,extra"]
    path = tmp_path / "a.csv"
    path.write_text("id,text\n" + "\n".join(rows) + "\n", encoding="utf-8")
    frame, rejects = read(CsvSource(str(path), chunk_bytes=1024))
    assert frame["id"].to_list() == list(range(300))
    assert frame["text"][299] == "text 299\nsecond line"
    assert [r.line for r in rejects] == [2 + 300 * 2]


def test_empty_files_and_bad_options_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="is empty"):
        read(CsvSource(str(empty)))
    with pytest.raises(InvalidInputError, match="Unknown type"):
        CsvSource(str(empty), schema={"a": "decimal128"})
    with pytest.raises(InvalidInputError, match="Unknown encoding"):
        CsvSource(str(empty), encoding="klingon")
    header_only = tmp_path / "h.csv"
    header_only.write_text("a,b\n", encoding="utf-8")
    frame, _ = read(CsvSource(str(header_only)))
    assert frame.columns == ["a", "b"] and frame.height == 0
    with pytest.raises(InvalidInputError, match="does not have"):
        read(CsvSource(str(header_only), schema={"c": "int64"}))
