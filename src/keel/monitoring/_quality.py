"""Model quality from late labels, and latency and errors: pure functions over arrays.

Classification: accuracy, F1 (binary: the greater class is positive, numbers ordered as
numbers; several classes: macro average) and ROC AUC. Pairs whose label or prediction is
missing (None or NaN) are left out. The AUC comes from scores when every judged prediction
has one — the logged positive-class probability (binary), the per-class probabilities
(several classes: one-vs-rest, macro average), or predictions that are themselves scores —
and from the predicted labels otherwise (``auc_from`` says which). Regression: RMSE and MAE.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from keel.errors import InvalidInputError

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "TASKS",
    "assess_classification",
    "classification_quality",
    "infer_task",
    "label_key",
    "latency_summary",
    "parse_prometheus",
    "regression_quality",
    "roc_auc",
    "score_auc",
]

TASKS = ("classification", "regression")
_MAX_CLASSES = 50


_BOOLEAN_TEXT = frozenset({"true", "false"})


def label_key(value: Any) -> str:
    """A comparable form of a class label: ``1``, ``1.0``, ``"1"`` and ``"1.0"`` are the same
    class, and so are ``True``, ``"true"`` and ``"True"`` (a label file written by pandas) —
    the class ``1``, as scikit-learn counts it: a model predicting booleans scored against a
    0/1 label file (as SQL gives them) is not 0 % accurate."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    text = str(value)
    folded = text.strip().lower()
    if folded in _BOOLEAN_TEXT:
        return "1" if folded == "true" else "0"
    number = _number(text)
    if number is None:
        return text
    try:
        return str(int(text))  # exact for integers beyond float precision
    except ValueError:
        return str(int(number)) if number.is_integer() else repr(number)


