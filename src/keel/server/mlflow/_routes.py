"""The route table of the MLflow-compatible API: one line per MLflow REST endpoint."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.datastructures import URLPath
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Match, NoMatchFound, Route

from keel.server.mlflow import _logged, _registry, _search, _tracking, _versions
from keel.server.mlflow._artifacts import (
    ARTIFACTS_PREFIX,
    Endpoint,
    artifact_endpoints,
    list_run_artifacts,
)
from keel.server.mlflow._http import Call, endpoint_of
from keel.server.mlflow._wire import error_payload

__all__ = [
    "ENDPOINTS",
    "MLFLOW_PREFIXES",
    "ArtifactMediaShim",
    "MlflowRoutes",
    "build_routes",
    "is_artifact_upload",
]

Scope = MutableMapping[str, Any]
App = Callable[[Scope, Any, Any], Awaitable[None]]

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


async def _not_found(request: Request) -> Response:
    message = f"No API endpoint {request.method} {request.url.path[:200]} in this MLflow API."
    return Response(
        error_payload("ENDPOINT_NOT_FOUND", message), status_code=404, media_type="application/json"
    )


async def _health(request: Request) -> Response:
    return PlainTextResponse("OK")


class MlflowRoutes(BaseRoute):
    """Every MLflow path, matched as one group: a prefix test, then a table lookup.

    Placed first among the app's routes, it costs Keel's own routes one ``startswith`` test,
    and an MLflow call is found by its exact path (a dict lookup) instead of by trying every
    route before it; the few paths with parameters are tried in turn after that. Any other
    path or method under an MLflow prefix answers ``ENDPOINT_NOT_FOUND`` in MLflow's
    envelope. The request passes through the app's middleware (host and body guard, request
    audit, CORS) like every other request: this only replaces the route search.
    """

    def __init__(
        self,
        endpoints: list[tuple[str, str, Endpoint]],
        prefixes: tuple[str, ...],
    ) -> None:
        self._prefixes = tuple(prefix + "/" for prefix in prefixes)
        self._exact: dict[str, dict[str, Route]] = {}
        self._patterned: list[tuple[str, Route]] = []
        for method, path, endpoint in endpoints:
            route = Route(path, endpoint, methods=[method], include_in_schema=False)
            if "{" in path:
                self._patterned.append((method, route))
            else:
                self._exact.setdefault(path, {})[method] = route
        # What the request audit names as the route of an unknown path: its prefix's catch-all.
        self._fallbacks = [
            (prefix, Route(prefix + "{rest:path}", _not_found, include_in_schema=False))
            for prefix in self._prefixes
        ]

    @property
    def paths(self) -> list[tuple[str, str]]:
        """``(method, path)`` of every endpoint served (for tests and docs)."""
        exact = [(m, p) for p, by in self._exact.items() for m in by]
        return exact + [(m, r.path) for m, r in self._patterned]

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return Match.NONE, {}
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):  # as Starlette's routes see it
            path = path[len(root) :]
        if not path.startswith(self._prefixes):
            return Match.NONE, {}
        method = scope["method"]
        by_method = self._exact.get(path)
        if by_method is not None:
            route = by_method.get(method)
            if route is not None:
                return Match.FULL, {"endpoint": route.endpoint, "path_params": {}, "route": route}
        for declared, route in self._patterned:
            if declared == method:
                match, child = route.matches(scope)
                if match is Match.FULL:
                    return Match.FULL, {**child, "route": route}
        for prefix, fallback in self._fallbacks:
            if path.startswith(prefix):
                rest = {"rest": path[len(prefix) :]}
                return Match.FULL, {"endpoint": _not_found, "path_params": rest, "route": fallback}
        return Match.NONE, {}  # pragma: no cover - every prefix has its fallback

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Any, send: Any) -> None:
        route: Route = scope["route"]  # the one ``matches`` chose, method included
        await route.app(scope, receive, send)


def build_routes() -> tuple[MlflowRoutes, Route]:
    """Every MLflow route and the artifact proxy as one group, and MLflow's ``/health``."""
    endpoints = [
        (method, prefix + path, endpoint_of(method, prefix + path, call))
        for prefix in MLFLOW_PREFIXES
        for method, path, call in ENDPOINTS
    ]
    endpoints += artifact_endpoints()
    group = MlflowRoutes(endpoints, (*MLFLOW_PREFIXES, ARTIFACTS_PREFIX))
    return group, Route("/health", _health, methods=["GET"], include_in_schema=False)


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
