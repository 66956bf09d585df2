"""The fast paths of CSV ingest: line numbers counted from rows, and the Parquet part encoder."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pandas as pd  # type: ignore[import-untyped]
import polars as pl
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest

from keel.data import CsvSource
from keel.data._parts import _ROW_GROUP_ROWS, encode_part
from tests.data._csv import NoBlobs, read


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_rejects_after_clean_chunks_have_their_file_line_numbers(
    tmp_path: Path, newline: str
) -> None:
    # Many clean chunks (their lines are counted from their rows, not scanned), a CR inside a
    # value (not a line end for Polars), then malformed rows near the end of the file.
    rows = [f"{i},name {i}" for i in range(2000)]
    rows[10] = "10,carriage\rreturn"
    rows[1500] = "1500,x,extra"
    rows[1990] = "not a number,y"
    path = tmp_path / "a.csv"
    path.write_bytes(("id,name" + newline + newline.join(rows) + newline).encode())
    frame, rejects = read(CsvSource(str(path), chunk_bytes=1024, batch_bytes=4096))
    assert frame.height == 1998
    assert frame.filter(pl.col("id") == 10)["name"].to_list() == ["carriage\rreturn"]
    assert [r.line for r in rejects] == [1502, 1992]  # header is line 1, row i is line i + 2


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_lone_cr_stays_in_its_value_when_the_chunk_is_read_record_by_record(
    tmp_path: Path, newline: str
) -> None:
    # The malformed row sends its chunk to the record-by-record reader: the CR beside it must
    # neither cut the value nor shift the reported line numbers.
    rows = [f"{i},name {i}" for i in range(2000)]
    rows[1500] = "1500,carriage\rreturn"  # line 1502
    rows[1505] = "notanumber,x"  # line 1507, in the same chunk
    rows[1990] = "notanumber,y"  # line 1992
    path = tmp_path / "cr.csv"
    path.write_bytes(("id,name" + newline + newline.join(rows) + newline).encode())
    frame, rejects = read(CsvSource(str(path), chunk_bytes=1024))
    assert frame.height == 1998
    assert frame.filter(pl.col("id") == 1500)["name"].to_list() == ["carriage\rreturn"]
    assert [r.line for r in rejects] == [1507, 1992]


ENCODE_CHUNKED = """
import polars as pl
from keel.data._parts import encode_part
small = pl.DataFrame({f"c{i}": pl.Series([0, 1, None, 100], dtype=pl.Int64) for i in range(8)})
data, part = encode_part(pl.concat([small] * 15001))  # 15,001 chunks, schema never read yet
print(part.rows)
"""


def test_encoding_a_many_chunk_frame_does_not_deadlock_with_its_statistics_thread() -> None:
    # Two threads on one Polars frame (statistics and the Arrow export) could deadlock on the
    # frame's lock and the GIL, about one fresh process in three; each try is a new process.
    import subprocess
    import sys

    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", ENCODE_CHUNKED],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        assert out.stdout.strip() == "60004"


def test_line_numbers_after_a_blank_line_and_a_quoted_newline(tmp_path: Path) -> None:
    rows = [f"{i},v{i}" for i in range(400)]
    rows[50] = ""  # a blank line: skipped, but still a line of the file
    rows[100] = '100,"two\nlines"'  # the record spans lines 102 and 103
    rows[390] = "390"
    path = tmp_path / "b.csv"
    path.write_text("id,v\n" + "\n".join(rows) + "\n", encoding="utf-8")
    frame, rejects = read(CsvSource(str(path), chunk_bytes=1024))
    assert frame.height == 398
    assert "two\nlines" in frame["v"].to_list()
    assert [r.line for r in rejects] == [393]


def _frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": [1, None, 3],
            "small": pl.Series([1, 2, 3], dtype=pl.UInt8),
            "amount": [1.5, None, float("nan")],
            "ratio": pl.Series([0.5, 1.0, None], dtype=pl.Float32),
            "name": ["a", None, "c"],
            "flag": [True, False, None],
            "day": [dt.date(2020, 1, 1), None, dt.date(2021, 5, 6)],
            "at": [dt.datetime(2020, 1, 1, 12), None, dt.datetime(2021, 1, 1)],
            "wait": [dt.timedelta(seconds=5), None, dt.timedelta(days=1)],
            "tags": [["x"], ["y", "z"], None],
            "point": [{"x": 1.0, "label": "p"}, None, {"x": 2.5, "label": None}],
            "kind": pl.Series(["u", "v", "u"], dtype=pl.Categorical),
            "blob": [b"x", None, b"\x00\x01"],
            "a.b": [1, 2, 3],  # a dotted name: pyarrow addresses columns by dotted path
            "a": [{"b": "text"}, {"b": None}, None],
            "wide": pl.Series([1, 2, 3], dtype=pl.Int128),
        }
    )


def test_parts_read_back_identically_and_are_deterministic() -> None:
    frame = _frame()
    data, part = encode_part(frame)
    again, same = encode_part(frame.clone())
    assert data == again and part.digest == same.digest  # parts are content-addressed
    assert part.rows == 3 and part.size == len(data)
    back = pl.read_parquet(io.BytesIO(data))
    assert back.schema == frame.schema
    assert back.equals(frame)
    assert part.stats["amount"]["nulls"] == 1
    # text columns: the lengths of their values, never the values (they may be personal data)
    assert "max" not in part.stats["name"] and part.stats["name"]["max_length"] == 1


def test_parts_are_zstd_parquet_with_cheap_encodings_readable_by_arrow_and_pandas() -> None:
    frame = _frame().drop("wide")  # Int128 has no Arrow type (written by Polars instead)
    data, _ = encode_part(frame)
    metadata = pq.read_metadata(io.BytesIO(data))
    chunks = {
        metadata.row_group(0).column(i).path_in_schema: metadata.row_group(0).column(i)
        for i in range(metadata.num_columns)
    }
    assert {c.compression for c in chunks.values()} == {"ZSTD"}
    assert "DELTA_BINARY_PACKED" in chunks["id"].encodings
    assert "DELTA_BINARY_PACKED" in chunks["day"].encodings
    assert "BYTE_STREAM_SPLIT" in chunks["amount"].encodings
    assert "RLE_DICTIONARY" in chunks["name"].encodings
    table = pq.read_table(io.BytesIO(data))
    assert table.column("name").to_pylist() == ["a", None, "c"]
    assert table.column("a.b").to_pylist() == [1, 2, 3]
    assert table.column("a").to_pylist() == [{"b": "text"}, {"b": None}, None]
    pandas = pd.read_parquet(io.BytesIO(data))
    assert pandas["day"].tolist()[2] == dt.date(2021, 5, 6)
    assert pandas["tags"].tolist()[1].tolist() == ["y", "z"]


def test_large_and_empty_parts() -> None:
    rows = _ROW_GROUP_ROWS + 100_000  # two row groups
    big = pl.DataFrame({"i": range(rows), "s": [f"v{i % 1000}" for i in range(rows)]})
    for frame in (big, big.slice(12_345, _ROW_GROUP_ROWS), big.head(0), pl.DataFrame()):
        data, part = encode_part(frame)
        assert part.rows == frame.height
        assert pl.read_parquet(io.BytesIO(data)).equals(frame)
    assert pq.read_metadata(io.BytesIO(encode_part(big)[0])).num_row_groups == 2


def _reference(frame: pl.DataFrame) -> bytes:
    """The part as pyarrow writes Polars' default (copying) export, recording its schema."""
    import pyarrow as pa

    from keel.data import _parts

    table = frame.to_arrow()
    encodings, dictionary = _parts._encodings(table.schema)
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(
        sink,
        table.schema,
        compression="zstd",
        compression_level=_parts._ZSTD_LEVEL,
        use_dictionary=dictionary,
        column_encoding=encodings or None,
        dictionary_pagesize_limit=_parts._DICTIONARY_PAGE_BYTES,
        write_statistics=False,
    ) as writer:
        writer.write_table(table, row_group_size=_parts._ROW_GROUP_ROWS)
    data: bytes = sink.getvalue().to_pybytes()
    return data


