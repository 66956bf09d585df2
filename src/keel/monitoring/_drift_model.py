"""Drift results and thresholds: what compute_drift returns, and when a feature drifted."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from keel.errors import InvalidInputError

__all__ = [
    "COMPARED",
    "DRIFT_METRICS",
    "NUMERIC_ONLY",
    "DriftResult",
    "DriftThreshold",
    "FeatureDrift",
    "Status",
    "parse_thresholds",
]

DRIFT_METRICS = ("psi", "ks", "js", "wasserstein", "chi2", "ks_pvalue", "chi2_pvalue")
NUMERIC_ONLY = frozenset({"ks", "wasserstein", "ks_pvalue"})
_LOWER_IS_WORSE = frozenset({"ks_pvalue", "chi2_pvalue"})
Status = Literal[
    "ok",
    "warning",
    "drift",
    "constant",
    "missing_in_reference",
    "missing_in_current",
    "all_null",
    "insufficient_data",
    "type_mismatch",
]
#: Statuses that mean "compared"; the others say why a feature could not be.
COMPARED = frozenset({"ok", "warning", "drift", "constant"})


@dataclass(frozen=True, slots=True)
class DriftThreshold:
    """When a feature counts as drifted: ``metric`` at or beyond ``drift`` (``warning``)."""

    metric: str = "psi"
    drift: float = 0.2
    warning: float | None = 0.1

    def __post_init__(self) -> None:
        if self.metric not in DRIFT_METRICS:
            raise InvalidInputError(
                f"Unknown drift metric {self.metric!r:.40}; use one of {', '.join(DRIFT_METRICS)}."
            )
        if not math.isfinite(self.drift) or (
            self.warning is not None and not math.isfinite(self.warning)
        ):
            raise InvalidInputError("Drift thresholds must be finite numbers.")

    def status(self, value: float) -> Status:
        low = self.metric in _LOWER_IS_WORSE

        def beyond(limit: float) -> bool:
            return value <= limit if low else value >= limit

        if beyond(self.drift):
            return "drift"
        if self.warning is not None and beyond(self.warning):
            return "warning"
        return "ok"

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "drift": self.drift, "warning": self.warning}


def parse_thresholds(raw: Mapping[str, Any] | None) -> dict[str, DriftThreshold]:
    """``{"age": {"metric": "ks", "drift": 0.1}}`` (or DriftThreshold values) checked."""
    out: dict[str, DriftThreshold] = {}
    for name, value in (raw or {}).items():
        if isinstance(value, DriftThreshold):
            out[str(name)] = value
            continue
        if not isinstance(value, Mapping) or not set(value) <= {"metric", "drift", "warning"}:
            raise InvalidInputError(
                f"Threshold of {name!r:.60} must be {{'metric': 'psi', 'drift': 0.2, "
                "'warning': 0.1}} (warning optional)."
            )
        try:
            out[str(name)] = DriftThreshold(
                metric=str(value.get("metric", "psi")),
                drift=float(value.get("drift", 0.2)),
                warning=None if value.get("warning") is None else float(value["warning"]),
            )
        except (TypeError, ValueError) as exc:
            if isinstance(exc, InvalidInputError):
                raise
            raise InvalidInputError(f"Threshold of {name!r:.60}: numbers expected.") from exc
    return out


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """One feature's comparison; statistics not applicable (or not computed) are None."""

    feature: str
    kind: str
    status: Status
    message: str = ""
    metric: str = "psi"
    value: float | None = None
    threshold: DriftThreshold | None = None
    stats: dict[str, float | None] = field(default_factory=dict)
    reference_rows: int = 0
    current_rows: int = 0
    current_nulls: int = 0
    sampled: bool = False
    histogram: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "kind": self.kind,
            "status": self.status,
            "message": self.message,
            "metric": self.metric,
            "value": self.value,
            "threshold": self.threshold.to_dict() if self.threshold else None,
            "stats": dict(self.stats),
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "current_nulls": self.current_nulls,
            "sampled": self.sampled,
            "histogram": self.histogram,
        }


@dataclass(frozen=True, slots=True)
class DriftResult:
    """Every feature's drift, and prediction drift when asked for."""

    features: tuple[FeatureDrift, ...]
    rows: int
    prediction: FeatureDrift | None = None

    @property
    def drifted(self) -> tuple[str, ...]:
        return tuple(f.feature for f in self.features if f.status == "drift")

    @property
    def share_drifted(self) -> float:
        compared = [f for f in self.features if f.status in COMPARED]
        return (
            len([f for f in compared if f.status == "drift"]) / len(compared) if compared else 0.0
        )

    @property
    def status(self) -> str:
        if self.rows == 0:
            return "no_data"
        statuses = {f.status for f in self.features}
        if self.prediction is not None:
            statuses.add(self.prediction.status)
        if "drift" in statuses:
            return "drift"
        return "warning" if "warning" in statuses else "ok"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "rows": self.rows,
            "drifted": list(self.drifted),
            "share_drifted": self.share_drifted,
            "features": [f.to_dict() for f in self.features],
            "prediction": self.prediction.to_dict() if self.prediction else None,
        }
