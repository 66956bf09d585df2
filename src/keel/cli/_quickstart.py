"""``keel quickstart``: the lifecycle so far, end to end, on a realistic credit dataset.

The data is NannyML's synthetic car-loan dataset (Apache-2.0, shipped inside the ``nannyml``
wheel; see docs/datasets.md): 50,000 loans of a reference period in time order, and 50,000 of
a later production period whose distribution drifts, with their late-arriving repayment labels.

1. Data: ingest the files as dataset versions, classify their columns, derive model features
   with declarative steps, validate the result through the gate and publish it.
2. Training: the ``quickstart-train`` pipeline (load -> tune -> check) reads the *published*
   version only, searches a gradient-boosting classifier with Optuna (trials in worker
   processes, each a child run), registers the refitted best model (skops + ONNX, never
   pickle) and verifies it; ``champion`` points at it, with the reason recorded.
3. Serving: a random forest trained on the same version becomes the ``challenger``; the
   champion is deployed to production (blue-green), the challenger as a canary, the model
   server replays production rows (same derived features), and its canary analysis promotes
   or rolls back by itself.
4. Checks: the champion reloads in both formats with matching predictions; the audit chain
   verifies.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from keel.cli._app import open_workspace, state
from keel.cli._output import echo_json, print_kv

if TYPE_CHECKING:
    from keel.workspace import Workspace

__all__ = ["FEATURES", "SUITE", "quickstart", "quickstart_data_dir", "run_quickstart"]

Advance = Callable[[str], None]

EXPERIMENT = "quickstart-car-loans"
MODEL = "car-loan-classifier"
DATASET = "car-loans"
PRODUCTION = "car-loans-production"
LABELS = "car-loans-production-labels"
SEED = 42
#: The HPO search: trials, and trials in flight (worker processes).
TRIALS = 8
WORKERS = 2
#: Canary rollout: traffic shares, and how long production traffic is replayed at most.
CANARY_STEPS = "20,100"
TRAFFIC_SECONDS = 60.0
#: Progress stages: data 3, training 3, deriving 1, serving 3, checks 1.
STAGES = 11
FEATURES = [
    "car_value",
    "salary_band",
    "debt_to_income_ratio",
    "loan_length",
    "prev_car_repaid",
    "downpayment_pct",
    "driver_tenure",
]
#: Model features derived from the raw columns, as declarative (SQL-expression) steps.
FEATURE_STEPS: list[dict[str, Any]] = [
    {"op": "drop_columns", "columns": ["y_pred_proba", "y_pred"]},
    {
        "op": "derive",
        "column": "salary_band",
        "expr": "CASE salary_range WHEN '0 - 20K €' THEN 0 WHEN '20K - 40K €' THEN 1 "
        "WHEN '40K - 60K €' THEN 2 ELSE 3 END",
    },
    {
        "op": "derive",
        "column": "downpayment_pct",
        "expr": "CAST(REPLACE(size_of_downpayment, '%', '') AS DOUBLE) / 100",
    },
    {
        "op": "derive",
        "column": "prev_car_repaid",
        "expr": "CAST(repaid_loan_on_prev_car AS INTEGER)",
    },
    {"op": "cast", "column": "repaid", "dtype": "int64"},
]
#: The same features for production rows (their labels arrive later, in another file).
PRODUCTION_STEPS = [s for s in FEATURE_STEPS if s.get("column") != "repaid"]
#: The gate: errors block publishing, warnings are recorded.
SUITE: list[dict[str, Any]] = [
    {"kind": "row_count", "min": 10_000},
    *({"kind": "not_null", "column": c} for c in [*FEATURES, "repaid"]),
    {"kind": "unique", "column": "id"},
    {"kind": "range", "column": "debt_to_income_ratio", "min": 0, "max": 1},
    {"kind": "range", "column": "downpayment_pct", "min": 0, "max": 1},
    {"kind": "allowed_values", "column": "repaid", "values": [0, 1]},
    {"kind": "range", "column": "car_value", "min": 0, "max": 100_000, "level": "warning"},
]


def _require_sklearn() -> None:
    from keel.errors import MissingDependencyError

    try:
        import sklearn  # noqa: F401
        import skops  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            exc.name or "scikit-learn", extra="sklearn", purpose="keel quickstart"
        ) from exc


def quickstart_data_dir() -> Path:
    """The folder of NannyML's bundled data files, found without importing nannyml."""
    import importlib.util

    from keel.errors import MissingDependencyError

    spec = importlib.util.find_spec("nannyml")
    if spec is None or spec.origin is None:
        raise MissingDependencyError(
            "nannyml", extra="quickstart", purpose="keel quickstart (its car-loan data files)"
        )
    folder = Path(spec.origin).parent / "datasets" / "data"
    if not (folder / "synthetic_car_loan_reference.csv").is_file():
        raise MissingDependencyError(
            "nannyml", extra="quickstart", purpose="keel quickstart (its car-loan data files)"
        )
    return folder


