"""Signing in and out: a login form where the user pastes an API token (or an OIDC ID token).

The login form is protected against login CSRF by a double-submit token (a random value in a
``SameSite=Strict`` cookie that the form must echo). A successful sign-in replaces any earlier
session (no fixation) and sets an opaque, ``HttpOnly``, ``SameSite=Strict`` cookie that is
``Secure`` whenever the server speaks TLS.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from keel.errors import KeelError
from keel.ui._web import (
    COOKIE,
    PREFIX,
    PageRoute,
    ViewerDep,
    page_headers,
    render,
    ui_state,
)

__all__ = ["router"]

router = APIRouter(prefix=PREFIX, route_class=PageRoute, include_in_schema=False)
_LOGIN_COOKIE = "keel_login"
_MAX_CREDENTIAL = 8192


def _safe_next(target: str | None) -> str | None:
    """Only a path of this UI (never another host, never a scheme) may follow a sign-in."""
    if not target or not target.startswith(PREFIX + "/") or "//" in target or "\\" in target:
        return None
    if any(ord(ch) < 0x20 for ch in target) or len(target) > 2000:
        return None
    return target


def _secure(request: Request) -> bool:
    return ui_state(request).secure_cookies or request.url.scheme == "https"


def _login_form(
    request: Request, *, status: int = 200, error: str = "", next_url: str | None = None
) -> Response:
    nonce = secrets.token_urlsafe(24)
    settings = ui_state(request).services.settings
    response = render(
        None,
        request,
        "login.html",
        status=status,
        title="Sign in",
        nonce=nonce,
        error=error,
        next_url=next_url or "",
        oidc=bool(settings.oidc_issuer),
        default_project=settings.project,
    )
    response.set_cookie(
        _LOGIN_COOKIE,
        nonce,
        max_age=1800,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return response


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    return _login_form(request, next_url=_safe_next(next))


@router.post("/login")
def login(
    request: Request,
    token: Annotated[str, Form(max_length=_MAX_CREDENTIAL)] = "",
    project: Annotated[str, Form(max_length=256)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    ui = ui_state(request)
    expected = request.cookies.get(_LOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(csrf.encode(), expected.encode()):
        return _login_form(
            request,
            status=403,
            error="The sign-in form expired or came from another site. Sign in again.",
            next_url=_safe_next(next),
        )
    client = request.client
    try:
        ctx = ui.services.identity.authenticate(
            token.strip(),
            project=project.strip() or None,
            source=client.host if client else None,
        )
    except KeelError as exc:
        return _login_form(request, status=401, error=str(exc), next_url=_safe_next(next))
    ui.sessions.drop(request.cookies.get(COOKIE))
    session_id, _session = ui.sessions.create(token.strip(), ctx.project_name)
    target = _safe_next(next) or f"{PREFIX}/p/{quote(ctx.project_name, safe='')}/"
    response = RedirectResponse(target, status_code=303, headers=page_headers())
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=int(ui.sessions.max_seconds),
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    response.delete_cookie(_LOGIN_COOKIE, path=PREFIX)
    return response


@router.post("/p/{project}/logout")
def logout(viewer: ViewerDep, csrf: Annotated[str, Form(max_length=200)] = "") -> Response:
    viewer.check_csrf(csrf)
    viewer.ui.sessions.drop(viewer.request.cookies.get(COOKIE))
    response = RedirectResponse(f"{PREFIX}/login", status_code=303, headers=page_headers())
    response.delete_cookie(COOKIE, path=PREFIX)
    return response


@router.get("/")
def home(request: Request) -> Response:
    """Into the project of the session, or to the login form."""
    ui = ui_state(request)
    session = ui.sessions.get(request.cookies.get(COOKIE))
    if session is None or session.project is None:
        return RedirectResponse(f"{PREFIX}/login", status_code=303, headers=page_headers())
    return RedirectResponse(
        f"{PREFIX}/p/{quote(session.project, safe='')}/", status_code=303, headers=page_headers()
    )


@router.get("/p/{project}/")
def project_home(viewer: ViewerDep) -> Response:
    return RedirectResponse(f"{viewer.base}/experiments", status_code=303, headers=page_headers())
