"""The lineage graph: link objects as they are made, then walk upstream and downstream."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from keel.errors import InvalidInputError
from keel.governance import Context, Governor, Permission
from keel.store import LineageRepository

__all__ = [
    "NODE_TYPES",
    "LineageEdge",
    "LineageGraph",
    "LineageService",
    "Node",
    "check_depth",
    "parse_node",
]

#: Object types that can appear in the graph.
NODE_TYPES = frozenset(
    {
        "source",
        "dataset",
        "dataset_version",
        "transform",
        "validation",
        "experiment",
        "run",
        "pipeline_run",
        "step_run",
        "artifact",
        "model",
        "model_version",
        "deployment",
        "deployment_revision",
        "prediction_log",
        "monitor_report",
        "alert",
        "trigger",
        "erasure",
    }
)
MAX_DEPTH = 50
MAX_NODES = 10_000


@dataclass(frozen=True, slots=True, order=True)
class Node:
    """One object of the graph, by type and id."""

    type: str
    id: str

    def __str__(self) -> str:
        return f"{self.type}:{self.id}"


def parse_node(text: str) -> Node:
    """``TYPE:ID`` (for example ``run:01J…`` or ``model_version:01J…``) as a Node."""
    kind, sep, ident = text.partition(":")
    if not sep or not ident or kind not in NODE_TYPES:
        raise InvalidInputError(
            f"Invalid lineage node {text!r:.80}: write TYPE:ID with TYPE one of "
            f"{', '.join(sorted(NODE_TYPES))} (for example run:01J9ZQ…).",
            node=text[:80],
        )
    return Node(kind, ident)


def check_depth(depth: int) -> None:
    """Refuse a graph walk of fewer than 1 or more than ``MAX_DEPTH`` levels."""
    if not 1 <= depth <= MAX_DEPTH:
        raise InvalidInputError(f"depth must be between 1 and {MAX_DEPTH}; got {depth}.")


@dataclass(frozen=True, slots=True)
class LineageEdge:
    upstream: Node
    downstream: Node
    relation: str
    details: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "upstream": str(self.upstream),
            "downstream": str(self.downstream),
            "relation": self.relation,
            "details": self.details,
        }


@dataclass(frozen=True, slots=True)
class LineageGraph:
    """The part of the graph reached from ``root``: its nodes and edges."""

    root: Node
    upstream: list[LineageEdge] = field(default_factory=list)
    downstream: list[LineageEdge] = field(default_factory=list)
    truncated: bool = False

    @property
    def nodes(self) -> set[Node]:
        found = {self.root}
        for edge in (*self.upstream, *self.downstream):
            found.update((edge.upstream, edge.downstream))
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "upstream": [edge.to_dict() for edge in self.upstream],
            "downstream": [edge.to_dict() for edge in self.downstream],
            "nodes": sorted(str(node) for node in self.nodes),
            "truncated": self.truncated,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LineageGraph:
        """The graph ``to_dict`` wrote (an API answer, say)."""

        def edges(items: list[dict[str, Any]]) -> list[LineageEdge]:
            return [
                LineageEdge(
                    parse_node(e["upstream"]),
                    parse_node(e["downstream"]),
                    e["relation"],
                    e.get("details"),
                )
                for e in items
            ]

        return cls(
            root=parse_node(data["root"]),
            upstream=edges(data["upstream"]),
            downstream=edges(data["downstream"]),
            truncated=bool(data["truncated"]),
        )


class LineageService:
    """Records edges inside the writer's transaction and answers graph walks."""

    def __init__(self, governor: Governor) -> None:
        self._gov = governor

    @staticmethod
    def link(
        session: Session,
        ctx: Context,
        upstream: Node,
        downstream: Node,
        relation: str,
        *,
        details: dict[str, Any] | None = None,
    ) -> bool:
        """Record ``upstream → downstream`` in the caller's (already authorized) transaction."""
        for node in (upstream, downstream):
            if node.type not in NODE_TYPES:
                raise InvalidInputError(f"Unknown lineage node type '{node.type}'.")
        return LineageRepository(session, ctx.project_id).add(
            (upstream.type, upstream.id),
            (downstream.type, downstream.id),
            relation,
            request_id=ctx.request_id,
            details=details,
        )

    def graph(
        self, ctx: Context, node: Node, *, depth: int = 10, direction: str = "both"
    ) -> LineageGraph:
        """Walk up to ``depth`` levels upstream and/or downstream of ``node``."""
        check_depth(depth)
        if direction not in ("up", "down", "both"):
            raise InvalidInputError("direction must be 'up', 'down' or 'both'.")
        with self._gov.read(
            ctx, Permission.LINEAGE_READ, "lineage.read", object_type=node.type, object_id=node.id
        ) as session:
            repo = LineageRepository(session, ctx.project_id)
            up, up_cut = self._walk(repo, node, depth, "up") if direction != "down" else ([], False)
            down, down_cut = (
                self._walk(repo, node, depth, "down") if direction != "up" else ([], False)
            )
        return LineageGraph(root=node, upstream=up, downstream=down, truncated=up_cut or down_cut)

    @staticmethod
    def _walk(
        repo: LineageRepository, start: Node, depth: int, direction: str
    ) -> tuple[list[LineageEdge], bool]:
        seen = {start}
        frontier = [start]
        edges: list[LineageEdge] = []
        for _ in range(depth):
            if not frontier:
                break
            rows = repo.edges_touching(((n.type, n.id) for n in frontier), direction=direction)
            frontier = []
            for row in rows:
                edge = LineageEdge(
                    Node(row.src_type, row.src_id),
                    Node(row.dst_type, row.dst_id),
                    row.relation,
                    row.details,
                )
                edges.append(edge)
                nxt = edge.upstream if direction == "up" else edge.downstream
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
                if len(seen) > MAX_NODES:
                    return edges, True
        if not frontier:
            return edges, False
        # Cut only if the walk could have gone on: one more level has an edge.
        beyond = repo.edges_touching(((n.type, n.id) for n in frontier), direction=direction)
        return edges, bool(beyond)
