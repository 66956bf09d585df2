"""Alert rule logic, pure: read a metric from a report, compare it, step an alert's state.

Metrics a rule may name (``report`` is ``MonitorReport.to_dict()``):

=========================  ==========================================================
``rows``                   rows in the window
``drift.share``            share of compared features that drifted
``drift.max``              the largest drift value (each feature's threshold metric)
``drift.<feature>``        that feature's drift value; ``drift.<feature>.<stat>`` one
                           statistic (psi, ks, js, wasserstein, chi2, ks_pvalue, …)
``prediction.drift``       prediction drift value; ``prediction.<stat>`` a statistic
``quality.<metric>``       accuracy, f1, auc, rmse, mae over labelled predictions
``quality.coverage``       share of the window's predictions that have a label
``latency.<p50_ms|…>``     the worst (largest) over model versions and variants
``errors.rate``            the worst error rate from the server's counters
=========================  ==========================================================
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from keel.errors import InvalidInputError

__all__ = [
    "COMPARISONS",
    "Step",
    "breached",
    "check_metric",
    "metric_value",
    "parse_duration",
    "step",
    "worst",
]

COMPARISONS = (">", ">=", "<", "<=")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_LATENCY = ("p50_ms", "p95_ms", "p99_ms", "mean_ms")
_QUALITY = ("accuracy", "f1", "auc", "rmse", "mae", "coverage", "labelled")


def parse_duration(value: str | float | int, *, what: str = "duration") -> float:
    """Seconds from ``90``, ``"90s"``, ``"15m"``, ``"1h"``, ``"2d"``."""
    if isinstance(value, bool):
        raise InvalidInputError(f"Invalid {what} {value!r}.")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if match is None:
            raise InvalidInputError(
                f"Invalid {what} {str(value)[:40]!r}: write a number of seconds or e.g. 90s, "
                "15m, 1h, 2d."
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if not math.isfinite(seconds) or seconds < 0 or seconds > 366 * 86400:
        raise InvalidInputError(f"The {what} must be between 0 and 366 days.")
    return seconds


def check_metric(metric: str) -> str:
    """``metric`` if a rule may name it (see the module docstring)."""
    head, _, rest = metric.partition(".")
    ok = (
        (metric == "rows")
        or (head == "drift" and bool(rest))
        or (head == "prediction" and bool(rest))
        or (head == "quality" and rest in _QUALITY)
        or (head == "latency" and rest in _LATENCY)
        or metric == "errors.rate"
    )
    if not ok or len(metric) > 256:
        raise InvalidInputError(
            f"Unknown alert metric {metric[:80]!r}. Use rows, drift.share, drift.max, "
            "drift.<feature>[.<stat>], prediction.drift, quality.<accuracy|f1|auc|rmse|mae|"
            "coverage>, latency.<p50_ms|p95_ms|p99_ms|mean_ms> or errors.rate."
        )
    return metric


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _feature(report: Mapping[str, Any], rest: str) -> float | None:
    drift = report.get("drift") or {}
    features = {f["feature"]: f for f in drift.get("features", [])}
    if rest in features:
        return _num(features[rest].get("value"))
    name, _, stat = rest.rpartition(".")
    if name in features:
        return _num((features[name].get("stats") or {}).get(stat))
    return None


def metric_value(report: Mapping[str, Any], metric: str) -> float | None:
    """The value of ``metric`` in one report, or None when the report does not have it."""
    head, _, rest = metric.partition(".")
    drift = report.get("drift") or {}
    if metric == "rows":
        return _num(report.get("rows"))
    if head == "drift":
        if rest == "share":
            return _num(drift.get("share_drifted"))
        if rest == "max":
            values = [
                _num(f.get("value"))
                for f in drift.get("features", [])
                if f.get("status") in ("ok", "warning", "drift", "constant")
            ]
            present = [v for v in values if v is not None]
            return max(present) if present else None
        return _feature(report, rest)
    if head == "prediction":
        predicted = drift.get("prediction") or {}
        if rest in ("drift", "value"):
            return _num(predicted.get("value"))
        return _num((predicted.get("stats") or {}).get(rest))
    if head == "quality":
        quality = report.get("quality") or {}
        if rest in ("coverage", "labelled"):
            return _num(quality.get(rest))
        return _num((quality.get("overall") or {}).get(rest))
    if head == "latency":
        values = [_num(e.get(rest)) for e in report.get("latency", [])]
        present = [v for v in values if v is not None]
        return max(present) if present else None
    if metric == "errors.rate":
        values = [_num(e.get("error_rate")) for e in report.get("latency", [])]
        present = [v for v in values if v is not None]
        return max(present) if present else None
    return None


def breached(value: float, comparison: str, threshold: float) -> bool:
    if comparison == ">":
        return value > threshold
    if comparison == ">=":
        return value >= threshold
    if comparison == "<":
        return value < threshold
    return value <= threshold


def worst(values: Sequence[float | None], comparison: str) -> float | None:
    """The value closest to breaching: the largest for > and >=, the smallest for < and <=."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    return max(present) if comparison.startswith(">") else min(present)


Step = Literal["none", "pending", "fire", "update", "clear", "resolve"]


def step(
    state: str | None,
    *,
    value: float | None,
    comparison: str,
    threshold: float,
    started_at: datetime | None,
    now: datetime,
    for_seconds: float,
) -> Step:
    """What to do with a rule's open alert (``state``: None, pending or firing).

    ``pending``: open a pending alert; ``fire``: the condition held long enough;
    ``update``: still firing (no new notification); ``clear``: a pending condition ended
    before it fired; ``resolve``: a firing alert's condition ended; ``none``: nothing.
    An unknown value (None) changes nothing.
    """
    if value is None:
        return "none"
    bad = breached(value, comparison, threshold)
    if state is None:
        if not bad:
            return "none"
        return "fire" if for_seconds <= 0 else "pending"
    if state == "pending":
        if not bad:
            return "clear"
        assert started_at is not None
        return "fire" if (now - started_at).total_seconds() >= for_seconds else "update"
    return "update" if bad else "resolve"
