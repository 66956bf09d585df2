"""A small generated lending-like world for the closed loop: a champion in production, new data."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from keel.training import (
    RetrainingPolicy,
    load_dataset,
    retraining_pipeline,
    train_model,
)
from keel.workspace import Workspace, connect

FEATURES = ["a", "b", "c"]
MODEL = "loan-model"
DATASET = "loans"
DEPLOYMENT = "loan-model-production"
RULE = "loans-drift"
GATE: list[dict[str, Any]] = [
    {"kind": "row_count", "min": 100},
    {"kind": "not_null", "column": "a"},
]


def rows(seed: int, n: int, *, shift: float = 0.0, threshold: float = 0.0) -> pl.DataFrame:
    """Loans whose label is ``a + b/2 + noise > threshold``; ``shift`` moves ``a`` (drift)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(shift, 1.0, n)
    b = rng.normal(0.0, 1.0, n)
    c = rng.normal(0.0, 1.0, n)
    label = (a + 0.5 * b + rng.normal(0.0, 0.3, n) > threshold).astype(np.int64)
    return pl.DataFrame({"a": a, "b": b, "c": c, "label": label})


def publish(ws: Workspace, folder: Path, frame: pl.DataFrame, *, tag: str) -> Any:
    """A new version of the dataset holding ``frame``, validated and published."""
    path = folder / f"{DATASET}-{tag}.parquet"
    frame.write_parquet(path)
    version = ws.datasets.ingest(DATASET, path)
    ws.datasets.validate(DATASET, GATE, version=version.version)
    return ws.datasets.publish(DATASET, version.version)


@dataclass
class World:
    ws: Workspace
    folder: Path
    champion: int
    pipeline: Any
    policy: RetrainingPolicy


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """Champion v1 (trained on the old period) serving production; the loop connected."""
    from sklearn.linear_model import LogisticRegression

    ws = connect(settings=_settings(tmp_path / "home"), principal="user:tester")
    try:
        publish(ws, tmp_path, rows(1, 1500), tag="old")
        data = load_dataset(ws.datasets, DATASET, target="label", features=FEATURES)
        trained = train_model(
            ws, LogisticRegression(C=1.0), data, experiment="loop", register_as=MODEL, seed=3
        )
        assert trained.version is not None
        ws.models.set_alias(MODEL, "champion", trained.version.version, reason="first model")
        ws.deployments.deploy(f"{MODEL}@champion", environment="production")
        policy = RetrainingPolicy(
            model=MODEL, trigger=f"alert:{RULE}", metric="accuracy", margin=0.02
        )
        pipeline = retraining_pipeline(
            ws, policy, dataset=DATASET, target="label", features=FEATURES, experiment="loop"
        )
        ws.loop.connect(
            "retrain-on-drift", rule=RULE, pipeline=pipeline.name, deployment=DEPLOYMENT
        )
        yield World(ws, tmp_path, trained.version.version, pipeline, policy)
    finally:
        ws.close()


def _settings(home: Path) -> Any:
    from keel.settings import Settings

    return Settings(home=home)


def replay(
    ws: Workspace, frame: pl.DataFrame, *, seconds: float = 90.0, batch: int = 10
) -> dict[str, Any]:
    """Serve the deployment and send ``frame`` (with late labels) until its canary is decided."""
    import httpx

    from keel.serving import AnalysisConfig, ServeOptions, start_in_thread

    options = ServeOptions(
        deployments=[DEPLOYMENT],
        poll_seconds=0.2,
        analysis=AnalysisConfig(min_requests=30, min_labels=50, max_psi=1.0, max_latency_ratio=50),
    )
    records = frame.select(FEATURES).to_dicts()
    labels = frame["label"].to_list()
    handle = start_in_thread(ws.deployments.server(options))
    sent = 0
    started = time.monotonic()
    try:
        with httpx.Client(base_url=handle.url, timeout=30) as client:
            while ws.deployments.get(DEPLOYMENT).state.phase == "rolling":
                assert time.monotonic() - started < seconds, "the canary was not decided"
                first = sent % len(records)
                answer = client.post(f"/predict/{DEPLOYMENT}", json=records[first : first + batch])
                answer.raise_for_status()
                ids = answer.json()["prediction_ids"]
                truth = [
                    {"prediction_id": pid, "label": labels[first + i]} for i, pid in enumerate(ids)
                ]
                client.post(f"/labels/{DEPLOYMENT}", json={"labels": truth}).raise_for_status()
                sent += len(ids)
    finally:
        handle.stop()
    return {"sent": sent}
