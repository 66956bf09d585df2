"""The outer ASGI guard every request passes: hosts, media types, sizes, headers, audit.

One pure-ASGI layer (no per-request task or body copy beyond what it must check):

* the ``Host`` header must be on the allow-list (400 otherwise);
* state changes (POST, PUT, PATCH, DELETE) carry JSON, or raw bytes on upload routes, so an
  HTML form on another site can never make one (415), and a browser ``Origin`` outside the CORS
  allow-list is refused (403);
* bodies are bounded (413), and JSON bodies are bounded in nesting depth and string length
  (400) before anything parses them;
* every response carries the security headers (HSTS over TLS) and ``X-Request-Id``;
* every request, allowed or refused, is handed to the request auditor.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

from keel.server._errors import error_body
from keel.types import new_id

__all__ = ["GuardLimits", "RequestGuard", "RequestSink", "public_origin", "scan_json"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

_STATE_CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_REQUEST_ID = re.compile(rb"^[A-Za-z0-9_\-]{1,64}$")
_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'"),
    (b"cache-control", b"no-store"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
_HSTS = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")
#: Web pages (keel.ui) set their own Content-Security-Policy and Referrer-Policy (with
#: ``no-referrer`` a browser sends ``Origin: null`` on same-origin form posts).
_PAGE_HEADERS = [
    h for h in _SECURITY_HEADERS if h[0] not in (b"content-security-policy", b"referrer-policy")
]
_FORM = b"application/x-www-form-urlencoded"


class RequestSink(Protocol):
    """Where the guard reports each finished request (the request auditor)."""

    def record(self, scope: Scope, status: int, elapsed: float) -> None: ...


@dataclass(frozen=True, slots=True)
class GuardLimits:
    allowed_hosts: tuple[str, ...]
    cors_origins: tuple[str, ...]
    max_body: int
    max_upload: int
    max_depth: int
    max_string: int
    hsts: bool
    #: the browser origin of ``server_public_url`` (behind a TLS-terminating proxy), if set
    public_origin: str | None = None


def scan_json(body: bytes, *, max_depth: int, max_string: int) -> str | None:
    """Why ``body`` breaks the nesting or string limits, or None when it keeps them.

    It does not validate the JSON otherwise. A body without backslashes has no escaped quotes,
    so its quotes separate strings from structure exactly and the work stays in C (a 100 KB
    ``log_batch`` body: about 0.2 ms, against 6 ms for the token scan); bodies with escapes
    take the token scan.
    """
    if body.count(b"[") + body.count(b"{") <= max_depth and len(body) <= max_string:
        return None
    if b"\\" in body:
        return _scan_tokens(body, max_depth=max_depth, max_string=max_string)
    if (
        len(body) > max_string
        and not _quote_in_every_window(body, max_string // 2)
        and max(map(len, body.split(b'"')[1::2]), default=0) > max_string
    ):
        return f"a string is longer than {max_string:,} bytes"
    marks = body.translate(_BRACKETS, _NOT_MARKS)  # brackets and quotes only
    shape = marks.replace(b'""', b"")  # the strings, when none of them holds a bracket
    if b'"' in shape:  # some do: drop every string's content exactly
        shape = b"".join(marks.split(b'"')[::2])
    for _ in range(max_depth):  # each pass removes the innermost level of pairs
        if b"[]" not in shape:
            return None
        shape = shape.replace(b"[]", b"")
    return f"it nests deeper than {max_depth} levels" if b"[]" in shape else None


def _quote_in_every_window(body: bytes, width: int) -> bool:
    """Whether each aligned ``width``-byte window of ``body`` holds a quote.

    A string longer than ``2 * width`` covers a whole window with no quote in it, so when
    every window has one, no string is that long.
    """
    if width < 1:
        return False
    return all(
        body.find(b'"', start, start + width) >= 0
        for start in range(0, len(body) - width + 1, width)
    )


#: ``{``/``}`` map to ``[``/``]``; everything but brackets and quotes is deleted.
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_MARKS = bytes(range(256)).translate(None, b'[]{}"')


def _scan_tokens(body: bytes, *, max_depth: int, max_string: int) -> str | None:
    """The exact scan over strings (escapes included) and brackets."""
    depth = 0
    for token in _TOKENS.finditer(body):
        first = token.group()[0]
        if first == 0x22:  # a string
            if token.end() - token.start() - 2 > max_string:
                return f"a string is longer than {max_string:,} bytes"
        elif first in (0x5B, 0x7B):
            depth += 1
            if depth > max_depth:
                return f"it nests deeper than {max_depth} levels"
        else:
            depth -= 1
    return None


def _host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    if host.startswith("["):
        name = host[1 : host.find("]")] if "]" in host else host
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    name = name.lower()
    for pattern in allowed:
        if pattern == "*" or pattern == name:
            return True
        if pattern.startswith("*.") and name.endswith(pattern[1:]):
            return True
    return False


class RequestGuard:
    """The pure-ASGI guard described in the module docstring."""

    def __init__(
        self,
        app: App,
        *,
        limits: GuardLimits,
        sink: RequestSink | None,
        is_upload: Callable[[str], bool],
        is_page: Callable[[str], bool] | None = None,
    ) -> None:
        self.app = app
        self.limits = limits
        self.sink = sink
        self.is_upload = is_upload
        # Web pages post url-encoded forms (each carrying a CSRF token the UI checks) from
        # their own origin, and send their own CSP.
        self.is_page = is_page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state = scope.setdefault("state", {})
        headers: dict[bytes, bytes] = {}
        for key, value in scope["headers"]:
            headers.setdefault(key, value)
        incoming = headers.get(b"x-request-id", b"")
        rid = incoming.decode() if _REQUEST_ID.match(incoming) else new_id()
        state["request_id"] = rid
        page = self.is_page is not None and self.is_page(scope["path"])
        extra = [*(_PAGE_HEADERS if page else _SECURITY_HEADERS), (b"x-request-id", rid.encode())]
        if self.limits.hsts or scope.get("scheme") == "https":
            extra.append(_HSTS)

        recorded = False

        def report(status: int) -> None:
            nonlocal recorded
            if not recorded and self.sink is not None:
                recorded = True
                self.sink.record(scope, status, time.perf_counter() - started)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
                report(message["status"])  # before the client can see the answer
            await send(message)

        try:
            refusal, receive = await self._check(scope, headers, receive)
            if refusal is not None:
                await _respond(send_with_headers, *refusal)
            else:
                await self.app(scope, receive, send_with_headers)
        finally:
            report(500)

    async def _check(
        self, scope: Scope, headers: dict[bytes, bytes], receive: Receive
    ) -> tuple[tuple[int, str, str] | None, Receive]:
        limits = self.limits
        host = headers.get(b"host", b"").decode("latin-1")
        if not _host_allowed(host, limits.allowed_hosts):
            return (400, "INVALID_HOST", f"Host {host[:100]!r} is not served here."), receive
        method = scope["method"]
        if method not in _STATE_CHANGES:
            return None, receive
        origin = headers.get(b"origin")
        page = self.is_page is not None and self.is_page(scope["path"])
        if (
            origin is not None
            and origin.decode("latin-1") not in limits.cors_origins
            and not (page and _same_origin(origin, host, scope.get("scheme", "http")))
            and not (page and _public_origin(origin, limits.public_origin))
        ):
            return (
                (403, "CROSS_ORIGIN", "State changes from another browser origin are refused."),
                receive,
            )
        media = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
        length_text = headers.get(b"content-length")
        chunked = b"transfer-encoding" in headers
        try:
            length = int(length_text) if length_text is not None else None
        except ValueError:
            return (400, "INVALID_INPUT", "Content-Length is not a number."), receive
        if length is not None and length < 0:
            return (400, "INVALID_INPUT", "Content-Length is negative."), receive
        empty = not chunked and not length
        upload = self.is_upload(scope["path"])
        if upload:
            if media != b"application/octet-stream":
                return (
                    415,
                    "UNSUPPORTED_MEDIA_TYPE",
                    "Uploads are application/octet-stream.",
                ), receive
            if length is not None and length > limits.max_upload:
                return (413, "PAYLOAD_TOO_LARGE", _too_large(limits.max_upload)), receive
            return None, receive
        if page and media == _FORM:
            if length is not None and length > limits.max_body:
                return (413, "PAYLOAD_TOO_LARGE", _too_large(limits.max_body)), receive
            body, over = await _read_body(receive, limits.max_body)
            if over:
                return (413, "PAYLOAD_TOO_LARGE", _too_large(limits.max_body)), receive
            return None, _replay(body, receive)
        if media != b"application/json" and not (method == "DELETE" and empty):
            return (
                (
                    415,
                    "UNSUPPORTED_MEDIA_TYPE",
                    "State changes take a JSON body (Content-Type: application/json).",
                ),
                receive,
            )
        if length is not None and length > limits.max_body:
            return (413, "PAYLOAD_TOO_LARGE", _too_large(limits.max_body)), receive
        body, over = await _read_body(receive, limits.max_body)
        if over:
            return (413, "PAYLOAD_TOO_LARGE", _too_large(limits.max_body)), receive
        why = scan_json(body, max_depth=limits.max_depth, max_string=limits.max_string)
        if why is not None:
            return (400, "INVALID_INPUT", f"The JSON body is refused: {why}."), receive
        return None, _replay(body, receive)


def public_origin(url: str | None) -> str | None:
    """The browser origin (``scheme://host[:port]``) of a public URL, or None."""
    if url is None:
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _public_origin(origin: bytes, public: str | None) -> bool:
    """True when a browser's ``Origin`` is the configured public one (``server_public_url``)."""
    return public is not None and origin.decode("latin-1").lower() == public.lower()


def _same_origin(origin: bytes, host: str, scheme: str) -> bool:
    """True when a browser's ``Origin`` is the server's own (scheme and allow-listed host)."""
    return origin.decode("latin-1").lower() == f"{scheme}://{host}".lower()


def _too_large(limit: int) -> str:
    return f"The request body is over the limit of {limit:,} bytes. Send less, or split it."


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", True
        parts.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(parts), False


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _respond(send: Send, status: int, code: str, message: str) -> None:
    import json

    payload = json.dumps(error_body(code, message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