def _prepare_data(ws: Workspace, step: Advance) -> dict[str, Any]:
    """Ingest, classify, derive features, validate through the gate, publish."""
    folder = quickstart_data_dir()
    step("Ingesting the car-loan data as dataset versions")
    raw = ws.datasets.ingest(DATASET, folder / "synthetic_car_loan_reference.csv")
    production = ws.datasets.ingest(PRODUCTION, folder / "synthetic_car_loan_analysis.csv")
    labels = ws.datasets.ingest(LABELS, folder / "synthetic_car_loan_analysis_target.csv")
    step("Classifying columns and deriving features")
    classified = ws.datasets.classify(DATASET, raw.version)
    ws.datasets.classify(PRODUCTION, production.version)
    features = ws.datasets.transform(DATASET, FEATURE_STEPS, version=raw.version)
    step("Validating through the gate and publishing")
    report = ws.datasets.validate(DATASET, SUITE, version=features.version)
    published = ws.datasets.publish(DATASET, features.version)
    return {
        "raw": raw,
        "features": published,
        "report": report,
        "sensitivity": classified.sensitivity,
        "production": production,
        "labels": labels,
    }


def _train(ws: Workspace, step: Advance, published: Any) -> dict[str, Any]:
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
    step("Pointing the champion alias at the best model")
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


def _challenger(ws: Workspace, step: Advance) -> dict[str, Any]:
    """A random forest on the same published version, registered as the challenger."""
    from sklearn.ensemble import RandomForestClassifier

    from keel.training import load_dataset, train_model

    step("Training the challenger (random forest) on the same version")
    data = load_dataset(ws.datasets, DATASET, target="repaid", features=FEATURES)
    trained = train_model(
        ws,
        RandomForestClassifier(n_estimators=60, max_depth=8, n_jobs=1),
        data,
        experiment=EXPERIMENT,
        run_name="quickstart-challenger-random-forest",
        seed=SEED,
        register_as=MODEL,
        tags={"model.kind": "random_forest"},
        model_tags={"keel.stage": "challenger"},
    )
    assert trained.version is not None
    ws.models.set_alias(
        MODEL,
        "challenger",
        trained.version.version,
        reason="random forest to compare with the champion on live traffic (keel quickstart)",
    )
    return {
        "model": MODEL,
        "version": trained.version.version,
        "version_id": trained.version.id,
        "run_id": trained.run_id,
        "test_auc": trained.metrics.get("test.auc"),
    }


def _production_rows(ws: Workspace, production: Any) -> Any:
    """Production rows with the model's derived features, as a new version of their dataset."""
    derived = ws.datasets.transform(PRODUCTION, PRODUCTION_STEPS, version=production.version)
    frame = ws.datasets.read(PRODUCTION, derived.version).sort("timestamp")
    return derived, frame.select(FEATURES)


