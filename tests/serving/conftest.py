"""Fixtures: a workspace with a registered random-forest classifier (champion and challenger)."""

# ruff: noqa: N806  (X is the feature matrix, as in scikit-learn)

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from keel.serving import ServeOptions, ServerHandle, start_in_thread
from keel.workspace import Workspace, connect
from tests.conftest import make_settings

FEATURES = 20


def training_data(seed: int = 0) -> tuple[Any, Any]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(400, FEATURES))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.int64)
    return X, y


def register_forest(
    ws: Workspace, *, trees: int = 10, seed: int = 0, alias: str | None = None
) -> int:
    from sklearn.ensemble import RandomForestClassifier

    X, y = training_data(seed)
    model = RandomForestClassifier(n_estimators=trees, max_depth=6, random_state=seed).fit(X, y)
    version = ws.models.log_model(model, name="churn", sample=X[:50])
    if alias:
        ws.models.set_alias("churn", alias, version.version)
    return version.version


@pytest.fixture
def served_ws(tmp_path: Path) -> Iterator[Workspace]:
    ws = connect(settings=make_settings(tmp_path / "home"), principal="user:tester")
    register_forest(ws, seed=0, alias="champion")
    register_forest(ws, seed=1, alias="challenger")
    try:
        yield ws
    finally:
        ws.close()


@pytest.fixture
def server(served_ws: Workspace) -> Iterator[ServerHandle]:
    app = served_ws.deployments.server(ServeOptions(models=["churn@champion"]))
    handle = start_in_thread(app)
    try:
        yield handle
    finally:
        handle.stop()


def serve_records(ws: Workspace, deployment: str, matrix: Any) -> list[str]:
    """Serve ``deployment`` in a thread, post ``matrix`` (features f0, f1, ...) to /predict
    as records, stop the server (flushing the prediction log); the prediction ids."""
    import httpx

    names = [f"f{i}" for i in range(matrix.shape[1])]
    records = [dict(zip(names, row.tolist(), strict=True)) for row in matrix]
    handle = start_in_thread(
        ws.deployments.server(ServeOptions(deployments=[deployment], analysis=None))
    )
    try:
        body = httpx.post(f"{handle.url}/predict", json={"records": records}, timeout=30).json()
    finally:
        handle.stop()  # flushes the prediction log
    ids: list[str] = body["prediction_ids"]
    return ids
