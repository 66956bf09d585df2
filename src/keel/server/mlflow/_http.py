"""How an MLflow call is served: authenticate, read the arguments, call, answer in MLflow's form.

Authentication is the server's own: a Keel API token as a bearer token (what
``MLFLOW_TRACKING_TOKEN`` sends) or as the password of HTTP basic auth (what
``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` send). The project is the token's
own, unless the ``X-Keel-Project`` header names another one the principal may use.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from keel import errors
from keel.server.mlflow._wire import Args, error_payload, status_and_code

if TYPE_CHECKING:
    from keel.governance import Context
    from keel.server._deps import Services

__all__ = ["Call", "credential_of", "endpoint_of", "error_response", "json_response"]

_log = logging.getLogger("keel.server.mlflow")

#: A handler: (services, caller, arguments) → a JSON-ready value or a ready response.
Call = Callable[["Services", "Context", Args], Any]


def credential_of(header: str | None) -> str | None:
    """The token in an ``Authorization`` header: bearer, or basic auth's password."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, _, password = decoded.partition(":")
        return password or user or None
    return None


def authenticate(request: Request, services: Services) -> Context:
    state = request.scope.setdefault("state", {})
    client = request.client
    ctx = services.identity.authenticate(
        credential_of(request.headers.get("authorization")),
        project=request.headers.get("x-keel-project") or None,
        source=client.host if client else None,
        request_id=state.get("request_id"),
    )
    state["principal"] = ctx.principal
    state["project_id"] = ctx.project_id
    return ctx


def json_response(value: Any, status: int = 200) -> Response:
    body = json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
    return Response(body, status_code=status, media_type="application/json")


def error_response(request: Request, exc: BaseException) -> Response:
    if isinstance(exc, errors.KeelError):
        status, code = status_and_code(exc)
        message = str(exc)
        if status >= 500 and status not in (501, 503):
            _log.error("MLflow call %s failed", request.url.path, exc_info=exc)
            message = f"The server failed ({exc.code}); quote request id {_rid(request)}."
    else:
        _log.error("MLflow call %s crashed", request.url.path, exc_info=exc)
        status, code = 500, "INTERNAL_ERROR"
        message = f"The server failed unexpectedly; quote request id {_rid(request)}."
    headers = {"WWW-Authenticate": 'Bearer, Basic realm="keel"'} if status == 401 else None
    return Response(
        error_payload(code, message),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _rid(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", "-"))


def _serve(request: Request, call: Call, args: Args) -> Any:
    services: Services = request.app.state.services
    ctx = authenticate(request, services)
    return call(services, ctx, args)


def endpoint_of(method: str, path: str, call: Call) -> Callable[[Request], Awaitable[Response]]:
    """The ASGI endpoint that serves ``call`` at ``method path``."""

    async def endpoint(request: Request) -> Response:
        try:
            if method == "GET":
                args = Args.from_query(list(request.query_params.multi_items()))
            else:
                args = Args.from_body(await request.body())
            if request.path_params:
                args = args.with_path(request.path_params)
            result = await run_in_threadpool(_serve, request, call, args)
        except Exception as exc:  # every failure answers in MLflow's envelope
            return error_response(request, exc)
        if isinstance(result, Response):
            return result
        return json_response(result)

    endpoint.__name__ = f"mlflow_{method.lower()}_{path.strip('/').replace('/', '_')}"
    return endpoint
