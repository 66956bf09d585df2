"""Parts encoded two at a time, handed on without copies, and CSV pieces parsed without quote
tracking when they hold no quote: the same parts, rows and rejects as before."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from keel.data import CsvSource, FrameSource, _ingest
from keel.data._parts import encode_part
from keel.workspace import Workspace
from tests.data._csv import read


def _encoders() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("keel-part-encoder")]


def _big(rows: int = 120_000) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "i": range(rows),
            "x": [i * 0.5 for i in range(rows)],
            "text": [f"row {i}" for i in range(rows)],
        }
    )


def test_a_small_slice_of_a_big_frame_holds_only_its_own_bytes() -> None:
    import pyarrow as pa

    rows = 1_000_000
    frame = pl.DataFrame(
        {
            "i": range(rows),
            "text": [f"a fairly long text value, row number {i:09d}" for i in range(rows)],
        }
    )
    piece = frame.slice(100_000, 60_000)  # shares every string buffer of ``frame``
    before = pa.total_allocated_bytes()
    data, part = encode_part(piece)
    held = pa.total_allocated_bytes() - before
    assert part.size == len(data) and part.rows == 60_000
    # what the part keeps alive is about its own size, not the parent's text (~45 MB)
    assert held < 4 * len(data) + (1 << 20), (held, len(data))
    assert pl.read_parquet(io.BytesIO(data)).equals(piece)


def test_parts_encoded_two_at_a_time_keep_their_order(local_ws: Workspace) -> None:
    frame = _big(400_000)
    version = local_ws.datasets.service.ingest(
        local_ws.ctx, "ordered", FrameSource(frame, batch_rows=130_000), part_rows=60_000
    )
    # parts of 60,000 rows are encoded on threads, those of 10,000 by the caller
    assert [p.rows for p in version.parts] == [60_000, 60_000, 10_000] * 3 + [10_000]
    starts = [0, 60, 120, 130, 190, 250, 260, 320, 380, 390]
    assert [p.stats["i"]["min"] for p in version.parts] == [k * 1000 for k in starts]
    assert local_ws.datasets.read("ordered").equals(frame)
    assert not _encoders()  # the encoding threads end with the ingest


def test_an_encoding_error_fails_the_ingest_and_stops_the_encoders(
    local_ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = _ingest.encode_part

    def failing(frame: pl.DataFrame) -> Any:
        calls.append(frame.height)
        if len(calls) == 3:
            raise RuntimeError("disk on fire")
        return real(frame)

    monkeypatch.setattr(_ingest, "encode_part", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        local_ws.datasets.service.ingest(
            local_ws.ctx, "broken", FrameSource(_big(400_000), batch_rows=60_000), part_rows=60_000
        )
    assert not _encoders()
    assert "broken" not in [d.name for d in local_ws.datasets.list()]


def test_pieces_with_and_without_quotes_parse_alike(tmp_path: Path) -> None:
    # Small chunks: most hold no quote (parsed without quote tracking), one holds a quoted
    # value with the delimiter and a newline in it, and a malformed row comes after it.
    rows = [f"{i},plain {i},{i * 2}" for i in range(3000)]
    rows[1200] = '1200,"quoted, with\nnewline",2400'
    rows[2500] = "2500,too,many,fields"
    path = tmp_path / "mixed.csv"
    path.write_bytes(("id,name,double\n" + "\n".join(rows) + "\n").encode())
    frame, rejects = read(CsvSource(str(path), chunk_bytes=2048, batch_bytes=8192))
    assert frame.height == 2999
    assert frame.filter(pl.col("id") == 1200)["name"].to_list() == ["quoted, with\nnewline"]
    assert frame.filter(pl.col("id") == 2999)["double"].to_list() == [5998]
    # header line 1, row i on line i + 2, plus one for the newline inside row 1200
    assert [r.line for r in rejects] == [2503]
