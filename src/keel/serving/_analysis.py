"""Canary analysis: compare candidate with baseline and decide promote, hold or roll back.

Pure: it takes the observed samples and the thresholds as arguments and returns a decision
with every reason, so the decision can be stored next to the revision it caused.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "AnalysisConfig",
    "Decision",
    "VariantSample",
    "analyse",
    "mann_whitney_greater",
    "psi",
    "two_proportion_greater",
]

Action = Literal["promote", "hold", "rollback"]


@dataclass(frozen=True, slots=True)
class VariantSample:
    """What one variant did during a canary step."""

    requests: int
    errors: int
    latencies_ms: Sequence[float]
    predictions: Sequence[float]
    labelled: int = 0
    correct: int = 0


@dataclass(frozen=True, slots=True)
class AnalysisConfig:
    """Thresholds of the automatic analysis.

    Attributes:
        min_requests: requests each variant needs before anything is decided.
        min_labels: labelled predictions each variant needs before accuracy counts.
        alpha: significance level of the one-sided tests.
        max_latency_ratio: a significantly slower canary is rolled back only when its p95
            also exceeds the baseline's by this factor.
        max_psi: prediction-distribution shift (PSI) above which the canary is rolled back,
            unless both variants have ``min_labels`` labels and the canary is at least as
            accurate (a retrained model is meant to answer differently where it is right to).
    """

    min_requests: int = 200
    min_labels: int = 50
    alpha: float = 0.01
    max_latency_ratio: float = 1.25
    max_psi: float = 0.25


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reasons: tuple[str, ...]
    stats: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "reasons": list(self.reasons), "stats": self.stats}


def _norm_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def two_proportion_greater(x1: int, n1: int, x2: int, n2: int) -> float:
    """One-sided p-value that proportion 1 (canary) exceeds proportion 2 (baseline)."""
    if n1 == 0 or n2 == 0:
        return 1.0
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2))
    if se == 0.0:
        return 1.0 if x1 / n1 <= x2 / n2 else 0.0
    return _norm_sf((x1 / n1 - x2 / n2) / se)


def mann_whitney_greater(a: Sequence[float], b: Sequence[float]) -> float:
    """One-sided Mann-Whitney U p-value that ``a`` (canary) tends to exceed ``b``.

    Normal approximation with tie correction and continuity correction (as SciPy's
    ``mannwhitneyu(..., alternative="greater", method="asymptotic")``).
    """
    import numpy as np

    n1, n2 = len(a), len(b)
    if n1 == 0 or n2 == 0:
        return 1.0
    values = np.concatenate([np.asarray(a, np.float64), np.asarray(b, np.float64)])
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(values.size, dtype=np.float64)
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], values.size]
    average = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(average, ends - starts)
    u1 = float(ranks[:n1].sum()) - n1 * (n1 + 1) / 2.0
    n = n1 + n2
    ties = (ends - starts).astype(np.float64)
    variance = n1 * n2 / 12.0 * ((n + 1) - float(np.sum(ties**3 - ties)) / (n * (n - 1)))
    if variance <= 0.0:
        return 1.0
    z = (u1 - n1 * n2 / 2.0 - 0.5) / math.sqrt(variance)
    return _norm_sf(z)


def psi(expected: Sequence[float], actual: Sequence[float], *, bins: int = 10) -> float:
    """Population stability index of ``actual`` against ``expected`` (quantile bins)."""
    import numpy as np

    exp = np.asarray(expected, dtype=np.float64)
    act = np.asarray(actual, dtype=np.float64)
    if exp.size == 0 or act.size == 0:
        return 0.0
    edges = np.unique(np.quantile(exp, np.linspace(0.0, 1.0, bins + 1)))
    if edges.size < 2:
        values = np.unique(np.concatenate([exp, act]))
        e = np.array([np.mean(exp == v) for v in values])
        a = np.array([np.mean(act == v) for v in values])
    else:
        edges[0], edges[-1] = -np.inf, np.inf
        e = np.histogram(exp, edges)[0] / exp.size
        a = np.histogram(act, edges)[0] / act.size
    e, a = np.clip(e, 1e-6, None), np.clip(a, 1e-6, None)
    return float(np.sum((a - e) * np.log(a / e)))


def _p(values: Sequence[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else 0.0


def analyse(baseline: VariantSample, canary: VariantSample, config: AnalysisConfig) -> Decision:
    """Promote, hold or roll back the canary, with the reasons and the statistics."""
    stats: dict[str, Any] = {
        "requests": {"baseline": baseline.requests, "canary": canary.requests},
        "error_rate": {
            "baseline": baseline.errors / baseline.requests if baseline.requests else 0.0,
            "canary": canary.errors / canary.requests if canary.requests else 0.0,
        },
        "latency_ms": {
            "baseline": {
                "p50": _p(baseline.latencies_ms, 50),
                "p95": _p(baseline.latencies_ms, 95),
            },
            "canary": {"p50": _p(canary.latencies_ms, 50), "p95": _p(canary.latencies_ms, 95)},
        },
    }
    short = [
        f"{name} has {s.requests} of {config.min_requests} requests"
        for name, s in (("baseline", baseline), ("canary", canary))
        if s.requests < config.min_requests
    ]
    if short:
        return Decision("hold", (f"Not enough samples yet: {'; '.join(short)}.",), stats)
    reasons: list[str] = []
    p_err = two_proportion_greater(
        canary.errors, canary.requests, baseline.errors, baseline.requests
    )
    stats["error_p_value"] = p_err
    if p_err < config.alpha:
        reasons.append(
            f"Error rate {stats['error_rate']['canary']:.2%} vs baseline "
            f"{stats['error_rate']['baseline']:.2%} is higher (two-proportion z-test "
            f"p={p_err:.2g} < {config.alpha})."
        )
    p_lat = mann_whitney_greater(canary.latencies_ms, baseline.latencies_ms)
    stats["latency_p_value"] = p_lat
    p95_b = stats["latency_ms"]["baseline"]["p95"]
    p95_c = stats["latency_ms"]["canary"]["p95"]
    if p_lat < config.alpha and p95_c > config.max_latency_ratio * max(p95_b, 1e-9):
        reasons.append(
            f"Latency p95 {p95_c:.2f} ms vs baseline {p95_b:.2f} ms is slower by more than "
            f"{config.max_latency_ratio:g}x (Mann-Whitney p={p_lat:.2g} < {config.alpha})."
        )
    shift = psi(baseline.predictions, canary.predictions)
    stats["psi"] = shift
    vouched = False
    if baseline.labelled >= config.min_labels and canary.labelled >= config.min_labels:
        accuracy_b = baseline.correct / baseline.labelled
        accuracy_c = canary.correct / canary.labelled
        wrong_c, wrong_b = canary.labelled - canary.correct, baseline.labelled - baseline.correct
        p_acc = two_proportion_greater(wrong_c, canary.labelled, wrong_b, baseline.labelled)
        stats["accuracy"] = {"baseline": accuracy_b, "canary": accuracy_c, "p_value": p_acc}
        if p_acc < config.alpha:
            reasons.append(
                f"Accuracy {accuracy_c:.2%} vs baseline {accuracy_b:.2%} is lower "
                f"(two-proportion z-test p={p_acc:.2g} < {config.alpha})."
            )
        # A retrained model is meant to answer differently; labels say whether it is right to.
        vouched = accuracy_c >= accuracy_b
    shifted = shift > config.max_psi
    stats["psi_explained_by_accuracy"] = shifted and vouched
    if shifted and not vouched:
        reasons.append(
            f"Prediction distribution shifted: PSI {shift:.3f} > {config.max_psi} against "
            "the baseline."
        )
    if reasons:
        return Decision("rollback", tuple(reasons), stats)
    if shifted:
        accuracy = stats["accuracy"]
        because = (
            f"Canary matches baseline on {canary.requests} requests: error rate and latency "
            f"within limits; its predictions shifted (PSI {shift:.3f} > {config.max_psi}) but "
            f"its accuracy on {canary.labelled} labels is {accuracy['canary']:.2%} against "
            f"the baseline's {accuracy['baseline']:.2%}."
        )
    else:
        because = (
            f"Canary matches baseline on {canary.requests} requests: error rate, latency and "
            f"prediction distribution (PSI {shift:.3f}) within limits."
        )
    return Decision("promote", (because,), stats)
