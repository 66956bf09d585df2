"""``keel quickstart``: the lifecycle so far, end to end, on real data shipped with scikit-learn.

It trains two candidate models on the Wisconsin breast-cancer dataset (bundled with
scikit-learn), tracks both runs with their params, metric curves and environment, registers the
better one in skops format (never pickle), points the ``champion`` alias at it, reloads it from
the registry to prove the stored artifact predicts identically, and checks the audit chain.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from keel.cli._app import open_workspace, state
from keel.cli._output import echo_json, print_kv

if TYPE_CHECKING:
    from keel.workspace import Workspace

__all__ = ["quickstart", "run_quickstart"]

EXPERIMENT = "quickstart-breast-cancer"
MODEL = "breast-cancer-classifier"
SEED = 42


def _require_sklearn() -> None:
    from keel.errors import MissingDependencyError

    try:
        import sklearn  # noqa: F401
        import skops  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            exc.name or "scikit-learn", extra="sklearn", purpose="keel quickstart"
        ) from exc


def _evaluate(model: Any, x: Any, y: Any) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

    proba = model.predict_proba(x)[:, 1]
    predicted = (proba >= 0.5).astype(int)
    return {
        "auc": float(roc_auc_score(y, proba)),
        "accuracy": float(accuracy_score(y, predicted)),
        "f1": float(f1_score(y, predicted)),
        "log_loss": float(log_loss(y, proba)),
    }


def run_quickstart(ws: Workspace, progress: Any) -> dict[str, Any]:
    """Train, track, register and promote; returns the ids and figures it produced."""
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    task = progress.add_task("Loading the breast-cancer dataset", total=6)
    data = load_breast_cancer()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.25, random_state=SEED, stratify=data.target
    )
    feature_names = [str(name) for name in data.feature_names]
    dataset = {
        "dataset.name": "sklearn.datasets.load_breast_cancer",
        "dataset.rows": str(len(data.target)),
        "dataset.features": str(len(feature_names)),
    }
    progress.advance(task)

    candidates: list[dict[str, Any]] = []
    specs: list[tuple[str, dict[str, Any]]] = [
        ("random_forest", {"n_estimators": 100, "max_depth": 6}),
        ("logistic_regression", {"C": 1.0, "max_iter": 2000}),
    ]
    for kind, params in specs:
        progress.update(task, description=f"Training {kind.replace('_', ' ')}")
        with ws.runs.start(
            experiment=EXPERIMENT, name=f"quickstart-{kind}", tags={"model.kind": kind, **dataset}
        ) as run:
            run.log_params({**params, "model": kind, "seed": SEED, "test_size": 0.25})
            if kind == "random_forest":
                model: Any = RandomForestClassifier(random_state=SEED, n_jobs=1, warm_start=True)
                for step, trees in enumerate((10, 25, 50, params["n_estimators"])):
                    model.set_params(n_estimators=trees, max_depth=params["max_depth"])
                    model.fit(x_train, y_train)
                    run.log_metrics(
                        {f"test_{k}": v for k, v in _evaluate(model, x_test, y_test).items()},
                        step=step,
                    )
            else:
                model = make_pipeline(
                    StandardScaler(),
                    LogisticRegression(C=params["C"], max_iter=params["max_iter"]),
                )
                model.fit(x_train, y_train)
            test = _evaluate(model, x_test, y_test)
            train = _evaluate(model, x_train, y_train)
            run.log_metrics({**{f"test_{k}": v for k, v in test.items()}}, step=len(specs) + 2)
            run.log_metrics({f"train_{k}": v for k, v in train.items()})
        candidates.append({"kind": kind, "run_id": run.id, "model": model, "metrics": test})
        progress.advance(task)

    progress.update(task, description="Comparing candidates")
    ids = ", ".join(f"'{c['run_id']}'" for c in candidates)
    page = ws.runs.search(
        f"run_id IN ({ids}) and status = 'FINISHED'",
        experiments=[EXPERIMENT],
        order_by=["metrics.test_auc DESC"],
        max_results=1,
    )
    best = next(c for c in candidates if c["run_id"] == page.runs[0].id)
    progress.advance(task)

    progress.update(task, description="Registering the champion (skops)")
    signature = {
        "inputs": [{"name": name, "datatype": "FP64", "shape": [-1]} for name in feature_names],
        "outputs": [{"name": "probability", "datatype": "FP64", "shape": [-1, 2]}],
    }
    version = ws.models.log_sklearn(
        best["model"],
        name=MODEL,
        run_id=best["run_id"],
        signature=signature,
        metrics=best["metrics"],
        description=f"{best['kind']} trained by keel quickstart",
    )
    move = ws.models.set_alias(
        MODEL, "champion", version.version, reason="best test AUC in keel quickstart"
    )
    progress.advance(task)

    progress.update(task, description="Reloading the champion from the registry")
    loaded = ws.models.load_sklearn(f"{MODEL}@champion")
    same = bool(np.array_equal(loaded.predict_proba(x_test), best["model"].predict_proba(x_test)))
    report = ws.audit.verify()
    progress.advance(task)
    return {
        "home": str(ws.settings.home.resolve()),
        "project": ws.project,
        "experiment": EXPERIMENT,
        "runs": {c["kind"]: c["run_id"] for c in candidates},
        "metrics": {c["kind"]: c["metrics"] for c in candidates},
        "champion": {
            "model": MODEL,
            "version": version.version,
            "version_id": version.id,
            "kind": best["kind"],
            "run_id": best["run_id"],
            "digest": version.artifact_digest,
            "format": version.format,
            "alias_previous": move.from_version,
        },
        "reload_matches": same,
        "audit": {"ok": report.ok, "events": report.checked},
    }


def quickstart(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Run the lifecycle on real data: train, track, register (skops), promote, verify."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    _require_sklearn()
    started = time.perf_counter()
    with (
        open_workspace(create=True) as ws,
        Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
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
    champion = summary["champion"]
    home = "" if state.home is None else f" --home {state.home}"
    rows: list[tuple[str, Any]] = [("store", summary["home"]), ("project", summary["project"])]
    for kind, run_id in summary["runs"].items():
        auc = summary["metrics"][kind]["auc"]
        rows.append((f"run {kind}", f"{run_id}  (test AUC {auc:.4f})"))
    rows += [
        ("champion", f"{champion['model']} v{champion['version']} ({champion['kind']})"),
        ("model version id", champion["version_id"]),
        ("artifact", f"{champion['digest']} [{champion['format']}]"),
        ("reloaded predictions match", summary["reload_matches"]),
        (
            "audit chain",
            f"intact, {summary['audit']['events']} events" if summary["audit"]["ok"] else "BROKEN",
        ),
        ("took", f"{summary['seconds']} s"),
    ]
    print_kv("Keel quickstart: done", rows)
    typer.echo(
        "\nNext:\n"
        f"  keel{home} runs list --order-by 'metrics.test_auc DESC'\n"
        f"  keel{home} runs show {champion['run_id']}\n"
        f"  keel{home} models show {champion['model']}\n"
        f"  keel{home} audit verify\n"
    )
