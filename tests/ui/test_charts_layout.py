"""The pure parts of the UI: curve alignment and downsampling, histogram bars, graph layout."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from keel.ui import align_curves, layered_layout
from keel.ui._charts import histogram_bars, value_histogram


def test_short_curves_keep_every_point_on_a_shared_axis() -> None:
    curves = align_curves({"a": [(0, 1.0), (2, 3.0)], "b": [(1, 5.0), (2, float("nan"))]})
    assert curves.x == [0.0, 1.0, 2.0] and not curves.downsampled
    assert curves.series == {"a": [1.0, None, 3.0], "b": [None, 5.0, None]}


def test_long_curves_keep_their_extremes_in_order() -> None:
    points = [(s, math.sin(s / 100)) for s in range(10_000)]
    points[5_000] = (5_000, 40.0)  # a spike
    curves = align_curves({"a": points, "b": points[:3_000]}, buckets=200)
    assert curves.downsampled and len(curves.x) == 400 and curves.points_in == 13_000
    values = [v for v in curves.series["a"] if v is not None]
    assert max(values) == 40.0 and min(values) == min(v for _, v in points)
    assert all(v is None for v in curves.series["b"][130:])  # b stops at step 2,999


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 5_000), st.floats(-1e6, 1e6, allow_nan=False)),
        min_size=1,
        max_size=400,
    ),
    st.integers(1, 50),
)
def test_downsampling_is_bounded_and_keeps_the_range(
    points: list[tuple[int, float]], buckets: int
) -> None:
    latest = dict(points)  # a step logged twice shows its latest value
    curves = align_curves({"r": sorted(latest.items())}, buckets=buckets)
    assert len(curves.x) <= max(2 * buckets, len(latest))
    kept = [v for v in curves.series["r"] if v is not None]
    assert max(kept) == max(latest.values()) and min(kept) == min(latest.values())


def test_histograms() -> None:
    labels, shares = value_histogram([1.0, 2.0, 2.0, 3.0, float("inf")], bins=2)
    assert len(labels) == 2 and math.isclose(sum(shares), 1.0)
    bars = histogram_bars(labels, [shares, [0.5, 0.5]], width=100, height=50)
    assert len(bars) == 4 and max(b.height for b in bars) == 46
    assert all(0 <= b.x <= 100 and b.y + b.height == 50 for b in bars)


def test_layout_puts_every_edge_left_to_right() -> None:
    edges = [
        ("src", "ds", "ingested"),
        ("ds", "run", "used_by"),
        ("run", "model", "produced"),
        ("model", "dep", "deployed"),
        ("ds", "run2", "used_by"),
    ]
    layout = layered_layout(["dep", "model", "run", "run2", "ds", "src"], edges)
    where = {p.key: p for p in layout.nodes}
    for up, down, _ in edges:
        assert where[up].layer < where[down].layer
        assert where[up].x < where[down].x
    assert len({(p.x, p.y) for p in layout.nodes}) == len(layout.nodes)  # no overlap
    assert len(layout.wires) == len(edges) and layout.width > where["dep"].x


def test_layout_survives_a_cycle() -> None:
    layout = layered_layout(["a", "b"], [("a", "b", "x"), ("b", "a", "y")])
    assert len(layout.nodes) == 2 and len(layout.wires) == 2
