"""The lineage graph: from raw sources through datasets, runs and models to predictions."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path, Query
from starlette.responses import RedirectResponse, Response

from keel.errors import InvalidInputError
from keel.lineage import LineageGraph, Node, parse_node
from keel.serving import PredictionTrace
from keel.ui._layout import NODE_HEIGHT, NODE_WIDTH, layered_layout
from keel.ui._nodes import NodeLink, NodeNames
from keel.ui._web import PREFIX, PageRoute, Viewer, ViewerDep, render

__all__ = ["router"]

router = APIRouter(prefix=PREFIX + "/p/{project}", route_class=PageRoute, include_in_schema=False)
_NODE_ID = re.compile(r"^[A-Za-z0-9_.:@\-]{1,256}$")
MAX_SHOWN = 300


def _short(text: str, limit: int = 26) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@router.get("/lineage")
def lineage(
    viewer: ViewerDep,
    node: Annotated[str | None, Query(max_length=300)] = None,
    depth: Annotated[int, Query(ge=1, le=50)] = 10,
    direction: Annotated[str, Query(pattern="^(up|down|both)$")] = "both",
) -> Response:
    names = NodeNames(viewer)
    if not node:
        ui, ctx = viewer.ui, viewer.ctx
        starts: list[NodeLink] = []
        for d in ui.datasets.list(ctx)[:20]:
            starts.append(names.link(Node("dataset", d.id)))
        for m in ui.services.models.list(ctx)[:20]:
            starts.append(names.link(Node("model", m.id)))
        for dep in ui.deployments.list(ctx)[:20]:
            starts.append(names.link(Node("deployment", dep.id)))
        return render(
            viewer,
            viewer.request,
            "lineage.html",
            title="Lineage",
            starts=starts,
            trace=None,
            graph=None,
            root=None,
            depth=depth,
            direction=direction,
        )
    target = parse_node(node)
    if not _NODE_ID.match(target.id):
        raise InvalidInputError(
            f"Invalid lineage node id {target.id[:80]!r}: ids use letters, digits and '_.:@-'.",
            node=node[:80],
        )
    graph = viewer.ui.services.lineage.graph(viewer.ctx, target, depth=depth, direction=direction)
    return _graph_page(viewer, graph, depth=depth, direction=direction, node=node)


def _graph_page(
    viewer: Viewer,
    graph: LineageGraph,
    *,
    depth: int,
    direction: str,
    node: str,
    trace: PredictionTrace | None = None,
) -> Response:
    """The page of ``graph`` laid out left to right (and of the ``trace`` it belongs to)."""
    target = graph.root
    edges = graph.upstream + graph.downstream
    names = NodeNames(viewer, edges)
    keys = sorted(graph.nodes, key=lambda n: (n != target, n.type, n.id))[:MAX_SHOWN]
    layout = layered_layout(keys, [(e.upstream, e.downstream, e.relation) for e in edges])
    links = {key: names.link(key) for key in keys}
    boxes = [
        {
            "x": p.x,
            "y": p.y,
            "link": links[p.key],
            "text": _short(links[p.key].label),
            "root": p.key == target,
        }
        for p in layout.nodes
    ]
    return render(
        viewer,
        viewer.request,
        "lineage.html",
        title="Lineage" if trace is None else f"Prediction {trace.prediction_id}",
        starts=[],
        graph=layout,
        boxes=boxes,
        root=links.get(target) or names.link(target),
        node_width=NODE_WIDTH,
        node_height=NODE_HEIGHT,
        truncated=graph.truncated or len(graph.nodes) > MAX_SHOWN,
        depth=depth,
        direction=direction,
        node=node,
        trace=trace,
        listing=sorted(links.values(), key=lambda link: (link.node.type, link.label)),
    )


@router.get("/predictions/{prediction_id}")
def prediction(
    viewer: ViewerDep,
    prediction_id: Annotated[str, Path(min_length=1, max_length=40)],
    depth: Annotated[int, Query(ge=1, le=50)] = 10,
) -> Response:
    """One served prediction: its logged row, revision, model version, label and lineage."""
    found = viewer.ui.deployments.trace_prediction(viewer.ctx, prediction_id, depth=depth)
    root = found.log or Node("prediction_log", prediction_id)
    graph = found.lineage or LineageGraph(root=root)
    return _graph_page(
        viewer, graph, depth=depth, direction="up", node=str(graph.root), trace=found
    )


@router.get("/predictions")
def find_prediction(
    viewer: ViewerDep, id: Annotated[str, Query(min_length=1, max_length=40)]
) -> Response:
    """The trace form's target: the page of the prediction id typed in."""
    return RedirectResponse(f"{viewer.base}/predictions/{quote(id.strip(), safe='')}", 303)
