"""The MLflow-compatible tracking, registry and artifact API, served over Keel's own services."""

from keel.server.mlflow._importer import ImportReport, MlflowImporter, MlflowSource
from keel.server.mlflow._routes import (
    ENDPOINTS,
    MLFLOW_PREFIXES,
    ArtifactMediaShim,
    MlflowRoutes,
    build_routes,
    is_artifact_upload,
)

__all__ = [
    "ENDPOINTS",
    "MLFLOW_PREFIXES",
    "ArtifactMediaShim",
    "ImportReport",
    "MlflowImporter",
    "MlflowRoutes",
    "MlflowSource",
    "build_routes",
    "is_artifact_upload",
]
