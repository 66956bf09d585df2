"""``keel pipelines list|run|resume|show|cancel``, with per-step progress."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from keel.cli._app import open_workspace
from keel.cli._output import echo_json, print_kv, print_table

if TYPE_CHECKING:
    from keel.pipelines import PipelineRun, RunResult

__all__ = ["app", "parse_params", "step_progress"]

app = typer.Typer(help="Run pipelines and inspect their runs.", no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ExecutorOption = Annotated[
    str, typer.Option("--executor", "-x", help="Where steps run: inprocess, process or ray.")
]
_MARKS = {
    "COMPLETED": "[green]✓[/]",
    "CACHED": "[cyan]↺ cached[/]",
    "FAILED": "[red]✗[/]",
    "SKIPPED": "[yellow]- skipped[/]",
    "CANCELLED": "[yellow]- cancelled[/]",
}


def parse_params(values: list[str] | None) -> dict[str, Any]:
    """``key=value`` pairs; values are read as JSON when they parse (5, 0.1, true, "x")."""
    from keel.errors import InvalidInputError

    params: dict[str, Any] = {}
    for item in values or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InvalidInputError(
                f"Parameter {item!r:.80} must be key=value (e.g. -p lr=0.1 -p train.depth=4)."
            )
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    return params


@contextmanager
def step_progress(total: int, *, quiet: bool) -> Iterator[Any]:
    """A rich progress bar over the steps, and the runner callback that drives it."""
    if quiet:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task("steps", total=total)

        def on_event(event: str, step: str, details: dict[str, Any]) -> None:
            if event == "started":
                bar.update(task, description=f"running {step}")
            elif event == "retry":
                bar.console.print(
                    f"  [yellow]↻[/] {step}: attempt {details.get('attempt')} failed "
                    f"({details.get('error')}); retrying in {details.get('delay'):g} s"
                )
            elif event == "corrupt":
                bar.console.print(f"  [red]![/] {step}: cached artifact corrupt; recomputing")
            elif event in ("completed", "cached", "failed", "skipped", "cancelled"):
                mark = _MARKS[
                    {"completed": "COMPLETED", "cached": "CACHED", "failed": "FAILED"}.get(
                        event, event.upper()
                    )
                ]
                took = f" ({details['seconds']:.2f} s)" if "seconds" in details else ""
                bar.console.print(f"  {mark} {step}{took}")
                bar.advance(task)

        yield on_event


def _duration(run: PipelineRun) -> str:
    if run.ended_at is None:
        return ""
    return f"{(run.ended_at - run.created_at).total_seconds():.2f} s"


def _finish(result: RunResult, *, as_json: bool) -> None:
    from keel.errors import KeelError

    run = result.run
    if as_json:
        echo_json(run.to_dict())
    else:
        for item in run.steps:
            if item.traceback:
                from rich.console import Console

                Console(stderr=True).print(f"[red]Step '{item.name}' failed:[/]")
                Console(stderr=True, highlight=False).print(item.traceback, markup=False)
        print_kv(
            f"Pipeline run {run.id}",
            [
                ("pipeline", run.pipeline),
                ("status", run.status.value),
                ("cached steps", ", ".join(result.cached) or "none"),
                ("took", _duration(run)),
            ],
        )
    if not result.ok:
        raise KeelError(
            f"Pipeline run {run.id} ended {run.status.value}: {run.error or ''} "
            f"Fix the cause, then continue it with: keel pipelines resume {run.id}"
        )


@app.command("list")
def list_pipelines(as_json: JsonOption = False) -> None:
    """List the pipelines of keel.yaml with their latest run."""
    with open_workspace() as ws:
        defined = ws.pipelines.defined()
        latest = {name: ws.pipelines.runs(pipeline=name, limit=1) for name in defined}
    rows = []
    for name, reference in sorted(defined.items()):
        last = latest[name][0] if latest[name] else None
        rows.append(
            {
                "name": name,
                "reference": reference,
                "last_run": last.id if last else None,
                "last_status": last.status.value if last else None,
                "last_started": last.created_at.isoformat() if last else None,
            }
        )
    if as_json:
        echo_json(rows)
        return
    print_table(
        f"Pipelines in keel.yaml ({len(rows)})",
        ["name", "module:attribute", "last run", "status", "started (UTC)"],
        [
            (r["name"], r["reference"], r["last_run"], r["last_status"], r["last_started"])
            for r in rows
        ],
    )


@app.command("run")
def run_pipeline(
    name: Annotated[str, typer.Argument(help="A pipeline of keel.yaml, or module:attribute.")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="key=value (repeatable).")
    ] = None,
    executor: ExecutorOption = "inprocess",
    as_json: JsonOption = False,
) -> None:
    """Run a pipeline and show each step as it ends (exit 1 if the run fails)."""
    params = parse_params(param)
    with open_workspace() as ws:
        pipeline = ws.pipelines.load(name)
        with step_progress(len(pipeline.steps), quiet=as_json) as progress:
            result = ws.pipelines.run(pipeline, params=params, executor=executor, progress=progress)
    _finish(result, as_json=as_json)


@app.command("resume")
def resume_run(
    run_id: Annotated[str, typer.Argument(help="The id of a failed, cancelled or killed run.")],
    executor: ExecutorOption = "inprocess",
    force: Annotated[
        bool, typer.Option("--force", help="Resume even if the run may still be running.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Continue a run from its first unfinished step (finished steps are kept)."""
    with open_workspace() as ws:
        current = ws.pipelines.get(run_id)
        pipeline = ws.pipelines.load(current.pipeline)
        left = sum(1 for s in current.steps if not s.status.is_done)
        with step_progress(left, quiet=as_json) as progress:
            result = ws.pipelines.resume(
                run_id, pipeline=pipeline, executor=executor, progress=progress, force=force
            )
    _finish(result, as_json=as_json)