def _serve(ws: Workspace, step: Advance, rows: Any) -> dict[str, Any]:
    """Champion in production, challenger as a canary; replay traffic until the server decides."""
    import httpx

    from keel.serving import AnalysisConfig, ServeOptions, start_in_thread

    step("Deploying the champion to production (blue-green)")
    ws.deployments.deploy(f"{MODEL}@champion", environment="production")
    step(f"Deploying the challenger as a canary ({CANARY_STEPS})")
    canary = ws.deployments.deploy(
        f"{MODEL}@challenger", environment="production", strategy="canary", steps=CANARY_STEPS
    )
    options = ServeOptions(
        deployments=[canary.name],
        poll_seconds=0.5,
        analysis=AnalysisConfig(min_requests=60, max_latency_ratio=20.0),
    )
    records = rows.to_dicts()
    sent = 0
    handle = start_in_thread(ws.deployments.server(options))
    started = time.monotonic()
    try:
        with httpx.Client(base_url=handle.url, timeout=30) as client:
            while ws.deployments.get(canary.name).state.phase == "rolling":
                if time.monotonic() - started > TRAFFIC_SECONDS:
                    break
                first = sent % len(records)
                for record in records[first : first + 100]:
                    client.post(f"/predict/{canary.name}", json=[record]).raise_for_status()
                    sent += 1
                step(f"Replaying production traffic: {sent:,} requests")
    finally:
        handle.stop()
    final = ws.deployments.get(canary.name)
    revisions = ws.deployments.revisions(canary.name)
    decided = [
        r for r in revisions if r.revision > canary.revision and r.action.startswith("analysis.")
    ]
    last = decided[-1] if decided else None
    return {
        "name": canary.name,
        "environment": canary.environment,
        "strategy": "canary",
        "steps": CANARY_STEPS,
        "requests": sent,
        "traffic_seconds": round(time.monotonic() - started, 2),
        "decision": final.state.phase if last else "undecided",
        "action": last.action if last else None,
        "reason": last.reason
        if last
        else f"no decision within {TRAFFIC_SECONDS:.0f} s of traffic ({sent} requests)",
        "serving_version": final.state.primary,
        "revisions": [{"revision": r.revision, "action": r.action} for r in revisions],
        "predictions_logged": ws.deployments.read_predictions(canary.name).height,
    }


def _reload_matches(ws: Workspace, formats: list[str], rows: Any) -> bool:
    """The champion's formats, reloaded from the registry, predict the same on production rows."""
    import numpy as np

    x = rows.head(2_000).to_numpy().astype(float)
    predictions = [
        ws.models.load(f"{MODEL}@champion", format=fmt, verify=True).predict_proba(x)
        for fmt in formats
    ]
    return all(np.allclose(p, predictions[0], atol=1e-4) for p in predictions[1:])


def run_quickstart(ws: Workspace, progress: Any) -> dict[str, Any]:
    """Data, HPO pipeline, champion, challenger, canary, checks; returns the ids and figures."""
    task = progress.add_task("Keel quickstart", total=STAGES)
    started: list[str] = []

    def step(description: str) -> None:
        """Start the next stage (the previous one is done); repeated traffic lines update it."""
        stage = description.split(":")[0]
        if stage not in started:
            started.append(stage)
        progress.update(task, completed=len(started) - 1, description=description)

    data = _prepare_data(ws, step)
    published = data["features"]
    trained = _train(ws, step, published)
    challenger = _challenger(ws, step)
    step("Deriving the production rows' features")
    production_features, rows = _production_rows(ws, data["production"])
    deployment = _serve(ws, step, rows)
    step("Reloading the champion and verifying the audit chain")
    same = _reload_matches(ws, trained["champion"]["formats"], rows)
    report = ws.audit.verify()
    progress.update(task, completed=STAGES, description="Done")
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
                "features_version": production_features.version,
                "rows": data["production"].row_count,
            },
            "labels": {"name": LABELS, "version": data["labels"].version},
        },
        "pipeline": {k: v for k, v in trained.items() if k != "champion"},
        "champion": trained["champion"],
        "challenger": challenger,
        "deployment": deployment,
        "reload_matches": same,
        "audit": {"ok": report.ok, "events": report.checked},
    }


