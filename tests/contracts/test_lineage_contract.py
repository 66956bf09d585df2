"""The lineage contract: edges recorded with the objects, walked both ways, project-scoped."""

from __future__ import annotations

import itertools

import pytest

from keel.errors import InvalidInputError
from keel.lineage import LineageService, Node
from keel.workspace import Workspace


def _link(ws: Workspace, up: Node, down: Node, relation: str) -> None:
    with ws._governor.db.write() as session:
        LineageService.link(session, ws.ctx, up, down, relation)


def test_registering_a_model_from_a_run_links_them(ws: Workspace) -> None:
    with ws.runs.start(experiment="e", capture_env=False) as run:
        pass
    version = ws.models.register("m", artifact=b"x", format="onnx", run_id=run.id)
    graph = ws.lineage.graph(f"model_version:{version.id}")
    assert [(str(e.upstream), e.relation) for e in graph.upstream] == [
        (f"run:{run.id}", "produced")
    ]
    down = ws.lineage.graph(Node("run", run.id), direction="down")
    assert {str(n) for n in down.nodes} == {f"run:{run.id}", f"model_version:{version.id}"}


def test_walks_follow_several_levels_and_respect_depth(ws: Workspace) -> None:
    chain = [
        Node("dataset_version", "d1"),
        Node("run", "r1"),
        Node("model_version", "m1"),
        Node("deployment", "dep1"),
    ]
    for up, down in itertools.pairwise(chain):
        _link(ws, up, down, "used")
    _link(ws, chain[0], chain[1], "used")  # the same edge twice is recorded once
    full = ws.lineage.graph(chain[-1], direction="up")
    assert [str(e.upstream) for e in full.upstream] == [
        "model_version:m1",
        "run:r1",
        "dataset_version:d1",
    ]
    short = ws.lineage.graph(chain[-1], direction="up", depth=1)
    assert len(short.upstream) == 1 and short.truncated
    assert len(ws.lineage.graph(chain[0], direction="down").downstream) == 3


def test_lineage_is_scoped_to_the_project(ws: Workspace) -> None:
    _link(ws, Node("run", "r"), Node("model_version", "m"), "produced")
    other = ws.projects.create("other")
    from keel.workspace import connect
    from tests.conftest import make_settings

    with connect(
        settings=make_settings(ws.settings.home, ws.settings.db_url, project=other.name),
        principal=ws.ctx.principal,
    ) as elsewhere:
        assert elsewhere.lineage.graph("model_version:m").upstream == []


def test_bad_nodes_are_refused() -> None:
    from keel.lineage import parse_node

    with pytest.raises(InvalidInputError, match="TYPE:ID"):
        parse_node("spaceship:1")
    with pytest.raises(InvalidInputError, match="TYPE:ID"):
        parse_node("run")
