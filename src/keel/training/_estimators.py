"""Estimators: describe one as data, rebuild it from that description, and fit it with curves.

A fit records learning curves (a loss per boosting round or stage, on the training and the
validation split) and can report the validation loss to a pruner while it trains:

* XGBoost: ``evals_result()`` and a training callback;
* LightGBM: ``evals_result_`` and a callback;
* scikit-learn: ``staged_predict(_proba)`` when the estimator has it; pruning grows ensembles
  that support ``warm_start`` (forests, gradient boosting) in chunks of trees.
"""

# ruff: noqa: N803  (X is the feature matrix, as in scikit-learn)

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from keel.errors import InvalidInputError, PermissionDeniedError
from keel.training._metrics import Task

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "ALLOWED_ESTIMATOR_MODULES",
    "CurvePoint",
    "Pruned",
    "Reporter",
    "build_estimator",
    "describe_estimator",
    "fit_with_curves",
    "flavor_of",
    "task_of",
    "with_seed",
]

#: Estimator classes may be rebuilt from a recorded run only from these libraries.
ALLOWED_ESTIMATOR_MODULES = ("sklearn", "xgboost", "lightgbm")
_MAX_CURVE_POINTS = 500

#: ``reporter(step, validation_loss) -> True`` asks the fit to stop (the trial is pruned).
Reporter = Callable[[int, float], bool]


class Pruned(Exception):  # noqa: N818 - the name says what happened to the trial
    """Raised out of a fit that a pruner stopped early."""

    def __init__(self, step: int) -> None:
        super().__init__(f"pruned at step {step}")
        self.step = step


@dataclass(frozen=True)
class CurvePoint:
    key: str
    value: float
    step: int


def flavor_of(estimator: Any) -> str:
    """``xgboost``, ``lightgbm`` or ``sklearn``."""
    root = type(estimator).__module__.split(".", 1)[0]
    return root if root in ("xgboost", "lightgbm") else "sklearn"


def task_of(estimator: Any) -> Task:
    """``classification`` for classifiers, else ``regression``."""
    from sklearn.base import is_classifier

    return "classification" if is_classifier(estimator) else "regression"


def _json_param(value: Any) -> bool:
    try:
        return bool(json.loads(json.dumps(value)) == value)
    except (TypeError, ValueError):
        return False


def describe_estimator(estimator: Any) -> dict[str, Any]:
    """The class and constructor parameters, as JSON (``reproducible`` says if complete)."""
    params = estimator.get_params(deep=False)
    kept = {k: v for k, v in params.items() if _json_param(v)}
    dropped = sorted(set(params) - set(kept))
    return {
        "class": f"{type(estimator).__module__}.{type(estimator).__qualname__}",
        "params": kept,
        "reproducible": not dropped,
        "unrecorded_params": dropped,
    }


def build_estimator(description: dict[str, Any], **overrides: Any) -> Any:
    """A fresh estimator from :func:`describe_estimator` output (allow-listed libraries only)."""
    path = str(description.get("class", ""))
    module_name, _, name = path.rpartition(".")
    if module_name.split(".", 1)[0] not in ALLOWED_ESTIMATOR_MODULES:
        raise PermissionDeniedError(
            f"Keel rebuilds estimators only from {', '.join(ALLOWED_ESTIMATOR_MODULES)}; the "
            f"recorded class is '{path[:120]}'.",
            estimator=path[:120],
        )
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise InvalidInputError(
            f"Cannot import the estimator class '{path}': {exc}. Install the library version "
            "recorded in the run's environment.",
            estimator=path,
        ) from exc
    if not isinstance(cls, type) or not hasattr(cls, "fit"):
        raise InvalidInputError(f"'{path}' is not an estimator class.", estimator=path)
    return cls(**{**description.get("params", {}), **overrides})


def with_seed(estimator: Any, seed: int) -> Any:
    """Set ``random_state`` (every library here names it so) when the estimator has one."""
    if "random_state" in estimator.get_params(deep=False):
        estimator.set_params(random_state=seed)
    return estimator


def _log_loss(y: Any, proba: Any, classes: Any) -> float:
    """Log loss without scikit-learn's per-call validation (~50x faster on curves)."""
    import numpy as np

    scores = np.asarray(proba, dtype=np.float64)
    scores = scores / scores.sum(axis=1, keepdims=True)
    index = np.searchsorted(np.asarray(classes), np.asarray(y))
    picked = np.clip(scores[np.arange(len(index)), index], 1e-15, 1.0)
    return float(-np.mean(np.log(picked)))


def _rmse(y: Any, pred: Any) -> float:
    import numpy as np

    diff = np.asarray(y, dtype=np.float64) - np.asarray(pred, dtype=np.float64)
    return float(math.sqrt(np.mean(diff * diff)))


def _loss(task: Task, estimator: Any, X: Any, y: Any) -> float:
    if task == "classification":
        return _log_loss(y, estimator.predict_proba(X), estimator.classes_)
    return _rmse(y, estimator.predict(X))


def _thin(points: list[CurvePoint]) -> list[CurvePoint]:
    by_key: dict[str, list[CurvePoint]] = {}
    for point in points:
        by_key.setdefault(point.key, []).append(point)
    out: list[CurvePoint] = []
    for series in by_key.values():
        stride = max(1, math.ceil(len(series) / _MAX_CURVE_POINTS))
        kept = series[::stride]
        if kept[-1] is not series[-1]:
            kept.append(series[-1])
        out.extend(kept)
    return out


