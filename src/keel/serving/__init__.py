"""Model serving: the V2 server, blue-green, canary and shadow deployments, prediction logs."""

from keel.serving._analysis import AnalysisConfig, Decision, VariantSample, analyse, psi
from keel.serving._app import ServerApp
from keel.serving._facade import Deployments
from keel.serving._host import ModelHost
from keel.serving._kubernetes import KubernetesTarget, render_manifests, write_manifests
from keel.serving._predlog import PredictionLogger
from keel.serving._routing import DeploymentState, Route, bucket_of, route
from keel.serving._runtime import ModelLoader, RegistryLoader, ServedVersion, smoke_test
from keel.serving._serve import (
    ServeOptions,
    ServerHandle,
    build_server,
    run_server,
    start_in_thread,
)
from keel.serving._service import (
    Deployment,
    DeploymentRevision,
    DeploymentService,
    PredictionPage,
    PredictionTrace,
)

__all__ = [
    "AnalysisConfig",
    "Decision",
    "Deployment",
    "DeploymentRevision",
    "DeploymentService",
    "DeploymentState",
    "Deployments",
    "KubernetesTarget",
    "ModelHost",
    "ModelLoader",
    "PredictionLogger",
    "PredictionPage",
    "PredictionTrace",
    "RegistryLoader",
    "Route",
    "ServeOptions",
    "ServedVersion",
    "ServerApp",
    "ServerHandle",
    "VariantSample",
    "analyse",
    "bucket_of",
    "build_server",
    "psi",
    "render_manifests",
    "route",
    "run_server",
    "smoke_test",
    "start_in_thread",
    "write_manifests",
]
