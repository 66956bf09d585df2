"""Experiments, runs, metrics and artifacts, safe model packaging, and the model registry."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel._lazy import lazy_names

if TYPE_CHECKING:
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

# The names load on first use (PEP 562), so a command imports only the modules it calls.
_LAZY: dict[str, str] = {
    "ActiveRun": "keel.tracking._active",
    "AliasMove": "keel.tracking._model",
    "Artifact": "keel.tracking._model",
    "Experiment": "keel.tracking._model",
    "ExperimentService": "keel.tracking._experiments",
    "LoadedModel": "keel.tracking._modelio",
    "Metric": "keel.tracking._model",
    "MetricCurves": "keel.tracking._curves",
    "ModelRegistry": "keel.tracking._registry",
    "ModelVersion": "keel.tracking._model",
    "PACKAGE_SCHEMA": "keel.tracking._packaging",
    "Predictor": "keel.tracking._formats",
    "REVIEWED_SKOPS_TYPES": "keel.tracking._packaging",
    "RegisteredModel": "keel.tracking._model",
    "Run": "keel.tracking._model",
    "RunPage": "keel.tracking._model",
    "RunService": "keel.tracking._runs",
    "SAFE_FORMATS": "keel.tracking._packaging",
    "SIDECAR_TAG": "keel.tracking._modelio",
    "capture_environment": "keel.tracking._environment",
    "dump_skops": "keel.tracking._packaging",
    "git_state": "keel.tracking._environment",
    "infer_signature": "keel.tracking._packaging",
    "load_skops": "keel.tracking._packaging",
    "parse_model_ref": "keel.tracking._registry",
}


__getattr__, __dir__ = lazy_names(__name__, __all__, _LAZY)
