"""``keel runs reproduce``: the same run again matches; changed data is detected."""

# ruff: noqa: N806  (X is the feature matrix, as in scikit-learn)

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from keel.cli import main
from keel.errors import InvalidInputError
from keel.training import TrainingData, load_file, reproduce_run, train_model
from keel.workspace import Workspace, connect
from tests.conftest import make_settings


def test_a_builtin_run_reproduces_exactly(local_ws: Workspace, wine: TrainingData) -> None:
    run = train_model(local_ws, RandomForestClassifier(n_estimators=15), wine, seed=5)
    report = reproduce_run(local_ws, run.run_id)
    assert report.matches, report.mismatches
    assert report.data_matches
    assert report.checks
    assert all(c.difference == 0.0 for c in report.checks)
    assert local_ws.runs.get(report.new_run_id).tags["keel.reproduces"] == run.run_id


def test_arrays_given_in_code_are_snapshotted_and_reproduce(local_ws: Workspace) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    data = TrainingData.from_arrays(X, y, sensitive=(X[:, 3] > 0), sensitive_name="flag")
    run = train_model(local_ws, LogisticRegression(), data, seed=2)
    report = reproduce_run(local_ws, run.run_id)
    assert report.matches
    assert any(c.key.startswith("test.slice.flag.") for c in report.checks)


def _write_csv(path: Path) -> None:
    bunch = load_breast_cancer()
    frame = pl.DataFrame(bunch.data[:, :8], schema=[f"x{i}" for i in range(8)]).with_columns(
        pl.Series("label", bunch.target)
    )
    frame.write_csv(path)


def test_reproduce_command_detects_changed_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "cancer.csv"
    _write_csv(source)
    data = load_file(source, target="label")
    home = str(tmp_path / "cli-home")
    with connect(settings=make_settings(Path(home))) as ws:  # as the CLI's (OS) user
        run = train_model(ws, RandomForestClassifier(n_estimators=10), data, seed=1)
    with pytest.raises(SystemExit) as exit_info:
        main(["--home", home, "runs", "reproduce", run.run_id, "--json"])
    assert exit_info.value.code == 0
    same = json.loads(capsys.readouterr().out)
    assert same["matches"] is True
    # someone edits the file behind the run's back: flip a tenth of the labels
    frame = pl.read_csv(source)
    labels = frame["label"].to_numpy().copy()
    labels[::10] = 1 - labels[::10]
    frame.with_columns(pl.Series("label", labels)).write_csv(source)
    with pytest.raises(SystemExit) as exit_info:
        main(["--home", home, "runs", "reproduce", run.run_id, "--json"])
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["matches"] is False
    assert report["data_matches"] is False
    assert any(not c["ok"] for c in report["checks"])
    assert "did not reproduce" in captured.err


def test_a_run_not_made_by_a_training_step_cannot_be_reproduced(local_ws: Workspace) -> None:
    with local_ws.runs.start(experiment="manual") as run:
        run.log_metrics({"test.auc": 0.9})
    with pytest.raises(InvalidInputError, match="not made by a Keel training step"):
        reproduce_run(local_ws, run.id)
