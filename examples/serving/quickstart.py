"""Serving quickstart: champion in production, challenger as a canary, automatic decision.

1. train two models on the breast-cancer data that ships with scikit-learn and register them
   as ``cancer@champion`` and ``cancer@challenger``;
2. deploy the champion to production, then the challenger as a canary (20% -> 100%);
3. start the model server and replay the held-out rows against it;
4. the server's analysis compares canary with baseline at each step and promotes (or rolls
   back) by itself; print its decisions and reasons.

Run: .venv/bin/python examples/serving/quickstart.py [--home DIR]
"""

# ruff: noqa: N806  (X is the feature matrix, as in scikit-learn)

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import httpx
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.model_selection import train_test_split

from keel.serving import AnalysisConfig, ServeOptions, start_in_thread
from keel.settings import Settings
from keel.workspace import connect


def main(home: Path) -> None:
    ws = connect(settings=Settings(home=home))
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_held, y_train, _ = train_test_split(X, y, test_size=0.4, random_state=0)
    names = [f"x{i}" for i in range(X.shape[1])]
    for alias, model in (
        ("champion", RandomForestClassifier(n_estimators=50, random_state=0)),
        ("challenger", GradientBoostingClassifier(random_state=0)),
    ):
        version = ws.models.log_model(
            model.fit(X_train, y_train), name="cancer", sample=X_train[:50], feature_names=names
        )
        ws.models.set_alias("cancer", alias, version.version, reason="quickstart")
    ws.deployments.deploy("cancer@champion", environment="production")
    canary = ws.deployments.deploy(
        "cancer@challenger", environment="production", strategy="canary", steps="20,100"
    )
    print(f"canary: {canary.state.canary_weight:.0%} of traffic to v{canary.state.candidate}")
    options = ServeOptions(
        deployments=[canary.name],
        poll_seconds=0.5,
        analysis=AnalysisConfig(min_requests=60, max_latency_ratio=20.0),
    )
    handle = start_in_thread(ws.deployments.server(options))
    try:
        with httpx.Client(base_url=handle.url) as client:
            deadline = time.monotonic() + 120
            while ws.deployments.get(canary.name).state.phase == "rolling":
                if time.monotonic() > deadline:
                    break
                for row in X_held:
                    record = dict(zip(names, row.tolist(), strict=True))
                    client.post(f"/predict/{canary.name}", json=[record]).raise_for_status()
    finally:
        handle.stop()
    for revision in ws.deployments.revisions(canary.name):
        print(f"#{revision.revision} {revision.action:18} {revision.reason}")
    final = ws.deployments.get(canary.name)
    print(f"final: {final.state.phase}, serving v{final.state.primary}")
    logged = ws.deployments.read_predictions(canary.name)
    print(f"{logged.height} predictions logged")
    ws.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", type=Path)
    args = parser.parse_args()
    if args.home:
        main(args.home)
    else:
        with tempfile.TemporaryDirectory() as scratch:
            main(Path(scratch) / "home")
