"""Monitoring: drift, quality from late labels, latency and errors, alert rules and channels."""

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
from keel.monitoring._model import Alert, AlertRule, Delivery, LabelIngest, Monitor, MonitorReport
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
