"""What every page shares: the state on the app, templates, headers, the signed-in caller.

Pages are server-rendered with Jinja2, autoescaped everywhere (names, tags and messages are
user input). Each response carries a strict Content-Security-Policy: scripts only from this
server (no inline script, no eval), styles only from this server, no framing. A page route
signs the caller in from the session cookie and hands it a :class:`Viewer`: the same
:class:`~keel.governance.Context` the REST API builds from a bearer token.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.responses import HTMLResponse, RedirectResponse, Response

from keel.errors import AuthenticationError, InvalidInputError, KeelError
from keel.governance import Context, Permission, allows
from keel.server._errors import status_of
from keel.ui._sessions import Session, SessionStore

if TYPE_CHECKING:
    from jinja2 import Environment

    from keel.compliance import ErasureService
    from keel.data import DatasetGate, DatasetService
    from keel.governance import ComplianceService, SupplyChainService
    from keel.server._deps import Services
    from keel.serving import DeploymentService

__all__ = [
    "CSP",
    "COOKIE",
    "PREFIX",
    "PageRoute",
    "UiState",
    "Viewer",
    "ViewerDep",
    "attachment",
    "render",
    "ui_state",
]

_log = logging.getLogger("keel.ui")
_HEADER_UNSAFE = re.compile(r"[^A-Za-z0-9._ ()+,-]")


def attachment(name: str) -> str:
    """A ``Content-Disposition`` for downloading ``name``: an ASCII ``filename`` fallback and
    the exact name as RFC 5987 ``filename*`` (UTF-8, percent-encoded), so any name is safe."""
    base = name.rsplit("/", 1)[-1] or "download"
    fallback = _HEADER_UNSAFE.sub("_", base)[:150] or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(base, safe='')}"


PREFIX = "/ui"
COOKIE = "keel_session"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)


@dataclass(slots=True)
class UiState:
    """The UI's part of the app: sessions, templates and the services pages call."""

    services: Services
    sessions: SessionStore
    env: Environment
    datasets: DatasetService
    gate: DatasetGate
    deployments: DeploymentService
    compliance: ComplianceService
    supplychain: SupplyChainService
    erasures: ErasureService
    secure_cookies: bool


def ui_state(request: Request) -> UiState:
    state: UiState = request.app.state.ui
    return state


class SignInRequiredError(Exception):
    """The request has no live session: the page answers with a redirect to the login form."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in caller of a page: its Context, its session and the UI state."""

    ctx: Context
    session: Session
    ui: UiState
    request: Request

    def can(self, permission: Permission) -> bool:
        """Whether the caller's roles grant ``permission`` (buttons are shown only then)."""
        return allows(self.ctx.roles, permission)

    @property
    def base(self) -> str:
        """The URL prefix of this project's pages."""
        return f"{PREFIX}/p/{quote(self.ctx.project_name, safe='')}"

    def check_csrf(self, sent: str | None) -> None:
        """Refuse a state change whose form does not carry this session's CSRF token."""
        from keel.errors import PermissionDeniedError

        if not self.session.csrf_matches(sent):
            raise PermissionDeniedError(
                "The form's CSRF token is missing or stale. Reload the page and submit it again.",
                principal=self.ctx.principal,
            )


def _viewer(request: Request, project: str) -> Viewer:
    ui = ui_state(request)
    session_id = request.cookies.get(COOKIE)
    session = ui.sessions.get(session_id)
    if session is None:
        raise SignInRequiredError()
    state = request.scope.setdefault("state", {})
    client = request.client
    try:
        ctx = ui.services.identity.authenticate(
            session.credential,
            project=project,
            source=client.host if client else None,
            request_id=state.get("request_id"),
        )
    except AuthenticationError:
        ui.sessions.drop(session_id)
        raise SignInRequiredError() from None
    state["principal"] = ctx.principal
    state["project_id"] = ctx.project_id
    viewer = Viewer(ctx=ctx, session=session, ui=ui, request=request)
    state["ui_viewer"] = viewer  # so that an error page still shows the navigation
    return viewer


ViewerDep = Annotated[Viewer, Depends(_viewer)]


def render(
    viewer: Viewer | None,
    request: Request,
    template: str,
    *,
    status: int = 200,
    title: str = "",
    **values: Any,
) -> HTMLResponse:
    """A page from ``template`` with the strict CSP and no caching."""
    ui = ui_state(request)
    html = ui.env.get_template(template).render(
        viewer=viewer,
        P=Permission,
        prefix=PREFIX,
        title=title,
        path=request.url.path,
        **values,
    )
    return HTMLResponse(html, status_code=status, headers=page_headers())


def page_headers() -> dict[str, str]:
    return {
        "content-security-policy": CSP,
        "cache-control": "no-store",
        "referrer-policy": "same-origin",
    }


def error_page(request: Request, exc: KeelError) -> Response:
    status = status_of(exc)
    message = (
        str(exc)
        if status < 500
        else f"The server failed ({exc.code}); quote request id "
        f"{request.scope.get('state', {}).get('request_id', '-')}."
    )
    viewer = request.scope.get("state", {}).get("ui_viewer")
    return render(viewer, request, "error.html", status=status, title="Error", message=message)


def sign_in_redirect(request: Request) -> Response:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    if request.method != "GET":
        target = PREFIX + "/"
    return RedirectResponse(
        f"{PREFIX}/login?next={quote(target, safe='')}", status_code=303, headers=page_headers()
    )


class PageRoute(APIRoute):
    """A route whose Keel errors become HTML error pages and whose anonymous callers sign in."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequiredError:
                return sign_in_redirect(request)
            except KeelError as exc:
                return error_page(request, exc)
            except RequestValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in item.get('loc', ()))}: {item.get('msg', '')}"[:200]
                    for item in exc.errors()[:5]
                )
                return error_page(request, InvalidInputError(f"Invalid request: {problems}."))
            except Exception as exc:  # a crash: logged, and a page that says only that
                _log.error("page %s crashed", request.url.path, exc_info=exc)
                return error_page(request, KeelError("The page failed."))

        return page


# --- template filters -----------------------------------------------------------------------


def seg(value: object) -> str:
    """One URL path segment (every reserved character quoted)."""
    return quote(str(value), safe="")


def number(value: object) -> str:
    """A metric value: 4 significant digits, NaN and infinities spelled out."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
        return f"{value:.4g}"
    return f"{value:.4f}".rstrip("0").rstrip(".") if "." in f"{value:.4f}" else str(value)


def when(value: object) -> str:
    """A time (datetime, epoch milliseconds or ISO text) as ``YYYY-MM-DD HH:MM:SS`` UTC."""
    if value is None or value == "":
        return ""
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value / 1000, tz=UTC)
    if isinstance(value, str):
        text = value
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return text
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def size(value: object) -> str:
    """A byte count in B, KiB, MiB or GiB."""
    if not isinstance(value, int | float):
        return ""
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TiB"


def make_environment() -> Environment:
    """The Jinja2 environment: package templates, autoescaping on for every template."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(
        loader=PackageLoader("keel.ui", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(seg=seg, number=number, when=when, size=size)
    return env