def _rows(summary: dict[str, Any]) -> list[tuple[str, Any]]:
    dataset, pipeline = summary["dataset"], summary["pipeline"]
    champion, challenger = summary["champion"], summary["challenger"]
    deployment = summary["deployment"]
    params = ", ".join(f"{k}={v:.3g}" for k, v in sorted(pipeline["best_params"].items()))
    return [
        ("store", summary["home"]),
        ("project", summary["project"]),
        (
            "dataset",
            f"{dataset['name']} v{dataset['published_version']} published "
            f"({dataset['rows']:,} rows, from raw v{dataset['raw_version']}; "
            f"sensitivity {dataset['sensitivity']})",
        ),
        (
            "validation gate",
            f"passed with {dataset['validation_warnings']} warning(s), "
            f"report {dataset['validation_report']}",
        ),
        ("pipeline run", f"{pipeline['pipeline_run_id']}  (quickstart-train: load, tune, check)"),
        (
            "HPO search run",
            f"{pipeline['search_run_id']}  ({pipeline['trials']} trials, "
            f"{pipeline['pruned']} pruned; best valid AUC {pipeline['best_valid_auc']:.4f})",
        ),
        ("best params", params),
        (
            "champion",
            f"{champion['model']} v{champion['version']} (gradient boosting, test AUC "
            f"{champion['test_auc']:.4f}) [{', '.join(champion['formats'])}]",
        ),
        ("champion reason", champion["reason"]),
        (
            "challenger",
            f"{challenger['model']} v{challenger['version']} (random forest, test AUC "
            f"{challenger['test_auc']:.4f})",
        ),
        (
            "deployment",
            f"{deployment['name']}: canary {deployment['steps']}, "
            f"{deployment['requests']:,} requests in {deployment['traffic_seconds']} s, "
            f"{deployment['predictions_logged']:,} predictions logged",
        ),
        (
            "canary decision",
            f"{deployment['decision']}, serving v{deployment['serving_version']}: "
            f"{deployment['reason']}",
        ),
        ("reloaded predictions match", summary["reload_matches"]),
        (
            "audit chain",
            f"intact, {summary['audit']['events']} events" if summary["audit"]["ok"] else "BROKEN",
        ),
        ("took", f"{summary['seconds']} s"),
    ]


def quickstart(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Run the lifecycle on real data: ingest, gate, train with HPO, register, deploy, canary."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    _require_sklearn()
    quickstart_data_dir()
    started = time.perf_counter()
    with (
        open_workspace(create=True) as ws,
        Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            transient=as_json,
            disable=as_json,
        ) as progress,
    ):
        summary = run_quickstart(ws, progress)
    summary["seconds"] = round(time.perf_counter() - started, 2)
    if as_json:
        echo_json(summary)
        return
    home = "" if state.home is None else f" --home {state.home}"
    print_kv("Keel quickstart: done", _rows(summary))
    typer.echo(
        "\nNext:\n"
        f"  keel{home} datasets versions {DATASET}\n"
        f"  keel{home} datasets show {DATASET} --version published\n"
        f"  keel{home} pipelines show {summary['pipeline']['pipeline_run_id']}\n"
        f"  keel{home} runs list --order-by 'metrics.`test.auc` DESC'\n"
        f"  keel{home} models show {MODEL}\n"
        f"  keel{home} deployments show {summary['deployment']['name']}\n"
        f"  keel{home} lineage show dataset_version:{summary['dataset']['version_id']}\n"
        f"  keel{home} audit verify\n"
    )
