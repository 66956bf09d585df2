"""``keel lineage show`` and ``keel lineage export``."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from keel.cli._app import open_workspace
from keel.cli._output import echo_json
from keel.errors import InvalidInputError

if TYPE_CHECKING:
    from keel.lineage import LineageEdge, Node, NodeDescription
    from keel.workspace import Workspace

__all__ = ["app", "edge_line"]

app = typer.Typer(help="Follow an object's lineage upstream and downstream.", no_args_is_help=True)


@app.command("show")
def show(
    node: Annotated[str, typer.Argument(help="TYPE:ID, e.g. model_version:01J… or run:01J…")],
    depth: Annotated[int, typer.Option("--depth", min=1, max=50)] = 10,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Print what NODE was made from (upstream) and what was made from it (downstream)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.tree import Tree

    with open_workspace() as ws:
        graph = ws.lineage.graph(node, depth=depth)
    if as_json:
        echo_json(graph.to_dict())
        return
    tree = Tree(f"[bold]{escape(str(graph.root))}[/]")
    up = tree.add("upstream (made from)")
    for edge in graph.upstream:
        up.add(escape(edge_line(edge)))
    down = tree.add("downstream (made into)")
    for edge in graph.downstream:
        down.add(escape(edge_line(edge)))
    if graph.truncated:
        tree.add("[yellow]… truncated: raise --depth to see more[/]")
    Console().print(tree)


def edge_line(edge: LineageEdge) -> str:
    """``a —relation→ b``, and why, when the edge records it (the closed loop's hops do)."""
    line = f"{edge.upstream} —{edge.relation}→ {edge.downstream}"
    why = (edge.details or {}).get("why")
    return f"{line}  [why: {why}]" if isinstance(why, str) and why else line


@app.command("export")
def export(
    out: Annotated[
        Path | None, typer.Option("--out", help="Write to FILE instead of standard output.")
    ] = None,
) -> None:
    """Write the project's lineage as OpenLineage 2-0-2 RunEvents, one JSON object per line."""
    from rich.console import Console
    from rich.markup import escape

    with open_workspace() as ws:
        events = ws.lineage.openlineage_events(describe=_describer(ws))
    lines = "".join(json.dumps(event, sort_keys=True) + "\n" for event in events)
    if out is None:
        sys.stdout.write(lines)
        return
    tmp = out.with_name(out.name + ".tmp")
    try:
        tmp.write_text(lines, encoding="utf-8")
        tmp.replace(out)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise InvalidInputError(
            f"Cannot write the OpenLineage events to {out}: {exc.strerror or exc}. Check that "
            "its folder exists and is writable, or leave out --out to print them."
        ) from exc
    runs = len({event["run"]["runId"] for event in events})
    Console(stderr=True).print(
        f"Wrote {len(events)} OpenLineage events ({runs} runs) to {escape(str(out))}"
    )


def _describer(ws: Workspace) -> Callable[[Node], NodeDescription | None]:
    """Names, schemas and validation results of the project's dataset versions, by node."""
    from keel.lineage import NodeDescription, assertions_from_validation

    known: dict[tuple[str, str], NodeDescription] = {}
    for dataset in ws.datasets.list():
        for version in ws.datasets.versions(dataset.name):
            known[("dataset_version", version.id)] = NodeDescription(
                name=f"{version.dataset}@{version.version}",
                version=str(version.version),
                fields=tuple((name, str(dtype)) for name, dtype in version.schema),
            )
            for report in ws.datasets.reports(dataset.name, version.version):
                known[("validation", report.id)] = NodeDescription(
                    name=f"validate {version.dataset}@{version.version}",
                    assertions=assertions_from_validation(report.result),
                )

    def describe(node: Node) -> NodeDescription | None:
        return known.get((node.type, node.id))

    return describe