def fit_with_curves(
    estimator: Any,
    X_train: NDArray[Any],
    y_train: NDArray[Any],
    X_valid: NDArray[Any] | None = None,
    y_valid: NDArray[Any] | None = None,
    *,
    reporter: Reporter | None = None,
    report_every: int = 10,
) -> list[CurvePoint]:
    """Fit ``estimator`` in place and return its learning curves (``curve.<split>.<metric>``).

    Raises:
        Pruned: when ``reporter`` asked to stop.
    """
    has_valid = X_valid is not None and y_valid is not None and len(y_valid) > 0
    flavor = flavor_of(estimator)
    if flavor == "xgboost":
        points = _fit_xgboost(
            estimator, X_train, y_train, X_valid, y_valid, has_valid, reporter, report_every
        )
    elif flavor == "lightgbm":
        points = _fit_lightgbm(
            estimator, X_train, y_train, X_valid, y_valid, has_valid, reporter, report_every
        )
    else:
        points = _fit_sklearn(
            estimator, X_train, y_train, X_valid, y_valid, has_valid, reporter, report_every
        )
    return _thin(points)


def _fit_xgboost(
    est: Any,
    X: Any,
    y: Any,
    Xv: Any,
    yv: Any,
    has_valid: bool,
    reporter: Reporter | None,
    every: int,
) -> list[CurvePoint]:
    import xgboost

    stopped: list[int] = []

    class _Report(xgboost.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            if reporter is None or not has_valid or (epoch + 1) % every:
                return False
            series = evals_log.get("validation_1", {})
            if not series:
                return False
            value = float(next(iter(series.values()))[-1])
            if reporter(epoch + 1, value):
                stopped.append(epoch + 1)
                return True
            return False

    evals = [(X, y), (Xv, yv)] if has_valid else [(X, y)]
    est.set_params(callbacks=[_Report()] if reporter is not None else None)
    try:
        est.fit(X, y, eval_set=evals, verbose=False)
    finally:
        est.set_params(callbacks=None)
    if stopped:
        raise Pruned(stopped[0])
    names = {"validation_0": "train", "validation_1": "valid"}
    return [
        CurvePoint(f"curve.{names[split]}.{metric}", float(value), step + 1)
        for split, series in est.evals_result().items()
        for metric, values in series.items()
        for step, value in enumerate(values)
    ]


def _fit_lightgbm(
    est: Any,
    X: Any,
    y: Any,
    Xv: Any,
    yv: Any,
    has_valid: bool,
    reporter: Reporter | None,
    every: int,
) -> list[CurvePoint]:
    def report(env: Any) -> None:
        step = env.iteration + 1
        if reporter is None or not has_valid or step % every:
            return
        for data_name, _metric, value, _higher in env.evaluation_result_list:
            if data_name == "valid":
                if reporter(step, float(value)):
                    raise Pruned(step)
                return

    names = ["train", "valid"] if has_valid else ["train"]
    est.fit(
        X,
        y,
        eval_X=(X, Xv) if has_valid else (X,),
        eval_y=(y, yv) if has_valid else (y,),
        eval_names=names,
        callbacks=[report],
    )
    return [
        CurvePoint(f"curve.{split}.{metric}", float(value), step + 1)
        for split, series in est.evals_result_.items()
        for metric, values in series.items()
        for step, value in enumerate(values)
    ]


def _fit_sklearn(
    est: Any,
    X: Any,
    y: Any,
    Xv: Any,
    yv: Any,
    has_valid: bool,
    reporter: Reporter | None,
    every: int,
) -> list[CurvePoint]:
    task = task_of(est)
    params = est.get_params(deep=False)
    grows = (
        reporter is not None and has_valid and "warm_start" in params and "n_estimators" in params
    )
    if grows:
        total, warm = int(params["n_estimators"]), params["warm_start"]
        step = max(1, every)
        try:
            est.set_params(warm_start=True)
            for size in [*range(step, total, step), total]:
                est.set_params(n_estimators=size)
                est.fit(X, y)
                assert reporter is not None
                if reporter(size, _loss(task, est, Xv, yv)):
                    raise Pruned(size)
        finally:
            est.set_params(warm_start=warm)
    else:
        est.fit(X, y)
    return _staged_curves(est, task, X, y, Xv if has_valid else None, yv)


def _staged_curves(est: Any, task: Task, X: Any, y: Any, Xv: Any, yv: Any) -> list[CurvePoint]:
    staged = "staged_predict_proba" if task == "classification" else "staged_predict"
    if not hasattr(est, staged):
        return []
    points: list[CurvePoint] = []
    name = "log_loss" if task == "classification" else "rmse"
    for split, features, target in (("train", X, y), ("valid", Xv, yv)):
        if features is None:
            continue
        for step, pred in enumerate(getattr(est, staged)(features), start=1):
            if task == "classification":
                value = _log_loss(target, pred, est.classes_)
            else:
                value = _rmse(target, pred)
            points.append(CurvePoint(f"curve.{split}.{name}", value, step))
    return points
