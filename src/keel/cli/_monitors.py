"""``keel monitors``: create, run and report monitors; late labels; alert rules and alerts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from keel.cli._app import open_workspace
from keel.cli._monitors_alerts import alerts_app, labels_app, rules_app
from keel.cli._output import echo_json, print_kv, print_table

__all__ = ["app"]

app = typer.Typer(
    help="Monitoring: drift, quality from late labels, latency, alert rules and alerts.",
    no_args_is_help=True,
)

app.add_typer(labels_app, name="labels")
app.add_typer(rules_app, name="rules")
app.add_typer(alerts_app, name="alerts")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _csv(text: str | None) -> list[str] | None:
    return [p.strip() for p in text.split(",") if p.strip()] if text else None


def _thresholds(items: list[str] | None) -> dict[str, dict[str, Any]]:
    """``age=psi:0.25`` or ``age=ks:0.1:0.05`` (metric:drift[:warning])."""
    from keel.errors import InvalidInputError

    out: dict[str, dict[str, Any]] = {}
    for item in items or []:
        feature, sep, spec = item.partition("=")
        parts = spec.split(":")
        try:
            if not sep or not feature or len(parts) not in (2, 3):
                raise ValueError
            out[feature] = {"metric": parts[0], "drift": float(parts[1])}
            out[feature]["warning"] = float(parts[2]) if len(parts) == 3 else None
        except ValueError:
            raise InvalidInputError(
                f"Invalid --threshold {item!r:.80}: write FEATURE=METRIC:DRIFT[:WARNING], e.g. "
                "age=psi:0.25:0.1 or income=ks:0.1."
            ) from None
    return out


def _read_frame(path: Path) -> Any:
    import polars as pl

    from keel.errors import InvalidInputError

    suffix = path.suffix.lower()
    if suffix == ".csv":
        return pl.read_csv(path)
    if suffix == ".parquet":
        return pl.read_parquet(path)
    if suffix in (".ndjson", ".jsonl"):
        return pl.read_ndjson(path)
    raise InvalidInputError(f"--input must be a .csv, .parquet or .ndjson file; got {path.name}.")


def _summary(report: dict[str, Any]) -> None:
    drift = report["drift"]
    rows = [
        (
            f["feature"],
            f["kind"],
            f["status"],
            f"{f['metric']} {f['value']:.4g}" if f.get("value") is not None else "",
            f.get("message", "")[:80],
        )
        for f in drift.get("features", [])
    ]
    if drift.get("prediction"):
        p = drift["prediction"]
        value = f"{p['metric']} {p['value']:.4g}" if p.get("value") is not None else ""
        rows.append(("(prediction)", p["kind"], p["status"], value, p.get("message", "")[:80]))
    print_table(
        f"Monitor {report['monitor']}: {report['status']} ({report['rows']} predictions, "
        f"window {report['window']})",
        ["feature", "kind", "status", "value", "note"],
        rows,
    )
    quality = report.get("quality")
    if quality:
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in (quality.get("overall") or {}).items())
        typer.echo(
            f"quality: {quality.get('status')} · labelled {quality['labelled']} "
            f"(coverage {quality['coverage']:.1%}) {metrics}"
        )
    for entry in report.get("latency", []):
        typer.echo(
            f"latency v{entry.get('version')} {entry.get('variant')}: p50 "
            f"{entry.get('p50_ms', '-')} ms, p95 {entry.get('p95_ms', '-')} ms"
            + (f", error rate {entry['error_rate']:.2%}" if "error_rate" in entry else "")
        )
    for alert in report.get("alerts", []):
        typer.echo(f"alert {alert['rule']}: {alert['state']} — {alert['message']}")


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Monitor name.")],
    reference: Annotated[
        str, typer.Option("--reference", "-r", help="Reference dataset version (NAME:N).")
    ],
    deployment: Annotated[
        str | None, typer.Option("--deployment", "-d", help="The deployment watched.")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Or: every deployment of this model.")
    ] = None,
    features: Annotated[
        str | None, typer.Option(help="Comma-separated features (default: the reference's).")
    ] = None,
    categorical: Annotated[
        str | None, typer.Option(help="Comma-separated features compared as categories.")
    ] = None,
    threshold: Annotated[
        list[str] | None,
        typer.Option("--threshold", help="FEATURE=METRIC:DRIFT[:WARNING]; repeatable."),
    ] = None,
    window: Annotated[
        str, typer.Option(help="count:N (last N predictions) or time:1h (last period).")
    ] = "count:10000",
    target: Annotated[
        str | None, typer.Option(help="Reference column of the outcome (prediction drift).")
    ] = None,
    task: Annotated[str | None, typer.Option(help="classification or regression.")] = None,
    schedule: Annotated[
        str | None, typer.Option(help="Cron (UTC) for `keel scheduler`, e.g. '*/15 * * * *'.")
    ] = None,
    metrics_url: Annotated[
        str | None, typer.Option(help="The model server's /metrics (error counts).")
    ] = None,
    allow_private: Annotated[
        bool, typer.Option("--allow-private", help="Allow a private/loopback --metrics-url.")
    ] = False,
    replace: Annotated[bool, typer.Option("--replace", help="Redefine an existing one.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Create a monitor of a deployment (or a model) against a reference dataset version."""
    with open_workspace() as ws:
        found = ws.monitors.create(
            name,
            reference=reference,
            deployment=deployment,
            model=model,
            features=_csv(features),
            categorical=_csv(categorical) or (),
            thresholds=_thresholds(threshold),
            window=window,
            target=target,
            task=task,
            schedule=schedule,
            metrics_url=metrics_url,
            metrics_allow_private=allow_private,
            replace=replace,
        )
    if as_json:
        echo_json(found.to_dict())
        return
    _print_monitor(found.to_dict())