def test_text_shared_as_views_gives_the_bytes_of_the_copying_export() -> None:
    rows = 1_100_000
    big = pl.DataFrame(
        {
            "i": range(rows),
            "text": [f"value number {i}" for i in range(rows)],
            "kind": [f"k{i % 7}" for i in range(rows)],
        }
    )
    frame = _frame().drop("wide")
    for case in (
        frame,
        frame.slice(1, 2),
        frame.slice(2, 1),
        frame.head(0),
        big,
        big.slice(12_345, 900_000),
        pl.concat([big.slice(0, 1000), big.slice(5000, 300_000)]),
    ):
        data, _ = encode_part(case)
        assert data == _reference(case)


def test_the_first_chunk_is_a_batch_of_its_own_and_the_rest_are_gathered(
    tmp_path: Path,
) -> None:
    # Encoding starts as soon as the first chunk is parsed; later chunks are gathered into
    # batches of about batch_bytes. The layout depends on the bytes alone (parts are
    # content-addressed), so the same file gives the same batches every time.
    path = tmp_path / "b.csv"
    path.write_bytes(("id,name\n" + "".join(f"{i},n{i:05d}\n" for i in range(3000))).encode())
    source = CsvSource(str(path), chunk_bytes=1024, batch_bytes=4096)

    def layout() -> list[tuple[int, int]]:
        return [(b.frame.height, b.bytes_read) for b in source.batches(NoBlobs())]

    batches = layout()
    first_bytes = batches[0][1]
    assert 0 < first_bytes <= 1024  # the first chunk alone (its header line is not counted)
    assert all(size >= 4096 for _, size in batches[1:-1])
    assert all(size < 4096 + 1024 for _, size in batches[1:])
    assert sum(rows for rows, _ in batches) == 3000
    assert layout() == batches


def test_text_statistics_are_lengths_merged_across_parts_never_values() -> None:
    from keel.data._parts import frame_stats, merge_stats

    first = frame_stats(pl.DataFrame({"email": ["ab@x.ae", None], "n": [1, 2]}))
    second = frame_stats(pl.DataFrame({"email": ["fatima.alhashimi@mail.ae", "é@x"]}))
    merged = merge_stats([first, second])
    assert merged["email"] == {"count": 4, "nulls": 1, "min_length": 3, "max_length": 24}
    assert "ab@x.ae" not in repr(merged) and merged["n"]["max"] == 2  # numbers keep min/max


def test_text_values_of_parts_written_before_lengths_are_dropped_when_merged() -> None:
    from keel.data._parts import merge_stats

    old = {"email": {"count": 2, "nulls": 0, "min": "ann@x.io", "max": "bob@y.io"}}
    new = {"email": {"count": 1, "nulls": 0, "min_length": 7, "max_length": 7}}
    merged = merge_stats([old, new], text=["email"])
    assert merged["email"] == {"count": 3, "nulls": 0}  # no values, and no partial lengths
    only_nulls = {"email": {"count": 2, "nulls": 2}}
    assert merge_stats([only_nulls, new], text=["email"])["email"]["max_length"] == 7
