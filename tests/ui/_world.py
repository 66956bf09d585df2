"""A small Keel world for the UI tests: runs, a dataset with reports, models, a deployment."""

# ruff: noqa: N806  (X is the feature matrix, as in scikit-learn)

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from keel.tracking import Metric
from keel.workspace import Workspace

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@dataclass
class World:
    experiment: str
    runs: list[str]
    xss_run: str
    model: str
    deployment: str
    dataset: str
    failing_report: str


def _loans(rows: int) -> Any:
    import polars as pl

    rng = np.random.default_rng(0)
    return pl.DataFrame(
        {
            "id": list(range(rows)),
            "amount": (rng.random(rows) * 150).round(2).tolist(),
            "grade": [("A", "B", "C")[i % 3] for i in range(rows)],
            "email": [f"person{i}@example.com" for i in range(rows)],
        }
    )


def _monitor(ws: Workspace, X: Any, y: Any) -> None:  # noqa: N803
    """A drift monitor on the deployment, run twice on batches (the second one drifted)."""
    import polars as pl

    def frame(data: Any) -> pl.DataFrame:
        return pl.DataFrame({f"f{i}": data[:, i] for i in range(data.shape[1])})

    ws.datasets.ingest("churn-features", frame(X).with_columns(label=pl.Series(y)))
    ws.monitors.create(
        "churn-drift", deployment="churn-api", reference="churn-features:1", target="label"
    )
    ws.monitors.add_rule("drift-high", monitor="churn-drift", metric="drift.share", threshold=0.2)
    rng = np.random.default_rng(1)
    ws.monitors.run("churn-drift", current=frame(rng.normal(size=(200, 4))))
    ws.monitors.run(
        "churn-drift", current=frame(rng.normal(size=(200, 4)) + np.array([1.5, 0, 0, 0]))
    )


def build_world(ws: Workspace, *, runs: int = 4, steps: int = 30) -> World:
    """Runs with curves, one named with an XSS payload; a dataset; two model versions deployed."""
    from sklearn.linear_model import LogisticRegression

    made: list[str] = []
    for i in range(runs):
        with ws.runs.start(
            experiment="churn", name=f"run-{i}", params={"lr": 0.1 * (i + 1), "depth": i + 2}
        ) as run:
            metrics = [Metric("loss", 1.0 / (s + 1 + i), step=s) for s in range(steps)] + [
                Metric("auc", 0.5 + 0.4 * s / steps + 0.01 * i, step=s) for s in range(steps)
            ]
            ws.runs.log_batch(run.id, metrics=metrics)
            made.append(run.id)
    with ws.runs.start(experiment="churn", name=XSS, tags={"note": XSS}) as bad:
        ws.runs.log_metrics(bad.id, {"loss": 0.5})
    ws.datasets.ingest("loans", _loans(60))
    suite = [
        {"kind": "range", "column": "amount", "min": 0, "max": 100},
        {"kind": "not_null", "column": "id"},
    ]
    report = ws.datasets.validate("loans", suite)
    ws.datasets.classify("loans")
    ws.datasets.transform("loans", [{"op": "clip", "column": "amount", "upper": 100.0}])
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = (X[:, 0] > 0).astype(np.int64)
    for seed in (0, 1):
        model = LogisticRegression(C=1.0 + seed).fit(X, y)
        version = ws.models.log_model(model, name="churn-model", sample=X[:20], run_id=made[0])
        ws.models.set_alias("churn-model", "champion", version.version, reason=f"seed {seed}")
    ws.datasets.record_use("loans", 1, f"run:{made[0]}")
    ws.deployments.deploy("churn-model:1", environment="staging", name="churn-api")
    ws.deployments.deploy("churn-model:2", environment="staging", name="churn-api")
    _monitor(ws, X, y)
    return World(
        experiment="churn",
        runs=made,
        xss_run=bad.id,
        model="churn-model",
        deployment="churn-api",
        dataset="loans",
        failing_report=report.id,
    )
