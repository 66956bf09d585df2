"""``keel runs list|show``."""

from __future__ import annotations

from typing import Annotated

import typer

from keel.cli._app import open_workspace
from keel.cli._output import echo_json, print_kv, print_table

__all__ = ["app"]

app = typer.Typer(help="List and inspect tracked runs.", no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _when(millis: int | None) -> str:
    from keel.clock import from_millis

    return "" if millis is None else from_millis(millis).strftime("%Y-%m-%d %H:%M:%S")


@app.command("list")
def list_runs(
    filter: Annotated[
        str | None,
        typer.Option("--filter", "-f", help="e.g. \"metrics.auc > 0.8 and params.model = 'rf'\""),
    ] = None,
    experiment: Annotated[
        list[str] | None, typer.Option("--experiment", "-e", help="Experiment name (repeatable).")
    ] = None,
    order_by: Annotated[
        list[str] | None, typer.Option("--order-by", "-o", help="e.g. 'metrics.auc DESC'.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=50000)] = 50,
    as_json: JsonOption = False,
) -> None:
    """List runs, newest first, filtered and ordered like ws.runs.search()."""
    with open_workspace() as ws:
        page = ws.runs.search(filter, experiments=experiment, order_by=order_by, max_results=limit)
    if as_json:
        echo_json([run.to_dict() for run in page.runs])
        return
    rows = []
    for run in page.runs:
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted(run.metrics.items())[:4])
        rows.append((run.id, run.name, run.status.value, _when(run.start_time), metrics))
    print_table(
        f"Runs in project '{ws.project}' ({len(rows)} shown)",
        ["id", "name", "status", "started (UTC)", "metrics"],
        rows,
    )


@app.command("show")
def show_run(run_id: str, as_json: JsonOption = False) -> None:
    """Show one run: status, params, metrics, tags, artifacts, environment."""
    with open_workspace() as ws:
        run = ws.runs.get(run_id)
        artifacts = ws.runs.artifacts(run_id)
    if as_json:
        data = run.to_dict()
        data["artifacts"] = [
            {"path": a.path, "digest": a.digest, "size": a.size} for a in artifacts
        ]
        echo_json(data)
        return
    env = run.environment or {}
    git = env.get("git") or {}
    print_kv(
        f"Run {run.id}",
        [
            ("name", run.name),
            ("status", run.status.value),
            ("experiment", run.experiment_id),
            ("user", run.user),
            ("started (UTC)", _when(run.start_time)),
            ("ended (UTC)", _when(run.end_time)),
            ("code version", f"{git.get('commit', '')}{' (dirty)' if git.get('dirty') else ''}"),
            ("python", env.get("python", "")),
        ],
    )
    if run.params:
        print_table("Params", ["key", "value"], sorted(run.params.items()))
    if run.metrics:
        print_table("Metrics (latest)", ["key", "value"], sorted(run.metrics.items()))
    if run.tags:
        print_table("Tags", ["key", "value"], sorted(run.tags.items()))
    if artifacts:
        print_table(
            "Artifacts", ["path", "size", "digest"], [(a.path, a.size, a.digest) for a in artifacts]
        )


@app.command("reproduce")
def reproduce(
    run_id: str,
    tolerance: Annotated[
        float, typer.Option("--tolerance", min=0.0, help="Largest allowed metric difference.")
    ] = 1e-6,
    experiment: Annotated[
        str, typer.Option("--experiment", "-e", help="Experiment of the new run.")
    ] = "Reproductions",
    as_json: JsonOption = False,
) -> None:
    """Re-execute a training run from its recorded code, data, parameters and seed.

    Exit 0 when every metric matches within the tolerance, 1 when something differs.
    """
    from rich.console import Console

    from keel.errors import ConflictError
    from keel.training import reproduce_run

    with open_workspace() as ws, Console(stderr=True).status(f"Reproducing run {run_id}…"):
        report = reproduce_run(ws, run_id, tolerance=tolerance, experiment=experiment)
    if as_json:
        echo_json(report.to_dict())
    else:
        print_kv(
            f"Reproduction of run {run_id}",
            [
                ("new run", report.new_run_id),
                ("verdict", "MATCH" if report.matches else "MISMATCH"),
                ("data", "same" if report.data_matches else "CHANGED"),
                ("code", {True: "same", False: "DIFFERENT", None: "unknown"}[report.code_matches]),
                ("tolerance", report.tolerance),
            ],
        )
        print_table(
            "Metrics",
            ["metric", "recorded", "reproduced", "difference", "ok"],
            [
                (c.key, c.recorded, c.reproduced, c.difference, "yes" if c.ok else "NO")
                for c in report.checks
            ],
        )
        for note in report.notes:
            typer.echo(f"note: {note}", err=True)
    if not report.matches:
        raise ConflictError(
            f"Run {run_id} did not reproduce: {len(report.mismatches)} metric(s) differ"
            + ("" if report.data_matches else " and the data changed")
            + f". The new run is {report.new_run_id}.",
            run_id=run_id,
        )
