"""The app factory: settings in, a FastAPI app over the same services as local mode out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, get_args

from keel.errors import MissingDependencyError
from keel.settings import Settings

if TYPE_CHECKING:
    from fastapi import APIRouter, FastAPI
    from fastapi.dependencies.models import Dependant

    from keel.server._deps import Services

__all__ = ["build_services", "create_app"]

_UPLOAD_SUFFIX = "/uploads"


def build_services(
    settings: Settings, *, components: dict[str, Any] | None = None, request_audit: bool = True
) -> Services:
    """Wire the stores and services for a server process.

    The services are taken from a local :class:`~keel.workspace.Workspace` built over the same
    store, so the server runs exactly the services (and the policies, signer and region they
    are wired with) that local mode runs: one composition, one implementation.
    """
    from keel.governance import (
        SYSTEM_PRINCIPAL,
        AuditLog,
        Context,
        Governor,
        IdentityService,
        OidcVerifier,
    )
    from keel.server._deps import Services
    from keel.server._requests import RequestAuditor
    from keel.server._uploads import UploadStaging
    from keel.workspace import Workspace, open_components

    parts = components if components is not None else open_components(settings, create=False)
    db, blobs = parts["db"], parts["blobs"]
    audit = AuditLog(db)
    governor = Governor(db, audit)
    # Facades are bound to a caller; this one is never called: routes pass their own Context.
    nobody = Context(SYSTEM_PRINCIPAL, project_id="", project_name="", roles=frozenset())
    local = Workspace(settings=settings, governor=governor, blobs=blobs, ctx=nobody)
    oidc = None
    if settings.oidc_issuer:
        oidc = OidcVerifier(
            issuer=settings.oidc_issuer,
            jwks_url=settings.oidc_jwks_url or "",
            audience=settings.oidc_audience or "",
            principal_claim=settings.oidc_principal_claim,
        )
    identity = IdentityService(
        governor,
        default_project=settings.project,
        token_max_days=settings.token_max_days,
        oidc=oidc,
    )
    return Services(
        settings=settings,
        governor=governor,
        blobs=blobs,
        audit=audit,
        identity=identity,
        projects=local.projects._s,
        experiments=local.experiments._s,
        runs=local.runs._s,
        models=local.models._s,
        lineage=local.lineage._s,
        policies=local.policies._s,
        approvals=local.approvals._s,
        datasets=local.datasets.service,
        dataset_gate=local.datasets.gate,
        pipelines=local.pipelines.service,
        deployments=local.deployments.service,
        uploads=UploadStaging(
            settings.home.resolve() / "uploads", max_bytes=settings.server_max_upload_bytes
        ),
        auditor=RequestAuditor(db, audit, identity) if request_audit else None,
        supplychain=local.supplychain._s,
        monitors=local.monitors.service,
    )


def create_app(
    settings: Settings,
    *,
    components: dict[str, Any] | None = None,
    services: Services | None = None,
    request_audit: bool = True,
) -> FastAPI:
    """The REST API of Keel over ``settings``' store.

    Args:
        settings: where the store is, and the server's limits, hosts, CORS and OIDC.
        components: ready ``{"db", "blobs"}`` (default: opened from ``settings``).
        services: ready services (then ``components`` is ignored).
        request_audit: audit every request (turned off only by the benchmark's baseline).
    """
    try:
        from fastapi import FastAPI
    except ImportError as exc:
        raise MissingDependencyError("fastapi", extra="server", purpose="keel server") from exc
    from starlette.middleware.cors import CORSMiddleware

    import keel
    from keel.server import (
        _audit_routes,
        _compliance_routes,
        _dataset_routes,
        _deployment_routes,
        _identity_routes,
        _monitor_routes,
        _package_routes,
        _pipeline_routes,
        _policy_routes,
        _registry_routes,
        _supplychain_routes,
        _tracking_routes,
    )
    from keel.server._errors import install_error_handlers
    from keel.server._guard import GuardLimits, RequestGuard, public_origin

    wired = services or build_services(settings, components=components, request_audit=request_audit)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        from keel.store import WalCheckpointer

        # SQLite's checkpoints on a thread of their own, not inside a request's commit
        checkpointer = WalCheckpointer(wired.governor.db.engine).start()
        yield
        checkpointer.stop()
        if wired.auditor is not None:
            wired.auditor.close()
        wired.identity.flush_last_use()

    app = FastAPI(
        title="Keel",
        version=keel.__version__,
        summary="The governed machine-learning lifecycle: REST API.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
    )
    app.state.services = wired
    install_error_handlers(app)

    @app.get("/healthz", tags=["health"])
    def health() -> dict[str, str]:
        """Liveness: answers without credentials, says nothing about the store."""
        return {"status": "ok"}

    api = (
        _identity_routes.router,
        _tracking_routes.uploads,
        _tracking_routes.experiments,
        _tracking_routes.runs,
        _registry_routes.router,
        _audit_routes.audit,
        _audit_routes.lineage,
        _policy_routes.policies,
        _policy_routes.approvals,
        _dataset_routes.router,
        _dataset_routes.reports,
        _package_routes.router,
        _pipeline_routes.router,
        _deployment_routes.router,
        _deployment_routes.traces,
        _monitor_routes.router,
        _compliance_routes.router,
        _supplychain_routes.router,
    )
    for router in api:
        app.include_router(router)
    plain_openapi = app.openapi

    def documented_openapi() -> dict[str, Any]:
        doc = plain_openapi()  # FastAPI caches it (and rebuilds it when routes change)
        if "securitySchemes" not in doc.get("components", {}):  # worked out on first ask,
            _document_openapi(doc, _token_operations(api))  # not at every server start
        return doc

    app.openapi = documented_openapi  # type: ignore[method-assign]  # FastAPI's documented hook
    from keel.server.mlflow import ArtifactMediaShim, build_routes, is_artifact_upload

    # The MLflow-compatible API (docs/mlflow.md): one group matched by its path prefixes,
    # first, so an MLflow call does not try Keel's ~170 routes before its own; Keel's routes
    # pay one prefix test for it.
    mlflow_routes, mlflow_health = build_routes()
    app.router.routes.insert(0, mlflow_routes)
    app.router.routes.append(mlflow_health)
    from keel.ui import is_page, mount_ui

    mount_ui(app, wired)  # the web UI under /ui, over the same services

    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["authorization", "content-type", "x-request-id"],
            allow_credentials=False,
        )
    app.add_middleware(
        RequestGuard,
        limits=GuardLimits(
            allowed_hosts=tuple(settings.allowed_hosts),
            cors_origins=tuple(settings.cors_origins),
            max_body=settings.server_max_body_bytes,
            max_upload=settings.server_max_upload_bytes,
            max_depth=settings.server_max_json_depth,
            max_string=settings.server_max_string_length,
            hsts=settings.tls_cert_file is not None,
            public_origin=public_origin(settings.server_public_url),
        ),
        sink=wired.auditor,
        is_upload=lambda path: path.endswith(_UPLOAD_SUFFIX) or is_artifact_upload(path),
        is_page=is_page,
    )
    app.add_middleware(ArtifactMediaShim)  # outermost: before the guard
    return app


#: The body of every error answer (``keel.server._errors``): FastAPI's default model (422,
#: ``HTTPValidationError``) describes an answer this server never gives.
_ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {
                    "type": "string",
                    "description": "Stable and machine-readable: INVALID_INPUT, NOT_FOUND…",
                },
                "message": {"type": "string", "description": "What went wrong and how to fix it."},
                "details": {
                    "type": "object",
                    "additionalProperties": True,
                    "description": "The error's context (client errors only).",
                },
            },
        }
    },
}
_ERROR_REF = {"$ref": "#/components/schemas/Error"}
#: The client errors an operation can answer, by status: when each applies, and its codes.
_ERRORS = {
    "400": "Invalid input: a malformed body, parameter or value (INVALID_INPUT, INVALID_FILTER).",
    "401": "No credential, or an expired, revoked or forged one (UNAUTHENTICATED).",
    "403": "The caller's roles in the project do not allow this (PERMISSION_DENIED).",
    "404": "No such project or object, or not in the caller's project (NOT_FOUND).",
    "409": "A duplicate name, a stale update or a state that forbids it (ALREADY_EXISTS, "
    "CONFLICT).",
    "413": "The request body is over the server's limit (PAYLOAD_TOO_LARGE).",
}
_BEARER = "bearer"
_WRITES = frozenset({"post", "put", "patch", "delete"})


def _token_operations(routers: Iterable[APIRouter]) -> dict[tuple[str, str], bool]:
    """Each ``(path, method)`` of the API routers: whether it takes the caller's token (its
    dependencies, at any depth, include :data:`Caller` or :data:`Someone`)."""
    from fastapi.routing import APIRoute

    from keel.server._deps import Caller, Someone

    authenticated = {get_args(alias)[1].dependency for alias in (Caller, Someone)}
    found: dict[tuple[str, str], bool] = {}
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute) and route.include_in_schema:
                needs_token = _depends_on(route.dependant, authenticated)
                for method in route.methods or ():
                    found[(route.path_format, method.lower())] = needs_token
    return found


def _document_openapi(doc: dict[str, Any], tokens: dict[tuple[str, str], bool]) -> None:
    """Make ``doc`` (FastAPI's OpenAPI document) describe what the server really answers.

    Every operation that validated its input lists 400 with the error body instead of 422;
    every API operation that takes the caller's token (``tokens``) declares the bearer scheme
    and its 401, 403 and 404 (409 for writes, 413 for a body); an upload declares its raw
    body. Public operations (``/healthz``) keep no security.
    """
    components = doc.setdefault("components", {})
    components.setdefault("schemas", {})["Error"] = _ERROR_SCHEMA
    components["securitySchemes"] = {
        _BEARER: {
            "type": "http",
            "scheme": "bearer",
            "description": "A Keel API token (`keel tokens create`), or an access token of "
            "the OIDC issuer the server trusts.",
        }
    }
    for path, operations in doc.get("paths", {}).items():
        for method, operation in operations.items():
            needs_token = tokens.get((path, method), False)
            _document(operation, method, path, needs_token)
    schemas = components["schemas"]
    if "HTTPValidationError" not in str(doc.get("paths")):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)


def _document(operation: dict[str, Any], method: str, path: str, needs_token: bool) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    statuses = {"400"} if responses.pop("422", None) is not None else set()
    if path.endswith(_UPLOAD_SUFFIX) and method == "post" and "requestBody" not in operation:
        operation["requestBody"] = {
            "required": True,
            "description": "The file's bytes, streamed as they are.",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    if needs_token:
        operation["security"] = [{_BEARER: []}]
        statuses |= {"400", "401", "403", "404"}
        if method in _WRITES:
            statuses.add("409")
    if "requestBody" in operation:
        statuses |= {"400", "413"}
    for status in sorted(statuses):
        answer: dict[str, Any] = {
            "description": _ERRORS[status],
            "content": {"application/json": {"schema": _ERROR_REF}},
        }
        if status == "401":
            answer["headers"] = {
                "WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}
            }
        responses.setdefault(status, answer)


def _depends_on(dependant: Dependant, calls: set[Callable[..., Any] | None]) -> bool:
    """Whether the route (or a dependency of it, at any depth) calls one of ``calls``."""
    return any(dep.call in calls or _depends_on(dep, calls) for dep in dependant.dependencies)
