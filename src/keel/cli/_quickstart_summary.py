"""What the quickstart prints at the end: the ids and figures of each stage, and where to look."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.cli._quickstart_data import DATASET, LABELS, PRODUCTION
from keel.cli._quickstart_steps import (
    CANARY_STEPS,
    DEPLOYMENT,
    DRIFT_RULE,
    EXPERIMENT,
    MODEL,
    MONITOR,
    QUALITY_RULE,
)

if TYPE_CHECKING:
    from keel.workspace import Workspace

__all__ = ["next_steps", "rows", "summarize"]


def summarize(
    ws: Workspace,
    *,
    data: dict[str, Any],
    trained: dict[str, Any],
    watching: dict[str, Any],
    windows: list[dict[str, Any]],
    labelled: dict[str, Any],
    loop: dict[str, Any],
    reports: dict[str, str],
    reload_matches: bool,
    chain: Any,
    prediction_id: str,
) -> dict[str, Any]:
    """The quickstart's JSON summary (``keel quickstart --json``); ``prediction_id`` is the
    served prediction it traces back to its data."""
    published = data["features"]
    cycle = loop["cycle"]
    final = ws.deployments.get(DEPLOYMENT)
    revisions = ws.deployments.revisions(DEPLOYMENT)
    decided = cycle.get("decision_revision")
    last = next((r for r in revisions if r.revision == decided), None)
    alerts = ws.monitors.alerts()
    return {
        "home": str(ws.settings.home.resolve()),
        "project": ws.project,
        "experiment": EXPERIMENT,
        "dataset": {
            "name": DATASET,
            "raw_version": data["raw"].version,
            "published_version": published.version,
            "version_id": published.id,
            "digest": published.digest,
            "rows": published.row_count,
            "sensitivity": data["sensitivity"],
            "validation_report": data["report"].id,
            "validation_passed": data["report"].passed,
            "validation_warnings": data["report"].warnings,
            "production": {
                "name": PRODUCTION,
                "version": data["production"].version,
                "features_version": data["production_features"].version,
                "rows": data["production"].row_count,
            },
            "labels": {"name": LABELS, "version": data["labels"].version},
            "labelled": {
                "version": labelled["published"].version,
                "version_id": labelled["published"].id,
                "rows": labelled["published"].row_count,
                "validation_report": labelled["validation"].id,
            },
        },
        "pipeline": {k: v for k, v in trained.items() if k != "champion"},
        "champion": trained["champion"],
        "monitoring": {
            "monitor": MONITOR,
            "windows": windows,
            "labels": labelled["ingest"],
            "quality_report": labelled["report"],
            "quality": labelled["quality"],
            "alerts": [
                {
                    "id": a.id,
                    "rule": a.rule,
                    "state": a.state,
                    "metric": a.metric,
                    "value": a.value,
                    "message": a.message,
                }
                for a in alerts
            ],
            "rules": [DRIFT_RULE, QUALITY_RULE],
            "trigger": watching["trigger"],
        },
        "loop": cycle,
        "deployment": {
            "name": DEPLOYMENT,
            "id": final.id,
            "environment": final.environment,
            "strategy": final.state.strategy,
            "steps": CANARY_STEPS,
            "requests": loop["canary_requests"],
            "decision": cycle["phase"],
            "action": last.action if last else None,
            "reason": last.reason if last else cycle.get("reason", ""),
            "analysis": last.analysis if last else None,
            "serving_version": final.state.primary,
            "revisions": [{"revision": r.revision, "action": r.action} for r in revisions],
            "predictions_logged": ws.deployments.read_predictions(DEPLOYMENT).height,
        },
        "champion_after": ws.models.version(f"{MODEL}@champion").version,
        "trace": _trace(ws, prediction_id),
        "reports": reports,
        "reload_matches": reload_matches,
        "audit": {"ok": chain.ok, "events": chain.checked},
    }


def _trace(ws: Workspace, prediction_id: str) -> dict[str, Any]:
    """One logged prediction followed back through the lineage graph."""
    found = ws.deployments.trace(prediction_id, deployment=DEPLOYMENT, depth=20)
    nodes = found.lineage.nodes if found.lineage is not None else set()
    return {
        "prediction_id": found.prediction_id,
        "model": found.model,
        "version": found.version,
        "revision": found.revision,
        "label": found.label,
        "log": None if found.log is None else str(found.log),
        "lineage_nodes": len(nodes),
        "lineage_types": sorted({node.type for node in nodes}),
    }


def rows(summary: dict[str, Any]) -> list[tuple[str, Any]]:
    """The table printed at the end."""
    dataset, pipeline = summary["dataset"], summary["pipeline"]
    champion, monitoring = summary["champion"], summary["monitoring"]
    loop, deployment, trace = summary["loop"], summary["deployment"], summary["trace"]
    params = ", ".join(f"{k}={v:.3g}" for k, v in sorted(pipeline["best_params"].items()))
    drifted = [w for w in monitoring["windows"] if w["drift"] == "drift"]
    first = drifted[0] if drifted else None
    overall = (monitoring["quality"] or {}).get("overall") or {}
    accuracy = overall.get("accuracy")
    decision = loop.get("decision") or {}
    return [
        ("store", summary["home"]),
        (
            "dataset",
            f"{dataset['name']} v{dataset['published_version']} published "
            f"({dataset['rows']:,} rows; sensitivity {dataset['sensitivity']}); validation "
            f"gate passed with {dataset['validation_warnings']} warning(s)",
        ),
        (
            "HPO pipeline",
            f"{pipeline['pipeline_run_id']}: {pipeline['trials']} trials, best valid AUC "
            f"{pipeline['best_valid_auc']:.4f} ({params})",
        ),
        (
            "champion",
            f"{champion['model']} v{champion['version']} (test AUC {champion['test_auc']:.4f}; "
            f"formats {', '.join(champion['formats'])}), deployed to {deployment['name']}",
        ),
        (
            "drift",
            f"{len(drifted)} of {len(monitoring['windows'])} windows drifted, first "
            f"{first['from']}..{first['until']}: {', '.join(first['drifted'])}"
            if first
            else "no window drifted",
        ),
        (
            "labels",
            f"{monitoring['labels']['stored']:,} repayments joined to logged predictions; "
            + (f"accuracy of the last window {accuracy:.3f}" if accuracy is not None else "")
            + f" (report {monitoring['quality_report']})",
        ),
        (
            "alerts",
            "; ".join(f"{a['rule']}: {a['message'].rstrip('.')}" for a in monitoring["alerts"])
            or "none",
        ),
        (
            "retrained",
            f"pipeline run {loop.get('pipeline_run_id')} on {dataset['name']} "
            f"v{dataset['labelled']['version']} ({dataset['labelled']['rows']:,} rows): "
            f"{decision.get('reason', loop.get('reason', ''))}",
        ),
        (
            "canary",
            f"v{loop.get('version')} on {deployment['steps'].replace(',', '% -> ')}% of "
            f"{deployment['requests']:,} loans: {deployment['decision']}. {deployment['reason']}",
        ),
        ("canary accuracy", _accuracy(deployment.get("analysis"))),
        (
            "champion now",
            f"{champion['model']} v{summary['champion_after']}, serving "
            f"v{deployment['serving_version']}",
        ),
        (
            "traced",
            f"prediction {trace['prediction_id']}: {trace['model']} v{trace['version']} "
            f"(revision {trace['revision']}), label {trace['label']}; lineage back through "
            f"{trace['lineage_nodes']} objects ({', '.join(trace['lineage_types'])})",
        ),
        ("reports", f"{summary['reports']['monitoring']}  {summary['reports']['validation']}"),
        ("reloaded predictions match", summary["reload_matches"]),
        (
            "audit chain",
            f"intact, {summary['audit']['events']} events" if summary["audit"]["ok"] else "BROKEN",
        ),
        ("took", f"{summary['seconds']} s"),
    ]


def _accuracy(analysis: dict[str, Any] | None) -> str:
    """Canary against baseline on the labelled canary traffic, from the deciding analysis."""
    found = ((analysis or {}).get("stats") or {}).get("accuracy")
    if not found:
        return "not compared (too few labels)"
    return (
        f"challenger {found['canary']:.3f} vs champion {found['baseline']:.3f} on the same "
        f"loans (one-sided p = {found['p_value']:.2g})"
    )


def next_steps(summary: dict[str, Any], *, home: Path | None) -> str:
    """The commands to look further, with ``--home`` when one was given."""
    flag = "" if home is None else f" --home {home}"
    keel = f"keel{flag}"
    commands = [
        (f"monitors report {MONITOR}", "drift and quality of the last window"),
        ("monitors alerts list", "what fired, and its notifications"),
        (f"lineage show deployment:{summary['deployment']['id']}", "why the new model serves"),
        (f"deployments show {DEPLOYMENT}", "every revision and the canary decision"),
        (f"deployments trace {summary['trace']['prediction_id']}", "one prediction to its data"),
        (f"models show {MODEL}", "versions, aliases and the reasons they moved"),
        ("triggers history", "the alert's retraining firing"),
        (f"pipelines show {summary['loop'].get('pipeline_run_id')}", "the retraining run"),
        ("audit verify", "the hash chain of everything above"),
    ]
    width = max(len(command) for command, _ in commands) + len(keel) + 3
    lines = [f"  {f'{keel} {command}':<{width}} # {what}" for command, what in commands]
    reports = summary["reports"]
    return (
        "\nNext:\n"
        + "\n".join(lines)
        + f"\n\nReports:\n  {reports['monitoring']}\n  {reports['validation']}\n"
    )
