"""Review fixes: a generalization that coarsens nothing keeps the personal-data label, and
truncating a Time or Duration column fails clearly."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from keel import Workspace
from keel.data._anonymize import AnonymizationRecord, apply_anonymization, parse_steps
from keel.errors import InvalidInputError

KEY = bytes(range(32))


def _run(
    frame: pl.DataFrame, steps: list[dict[str, object]]
) -> tuple[pl.DataFrame, AnonymizationRecord]:
    return apply_anonymization(frame, parse_steps(steps), key=KEY)


def _births() -> pl.Series:
    return pl.Series(
        "date_of_birth", [dt.date(1950 + i, 1 + i % 12, 1 + i % 28) for i in range(40)]
    )


@pytest.mark.parametrize(
    ("unit", "kept"), [("day", True), ("hour", True), ("month", False), ("year", False)]
)
def test_truncating_a_date_of_birth_keeps_its_label_unless_it_got_coarser(
    local_ws: Workspace, unit: str, kept: bool
) -> None:
    births = _births()
    local_ws.datasets.ingest("p", pl.DataFrame([births]))
    local_ws.datasets.classify("p")
    derived = local_ws.datasets.anonymize(
        "p", [{"kind": "generalize", "column": "date_of_birth", "truncate": unit}], version=1
    )
    out = local_ws.datasets.read("p", derived.version)["date_of_birth"]
    assert out.equals(births) is kept
    assert derived.classification is not None and derived.transform is not None
    label = derived.classification["columns"]["date_of_birth"]
    if kept:
        assert label["categories"] == ["date_of_birth"]
        assert derived.transform["record"]["retained"] == ["date_of_birth"]
    else:
        assert label["categories"] == [] and label["detector"] == "anonymized"
        assert derived.transform["record"]["retained"] == []


def test_truncating_datetimes_is_judged_by_what_changed() -> None:
    midnight = [dt.datetime(2000, 1, 1 + i) for i in range(10)]
    _, record = _run(
        pl.DataFrame({"t": midnight}), [{"kind": "generalize", "column": "t", "truncate": "day"}]
    )
    assert record.retained == ("t",)  # already whole days: nothing coarsened
    timed = [dt.datetime(2000, 1, 1 + i, 7, 15) for i in range(10)]
    out, record = _run(
        pl.DataFrame({"t": timed}), [{"kind": "generalize", "column": "t", "truncate": "day"}]
    )
    assert out["t"].to_list() == [dt.datetime(2000, 1, 1 + i) for i in range(10)]
    assert record.retained == () and record.anonymized_columns == ("t",)


def test_a_later_no_op_truncation_does_not_undo_an_earlier_coarsening() -> None:
    frame = pl.DataFrame([_births()])
    out, record = _run(
        frame,
        [
            {"kind": "generalize", "column": "date_of_birth", "truncate": "month"},
            {"kind": "generalize", "column": "date_of_birth", "truncate": "day"},
        ],
    )
    assert out["date_of_birth"].dt.day().unique().to_list() == [1]
    assert record.retained == () and record.anonymized_columns == ("date_of_birth",)


@pytest.mark.parametrize(
    ("values", "step", "kept"),
    [
        (list(range(40)), {"bin_width": 1}, True),  # "[7, 8)" names 7
        ([float(v) for v in range(40)], {"bin_width": 1}, True),  # whole-number floats
        (list(range(40)), {"bins": list(range(41))}, True),  # every value in its own bin
        (list(range(40)), {"bin_width": 10}, False),
        (list(range(40)), {"bins": [10, 20, 30]}, False),
        ([v + 0.25 for v in range(40)], {"bin_width": 1}, False),  # fractions lost
    ],
)
def test_bins_finer_than_the_values_keep_them(
    values: list[float], step: dict[str, object], kept: bool
) -> None:
    frame = pl.DataFrame({"age": values})
    out, record = _run(frame, [{"kind": "generalize", "column": "age", **step}])
    assert out["age"].dtype == pl.String
    assert (record.retained == ("age",)) is kept
    assert (record.anonymized_columns == ()) is kept


def test_a_prefix_as_long_as_the_values_keeps_them() -> None:
    frame = pl.DataFrame({"code": [f"AB{i:04d}" for i in range(20)]})
    _, record = _run(frame, [{"kind": "generalize", "column": "code", "keep_first": 6}])
    assert record.retained == ("code",)
    _, record = _run(frame, [{"kind": "generalize", "column": "code", "keep_first": 2}])
    assert record.retained == ()


@pytest.mark.parametrize(
    ("values", "dtype"),
    [
        ([dt.time(8 + i, 30) for i in range(5)], "Time"),
        ([dt.timedelta(minutes=90 * i) for i in range(5)], "Duration"),
    ],
)
def test_truncating_a_time_or_duration_fails_clearly(
    local_ws: Workspace, values: list[object], dtype: str
) -> None:
    local_ws.datasets.ingest("shifts", pl.DataFrame({"shift_start": values}))
    with pytest.raises(InvalidInputError) as caught:
        local_ws.datasets.anonymize(
            "shifts", [{"kind": "generalize", "column": "shift_start", "truncate": "hour"}]
        )
    message = str(caught.value)
    assert "shift_start" in message and dtype in message
    assert "Date and Datetime" in message and "bin_width" in message
    assert [v.version for v in local_ws.datasets.versions("shifts")] == [1]
