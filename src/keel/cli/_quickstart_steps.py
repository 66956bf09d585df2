"""The quickstart's lifecycle after the data: train, deploy, watch, drift, labels, loop, canary.

Each function is one or two stages of the progress bar; ``step(description)`` starts a stage
(a repeated prefix before ``:`` updates the running one).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.cli._quickstart_data import (
    DATASET,
    FEATURES,
    labelled_period,
    production_frame,
    publish_labelled,
)
from keel.cli._quickstart_serve import Traffic

if TYPE_CHECKING:
    import polars as pl

    from keel.monitoring import LoopCycle
    from keel.workspace import Workspace

__all__ = [
    "DEPLOYMENT",
    "MODEL",
    "MONITOR",
    "close_the_loop",
    "replay_production",
    "train_champion",
    "watch",
]

Step = Callable[[str], None]

EXPERIMENT = "quickstart-car-loans"
MODEL = "car-loan-classifier"
DEPLOYMENT = f"{MODEL}-production"
MONITOR = "car-loans-production"
DRIFT_RULE = "car-loans-drift"
QUALITY_RULE = "car-loans-accuracy"
RETRAIN_TRIGGER = "retrain-car-loans-on-drift"
SEED = 42
#: The HPO search: trials, and trials in flight (worker processes).
TRIALS = 8
WORKERS = 2
#: Production traffic replayed before the labels arrive, in windows the monitor checks.
LIVE_ROWS = 40_000
WINDOW = 10_000
#: Alert thresholds: a fifth of the features drifted (PSI > 0.2), accuracy under 88.5 %.
DRIFT_SHARE = 0.2
MIN_ACCURACY = 0.885
#: Canary rollout of the retrained model, and how long its traffic is replayed at most.
CANARY_STEPS = "20,100"
CANARY_SECONDS = 90.0
#: Loans per canary request, and requests each variant needs before the analysis decides.
CANARY_BATCH = 20
CANARY_REQUESTS = 50


def train_champion(ws: Workspace, step: Step, published: Any) -> dict[str, Any]:
    """The HPO pipeline on the published version; the best model becomes the champion."""
    from keel.training import quickstart_pipeline

    step(f"Training: pipeline load -> tune ({TRIALS} HPO trials, {WORKERS} workers) -> check")
    result = quickstart_pipeline(
        ws,
        model_name=MODEL,
        dataset=DATASET,
        target="repaid",
        features=FEATURES,
        n_trials=TRIALS,
        trial_executor="process",
        max_workers=WORKERS,
        seed=SEED,
        experiment=EXPERIMENT,
    )
    found = result.summary
    step("Registering: the champion alias points at the best model")
    reason = (
        f"best of {found['trials']} HPO trials (valid AUC {found['best_valid_auc']:.4f}), "
        f"search run {result.search_run_id}, pipeline run {result.pipeline_run_id}"
    )
    move = ws.models.set_alias(MODEL, "champion", result.version, reason=reason)
    version = ws.models.version(f"{MODEL}:{result.version}")
    return {
        "pipeline_run_id": result.pipeline_run_id,
        "search_run_id": result.search_run_id,
        "refit_run_id": found["refit_run_id"],
        "trials": found["trials"],
        "pruned": found["pruned"],
        "best_trial": found["best_trial"],
        "best_params": found["best_params"],
        "best_valid_auc": found["best_valid_auc"],
        "verified_formats": found["verified_formats"],
        "champion": {
            "model": MODEL,
            "version": version.version,
            "version_id": version.id,
            "run_id": found["refit_run_id"],
            "digest": version.artifact_digest,
            "format": version.format,
            "formats": found["formats"],
            "test_auc": found["test_metrics"].get("test.auc"),
            "reason": reason,
            "alias_previous": move.from_version,
            "dataset_version_id": published.id,
        },
    }


def watch(ws: Workspace, step: Step, published: Any) -> dict[str, Any]:
    """Deploy the champion; a monitor, two alert rules, and the retraining trigger watch it."""
    from keel.training import RetrainingPolicy, retraining_pipeline

    step("Deploying the champion to production (blue-green)")
    deployment = ws.deployments.deploy(f"{MODEL}@champion", environment="production")
    step("Watching it: drift monitor, alert rules, retraining trigger")
    ws.monitors.create(
        MONITOR,
        deployment=deployment.name,
        reference=f"{DATASET}:{published.version}",
        features=FEATURES,
        target="repaid",
        window=f"count:{WINDOW}",
        replace=True,  # a second quickstart in the same store redefines what it watches
    )
    ws.monitors.add_rule(
        DRIFT_RULE,
        monitor=MONITOR,
        metric="drift.share",
        comparison=">",
        threshold=DRIFT_SHARE,
        replace=True,
    )
    ws.monitors.add_rule(
        QUALITY_RULE,
        monitor=MONITOR,
        metric="quality.accuracy",
        comparison="<",
        threshold=MIN_ACCURACY,
        replace=True,
    )
    # Judged where the drift is: on held-out loans of the newest 40 % of the training data
    # (the labelled production period is appended last).
    policy = RetrainingPolicy(
        model=MODEL, trigger=f"alert:{DRIFT_RULE}", metric="auc", margin=0.0, recent=0.4
    )
    pipeline = retraining_pipeline(
        ws,
        policy,
        dataset=DATASET,
        target="repaid",
        features=FEATURES,
        experiment=EXPERIMENT,
        seed=SEED,
    )
    trigger = ws.loop.connect(
        RETRAIN_TRIGGER,
        rule=DRIFT_RULE,
        pipeline=pipeline.name,
        deployment=deployment.name,
        steps=CANARY_STEPS,
    )
    return {"deployment": deployment, "pipeline": pipeline, "trigger": trigger.name}


def replay_production(
    ws: Workspace, step: Step, derived: Any
) -> tuple[pl.DataFrame, pl.DataFrame, list[dict[str, Any]], dict[int, str]]:
    """Replay the first production months window by window; the monitor checks each window.

    Returns the replayed rows, the rows kept for the canary, one summary per window, and
    the prediction id of each replayed loan.
    """
    production = production_frame(ws, derived)
    live, later = production.head(LIVE_ROWS), production.slice(LIVE_ROWS)
    windows: list[dict[str, Any]] = []
    step(f"Replaying production traffic: 0 of {live.height:,} loans")
    with Traffic(ws, DEPLOYMENT) as traffic:
        for first in range(0, live.height, WINDOW):
            rows = live.slice(first, WINDOW)
            traffic.send(rows)
            traffic.wait_logged(traffic.sent)
            report = ws.monitors.run(MONITOR)
            windows.append(_window(report, rows))
            step(
                f"Replaying production traffic: {traffic.sent:,} of {live.height:,} loans "
                f"(to {windows[-1]['until']}), drift {report.drift.get('status')}"
            )
        ids = dict(traffic.prediction_ids)
    return live, later, windows, ids


def _window(report: Any, rows: pl.DataFrame) -> dict[str, Any]:
    drift = report.drift or {}
    return {
        "report": report.id,
        "from": str(rows["timestamp"][0])[:10],
        "until": str(rows["timestamp"][-1])[:10],
        "rows": report.rows,
        "drift": drift.get("status"),
        "drifted": list(drift.get("drifted") or []),
        "share_drifted": drift.get("share_drifted"),
        "alerts": [a.get("rule") for a in report.alerts if a.get("state") == "firing"],
    }


def labels_arrive(
    ws: Workspace, step: Step, live: pl.DataFrame, ids: dict[int, str], labels: Any
) -> dict[str, Any]:
    """Repayments of the replayed loans arrive: ground truth, then the labelled data version."""
    import polars as pl

    step("Labels arrive: repayments joined to the logged predictions")
    labelled = labelled_period(ws, live, labels)
    truth = pl.DataFrame(
        {
            "prediction_id": [ids[int(loan)] for loan in labelled["id"].to_list()],
            "label": labelled["repaid"].to_list(),
        }
    )
    ingest = ws.monitors.ingest_labels(truth)
    report = ws.monitors.run(MONITOR)
    published, validation = publish_labelled(ws, labelled)
    return {
        "ingest": ingest.to_dict(),
        "report": report.id,
        "quality": report.quality,
        "alerts": [a.get("rule") for a in report.alerts if a.get("state") == "firing"],
        "published": published,
        "validation": validation,
    }


def close_the_loop(
    ws: Workspace, step: Step, pipeline: Any, later: pl.DataFrame, labels: Any
) -> dict[str, Any]:
    """The alert's firing retrains; the challenger is canaried on the next loans; decided."""
    from keel.serving import AnalysisConfig

    step("Retraining: the drift alert's trigger runs its pipeline on the newest data")
    found = _cycles(ws.loop.tick(resolve={pipeline.name: pipeline}))
    if not found:
        reason = f"no '{DRIFT_RULE}' alert fired, so nothing was retrained"
        return {"cycle": {"phase": "idle", "reason": reason}, "canary_requests": 0}
    retrained = found[0]
    if retrained.phase != "canary":
        return {"cycle": retrained.to_dict(), "canary_requests": 0}
    # In the quickstart the repayments of the canary's loans come right behind its answers,
    # so its analysis compares accuracy too (in life they arrive later, as above).
    known = labelled_period(ws, later, labels)
    truth = dict(zip(known["id"].to_list(), known["repaid"].to_list(), strict=True))
    step(f"Canary: v{retrained.version} takes {CANARY_STEPS.split(',')[0]}% of the next loans")
    analysis = AnalysisConfig(
        min_requests=CANARY_REQUESTS, min_labels=200, max_psi=0.5, max_latency_ratio=20
    )
    with Traffic(ws, DEPLOYMENT, analysis=analysis) as traffic:
        traffic.until_decided(
            later,
            labels=truth,
            seconds=CANARY_SECONDS,
            progress=lambda sent: step(f"Canary: {sent:,} loans served"),
            batch=CANARY_BATCH,
        )
    step("Deciding: the canary analysis' verdict, and the champion alias")
    [decided] = _cycles(ws.loop.tick(resolve={pipeline.name: pipeline}))
    return {"cycle": decided.to_dict(), "canary_requests": traffic.sent}


def _cycles(cycles: list[LoopCycle]) -> list[LoopCycle]:
    return [c for c in cycles if c.trigger == RETRAIN_TRIGGER][:1]


def write_reports(ws: Workspace, step: Step, home: Path, validation_id: str) -> dict[str, str]:
    """The HTML monitoring report (drift, quality, alerts over time) and the gate's report."""
    step("Writing the HTML reports")
    folder = home / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    monitoring = folder / f"{MONITOR}.html"
    ws.monitors.write_html(MONITOR, monitoring)
    gate = folder / f"{DATASET}-validation.html"
    tmp = gate.with_name(gate.name + ".tmp")
    tmp.write_text(ws.datasets.report_html(validation_id), encoding="utf-8")
    tmp.replace(gate)
    return {"monitoring": str(monitoring), "validation": str(gate)}
