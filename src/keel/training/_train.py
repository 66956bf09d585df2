"""Training steps: fit a scikit-learn, XGBoost or LightGBM model as a tracked run.

One call splits the data (fixed by the seed), fits with learning curves, evaluates every split
with the standard metrics and the held-out split per slice of the sensitive attribute, records
everything needed to reproduce the run (``keel/training.json``; arrays given in code are
snapshotted as ``keel/data.npz``), and optionally registers the model in safe formats.
"""

# ruff: noqa: N806  (X is the feature matrix, as in scikit-learn)

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from keel.tracking import Metric, ModelVersion
from keel.training._data import Splits, TrainingData, split_data
from keel.training._estimators import (
    CurvePoint,
    Reporter,
    describe_estimator,
    fit_with_curves,
    flavor_of,
    task_of,
    with_seed,
)
from keel.training._metrics import Task, evaluate, flatten_metrics, slice_metrics

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from keel.training._ports import WorkspacePort

__all__ = [
    "SPEC_ARTIFACT",
    "SNAPSHOT_ARTIFACT",
    "TrainResult",
    "evaluate_model",
    "train_lightgbm",
    "train_model",
    "train_sklearn",
    "train_xgboost",
]

SPEC_ARTIFACT = "keel/training.json"
SNAPSHOT_ARTIFACT = "keel/data.npz"
SPEC_SCHEMA = "keel.training/1"


@dataclass(frozen=True)
class TrainResult:
    """What a training step produced.

    Attributes:
        run_id: the tracked run.
        model: the fitted estimator.
        metrics: every logged metric's final value (``test.auc``, ``test.slice.…``).
        task: ``classification`` or ``regression``.
        version: the registered model version, when ``register_as`` was given.
    """

    run_id: str
    model: Any
    metrics: dict[str, float]
    task: Task
    splits: Splits = field(repr=False)
    version: ModelVersion | None = None


def evaluate_model(
    model: Any,
    data: TrainingData,
    splits: Splits,
    *,
    task: Task | None = None,
) -> dict[str, float]:
    """Standard metrics of each split, and per-slice metrics of the test split."""
    kind = task or task_of(model)
    classes = list(model.classes_) if kind == "classification" else None
    out: dict[str, float] = {}
    for split, rows in splits.items():
        X, y = data.X[rows], data.y[rows]
        pred = model.predict(X)
        proba = model.predict_proba(X) if kind == "classification" else None
        metrics = evaluate(kind, y, pred, proba, classes)
        slices = None
        if split == "test" and data.sensitive is not None:
            slices = slice_metrics(kind, data.sensitive[rows], y, pred, proba, classes)
        out.update(flatten_metrics(split, metrics, attribute=data.source.sensitive, slices=slices))
    return out