@app.command("cancel")
def cancel_run(run_id: str, as_json: JsonOption = False) -> None:
    """Ask a running run to stop at its next step boundary."""
    with open_workspace() as ws:
        run = ws.pipelines.cancel(run_id)
    if as_json:
        echo_json(run.to_dict())
    else:
        print_kv(f"Pipeline run {run.id}", [("status", run.status.value), ("cancel", "requested")])


@app.command("show")
def show(
    target: Annotated[str, typer.Argument(help="A run id, or a pipeline name for its runs.")],
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000)] = 20,
    as_json: JsonOption = False,
) -> None:
    """Show a run (steps, cache, attempts, tracebacks) or the recent runs of a pipeline."""
    from keel.errors import NotFoundError

    with open_workspace() as ws:
        try:
            run = ws.pipelines.get(target)
        except NotFoundError:
            runs = ws.pipelines.runs(pipeline=target, limit=limit)
            if not runs:
                raise
            if as_json:
                echo_json([r.to_dict() for r in runs])
                return
            print_table(
                f"Runs of '{target}' ({len(runs)} shown)",
                ["id", "status", "trigger", "started (UTC)", "took", "attempt"],
                [
                    (
                        r.id,
                        r.status.value,
                        r.trigger,
                        r.created_at.isoformat(),
                        _duration(r),
                        r.attempt,
                    )
                    for r in runs
                ],
            )
            return
    if as_json:
        echo_json(run.to_dict())
        return
    env = run.environment or {}
    print_kv(
        f"Pipeline run {run.id}",
        [
            ("pipeline", run.pipeline),
            ("status", run.status.value),
            ("trigger", run.trigger),
            ("cause", json.dumps(run.cause) if run.cause else ""),
            ("code version", run.code_version or ""),
            ("python", env.get("python", "")),
            ("executor", run.executor),
            ("attempt", run.attempt),
            ("started (UTC)", run.created_at.isoformat()),
            ("took", _duration(run)),
            ("datasets", json.dumps(run.datasets) if run.datasets else ""),
            ("error", run.error or ""),
        ],
    )
    print_table(
        "Steps",
        ["step", "status", "attempts", "seconds", "outputs"],
        [
            (
                s.name,
                s.status.value,
                s.attempts,
                "" if s.duration is None else f"{s.duration:.3f}",
                ", ".join(f"{k}={v[:19]}…" for k, v in s.outputs.items()),
            )
            for s in run.steps
        ],
    )
    for item in run.steps:
        if item.traceback:
            from rich.console import Console

            Console(highlight=False).print(
                f"\nStep '{item.name}' failed:\n{item.traceback}", markup=False
            )
