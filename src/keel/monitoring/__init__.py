"""Monitoring: drift, quality from late labels, latency and errors, alert rules and channels."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel._lazy import lazy_names

if TYPE_CHECKING:
    from keel.monitoring._alerts import AlertService, OnFire
    from keel.monitoring._channels import CHANNEL_KINDS, SIGNATURE_HEADER, sign
    from keel.monitoring._drift import (
        DRIFT_METRICS,
        DriftResult,
        DriftThreshold,
        FeatureDrift,
        compute_drift,
    )
    from keel.monitoring._egress import check_address
    from keel.monitoring._facade import Monitors
    from keel.monitoring._html import render_html
    from keel.monitoring._labels import LabelService
    from keel.monitoring._loop import ClosedLoop
    from keel.monitoring._loop_facade import Loop
    from keel.monitoring._loop_model import LoopCycle, LoopPhase, describe_alert
    from keel.monitoring._model import (
        Alert,
        AlertRule,
        Delivery,
        LabelIngest,
        Monitor,
        MonitorReport,
    )
    from keel.monitoring._profile import ReferenceProfile, profile_reference
    from keel.monitoring._quality import classification_quality, regression_quality, roc_auc
    from keel.monitoring._rules import metric_value, parse_duration
    from keel.monitoring._service import MonitorService
    from keel.monitoring._stats import (
        bin_counts,
        chi_square,
        jensen_shannon,
        ks_wasserstein,
        psi,
        quantile_edges,
    )
    from keel.monitoring._windows import PREDICTION, parse_window

__all__ = [
    "CHANNEL_KINDS",
    "DRIFT_METRICS",
    "PREDICTION",
    "SIGNATURE_HEADER",
    "Alert",
    "AlertRule",
    "AlertService",
    "ClosedLoop",
    "Delivery",
    "DriftResult",
    "DriftThreshold",
    "FeatureDrift",
    "LabelIngest",
    "LabelService",
    "Loop",
    "LoopCycle",
    "LoopPhase",
    "Monitor",
    "MonitorReport",
    "MonitorService",
    "Monitors",
    "OnFire",
    "ReferenceProfile",
    "bin_counts",
    "check_address",
    "chi_square",
    "classification_quality",
    "compute_drift",
    "describe_alert",
    "jensen_shannon",
    "ks_wasserstein",
    "metric_value",
    "parse_duration",
    "parse_window",
    "profile_reference",
    "psi",
    "quantile_edges",
    "regression_quality",
    "render_html",
    "roc_auc",
    "sign",
]

# The names load on first use (PEP 562), so a command imports only the modules it calls.
_LAZY: dict[str, str] = {
    "Alert": "keel.monitoring._model",
    "AlertRule": "keel.monitoring._model",
    "AlertService": "keel.monitoring._alerts",
    "CHANNEL_KINDS": "keel.monitoring._channels",
    "ClosedLoop": "keel.monitoring._loop",
    "DRIFT_METRICS": "keel.monitoring._drift",
    "Delivery": "keel.monitoring._model",
    "DriftResult": "keel.monitoring._drift",
    "DriftThreshold": "keel.monitoring._drift",
    "FeatureDrift": "keel.monitoring._drift",
    "LabelIngest": "keel.monitoring._model",
    "LabelService": "keel.monitoring._labels",
    "Loop": "keel.monitoring._loop_facade",
    "LoopCycle": "keel.monitoring._loop_model",
    "LoopPhase": "keel.monitoring._loop_model",
    "Monitor": "keel.monitoring._model",
    "MonitorReport": "keel.monitoring._model",
    "MonitorService": "keel.monitoring._service",
    "Monitors": "keel.monitoring._facade",
    "OnFire": "keel.monitoring._alerts",
    "PREDICTION": "keel.monitoring._windows",
    "ReferenceProfile": "keel.monitoring._profile",
    "SIGNATURE_HEADER": "keel.monitoring._channels",
    "bin_counts": "keel.monitoring._stats",
    "check_address": "keel.monitoring._egress",
    "chi_square": "keel.monitoring._stats",
    "classification_quality": "keel.monitoring._quality",
    "compute_drift": "keel.monitoring._drift",
    "describe_alert": "keel.monitoring._loop_model",
    "jensen_shannon": "keel.monitoring._stats",
    "ks_wasserstein": "keel.monitoring._stats",
    "metric_value": "keel.monitoring._rules",
    "parse_duration": "keel.monitoring._rules",
    "parse_window": "keel.monitoring._windows",
    "profile_reference": "keel.monitoring._profile",
    "psi": "keel.monitoring._stats",
    "quantile_edges": "keel.monitoring._stats",
    "regression_quality": "keel.monitoring._quality",
    "render_html": "keel.monitoring._html",
    "roc_auc": "keel.monitoring._quality",
    "sign": "keel.monitoring._channels",
}


__getattr__, __dir__ = lazy_names(__name__, __all__, _LAZY)