def _snapshot(data: TrainingData) -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    arrays: dict[str, NDArray[Any]] = {
        "X": data.X,
        "y": data.y if data.y.dtype.kind != "O" else data.y.astype(str),
        "feature_names": np.asarray(data.feature_names, dtype=str),
    }
    if data.sensitive is not None:
        arrays["sensitive"] = np.asarray(data.sensitive, dtype=str)
    np.savez_compressed(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


def _spec(estimator: Any, data: TrainingData, split: dict[str, Any], seed: int) -> dict[str, Any]:
    return {
        "schema": SPEC_SCHEMA,
        "estimator": describe_estimator(estimator),
        "flavor": flavor_of(estimator),
        "data": {**data.source.to_dict(), "feature_names": list(data.feature_names)},
        "split": split,
        "seed": seed,
    }


def _points(curves: list[CurvePoint], metrics: Mapping[str, float]) -> list[Metric]:
    points = [Metric(p.key, p.value, p.step) for p in curves]
    points.extend(Metric(key, value) for key, value in metrics.items())
    return points


def train_model(
    ws: WorkspacePort,
    estimator: Any,
    data: TrainingData,
    *,
    experiment: str = "Default",
    run_name: str | None = None,
    seed: int = 0,
    test_size: float = 0.2,
    valid_size: float = 0.2,
    register_as: str | None = None,
    onnx: bool | Literal["auto"] = "auto",
    parent_run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
    model_tags: Mapping[str, str] | None = None,
    reporter: Reporter | None = None,
) -> TrainResult:
    """Train ``estimator`` on ``data`` as a tracked run; any of the three libraries.

    Args:
        ws: the workspace (``keel.connect()``).
        estimator: an unfitted scikit-learn estimator, or XGBoost / LightGBM sklearn-API model.
        data: the training data (see :class:`TrainingData`, :func:`load_builtin`).
        experiment: the experiment to log the run in.
        run_name: the run's name (generated if None).
        seed: fixes the split and the estimator's ``random_state``.
        test_size: held-out fraction evaluated at the end (metrics ``test.*``).
        valid_size: validation fraction for curves and pruning (``valid.*``); 0 for none.
        register_as: register the fitted model under this name (safe formats, with package).
        onnx: also store an ONNX conversion of a scikit-learn model (``"auto"``: if possible).
        parent_run_id: make this run a child (an HPO trial, a pipeline step).
        tags: more run tags.
        model_tags: more tags of the registered version.
        reporter: receives the validation loss while fitting (pruning).
    """
    from sklearn.base import clone

    model = with_seed(clone(estimator), seed)
    task = task_of(model)
    split = {"test_size": test_size, "valid_size": valid_size, "seed": seed, "stratify": True}
    splits = split_data(data, test_size=test_size, valid_size=valid_size, seed=seed)
    spec = _spec(model, data, split, seed)
    run_tags = {
        "keel.trainer": spec["flavor"],
        "keel.task": task,
        "keel.data.kind": data.source.kind,
        "keel.data.digest": data.source.digest,
    }
    if data.dataset_version:
        run_tags["keel.dataset_version"] = data.dataset_version
    run_tags.update(tags or {})
    params = {f"model.{k}": v for k, v in spec["estimator"]["params"].items()}
    params.update({"estimator": spec["estimator"]["class"], "seed": seed})
    params.update({f"split.{k}": v for k, v in split.items() if k != "seed"})
    with ws.runs.start(
        experiment=experiment,
        name=run_name,
        params=params,
        tags=run_tags,
        parent_run_id=parent_run_id,
    ) as run:
        run.log_bytes(json.dumps(spec, sort_keys=True).encode(), name=SPEC_ARTIFACT)
        if data.source.kind == "inline":
            run.log_bytes(_snapshot(data), name=SNAPSHOT_ARTIFACT)
        valid = splits.valid if len(splits.valid) else None
        curves = fit_with_curves(
            model,
            data.X[splits.train],
            data.y[splits.train],
            None if valid is None else data.X[valid],
            None if valid is None else data.y[valid],
            reporter=reporter,
        )
        metrics = evaluate_model(model, data, splits, task=task)
        run.log_batch(_points(curves, metrics))
        _record_use(ws, data, run.id)
        version = None
        if register_as is not None:
            held_out = splits.test if len(splits.test) else splits.train
            version = ws.models.log_model(
                model,
                name=register_as,
                sample=data.X[held_out],
                holdout=data.X[held_out],
                run_id=run.id,
                onnx=onnx,
                feature_names=data.feature_names,
                code_version=run.info.code_version,
                dataset_version=data.dataset_version,
                seed=seed,
                metrics={k: v for k, v in metrics.items() if k.startswith("test.")},
                tags=model_tags,
            )
    return TrainResult(
        run_id=run.id, model=model, metrics=metrics, task=task, splits=splits, version=version
    )


def _record_use(ws: WorkspacePort, data: TrainingData, run_id: str) -> None:
    """Link the dataset version to the run in the lineage graph (when the data has one)."""
    datasets = getattr(ws, "datasets", None)
    if data.source.dataset and datasets is not None and hasattr(datasets, "record_use"):
        name, _, number = data.source.dataset.rpartition(":")
        datasets.record_use(name, int(number), f"run:{run_id}")


def _check_flavor(estimator: Any, expected: str) -> None:
    from keel.errors import InvalidInputError

    found = flavor_of(estimator)
    if found != expected:
        raise InvalidInputError(
            f"train_{expected} got a {found} model ({type(estimator).__name__}); use "
            f"train_{found} or train_model.",
        )


def train_sklearn(
    ws: WorkspacePort, estimator: Any, data: TrainingData, **options: Any
) -> TrainResult:
    """Train a scikit-learn estimator as a tracked run (see :func:`train_model`)."""
    _check_flavor(estimator, "sklearn")
    return train_model(ws, estimator, data, **options)


def train_xgboost(
    ws: WorkspacePort, estimator: Any, data: TrainingData, **options: Any
) -> TrainResult:
    """Train an XGBoost model (sklearn API); curves are its per-round evaluation metrics."""
    _check_flavor(estimator, "xgboost")
    return train_model(ws, estimator, data, **options)


def train_lightgbm(
    ws: WorkspacePort, estimator: Any, data: TrainingData, **options: Any
) -> TrainResult:
    """Train a LightGBM model (sklearn API); curves are its per-round evaluation metrics."""
    _check_flavor(estimator, "lightgbm")
    return train_model(ws, estimator, data, **options)
