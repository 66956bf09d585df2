"""CSV review fixes: whole header records, undecodable bytes as rejects, one-line files."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from keel.data import CsvSource, _csv
from keel.errors import InvalidInputError
from keel.workspace import Workspace
from tests.data._csv import read

# --- 1. the header is the first whole record, however long ---------------------------------


@pytest.mark.parametrize("chunk_bytes", [1024, _csv.CHUNK_BYTES])
def test_a_header_longer_than_the_sample_and_a_chunk_is_read_whole(
    tmp_path: Path, chunk_bytes: int
) -> None:
    names = [f"feature_number_{i:05d}" for i in range(8000)]  # ~168 KB, past the 64 KiB sample
    rows = [",".join(str(i * 10 + j % 7) for j in range(8000)) for i in range(3)]
    path = tmp_path / "wide.csv"
    path.write_text(",".join(names) + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    source = CsvSource(str(path), chunk_bytes=chunk_bytes)
    frame, rejects = read(source)
    assert rejects == []
    assert frame.columns == names  # the last name is not cut
    assert frame.height == 3
    assert frame["feature_number_07999"].to_list() == [7999 % 7, 10 + 7999 % 7, 20 + 7999 % 7]
    assert source.describe()["header"] is True and source.describe()["delimiter"] == ","


def test_a_quoted_newline_in_the_header_is_one_name_and_lines_count_from_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "q.csv"
    path.write_bytes(b'"first\nname",age\nbob,3\nal,4\nzed,old\n')
    frame, rejects = read(CsvSource(str(path), schema={"age": "int64"}))
    assert frame.columns == ["first\nname", "age"]
    assert frame.rows() == [("bob", 3), ("al", 4)]
    # the header spans lines 1-2, so 'zed' is on line 5
    assert [(r.line, r.reason) for r in rejects] == [
        (5, "column 'age': cannot read 'old' as Int64")
    ]


def test_a_first_record_that_never_ends_is_refused_past_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_csv, "_MAX_FIRST_RECORD", 8 * 1024)
    path = tmp_path / "open.csv"  # a quote opened in the header and never closed
    path.write_text('id,"name\n' + "".join(f"{i},x{i}\n" for i in range(5000)), encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"first record .* does not end within") as info:
        read(CsvSource(str(path), chunk_bytes=1024))
    assert "quote that is never closed" in str(info.value)
    # under the cap, a long header is still read whole
    path.write_text(",".join(f"c{i:04d}" for i in range(1200)) + "\n" + "1," * 1199 + "1\n")
    frame, _ = read(CsvSource(str(path), chunk_bytes=1024))
    assert frame.width == 1200 and frame.height == 1 and frame.columns[-1] == "c1199"


# --- 2. encoding problems are rejects or clear errors ---------------------------------------


def _late_bad_byte(tmp_path: Path) -> Path:
    rows = [b"id,name"] + [b"%d,caf\xe9" % i for i in range(10000)] + [b"10000,bad\x90byte"]
    path = tmp_path / "late.csv"
    path.write_bytes(b"\n".join(rows) + b"\n")
    return path


def test_a_byte_not_text_in_cp1252_past_the_sample_is_a_reject(tmp_path: Path) -> None:
    source = CsvSource(str(_late_bad_byte(tmp_path)))
    frame, rejects = read(source)
    assert source.describe()["encoding"] == "cp1252"
    assert frame.height == 10000 and frame.schema["id"] == pl.Int64  # not every column text
    assert frame["name"][9999] == "café"
    assert [(r.line, r.reason) for r in rejects] == [
        (10002, "byte 0x90 is not text in the file's encoding (cp1252)")
    ]
    assert rejects[0].text.startswith("10000,bad")


def test_the_late_bad_byte_is_a_reject_of_the_ingested_version(
    local_ws: Workspace, tmp_path: Path
) -> None:
    version = local_ws.datasets.ingest("late", _late_bad_byte(tmp_path))
    assert version.row_count == 10000 and version.rejected_rows == 1
    table = local_ws.datasets.rejects("late")
    assert table["line"].to_list() == [10002]
    assert "0x90" in table["reason"][0] and "cp1252" in table["reason"][0]


def test_an_explicit_encoding_the_bytes_are_not_in_rejects_their_rows(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("id,name\n1,café\n2,ok\n", encoding="utf-8")
    frame, rejects = read(CsvSource(str(path), encoding="ascii"))
    assert frame.rows() == [(2, "ok")]
    assert [(r.line, r.reason) for r in rejects] == [
        (2, "byte 0xc3 is not text in the file's encoding (ascii)")
    ]
    # a byte below 0x80 that is not text (a lone surrogate in UTF-16) is a reject too
    path.write_bytes("id,name\n1,a\n2,\ud800b\n3,c\n".encode("utf-16-le", "surrogatepass"))
    frame, rejects = read(CsvSource(str(path), encoding="utf-16-le"))
    assert frame.rows() == [(1, "a"), (3, "c")]
    assert [r.line for r in rejects] == [3] and "(utf-16-le)" in rejects[0].reason


def test_an_encoding_that_cannot_read_the_file_at_all_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("id,name\n1,café\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"cannot be read as utf-16: .*BOM.*--encoding"):
        read(CsvSource(str(path), encoding="utf-16"))
    with pytest.raises(InvalidInputError, match="'zlib' is not a text encoding"):
        CsvSource(str(path), encoding="zlib")


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be", "utf-32"])
def test_utf16_and_utf32_are_detected_without_a_bom(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "w.csv"
    path.write_bytes("id,name\n1,José\n2,Zürich\n".encode(encoding))
    source = CsvSource(str(path))
    frame, rejects = read(source)
    assert rejects == []
    assert frame.columns == ["id", "name"]
    assert frame.rows() == [(1, "José"), (2, "Zürich")]
    assert source.describe()["encoding"] == encoding


def test_a_nul_in_a_column_name_is_a_clear_error_not_a_panic(tmp_path: Path) -> None:
    path = tmp_path / "u16.csv"
    path.write_bytes("id,name\n1,a\n".encode("utf-16-le"))
    with pytest.raises(InvalidInputError, match=r"holds a NUL byte.*utf-16-le"):
        read(CsvSource(str(path), encoding="utf-8"))
    # a NUL in a value of a UTF-8 file is text there, and kept
    path.write_bytes(b"id,name\n1,a\x00b\n2,c\n")
    frame, rejects = read(CsvSource(str(path)))
    assert rejects == [] and frame["name"].to_list() == ["a\x00b", "c"]


# --- 3. a one-line file of numbers is a row --------------------------------------------------


@pytest.mark.parametrize("data", [b"1,2,3\n", b"1,2,3", b"\n1,2,3\n"])
def test_a_one_line_file_of_numbers_is_a_row_not_a_header(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "one.csv"
    path.write_bytes(data)
    source = CsvSource(str(path))
    frame, rejects = read(source)
    assert rejects == [] and source.describe()["header"] is False
    assert frame.columns == ["column_1", "column_2", "column_3"]
    assert frame.rows() == [(1, 2, 3)]
    # a one-line file of names is still a header with no rows
    path.write_bytes(b"a,b,c\n")
    frame, _ = read(CsvSource(str(path)))
    assert frame.columns == ["a", "b", "c"] and frame.height == 0
