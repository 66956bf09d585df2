"""Transforms part by part equal the whole-frame result; validation reads only its columns;
the one-pass blob writes of an ingest (precomputed digests, one fsync pass per batch)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest

from keel.blobs import BlobStore
from keel.blobs._storage import durable_batch
from keel.data import FrameSource, apply_steps, parse_suite, parse_transform, run_suite
from keel.data._streaming import stream_steps
from keel.errors import IntegrityError, InvalidInputError
from keel.workspace import Workspace, connect
from tests.conftest import make_settings

STEPS = [
    {"op": "filter", "where": "amount >= 0"},
    {"op": "fill_null", "columns": ["city"], "strategy": "forward"},
    {"op": "fill_null", "columns": ["grade"], "strategy": "backward"},
    {"op": "fill_null", "columns": ["score"], "strategy": "mean"},
    {"op": "fill_null", "columns": ["term"], "strategy": "median"},
    {"op": "fill_null", "columns": ["rate"], "strategy": "max"},
    {"op": "clip", "column": "amount", "quantiles": [0.05, 0.95]},
    {"op": "drop_duplicates", "subset": ["customer"]},
    {"op": "derive", "column": "total", "expr": "amount * (1 + rate)"},
    {"op": "cast", "column": "term", "dtype": "float64"},
]


def _frame(rows: int = 400) -> pl.DataFrame:
    def holes(values: list[object], every: int) -> list[object]:
        return [None if i % every == 3 else v for i, v in enumerate(values)]

    return pl.DataFrame(
        {
            "customer": [i % 97 for i in range(rows)],
            "amount": [float((i * 37) % 1000) - (50 if i % 41 == 0 else 0) for i in range(rows)],
            "rate": holes([0.01 * (i % 13) for i in range(rows)], 11),
            "score": holes([float(600 + i % 50) for i in range(rows)], 7),
            "term": holes([12 * (1 + i % 5) for i in range(rows)], 9),
            "city": holes([["Dubai", "Sharjah", "Ajman"][i % 3] for i in range(rows)], 5),
            "grade": holes([list("ABCDEFG")[i % 7] for i in range(rows)], 4),
        }
    )


def test_steps_part_by_part_equal_the_whole_frame() -> None:
    frame = _frame()
    parts = [frame.slice(offset, 37) for offset in range(0, frame.height, 37)]
    parsed = parse_transform(STEPS)
    streamed = pl.concat(list(stream_steps(lambda: iter(parts), parsed)))
    expected = apply_steps(frame, parsed)
    assert streamed.equals(expected)
    assert streamed["customer"].n_unique() == streamed.height  # duplicates across parts went
    assert streamed["city"].null_count() == 0 and streamed["grade"].null_count() == 0


def test_a_transform_of_a_many_part_version_streams_and_matches(local_ws: Workspace) -> None:
    frame = _frame(1000)
    local_ws.datasets.service.ingest(
        local_ws.ctx, "small", FrameSource(frame, batch_rows=90), part_rows=90
    )
    assert len(local_ws.datasets.version("small").parts) == 12
    made = local_ws.datasets.transform("small", STEPS, target="clean")
    expected = apply_steps(frame, parse_transform(STEPS))
    assert local_ws.datasets.read("clean").equals(expected)
    assert made.transform is not None and made.transform["removed_columns"] == []
    # A row-local user function may run per part too.
    doubled = local_ws.datasets.service.transform(
        local_ws.ctx,
        "small",
        function=lambda f: f.with_columns(pl.col("amount") * 2),
        per_part=True,
        target="doubled",
    )
    assert doubled.transform is not None and doubled.transform["per_part"] is True
    assert local_ws.datasets.read("doubled")["amount"].sum() == 2 * frame["amount"].sum()


def test_a_step_error_names_the_step_even_part_by_part() -> None:
    parts = [pl.DataFrame({"a": [1]}), pl.DataFrame({"a": [2]})]
    parsed = parse_transform(
        [{"op": "rename", "mapping": {"a": "b"}}, {"op": "cast", "column": "a", "dtype": "int64"}]
    )
    with pytest.raises(InvalidInputError, match="step 2"):
        list(stream_steps(lambda: iter(parts), parsed))


def test_validation_reads_only_the_columns_its_checks_name(local_ws: Workspace) -> None:
    frame = _frame(300).with_columns(pl.lit("x" * 50).alias("wide"))
    local_ws.datasets.ingest("loans", frame)
    calls: list[object] = []
    service = local_ws.datasets.service
    original = service._frames

    def spy(ctx: object, version: object, *, columns: object = None) -> object:
        calls.append(columns)
        return original(ctx, version, columns=columns)  # type: ignore[arg-type]

    service._frames = spy  # type: ignore[method-assign]
    report = local_ws.datasets.validate(
        "loans",
        [
            {"kind": "not_null", "column": "customer"},
            {"kind": "range", "column": "amount", "min": -100, "max": 1000},
            {"kind": "row_count", "min": 300, "max": 300},
            {"kind": "unique", "columns": ["customer", "term"], "level": "warning"},
        ],
    )
    # `unique` reads its two columns whole; the row checks stream theirs part by part
    assert calls == [["customer", "term"], ["customer", "amount"]]
    assert report.passed and report.result["rows"] == 300
    calls.clear()
    local_ws.datasets.validate("loans", [{"kind": "row_count", "min": 1}])
    assert calls == [["customer"]]  # one column keeps the row count


SUITE = [
    {"kind": "not_null", "column": "rate", "max_fraction": 0.05},
    {"kind": "range", "column": "amount", "min": 0, "max": 1000},
    {"kind": "range", "column": "customer", "max": 95},
    {"kind": "allowed_values", "column": "city", "values": ["Dubai", "Sharjah"]},
    {"kind": "expression", "expr": "term >= 12"},
    {"kind": "type", "column": "score", "dtype": "float"},
    {"kind": "row_count", "min": 1000},
    {"kind": "unique", "columns": ["customer", "term"], "level": "warning"},
    {"kind": "representation", "column": "grade", "min_share": 0.1},
]


def test_validation_part_by_part_matches_the_whole_frame(local_ws: Workspace) -> None:
    frame = _frame(900)
    local_ws.datasets.ingest("loans", frame, part_rows=200)
    stored = local_ws.datasets.version("loans")
    assert len(stored.parts) == 5  # the version really is in parts
    parts_seen: list[int] = []
    service = local_ws.datasets.service
    original = service._frames

    def counting(ctx: object, version: object, *, columns: object = None) -> object:
        for part in original(ctx, version, columns=columns):  # type: ignore[arg-type]
            parts_seen.append(part.height)
            yield part

    service._frames = counting  # type: ignore[method-assign]
    report = local_ws.datasets.validate("loans", SUITE)
    whole = run_suite(frame, parse_suite(SUITE))
    assert parts_seen.count(200) >= 4  # read as parts, not concatenated first
    got = {c["name"]: c for c in report.result["checks"]}
    want = {c.name: c for c in whole.checks}
    assert report.result["rows"] == 900
    for name, check in want.items():
        assert (got[name]["passed"], got[name]["observed"], got[name]["message"]) == (
            check.passed,
            check.observed,
            check.message,
        ), name
    # failing rows are numbered across the whole version, not within their part
    customer = next(c for c in report.result["checks"] if c["column"] == "customer")
    expected_rows = [i for i, v in enumerate(frame["customer"]) if v > 95][:5]
    assert [r["row"] for r in customer["failing_rows"]] == expected_rows == [96, 193, 290, 387, 484]
    city = next(c for c in report.result["checks"] if c["kind"] == "allowed_values")
    assert city["observed"] == sum(1 for v in frame["city"] if v == "Ajman")


def test_put_many_seals_once_with_the_given_digests(local_ws: Workspace) -> None:
    import hashlib

    blobs: BlobStore = local_ws.blobs
    scope = local_ws.ctx.project_id
    items = [(b"alpha" * 1000), (b"beta" * 3), b""]
    pairs = [("sha256:" + hashlib.sha256(d).hexdigest(), d) for d in items]
    assert blobs.put_many(pairs + pairs[:1], scope=scope, dedicated_key=True) == 3
    assert blobs.put_many(pairs, scope=scope) == 0  # stored already
    for digest, data in pairs:
        assert blobs.get_bytes(digest, scope=scope) == data
    # A wrong digest is never read back as content.
    wrong = "sha256:" + hashlib.sha256(b"something else").hexdigest()
    blobs.put_many([(wrong, b"not that")], scope=scope)
    with pytest.raises(IntegrityError):
        blobs.get_bytes(wrong, scope=scope)
    with pytest.raises(InvalidInputError):
        blobs.put_many([("sha256:zz", b"x")], scope=scope)


def test_a_failed_durable_batch_publishes_nothing(local_ws: Workspace) -> None:
    import hashlib

    blobs: BlobStore = local_ws.blobs
    scope = local_ws.ctx.project_id
    data = os.urandom(100)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    seen: list[bool] = []

    def fail_inside_a_batch() -> None:
        with durable_batch():
            blobs.put_bytes(data, scope=scope, digest=digest)
            seen.append(blobs.exists(digest, scope=scope))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_inside_a_batch()
    assert seen == [False]  # not published inside the batch
    assert not blobs.exists(digest, scope=scope)
    temps = Path(blobs.url.removeprefix("file://")) / "_tmp"
    assert not temps.exists() or not list(temps.iterdir())
    with durable_batch():
        blobs.put_bytes(data, scope=scope, digest=digest)
    assert blobs.get_bytes(digest, scope=scope) == data


CHILD = textwrap.dedent(
    """
    import json, sys
    from keel.settings import Settings
    from keel.workspace import connect

    def peak():  # this process's own high-water mark (ru_maxrss keeps the parent's over exec)
        with open("/proc/self/status") as status:
            line = next(l for l in status if l.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024

    home, action = sys.argv[1], sys.argv[2]
    with connect(settings=Settings(home=home), principal="user:tester") as ws:
        ws.datasets.version("big")
        import pyarrow.parquet  # the part encoder's library (~80 MB of code), not data held
        base = peak()
        if action == "transform":
            ws.datasets.transform("big", [
                {"op": "filter", "where": "n % 2 = 0"},
                {"op": "derive", "column": "m", "expr": "n * 3"},
                {"op": "fill_null", "columns": ["text"], "strategy": "forward"},
            ], target="out")
        elif action == "validate":
            report = ws.datasets.validate("big", [
                {"kind": "range", "column": "n", "min": 0},
                {"kind": "not_null", "column": "text"},
                {"kind": "regex", "column": "text", "pattern": "^y+[0-9]+$"},
            ])  # the wide text column is checked too, part by part
            assert report.passed and report.result["rows"] == int(sys.argv[3])
        elif action == "iterate":
            rows = sum(frame.height for frame in ws.datasets.iter_frames("big"))
            assert rows == int(sys.argv[3])
        else:
            assert ws.datasets.read("big").height == int(sys.argv[3])
        print(json.dumps({"growth": peak() - base}))
    """
)


def test_transform_validate_and_iterate_hold_about_one_part(tmp_path: Path) -> None:
    """A version of 120 parts whose text column is ~380 MB in memory: streaming work grows
    the peak RSS by a fraction of that, while reading it whole grows it by all of it.
    (``drop_duplicates`` keeps the keys it has seen, so it is not part of this bound.)"""
    import json

    rows, part = 1_200_000, 10_000
    home = tmp_path / "home"
    text = "y" * 300
    with connect(settings=make_settings(home), principal="user:tester") as ws:
        frame = pl.DataFrame({"n": range(rows)}).with_columns(
            (pl.lit(text) + pl.col("n").cast(pl.String)).alias("text")
        )
        ws.datasets.service.ingest(
            ws.ctx, "big", FrameSource(frame, batch_rows=part), part_rows=part
        )
        assert len(ws.datasets.version("big").parts) == rows // part
        whole_bytes = frame.estimated_size()
        del frame

    def growth(action: str) -> int:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(home), action, str(rows)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "POLARS_MAX_THREADS": "1"},
        )
        return int(json.loads(out.stdout.strip().splitlines()[-1])["growth"])

    whole = growth("read")
    assert whole > 0.8 * whole_bytes  # the measure sees a whole version in memory
    bound = whole_bytes // 3
    for action in ("iterate", "transform", "validate"):
        assert growth(action) < bound, action