def _class_order(key: str) -> tuple[int, float, str]:
    """Sort key of class labels: numbers by value (``"2"`` before ``"10"``), then text."""
    number = _number(key)
    return (0, number, key) if number is not None else (1, 0.0, key)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _infinite(value: Any) -> bool:
    return isinstance(value, float) and math.isinf(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            found = float(value)
        except ValueError:
            return None
        return found if math.isfinite(found) else None
    return None


def infer_task(labels: Sequence[Any]) -> str:
    """``regression`` for numeric labels that are not few whole numbers, else classification.

    Missing labels (None, NaN, infinities) are not looked at: one NaN among measurements does
    not make them classes.
    """
    present = [v for v in labels if not _missing(v) and not _infinite(v)]
    numbers = [_number(v) for v in present]
    if present and all(n is not None for n in numbers):
        distinct = set(numbers)
        whole = all(n is not None and n.is_integer() for n in distinct)
        if not whole or len(distinct) > 20:
            return "regression"
    return "classification"


def roc_auc(truth: Sequence[int], scores: Sequence[float]) -> float | None:
    """ROC AUC of binary ``truth`` (0/1) by ``scores`` (ties count one half); None if one class."""
    import numpy as np

    y = np.asarray(truth, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    positives = int(y.sum())
    negatives = int(y.size - positives)
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ordered = s[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], ordered.size]
    ranks = np.empty(s.size, dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    u = float(ranks[y == 1].sum()) - positives * (positives + 1) / 2.0
    return u / (positives * negatives)


def classification_quality(
    truth: Sequence[Any],
    predicted: Sequence[Any],
    *,
    scores: Sequence[float | Mapping[str, float] | None] | None = None,
) -> dict[str, float]:
    """Accuracy, F1 and AUC of predicted against true labels (see ``assess_classification``)."""
    return assess_classification(truth, predicted, scores=scores)[0]


def assess_classification(
    truth: Sequence[Any],
    predicted: Sequence[Any],
    *,
    scores: Sequence[float | Mapping[str, float] | None] | None = None,
) -> tuple[dict[str, float], str | None]:
    """Accuracy, F1 and AUC, and where the AUC came from: ``scores``, ``labels`` or None.

    ``scores`` holds per prediction a binary classifier's positive-class probability or a
    mapping of class label to probability (see ``score_auc``); the AUC uses them when every
    prediction has one, else the predicted labels (binary only: a 0/1 ranking).
    """
    if len(truth) != len(predicted) or (scores is not None and len(scores) != len(truth)):
        raise InvalidInputError("truth, predictions and scores must have the same length")
    pairs = enumerate(zip(truth, predicted, strict=True))
    kept = [i for i, (a, b) in pairs if not _missing(a) and not _missing(b)]
    if len(kept) < len(truth):  # a pair without a label or a prediction says nothing
        truth = [truth[i] for i in kept]
        predicted = [predicted[i] for i in kept]
        scores = None if scores is None else [scores[i] for i in kept]
    if not truth:
        return {}, None
    t = [label_key(v) for v in truth]
    p = [label_key(v) for v in predicted]
    numbers = [_number(v) for v in predicted]
    as_scores = all(s is not None and 0.0 <= s <= 1.0 for s in numbers) and any(
        s is not None and not s.is_integer() for s in numbers
    )
    classes = sorted(set(t) | (set() if as_scores else set(p)), key=_class_order)
    if as_scores:  # a regressor-like score: threshold at 0.5 for the labels
        negative, positive = _score_classes(classes)
        p = [positive if (s or 0.0) >= 0.5 else negative for s in numbers]
        classes = sorted(set(t) | set(p), key=_class_order)
    out: dict[str, float] = {
        "accuracy": sum(a == b for a, b in zip(t, p, strict=True)) / len(t),
    }
    if len(classes) > _MAX_CLASSES:
        return out, None
    f1s = []
    targets = classes[-1:] if len(classes) == 2 else classes
    for cls in targets:
        tp = sum(a == cls and b == cls for a, b in zip(t, p, strict=True))
        fp = sum(a != cls and b == cls for a, b in zip(t, p, strict=True))
        fn = sum(a == cls and b != cls for a, b in zip(t, p, strict=True))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    out["f1"] = sum(f1s) / len(f1s) if f1s else 0.0
    logged = score_auc(t, p, scores) if scores is not None and not as_scores else None
    if logged is not None:
        out["auc"] = logged
        return out, "scores"
    if len(classes) == 2:
        positive = classes[-1]
        y = [int(a == positive) for a in t]
        ranked = (
            [float(s or 0.0) for s in numbers] if as_scores else [float(b == positive) for b in p]
        )
        auc = roc_auc(y, ranked)
        if auc is not None:
            out["auc"] = auc
            return out, "scores" if as_scores else "labels"
    return out, None


def _score_classes(classes: list[str]) -> tuple[str, str]:
    """The (negative, positive) classes of a probability: the two classes of the labels, or,
    when the labels hold one, that class and the other of 0 and 1 (a probability is of 1)."""
    if len(classes) >= 2:
        return classes[0], classes[-1]
    if not classes or classes[0] in ("0", "1"):  # (booleans are 0 and 1: see label_key)
        return "0", "1"
    return "0", classes[0]


def score_auc(
    truth: Sequence[Any],
    predicted: Sequence[Any],
    scores: Sequence[float | Mapping[str, float] | None],
) -> float | None:
    """ROC AUC from classifier scores; None unless every prediction has a usable score.

    A number is a binary classifier's probability of its positive class, which is the class
    it predicts when the number is above 0.5 (read off the predictions). A mapping of class
    label to probability gives the one-vs-rest AUC of each true class present with both
    outcomes, macro-averaged (a class missing from a mapping scores 0).
    """
    if not truth or any(s is None for s in scores):
        return None
    t = [label_key(v) for v in truth]
    if all(isinstance(s, Mapping) for s in scores):
        return _one_vs_rest(t, [_class_scores(s) for s in scores if isinstance(s, Mapping)])
    numbers = [_number(s) for s in scores]
    if any(n is None for n in numbers):
        return None
    values = [float(n or 0.0) for n in numbers]
    p = [label_key(v) for v in predicted]
    positive = _positive_class(t, p, values)
    if positive is None:
        return None
    return roc_auc([int(a == positive) for a in t], values)


def _positive_class(truth: list[str], predicted: list[str], scores: list[float]) -> str | None:
    """The class a binary score is the probability of, or None when there are >2 classes."""
    classes = sorted(set(truth) | set(predicted), key=_class_order)
    if len(classes) > 2:
        return None
    above = Counter(b for b, s in zip(predicted, scores, strict=True) if s > 0.5)
    if above:
        return above.most_common(1)[0][0]
    below = Counter(b for b, s in zip(predicted, scores, strict=True) if s < 0.5)
    if below and len(classes) == 2:
        negative = below.most_common(1)[0][0]
        return classes[1] if negative == classes[0] else classes[0]
    return classes[-1] if classes else None


def _class_scores(mapping: Mapping[str, Any]) -> dict[str, float]:
    """Probabilities keyed like ``label_key`` (the log writes non-string labels as JSON)."""
    out: dict[str, float] = {}
    for key, value in mapping.items():
        number = _number(value)
        if number is None:
            continue
        try:
            label: Any = json.loads(key)
        except ValueError:
            label = key
        out[label_key(label if isinstance(label, int | float | bool) else key)] = number
    return out


def _one_vs_rest(truth: list[str], scores: list[dict[str, float]]) -> float | None:
    aucs = []
    for cls in sorted(set(truth), key=_class_order):
        auc = roc_auc([int(a == cls) for a in truth], [s.get(cls, 0.0) for s in scores])
        if auc is not None:
            aucs.append(auc)
    return sum(aucs) / len(aucs) if aucs else None


def regression_quality(truth: Sequence[Any], predicted: Sequence[Any]) -> dict[str, float]:
    """RMSE and MAE over the pairs where both sides are numbers."""
    pairs = [(_number(a), _number(b)) for a, b in zip(truth, predicted, strict=True)]
    usable = [(a, b) for a, b in pairs if a is not None and b is not None]
    if not usable:
        return {}
    errors = [b - a for a, b in usable]
    return {
        "rmse": math.sqrt(sum(e * e for e in errors) / len(errors)),
        "mae": sum(abs(e) for e in errors) / len(errors),
    }


def latency_summary(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """Requests and latency percentiles per model version and variant of logged predictions.

    Rows of one request share its timestamp and latency, so each such group counts once.
    """
    import polars as pl

    if frame.height == 0:
        return []
    requests = frame.select("version", "variant", "timestamp", "latency_ms").unique()
    grouped = (
        requests.group_by("version", "variant")
        .agg(
            pl.len().alias("requests"),
            pl.col("latency_ms").quantile(0.5, "linear").alias("p50_ms"),
            pl.col("latency_ms").quantile(0.95, "linear").alias("p95_ms"),
            pl.col("latency_ms").quantile(0.99, "linear").alias("p99_ms"),
            pl.col("latency_ms").mean().alias("mean_ms"),
        )
        .join(
            frame.group_by("version", "variant").agg(pl.len().alias("predictions")),
            on=["version", "variant"],
        )
        .sort("version", "variant")
    )
    out = []
    for row in grouped.iter_rows(named=True):
        out.append(
            {
                "version": int(row["version"]),
                "variant": str(row["variant"]),
                "requests": int(row["requests"]),
                "predictions": int(row["predictions"]),
                **{k: round(float(row[k]), 4) for k in ("p50_ms", "p95_ms", "p99_ms", "mean_ms")},
            }
        )
    return out


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(
    text: str, *, endpoint: str | None = None
) -> dict[tuple[str, str], dict[str, float]]:
    """Requests and errors per ``(version, variant)`` from a model server's ``/metrics``.

    Reads ``keel_requests_total`` and ``keel_request_errors_total`` (of ``endpoint`` when
    given: the deployment name the server uses as the ``model`` label).
    """
    found: dict[tuple[str, str], dict[str, float]] = {}
    for line in text.splitlines()[:100_000]:
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, labels_text, value_text = match.groups()
        kind = {"keel_requests_total": "requests", "keel_request_errors_total": "errors"}.get(name)
        if kind is None:
            continue
        labels = dict(_LABEL.findall(labels_text or ""))
        if endpoint is not None and labels.get("model") != endpoint:
            continue
        try:
            value = float(value_text)
        except ValueError:
            continue
        key = (labels.get("version", ""), labels.get("variant", ""))
        entry = found.setdefault(key, {"requests": 0.0, "errors": 0.0})
        entry[kind] += value
    return found


def decode_json(values: Iterable[str | None]) -> list[Any]:
    """JSON-decoded values (an undecodable one stays as its text)."""
    out: list[Any] = []
    for text in values:
        if text is None:
            out.append(None)
            continue
        try:
            out.append(json.loads(text))
        except ValueError:
            out.append(text)
    return out


def merge_counters(
    latency: list[dict[str, Any]],
    counters: Mapping[tuple[str, str], Mapping[str, float]],
    previous: Mapping[str, Mapping[str, float]] | None = None,
) -> list[dict[str, Any]]:
    """Add server counters (and the error rate since ``previous`` counters) to ``latency``."""
    by_key = {(str(e["version"]), e["variant"]): dict(e) for e in latency}
    for key, counts in counters.items():
        entry = by_key.setdefault(key, {"version": _as_int(key[0]), "variant": key[1]})
        entry["requests_total"] = counts["requests"]
        entry["errors_total"] = counts["errors"]
        before = (previous or {}).get(f"{key[0]}/{key[1]}", {})
        requests = counts["requests"] - before.get("requests", 0.0)
        errors = counts["errors"] - before.get("errors", 0.0)
        if requests < 0 or errors < 0:  # the server restarted: counters began again
            requests, errors = counts["requests"], counts["errors"]
        entry["error_rate"] = errors / (requests + errors) if requests + errors > 0 else 0.0
    return sorted(by_key.values(), key=lambda e: (str(e["version"]), str(e["variant"])))


def _as_int(text: str) -> int | str:
    return int(text) if text.isdigit() else text
