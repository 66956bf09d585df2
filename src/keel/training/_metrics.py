"""Standard evaluation metrics, per-slice metrics and the disparate-impact ratio (pure).

Classification: ``accuracy``, ``auc``, ``f1``, ``precision``, ``recall``, ``log_loss``
(binary metrics on the second class; macro averages and one-vs-rest AUC for more classes).
Regression: ``rmse``, ``mae``, ``r2``. A metric undefined on the data (AUC of a slice holding
one class) is left out rather than reported as a number it is not.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, Literal

from keel.errors import InvalidInputError

__all__ = [
    "CLASSIFICATION_METRICS",
    "REGRESSION_METRICS",
    "Task",
    "classification_metrics",
    "disparate_impact",
    "evaluate",
    "flatten_metrics",
    "greater_is_better",
    "regression_metrics",
    "slice_metrics",
]

Task = Literal["classification", "regression"]
CLASSIFICATION_METRICS = ("accuracy", "auc", "f1", "log_loss", "precision", "recall")
REGRESSION_METRICS = ("mae", "r2", "rmse")
_LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae", "mse", "loss"})
_UNSAFE_KEY = re.compile(r"[^A-Za-z0-9_\-]+")


def greater_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` (``test.auc``, ``valid.rmse``) is better."""
    return metric.rsplit(".", 1)[-1] not in _LOWER_IS_BETTER


def classification_metrics(
    y_true: Any, y_pred: Any, proba: Any | None, classes: Sequence[Any]
) -> dict[str, float]:
    """Accuracy, F1, precision, recall, log loss and AUC of one set of predictions."""
    import numpy as np
    from sklearn import metrics

    truth, pred = np.asarray(y_true), np.asarray(y_pred)
    labels = list(classes)
    binary = len(labels) == 2
    average: Any = "binary" if binary else "macro"
    extra: dict[str, Any] = {"pos_label": labels[1]} if binary else {"labels": labels}
    out = {
        "accuracy": float(metrics.accuracy_score(truth, pred)),
        "f1": float(metrics.f1_score(truth, pred, average=average, zero_division=0, **extra)),
        "precision": float(
            metrics.precision_score(truth, pred, average=average, zero_division=0, **extra)
        ),
        "recall": float(
            metrics.recall_score(truth, pred, average=average, zero_division=0, **extra)
        ),
    }
    if proba is not None:
        scores = np.asarray(proba, dtype=np.float64)
        # float32 libraries (XGBoost, ONNX) give rows summing to 1 ± 1e-7: renormalise.
        scores = scores / scores.sum(axis=1, keepdims=True)
        out["log_loss"] = float(metrics.log_loss(truth, scores, labels=labels))
        present = np.unique(truth)
        if len(present) >= 2:
            if binary:
                out["auc"] = float(metrics.roc_auc_score(truth == labels[1], scores[:, 1]))
            elif len(present) == len(labels):
                out["auc"] = float(
                    metrics.roc_auc_score(truth, scores, multi_class="ovr", labels=labels)
                )
    return {k: v for k, v in out.items() if math.isfinite(v)}


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """RMSE, MAE and R² of one set of predictions."""
    import numpy as np
    from sklearn import metrics

    truth = np.asarray(y_true, dtype=np.float64)
    pred = np.asarray(y_pred, dtype=np.float64)
    out = {
        "rmse": float(math.sqrt(metrics.mean_squared_error(truth, pred))),
        "mae": float(metrics.mean_absolute_error(truth, pred)),
    }
    if len(truth) >= 2:
        out["r2"] = float(metrics.r2_score(truth, pred))
    return {k: v for k, v in out.items() if math.isfinite(v)}


def evaluate(
    task: Task,
    y_true: Any,
    y_pred: Any,
    proba: Any | None = None,
    classes: Sequence[Any] | None = None,
) -> dict[str, float]:
    """The standard metrics of ``task`` for one set of predictions."""
    if task == "classification":
        if classes is None:
            raise InvalidInputError("Classification metrics need the model's classes.")
        return classification_metrics(y_true, y_pred, proba, classes)
    if task == "regression":
        return regression_metrics(y_true, y_pred)
    raise InvalidInputError(f"Unknown task {task!r}; use 'classification' or 'regression'.")


