"""The MLflow-compatible tracking, registry and artifact API, served over Keel's own services."""

from keel.server.mlflow._importer import ImportReport, MlflowImporter, MlflowSource
from keel.server.mlflow._routes import (
    ENDPOINTS,
    MLFLOW_PREFIXES,
    ArtifactMediaShim,
    build_router,
    is_artifact_upload,
)

__all__ = [
    "ENDPOINTS",
    "MLFLOW_PREFIXES",
    "ArtifactMediaShim",
    "ImportReport",
    "MlflowImporter",
    "MlflowSource",
    "build_router",
    "is_artifact_upload",
]
