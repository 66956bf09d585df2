"""``keel import mlflow --from URL``: copy an MLflow server's content into Keel."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from keel.cli._app import open_workspace
from keel.cli._output import echo_json, print_kv

__all__ = ["app"]

app = typer.Typer(help="Import from other tools into Keel.", no_args_is_help=True)


@app.command("mlflow")
def import_mlflow(
    source: Annotated[
        str, typer.Option("--from", help="The MLflow server's URL, e.g. http://mlflow:5000.")
    ],
    token: Annotated[
        str | None,
        typer.Option(help="Bearer token for the source (default: $MLFLOW_TRACKING_TOKEN)."),
    ] = None,
    username: Annotated[
        str | None, typer.Option(help="Basic-auth user (default: $MLFLOW_TRACKING_USERNAME).")
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(help="Basic-auth password (default: $MLFLOW_TRACKING_PASSWORD)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Copy experiments, runs, metrics, artifacts and registered models from an MLflow server.

    Safe to run again: what was already imported is skipped, and a run an interrupted import
    left half-copied is copied again.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

    from keel.server.mlflow import MlflowImporter, MlflowSource

    src = MlflowSource(
        source,
        token=token or os.environ.get("MLFLOW_TRACKING_TOKEN"),
        username=username or os.environ.get("MLFLOW_TRACKING_USERNAME"),
        password=password or os.environ.get("MLFLOW_TRACKING_PASSWORD"),
    )
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    try:
        with open_workspace() as ws, Progress(*columns, disable=as_json, transient=True) as bar:
            tasks: dict[str, TaskID] = {}

            def progress(stage: str, done: int, total: int, what: str) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(
                    tasks[stage], completed=done, total=total, description=f"{stage}: {what[:40]}"
                )

            report = MlflowImporter(src, ws, progress=progress).run()
    finally:
        src.close()
    if as_json:
        echo_json(report.to_dict())
        return
    print_kv(
        f"Imported from {source}",
        [(k, v) for k, v in report.to_dict().items() if k != "skipped"],
    )
    for line in report.skipped:
        typer.echo(f"skipped: {line}")