def _slice_key(value: Any) -> str:
    return _UNSAFE_KEY.sub("_", str(value)).strip("_")[:60] or "empty"


def _slice_keys(values: Sequence[str]) -> dict[str, str]:
    """Each group's metric-key form; groups whose forms collide (``a b`` and ``a_b``, two
    names in Arabic script, both ``empty``) each get a short digest of their own value, so
    no group's metrics overwrite another's."""
    import hashlib
    from collections import Counter

    keys = {value: _slice_key(value) for value in values}
    taken = Counter(keys.values())
    return {
        value: key if taken[key] == 1 else f"{key}_{hashlib.sha256(value.encode()).hexdigest()[:8]}"
        for value, key in keys.items()
    }


def slice_metrics(
    task: Task,
    groups: Any,
    y_true: Any,
    y_pred: Any,
    proba: Any | None = None,
    classes: Sequence[Any] | None = None,
) -> dict[str, dict[str, float]]:
    """Metrics per group of a sensitive attribute, plus ``count`` and ``selection_rate``.

    ``selection_rate`` is the share of rows predicted as the positive (second) class for a
    binary classifier, and the mean prediction for a regressor. Groups are keyed by their
    value with characters outside ``A-Za-z0-9_-`` replaced by ``_`` (cut at 60 characters);
    values whose keys would collide get a short digest of the value appended.
    """
    import numpy as np

    group = np.asarray(groups).astype(str)
    truth, pred = np.asarray(y_true), np.asarray(y_pred)
    scores = None if proba is None else np.asarray(proba)
    out: dict[str, dict[str, float]] = {}
    values = [str(v) for v in sorted(np.unique(group))]
    keys = _slice_keys(values)
    for value in values:
        mask = group == value
        metrics = evaluate(
            task, truth[mask], pred[mask], None if scores is None else scores[mask], classes
        )
        metrics["count"] = float(mask.sum())
        if task == "classification" and classes is not None and len(classes) == 2:
            metrics["selection_rate"] = float(np.mean(pred[mask] == classes[1]))
        elif task == "regression":
            metrics["selection_rate"] = float(np.mean(pred[mask].astype(np.float64)))
        out[keys[value]] = metrics
    return out


def disparate_impact(slices: dict[str, dict[str, float]]) -> float | None:
    """The lowest selection rate divided by the highest (1.0 is parity; < 0.8 fails 4/5ths).

    A group never selected while another is gives 0.0, the widest disparity. None when the
    ratio is undefined: fewer than two slices have a ``selection_rate`` (one group, or a
    classifier of more than two classes, which has none); no group is ever selected (every
    rate 0, nothing to compare); or a rate is negative or not a number (a regressor's mean
    prediction below 0 is no selection rate). ``flatten_metrics`` then logs no
    ``disparate_impact`` metric, and a policy that requires one denies, as for any metric
    missing.
    """
    rates = [m["selection_rate"] for m in slices.values() if "selection_rate" in m]
    if len(rates) < 2 or not all(math.isfinite(r) and r >= 0 for r in rates):
        return None
    if max(rates) == 0:
        return None
    return min(rates) / max(rates)


def flatten_metrics(
    split: str,
    metrics: dict[str, float],
    *,
    attribute: str | None = None,
    slices: dict[str, dict[str, float]] | None = None,
) -> dict[str, float]:
    """Metric keys as logged: ``test.auc``, ``test.slice.<attr>.<group>.auc``, and
    ``test.disparate_impact.<attr>`` (left out when ``disparate_impact`` is None)."""
    out = {f"{split}.{k}": v for k, v in metrics.items()}
    if attribute and slices:
        attr = _slice_key(attribute)
        for group, values in slices.items():
            out.update({f"{split}.slice.{attr}.{group}.{k}": v for k, v in values.items()})
        ratio = disparate_impact(slices)
        if ratio is not None:
            out[f"{split}.disparate_impact.{attr}"] = ratio
    return out
