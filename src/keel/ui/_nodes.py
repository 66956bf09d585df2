"""Readable names and page links for lineage nodes (``run:01H…`` → ``run "baseline"``).

Only the objects a page shows are looked up: a dataset version, a validation report, a source
or a prediction log is placed through its neighbours in the lineage graph (the page's own edges,
or one depth-1 lookup), so the cost follows the page, not the size of the project.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from keel.errors import KeelError
from keel.lineage import LineageEdge, Node

if TYPE_CHECKING:
    from keel.ui._web import Viewer

__all__ = ["NodeLink", "NodeNames"]

_MAX_LOOKUPS = 200


@dataclass(frozen=True, slots=True)
class NodeLink:
    """A node as a page shows it: its type, a label, its page (or None) and its graph page."""

    node: Node
    label: str
    url: str | None
    lineage_url: str

    @property
    def key(self) -> str:
        return f"{self.node.type}:{self.node.id}"


def _q(text: str) -> str:
    return quote(text, safe="")


class NodeNames:
    """Resolves nodes of one page, reading each kind of object at most once.

    ``edges`` are the lineage edges the page already holds; a node none of them touches is
    placed by a depth-1 lineage lookup (at most ``_MAX_LOOKUPS`` per page).
    """

    def __init__(self, viewer: Viewer, edges: Sequence[LineageEdge] = ()) -> None:
        self._viewer = viewer
        self._maps: dict[str, dict[str, tuple[str, str | None]]] = {}
        self._lookups = 0
        self._near: dict[Node, list[tuple[Node, str, dict[str, Any]]]] = {}
        self._looked: set[Node] = set()
        self._versions: dict[str, dict[str, int]] = {}  # dataset name -> version id -> number
        for edge in edges:
            self._add(edge)

    def _add(self, edge: LineageEdge) -> None:
        details = edge.details or {}
        self._near.setdefault(edge.upstream, []).append((edge.downstream, edge.relation, details))
        self._near.setdefault(edge.downstream, []).append((edge.upstream, edge.relation, details))

    def _budget(self) -> bool:
        self._lookups += 1
        return self._lookups <= _MAX_LOOKUPS

    def _next(self, node: Node, kind: str) -> tuple[Node, dict[str, Any]] | None:
        """A neighbour of type ``kind``: from the known edges, else by one lineage lookup."""
        for _pass in range(2):
            near = self._near.get(node, [])
            found = next(((n, d) for n, _r, d in near if n.type == kind), None)
            if found is not None or node in self._looked or not self._budget():
                return found
            self._looked.add(node)
            graph = self._viewer.ui.services.lineage.graph(
                self._viewer.ctx, node, depth=1, direction="both"
            )
            for edge in graph.upstream + graph.downstream:
                self._add(edge)
        return None

    def link(self, node: Node) -> NodeLink:
        base = self._viewer.base
        label, url = self._resolve(node)
        graph = f"{base}/lineage?node={_q(node.type + ':' + node.id)}"
        return NodeLink(node, label, url, graph)

    def _resolve(self, node: Node) -> tuple[str, str | None]:
        base = self._viewer.base
        short = node.id[:12] + ("…" if len(node.id) > 12 else "")
        try:
            found: tuple[str, str | None] | None = None
            if node.type == "run" and self._budget():
                run = self._viewer.ui.services.runs.get(self._viewer.ctx, node.id)
                found = f"run {run.name}", f"{base}/runs/{_q(run.id)}"
            elif node.type == "dataset":
                found = self._datasets().get(node.id)
            elif node.type == "dataset_version":
                found = self._dataset_version(node.id)
            elif node.type == "validation":
                found = self._validation(node)
            elif node.type == "source":
                found = self._source(node)
            elif node.type in ("model", "model_version"):
                found = self._models().get(f"{node.type}:{node.id}")
            elif node.type == "deployment":
                found = self._deployments().get(node.id)
            elif node.type == "prediction_log":
                found = self._prediction_log(node)
            elif node.type == "experiment" and self._budget():
                experiment = self._viewer.ui.services.experiments.get(self._viewer.ctx, node.id)
                found = (
                    f"experiment {experiment.name}",
                    f"{base}/runs?experiment={_q(experiment.name)}",
                )
            if found is not None:
                return found
        except KeelError:
            pass
        return f"{node.type.replace('_', ' ')} {short}", None

    def _datasets(self) -> dict[str, tuple[str, str | None]]:
        """Dataset id -> (label, page), from one listing."""
        if "data" not in self._maps:
            ui, ctx, base = self._viewer.ui, self._viewer.ctx, self._viewer.base
            self._maps["data"] = {
                d.id: (f"dataset {d.name}", f"{base}/datasets/{_q(d.name)}")
                for d in ui.datasets.list(ctx)
            }
        return self._maps["data"]

    def _version_of(self, version_id: str) -> tuple[str, int] | None:
        """(dataset name, version number) of a dataset version, through its dataset node."""
        near = self._next(Node("dataset_version", version_id), "dataset")
        if near is None:
            return None
        found = self._datasets().get(near[0].id)
        if found is None:
            return None
        name = found[0].removeprefix("dataset ")
        if name not in self._versions and self._budget():
            versions = self._viewer.ui.datasets.versions(self._viewer.ctx, name)
            self._versions[name] = {v.id: v.version for v in versions}
        number = self._versions.get(name, {}).get(version_id)
        return None if number is None else (name, number)

    def _dataset_version(self, version_id: str) -> tuple[str, str | None] | None:
        placed = self._version_of(version_id)
        if placed is None:
            return None
        name, number = placed
        return f"{name} v{number}", f"{self._viewer.base}/datasets/{_q(name)}/v/{number}"

    def _validation(self, node: Node) -> tuple[str, str | None] | None:
        near = self._next(node, "dataset_version")
        placed = self._version_of(near[0].id) if near is not None else None
        if placed is None:
            return None
        name, number = placed
        page = f"{self._viewer.base}/datasets/{_q(name)}/reports/{_q(node.id)}"
        return f"validation of {name} v{number}", page

    def _source(self, node: Node) -> tuple[str, str | None] | None:
        """A source links to the dataset it was ingested into."""
        near = self._next(node, "dataset_version")
        if near is None:
            return None
        version, details = near
        where = next((str(details[k]) for k in ("url", "path", "table") if details.get(k)), "")
        kind = str(details.get("kind") or "")
        label = " ".join(part for part in ("source", kind, where[-60:]) if part)
        placed = self._version_of(version.id)
        page = f"{self._viewer.base}/datasets/{_q(placed[0])}" if placed else None
        return label, page

    def _prediction_log(self, node: Node) -> tuple[str, str | None] | None:
        """A prediction log links to its deployment's monitoring page."""
        deployments = self._deployments()
        near = self._next(node, "deployment")
        deployment_id = near[0].id if near is not None else node.id
        found = deployments.get(deployment_id)
        if found is None:
            return None
        name = found[0].removeprefix("deployment ")
        return (
            f"prediction log of {name}",
            f"{self._viewer.base}/monitoring/deployments/{_q(name)}",
        )

    def _models(self) -> dict[str, tuple[str, str | None]]:
        if "models" not in self._maps:
            registry, ctx, base = (
                self._viewer.ui.services.models,
                self._viewer.ctx,
                self._viewer.base,
            )
            found: dict[str, tuple[str, str | None]] = {}
            for model in registry.list(ctx)[:_MAX_LOOKUPS]:
                page = f"{base}/models/{_q(model.name)}"
                found[f"model:{model.id}"] = (f"model {model.name}", page)
                for version in registry.versions(ctx, model.name):
                    found[f"model_version:{version.id}"] = (
                        f"{model.name} v{version.version}",
                        f"{page}/v/{version.version}",
                    )
            self._maps["models"] = found
        return self._maps["models"]

    def _deployments(self) -> dict[str, tuple[str, str | None]]:
        if "deployments" not in self._maps:
            ui, ctx, base = self._viewer.ui, self._viewer.ctx, self._viewer.base
            self._maps["deployments"] = {
                d.id: (f"deployment {d.name}", f"{base}/deployments/{_q(d.name)}")
                for d in ui.deployments.list(ctx)
            }
        return self._maps["deployments"]
