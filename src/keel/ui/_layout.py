"""A layered left-to-right layout of a lineage graph, computed on the server (pure).

Layers are longest-path distances from the sources (raw data on the left, predictions on the
right); within a layer, nodes are ordered by the mean position of their neighbours (a few
barycentre sweeps), which keeps most edges short and uncrossed.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Layout", "Placed", "Wire", "layered_layout"]

K = TypeVar("K", bound=Hashable)

NODE_WIDTH = 190
NODE_HEIGHT = 44
_GAP_X = 70
_GAP_Y = 22
_MARGIN = 12


@dataclass(frozen=True, slots=True)
class Placed(Generic[K]):
    key: K
    x: float
    y: float
    layer: int


@dataclass(frozen=True, slots=True)
class Wire(Generic[K]):
    upstream: K
    downstream: K
    path: str
    label: str
    label_x: float
    label_y: float


@dataclass(frozen=True, slots=True)
class Layout(Generic[K]):
    nodes: list[Placed[K]]
    wires: list[Wire[K]]
    width: float
    height: float


def _layers(
    keys: Sequence[Hashable], edges: Sequence[tuple[Hashable, Hashable, str]]
) -> dict[Hashable, int]:
    layer = dict.fromkeys(keys, 0)
    # Longest path by relaxation, bounded so that a cycle cannot loop forever.
    for _ in range(len(keys)):
        changed = False
        for up, down, _label in edges:
            if up != down and layer[down] < layer[up] + 1 <= len(keys):
                layer[down] = layer[up] + 1
                changed = True
        if not changed:
            break
    return layer


def layered_layout(
    keys: Sequence[K], edges: Sequence[tuple[K, K, str]], *, sweeps: int = 4
) -> Layout[K]:
    """Positions for ``keys`` and SVG paths for ``edges`` (``(upstream, downstream, label)``)."""
    known = set(keys)
    edges = [(u, d, label) for u, d, label in edges if u in known and d in known]
    layer = _layers(keys, edges)
    columns: dict[int, list[K]] = {}
    for key in keys:
        columns.setdefault(layer[key], []).append(key)
    order = {key: i for column in columns.values() for i, key in enumerate(column)}
    neighbours: dict[K, list[K]] = {key: [] for key in keys}
    for up, down, _label in edges:
        neighbours[up].append(down)
        neighbours[down].append(up)
    for _ in range(sweeps):
        for index in sorted(columns):
            column = columns[index]

            def centre(key: K) -> float:
                near = neighbours[key]
                return sum(order[n] for n in near) / len(near) if near else float(order[key])

            column.sort(key=centre)
            for i, key in enumerate(column):
                order[key] = i
    tallest = max((len(c) for c in columns.values()), default=0)
    height = _MARGIN * 2 + tallest * (NODE_HEIGHT + _GAP_Y)
    placed: dict[K, Placed[K]] = {}
    for index, column in columns.items():
        offset = (tallest - len(column)) * (NODE_HEIGHT + _GAP_Y) / 2
        for i, key in enumerate(column):
            placed[key] = Placed(
                key,
                _MARGIN + index * (NODE_WIDTH + _GAP_X),
                _MARGIN + offset + i * (NODE_HEIGHT + _GAP_Y),
                index,
            )
    wires: list[Wire[K]] = []
    for up, down, label in edges:
        a, b = placed[up], placed[down]
        x1, y1 = a.x + NODE_WIDTH, a.y + NODE_HEIGHT / 2
        x2, y2 = b.x, b.y + NODE_HEIGHT / 2
        if b.layer <= a.layer:  # a back edge (a cycle): route it below
            x2 = b.x + NODE_WIDTH / 2
            y2 = b.y + NODE_HEIGHT
        bend = max(abs(x2 - x1) / 2, 30)
        path = (
            f"M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} "
            f"{x2 - bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
        )
        wires.append(Wire(up, down, path, label, (x1 + x2) / 2, (y1 + y2) / 2 - 4))
    columns_used = max(columns, default=0) + 1
    width = _MARGIN * 2 + columns_used * NODE_WIDTH + (columns_used - 1) * _GAP_X
    return Layout(list(placed.values()), wires, width, height)
