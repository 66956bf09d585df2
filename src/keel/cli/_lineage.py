"""``keel lineage show``."""

from __future__ import annotations

from typing import Annotated

import typer

from keel.cli._app import open_workspace
from keel.cli._output import echo_json

__all__ = ["app"]

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
        up.add(escape(f"{edge.upstream} —{edge.relation}→ {edge.downstream}"))
    down = tree.add("downstream (made into)")
    for edge in graph.downstream:
        down.add(escape(f"{edge.upstream} —{edge.relation}→ {edge.downstream}"))
    if graph.truncated:
        tree.add("[yellow]… truncated: raise --depth to see more[/]")
    Console().print(tree)
