"""Experiments, runs, metrics and artifacts, safe model packaging, and the model registry."""

from keel.tracking._active import ActiveRun
from keel.tracking._curves import MetricCurves
from keel.tracking._environment import capture_environment, git_state
from keel.tracking._experiments import ExperimentService
from keel.tracking._formats import Predictor
from keel.tracking._model import (
    AliasMove,
    Artifact,
    Experiment,
    Metric,
    ModelVersion,
    RegisteredModel,
    Run,
    RunPage,
)
from keel.tracking._modelio import SIDECAR_TAG, LoadedModel
from keel.tracking._packaging import (
    PACKAGE_SCHEMA,
    REVIEWED_SKOPS_TYPES,
    SAFE_FORMATS,
    dump_skops,
    infer_signature,
    load_skops,
)
from keel.tracking._registry import ModelRegistry, parse_model_ref
from keel.tracking._runs import RunService

__all__ = [
    "PACKAGE_SCHEMA",
    "REVIEWED_SKOPS_TYPES",
    "SAFE_FORMATS",
    "SIDECAR_TAG",
    "ActiveRun",
    "AliasMove",
    "Artifact",
    "Experiment",
    "ExperimentService",
    "LoadedModel",
    "Metric",
    "MetricCurves",
    "ModelRegistry",
    "ModelVersion",
    "Predictor",
    "RegisteredModel",
    "Run",
    "RunPage",
    "RunService",
    "capture_environment",
    "dump_skops",
    "git_state",
    "infer_signature",
    "load_skops",
    "parse_model_ref",
]
