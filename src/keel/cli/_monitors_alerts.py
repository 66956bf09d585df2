"""``keel monitors labels|rules|alerts``: late labels, alert rules, and the alerts they raise."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from keel.cli._app import open_workspace
from keel.cli._output import echo_json, print_kv, print_table

__all__ = ["alerts_app", "labels_app", "rules_app"]

labels_app = typer.Typer(
    help="Late ground truth, joined to predictions by id.", no_args_is_help=True
)
rules_app = typer.Typer(help="Alert rules on monitor metrics.", no_args_is_help=True)
alerts_app = typer.Typer(help="Alerts raised by the rules.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@labels_app.command("ingest")
def ingest_labels(
    path: Annotated[
        Path, typer.Argument(help="CSV, Parquet, NDJSON or JSON with prediction_id, label.")
    ],
    deployment: Annotated[
        str | None, typer.Option("--deployment", "-d", help="Count labels matching its logs.")
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="A new label replaces a prediction's stored one.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Store late labels, joined to logged predictions by prediction id."""
    with open_workspace() as ws:
        result = ws.monitors.ingest_labels(
            path, deployment=deployment, on_conflict="replace" if replace else "keep"
        )
    if as_json:
        echo_json(result.to_dict())
        return
    print_kv(
        f"Labels from {path.name}",
        [(k, v) for k, v in result.to_dict().items() if k != "problems"],
    )
    for problem in result.problems:
        typer.echo(f"skipped {problem}")


@rules_app.command("add")
def add_rule(
    name: Annotated[str, typer.Argument(help="Rule name.")],
    monitor: Annotated[str, typer.Option("--monitor", help="The monitor whose reports it reads.")],
    metric: Annotated[
        str, typer.Option("--metric", help="e.g. drift.share, drift.age, quality.accuracy.")
    ],
    threshold: Annotated[float, typer.Option("--threshold", help="The threshold.")],
    comparison: Annotated[str, typer.Option("--comparison", help="> >= < <=")] = ">",
    window: Annotated[str, typer.Option(help="Worst value over this span (0: last report).")] = "0",
    for_duration: Annotated[
        str, typer.Option("--for", help="How long the condition holds before firing.")
    ] = "0",
    severity: Annotated[str, typer.Option(help="info, warning or critical.")] = "warning",
    channel: Annotated[
        list[str] | None,
        typer.Option("--channel", help='A channel as JSON, e.g. \'{"type":"webhook","url":…}\'.'),
    ] = None,
    webhook: Annotated[str | None, typer.Option(help="Shortcut: a generic webhook URL.")] = None,
    slack: Annotated[
        str | None, typer.Option(help="Shortcut: a Slack incoming-webhook URL.")
    ] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Redefine an existing rule.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Add an alert rule (channels default to the log)."""
    from keel.errors import InvalidInputError

    channels: list[dict[str, Any]] = []
    for text in channel or []:
        try:
            channels.append(json.loads(text))
        except ValueError:
            raise InvalidInputError(f"--channel must be JSON; got {text[:80]!r}.") from None
    if webhook:
        channels.append({"type": "webhook", "url": webhook})
    if slack:
        channels.append({"type": "slack", "url": slack})
    with open_workspace() as ws:
        rule = ws.monitors.add_rule(
            name,
            monitor=monitor,
            metric=metric,
            threshold=threshold,
            comparison=comparison,
            window=window,
            for_duration=for_duration,
            severity=severity,
            channels=channels or [{"type": "log"}],
            replace=replace,
        )
    if as_json:
        echo_json(rule.to_dict())
        return
    typer.echo(
        f"Rule {rule.name}: {rule.metric} {rule.comparison} {rule.threshold:g} on {rule.monitor} "
        f"→ {', '.join(c['type'] for c in rule.channels)}"
    )


@rules_app.command("list")
def list_rules(
    monitor: Annotated[str | None, typer.Option("--monitor", help="Only this monitor's.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List alert rules."""
    with open_workspace() as ws:
        found = ws.monitors.rules(monitor=monitor)
    if as_json:
        echo_json([r.to_dict() for r in found])
        return
    print_table(
        f"Alert rules ({len(found)})",
        ["name", "monitor", "condition", "window", "for", "channels"],
        [
            (
                r.name,
                r.monitor,
                f"{r.metric} {r.comparison} {r.threshold:g}",
                f"{r.window_seconds:g}s",
                f"{r.for_seconds:g}s",
                ", ".join(c["type"] for c in r.channels),
            )
            for r in found
        ],
    )


@rules_app.command("delete")
def delete_rule(name: Annotated[str, typer.Argument(help="Rule name.")]) -> None:
    """Delete an alert rule and its alerts."""
    with open_workspace() as ws:
        ws.monitors.delete_rule(name)
    typer.echo(f"Deleted rule {name}.")


@alerts_app.command("list")
def list_alerts(
    state: Annotated[
        str | None, typer.Option(help="pending, firing or resolved (default: all).")
    ] = None,
    rule: Annotated[str | None, typer.Option(help="Only this rule's.")] = None,
    monitor: Annotated[str | None, typer.Option(help="Only this monitor's.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List alerts, newest first, with how their notifications went."""
    with open_workspace() as ws:
        found = ws.monitors.alerts(state=state, rule=rule, monitor=monitor)
    if as_json:
        echo_json([a.to_dict() for a in found])
        return
    print_table(
        f"Alerts ({len(found)})",
        ["rule", "state", "value", "since (UTC)", "deliveries", "message"],
        [
            (
                a.rule,
                a.state,
                "" if a.value is None else f"{a.value:.4g}",
                a.started_at.isoformat(timespec="seconds"),
                ", ".join(f"{d.kind}:{d.status}" for d in a.deliveries),
                a.message,
            )
            for a in found
        ],
    )
