"""The route table of the MLflow-compatible API: one line per MLflow REST endpoint."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from keel.server.mlflow import _logged, _registry, _search, _tracking, _versions
from keel.server.mlflow._artifacts import ARTIFACTS_PREFIX, install_artifacts, list_run_artifacts
from keel.server.mlflow._http import Call, add
from keel.server.mlflow._wire import error_payload

__all__ = [
    "ENDPOINTS",
    "MLFLOW_PREFIXES",
    "ArtifactMediaShim",
    "build_router",
    "is_artifact_upload",
]

MLFLOW_PREFIXES = ("/api/2.0/mlflow", "/api/3.0/mlflow")

#: (method, path under /api/2.0/mlflow, handler); served under /api/3.0/mlflow as well.
ENDPOINTS: tuple[tuple[str, str, Call], ...] = (
    ("POST", "/experiments/create", _tracking.create_experiment),
    ("GET", "/experiments/get", _tracking.get_experiment),
    ("GET", "/experiments/get-by-name", _tracking.get_experiment_by_name),
    ("POST", "/experiments/search", _tracking.search_experiments),
    ("GET", "/experiments/search", _tracking.search_experiments),
    ("POST", "/experiments/update", _tracking.update_experiment),
    ("POST", "/experiments/delete", _tracking.delete_experiment),
    ("POST", "/experiments/restore", _tracking.restore_experiment),
    ("POST", "/experiments/set-experiment-tag", _tracking.set_experiment_tag),
    ("POST", "/experiments/delete-experiment-tag", _tracking.delete_experiment_tag),
    ("POST", "/runs/create", _tracking.create_run),
    ("GET", "/runs/get", _tracking.get_run),
    ("POST", "/runs/update", _tracking.update_run),
    ("POST", "/runs/delete", _tracking.delete_run),
    ("POST", "/runs/restore", _tracking.restore_run),
    ("POST", "/runs/search", _search.search_runs),
    ("POST", "/runs/log-metric", _tracking.log_metric),
    ("POST", "/runs/log-parameter", _tracking.log_param),
    ("POST", "/runs/log-batch", _tracking.log_batch),
    ("POST", "/runs/log-inputs", _tracking.log_inputs),
    ("POST", "/runs/outputs", _tracking.log_outputs),
    ("POST", "/runs/set-tag", _tracking.set_tag),
    ("POST", "/runs/delete-tag", _tracking.delete_tag),
    ("GET", "/metrics/get-history", _search.metric_history),
    ("GET", "/metrics/get-history-bulk-interval", _search.metric_history_bulk),
    ("GET", "/artifacts/list", list_run_artifacts),
    ("POST", "/logged-models", _logged.create_model),
    ("POST", "/logged-models/search", _logged.search_models),
    ("GET", "/logged-models/{model_id}", _logged.get_model),
    ("PATCH", "/logged-models/{model_id}", _logged.finalize_model),
    ("DELETE", "/logged-models/{model_id}", _logged.delete_model),
    ("PATCH", "/logged-models/{model_id}/tags", _logged.set_model_tags),
    ("DELETE", "/logged-models/{model_id}/tags/{tag_key}", _logged.delete_model_tag),
    ("POST", "/logged-models/{model_id}/params", _logged.log_model_params),
    ("GET", "/logged-models/{model_id}/artifacts/directories", _logged.list_model_artifacts),
    ("POST", "/registered-models/create", _registry.create_model),
    ("GET", "/registered-models/get", _registry.get_model),
    ("GET", "/registered-models/search", _registry.search_models),
    ("PATCH", "/registered-models/update", _registry.update_model),
    ("POST", "/registered-models/rename", _registry.rename_model),
    ("DELETE", "/registered-models/delete", _registry.delete_model),
    ("POST", "/registered-models/set-tag", _registry.set_model_tag),
    ("DELETE", "/registered-models/delete-tag", _registry.delete_model_tag),
    ("POST", "/registered-models/alias", _versions.set_alias),
    ("DELETE", "/registered-models/alias", _versions.delete_alias),
    ("GET", "/registered-models/alias", _versions.get_by_alias),
    ("POST", "/registered-models/get-latest-versions", _versions.latest_versions),
    ("GET", "/registered-models/get-latest-versions", _versions.latest_versions),
    ("POST", "/model-versions/create", _versions.create_version),
    ("GET", "/model-versions/get", _versions.get_version),
    ("GET", "/model-versions/search", _versions.search_versions),
    ("PATCH", "/model-versions/update", _versions.update_version),
    ("DELETE", "/model-versions/delete", _versions.delete_version),
    ("POST", "/model-versions/set-tag", _versions.set_version_tag),
    ("DELETE", "/model-versions/delete-tag", _versions.delete_version_tag),
    ("GET", "/model-versions/get-download-uri", _versions.download_uri),
    ("POST", "/model-versions/transition-stage", _versions.transition_stage),
)

_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


async def _not_found(request: Request) -> Response:
    message = f"No API endpoint {request.method} {request.url.path[:200]} in this MLflow API."
    return Response(
        error_payload("ENDPOINT_NOT_FOUND", message), status_code=404, media_type="application/json"
    )


async def _health(request: Request) -> Response:
    return PlainTextResponse("OK")


def build_router() -> APIRouter:
    """Every MLflow route, the artifact proxy, ``/health``, and ENDPOINT_NOT_FOUND for the rest."""
    router = APIRouter()
    for prefix in MLFLOW_PREFIXES:
        for method, path, call in ENDPOINTS:
            add(router, method, prefix + path, call)
    install_artifacts(router)
    router.add_api_route("/health", _health, methods=["GET"], include_in_schema=False)
    for prefix in (*MLFLOW_PREFIXES, ARTIFACTS_PREFIX):
        router.add_api_route(
            prefix + "/{rest:path}", _not_found, methods=_ALL_METHODS, include_in_schema=False
        )
    return router


Scope = MutableMapping[str, Any]
App = Callable[[Scope, Any, Any], Awaitable[None]]


class ArtifactMediaShim:
    """Marks artifact uploads as raw bytes before the request guard sees them.

    MLflow's client labels each upload with the MIME type guessed from the file name
    (``text/plain``, ``application/json``, …); the proxy stores bytes as they are, so for
    ``PUT`` under the artifact prefix the media type is set to ``application/octet-stream``,
    the type the guard admits on upload routes. Nothing else is touched.
    """

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "PUT"
            and scope["path"].startswith(ARTIFACTS_PREFIX + "/artifacts/")
        ):
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            headers.append((b"content-type", b"application/octet-stream"))
            scope = {**scope, "headers": headers}
        await self.app(scope, receive, send)


def is_artifact_upload(path: str) -> bool:
    """Whether the guard treats ``path`` as a raw upload (the artifact proxy's PUTs)."""
    return path.startswith(ARTIFACTS_PREFIX + "/artifacts/")
