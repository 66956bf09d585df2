"""The one table from Keel's errors to HTTP statuses, and the handlers that apply it.

Every error body is ``{"error": {"code": ..., "message": ...}}``, plus ``details`` (the
error's context) for client errors; 5xx bodies never carry internal detail (the request id in
``X-Request-Id`` ties them to the server log).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from keel import errors

if TYPE_CHECKING:
    from fastapi import FastAPI, Request
    from starlette.responses import JSONResponse

__all__ = ["ERROR_STATUS", "PayloadTooLargeError", "error_body", "install_error_handlers"]

_log = logging.getLogger("keel.server")

#: Most specific first: the first class an error is an instance of decides its status.
ERROR_STATUS: tuple[tuple[type[errors.KeelError], int], ...] = (
    (errors.AuthenticationError, 401),
    (errors.PermissionDeniedError, 403),
    (errors.NotFoundError, 404),
    (errors.AlreadyExistsError, 409),
    (errors.ConflictError, 409),
    (errors.FilterSyntaxError, 400),
    (errors.InvalidInputError, 400),
    (errors.IntegrityError, 500),
    (errors.SchemaOutdatedError, 503),
    (errors.MissingDependencyError, 501),
    (errors.StorageError, 503),
    (errors.ConfigurationError, 500),
    (errors.KeelError, 500),
)


class PayloadTooLargeError(errors.InvalidInputError):
    """A request body over the configured limit (HTTP 413)."""

    code = "PAYLOAD_TOO_LARGE"


def status_of(exc: errors.KeelError) -> int:
    if isinstance(exc, PayloadTooLargeError):
        return 413
    for kind, status in ERROR_STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def install_error_handlers(app: FastAPI) -> None:
    """Map Keel errors, request validation, HTTP errors and crashes to the error body."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    def keel_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, errors.KeelError)
        status = status_of(exc)
        if status >= 500:
            _log.error("request %s failed: %s", _rid(request), exc, exc_info=exc)
            message = (
                str(exc)
                if isinstance(exc, (errors.SchemaOutdatedError, errors.MissingDependencyError))
                else f"The server failed ({exc.code}); quote request id {_rid(request)}."
            )
            return _json(status, exc.code, message)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return _json(status, exc.code, str(exc), headers, details=exc.details)

    def invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = []
        for item in exc.errors()[:5]:
            where = ".".join(str(part) for part in item.get("loc", ()))
            problems.append(f"{where}: {str(item.get('msg', 'invalid'))[:200]}")
        return _json(400, "INVALID_INPUT", "Invalid request: " + "; ".join(problems) + ".")

    def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
        message = (
            f"No route {request.method} {request.url.path[:200]}. See /openapi.json."
            if exc.status_code in (404, 405)
            else str(exc.detail)[:500]
        )
        return _json(exc.status_code, code, message, dict(exc.headers or {}))

    def crash(request: Request, exc: Exception) -> JSONResponse:
        _log.error("request %s crashed", _rid(request), exc_info=exc)
        return _json(
            500, "INTERNAL", f"The server failed unexpectedly; quote request id {_rid(request)}."
        )

    app.add_exception_handler(errors.KeelError, keel_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, crash)


def _rid(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", "-"))


def _json(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    *,
    details: dict[str, Any] | None = None,
) -> JSONResponse:
    """The error response; a client error also carries the error's context (``details``)."""
    from starlette.responses import JSONResponse

    from keel.workspace._codec import to_jsonable

    body = error_body(code, message)
    if details and status < 500:
        body["error"]["details"] = to_jsonable(details)
    return JSONResponse(body, status_code=status, headers=headers)
