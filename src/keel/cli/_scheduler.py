"""``keel scheduler [--once]`` and ``keel triggers list|fire|history``."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from keel.cli._app import open_workspace
from keel.cli._output import echo_json, print_table

__all__ = ["scheduler", "triggers_app"]

triggers_app = typer.Typer(help="List and fire pipeline triggers.", no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def scheduler(
    once: Annotated[
        bool, typer.Option("--once", help="Run one tick (record, claim, run) and exit.")
    ] = False,
    poll: Annotated[float, typer.Option("--poll", min=0.5, help="Seconds between ticks.")] = 5.0,
    executor: Annotated[
        str, typer.Option("--executor", "-x", help="Where steps run: inprocess, process, ray.")
    ] = "inprocess",
    as_json: JsonOption = False,
) -> None:
    """Run the scheduler daemon: sync keel.yaml triggers, fire schedules, run firings.

    Start several replicas against one PostgreSQL store: database leases make every firing
    run once. Stop it with Ctrl-C.
    """
    import logging

    with open_workspace() as ws:
        synced = ws.pipelines.sync_triggers()
        daemon = ws.pipelines.scheduler(
            poll=poll,
            executor=executor,
            # scheduled monitors, and retention (hourly) of the records of processing
            # the closed loop's canary and champion moves after alert-triggered retraining
            jobs=[ws.monitors.run_due, ws.compliance.retention_job(), ws.loop.advance],
        )
        if once:
            outcomes = daemon.tick()
            ws.loop.advance()  # what this tick's retraining runs lead to, at once
            if as_json:
                echo_json([o.to_dict() for o in outcomes])
                return
            print_table(
                f"Scheduler tick ({len(synced)} triggers in keel.yaml, {len(outcomes)} ran)",
                ["trigger", "cause", "run", "status"],
                [
                    (o.firing.trigger, json.dumps(o.firing.cause), o.pipeline_run_id, o.status)
                    for o in outcomes
                ],
            )
            return
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        logging.getLogger("keel").info(
            "Scheduler %s serving project '%s' (%d triggers synced); Ctrl-C stops it.",
            daemon.owner,
            ws.project,
            len(synced),
        )
        from keel.cli._collector import steady_state

        steady_state()
        try:
            daemon.serve()
        except KeyboardInterrupt:
            logging.getLogger("keel").info("Scheduler stopped.")


@triggers_app.command("list")
def list_triggers(as_json: JsonOption = False) -> None:
    """List the project's triggers and when each fires next."""
    with open_workspace() as ws:
        found = ws.pipelines.triggers()
    if as_json:
        echo_json([t.to_dict() for t in found])
        return
    print_table(
        f"Triggers ({len(found)})",
        ["name", "pipeline", "kind", "spec", "enabled", "next (UTC)"],
        [
            (
                t.name,
                t.pipeline,
                t.kind,
                json.dumps(t.spec),
                t.enabled,
                t.next_fire_at.isoformat() if t.next_fire_at else "",
            )
            for t in found
        ],
    )


@triggers_app.command("fire")
def fire(
    name: str,
    reason: Annotated[str, typer.Option("--reason", help="Recorded as the cause.")] = "",
    run: Annotated[
        bool, typer.Option("--run", help="Run it now (one scheduler tick) instead of waiting.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Record a manual firing of a trigger; the scheduler (or --run) runs it."""
    with open_workspace() as ws:
        firing = ws.pipelines.fire(name, cause={"reason": reason} if reason else None)
        outcomes = ws.pipelines.scheduler().tick() if run else []
    data = {"firing": firing.to_dict(), "ran": [o.to_dict() for o in outcomes]}
    if as_json:
        echo_json(data)
        return
    print_table(
        f"Fired '{name}'",
        ["firing", "cause", "run", "status"],
        [(firing.id, json.dumps(firing.cause), None, firing.status)]
        + [
            (o.firing.id, json.dumps(o.firing.cause), o.pipeline_run_id, o.status) for o in outcomes
        ],
    )


@triggers_app.command("history")
def history(
    name: Annotated[str | None, typer.Argument(help="Only this trigger's firings.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000)] = 50,
    as_json: JsonOption = False,
) -> None:
    """Every recorded firing (newest first) with its cause and the run it started."""
    with open_workspace() as ws:
        found = ws.pipelines.firings(trigger=name, limit=limit)
    if as_json:
        echo_json([f.to_dict() for f in found])
        return
    print_table(
        f"Firings ({len(found)} shown)",
        ["id", "trigger", "due (UTC)", "cause", "status", "run"],
        [
            (
                f.id,
                f.trigger,
                f.due_at.isoformat(),
                json.dumps(f.cause),
                f.status,
                f.pipeline_run_id,
            )
            for f in found
        ],
    )