def _print_monitor(d: dict[str, Any]) -> None:
    print_kv(
        f"Monitor {d['name']}",
        [
            (
                "watches",
                f"deployment {d['deployment']}" if d["deployment"] else f"model {d['model']}",
            ),
            ("reference", d["reference"]),
            ("features", ", ".join(d["features"] or []) or "(reference columns)"),
            ("categorical", ", ".join(d["categorical"])),
            ("thresholds", json.dumps(d["thresholds"]) if d["thresholds"] else ""),
            ("default threshold", json.dumps(d["default_threshold"])),
            ("target", d["target"]),
            ("window", d["window"]),
            ("schedule", d["schedule"]),
            ("next run", d["next_run_at"]),
        ],
    )


@app.command("list")
def list_monitors(as_json: JsonOption = False) -> None:
    """List the project's monitors."""
    with open_workspace() as ws:
        found = ws.monitors.list()
    if as_json:
        echo_json([m.to_dict() for m in found])
        return
    print_table(
        f"Monitors ({len(found)})",
        ["name", "watches", "reference", "window", "schedule"],
        [
            (m.name, m.deployment or f"model {m.model}", m.reference, m.window, m.schedule)
            for m in found
        ],
    )


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Monitor name.")], as_json: JsonOption = False
) -> None:
    """Show a monitor's definition."""
    with open_workspace() as ws:
        found = ws.monitors.get(name)
    if as_json:
        echo_json(found.to_dict())
        return
    _print_monitor(found.to_dict())


@app.command("delete")
def delete(name: Annotated[str, typer.Argument(help="Monitor name.")]) -> None:
    """Delete a monitor, its reports and its alert rules."""
    with open_workspace() as ws:
        ws.monitors.delete(name)
    typer.echo(f"Deleted monitor {name}.")


@app.command("run")
def run(
    name: Annotated[str, typer.Argument(help="Monitor name.")],
    input_file: Annotated[
        Path | None,
        typer.Option("--input", help="Monitor this file (CSV/Parquet/NDJSON) instead of the logs."),
    ] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Also write the HTML report.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Run a monitor now: drift, quality, latency; evaluate its alert rules."""
    from rich.console import Console

    with open_workspace() as ws:
        current = _read_frame(input_file) if input_file is not None else None
        with Console(stderr=True).status(f"Running monitor {name}…"):
            report = ws.monitors.run(name, current=current)
            ws.monitors.wait_deliveries(timeout=120)
        if html is not None:
            ws.monitors.write_html(name, html)
    if as_json:
        echo_json(report.to_dict())
        return
    _summary(report.to_dict())
    if html is not None:
        typer.echo(f"wrote {html}")


@app.command("report")
def report(
    name: Annotated[str, typer.Argument(help="Monitor name.")],
    html: Annotated[
        Path | None, typer.Option("--html", help="Write the self-contained HTML report here.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Show the latest report of a monitor (--json for scripts, --html for a page)."""
    from keel.errors import NotFoundError

    with open_workspace() as ws:
        found = ws.monitors.reports(name, limit=1)
        if not found:
            raise NotFoundError(
                f"Monitor '{name}' has no report yet; run it with `keel monitors run {name}`."
            )
        if html is not None:
            ws.monitors.write_html(name, html)
    if as_json:
        echo_json(found[0].to_dict())
        return
    _summary(found[0].to_dict())
    if html is not None:
        typer.echo(f"wrote {html}")


@app.command("history")
def history(
    name: Annotated[str, typer.Argument(help="Monitor name.")],
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many reports.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """List a monitor's reports, newest first."""
    with open_workspace() as ws:
        found = ws.monitors.reports(name, limit=limit)
    if as_json:
        echo_json([r.to_dict() for r in found])
        return
    print_table(
        f"Reports of {name} ({len(found)})",
        ["id", "created (UTC)", "status", "rows", "drifted", "quality"],
        [
            (
                r.id,
                r.created_at.isoformat(timespec="seconds"),
                r.status,
                r.rows,
                ", ".join(r.drift.get("drifted", [])),
                (r.quality or {}).get("status", ""),
            )
            for r in found
        ],
    )
