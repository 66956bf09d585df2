"""The remote SDK's one HTTP connection: URL checks, streaming uploads, and Keel's errors back.

A Keel server answers errors as ``{"error": {"code", "message", "details"}}``; the client raises
the Keel error class of that code with the same message, so remote callers catch exactly what
local callers catch.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar, overload
from urllib.parse import quote, urlsplit

from keel import errors
from keel.errors import ConfigurationError, KeelError, MissingDependencyError
from keel.governance import Context
from keel.workspace._codec import from_jsonable, to_jsonable

if TYPE_CHECKING:
    import httpx

__all__ = ["HttpClient", "base_path", "is_remote_url", "segment", "token_from_env"]

T = TypeVar("T")
_CHUNK = 1024 * 1024
_CODES: dict[str, type[KeelError]] = {}


def _error_classes() -> dict[str, type[KeelError]]:
    if not _CODES:
        import keel.governance  # noqa: F401  (its error classes, e.g. POLICY_DENIED)

        pending: list[type[KeelError]] = [KeelError]
        while pending:
            kind = pending.pop()
            _CODES.setdefault(kind.code, kind)
            pending.extend(kind.__subclasses__())
        _CODES.update(
            {
                "PAYLOAD_TOO_LARGE": errors.InvalidInputError,
                "UNSUPPORTED_MEDIA_TYPE": errors.InvalidInputError,
                "INVALID_HOST": errors.ConfigurationError,
                "CROSS_ORIGIN": errors.PermissionDeniedError,
                "METHOD_NOT_ALLOWED": errors.InvalidInputError,
            }
        )
    return _CODES


def is_remote_url(target: object) -> bool:
    """Whether ``connect``'s first argument names a server rather than a local folder."""
    return isinstance(target, str) and target.startswith(("http://", "https://"))


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"Invalid server URL {url[:100]!r}: use https://HOST[:PORT].")
    if parts.scheme == "http":
        try:
            loopback = ipaddress.ip_address(parts.hostname).is_loopback
        except ValueError:
            loopback = parts.hostname == "localhost"
        if not loopback:
            raise ConfigurationError(
                f"Refusing to send a token in clear text to {parts.hostname}: use https://, "
                "(plain http is allowed only to this machine).",
            )
    return url.rstrip("/")


class HttpClient:
    """The one HTTP connection of a remote workspace, with Keel's error mapping."""

    def __init__(self, url: str, token: str, *, timeout: float = 60.0, verify: Any = True) -> None:
        try:
            import httpx
        except ImportError as exc:
            raise MissingDependencyError(
                "httpx", extra="server", purpose="Connecting to a Keel server"
            ) from exc
        self.url = _check_url(url)
        self._http = httpx.Client(
            base_url=self.url,
            headers={"authorization": f"Bearer {token}", "user-agent": "keel-sdk"},
            timeout=timeout,
            verify=verify,
        )

    @overload
    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = ...,
        params: Mapping[str, Any] | None = ...,
        into: type[T],
    ) -> T: ...

    @overload
    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = ...,
        params: Mapping[str, Any] | None = ...,
        into: None = ...,
    ) -> Any: ...

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        into: type[T] | None = None,
    ) -> Any:
        """Send one request; decode the JSON answer (into ``into``) or raise its Keel error."""
        clean = None if params is None else {k: v for k, v in params.items() if v is not None}
        body = None if json is None else to_jsonable(json)
        response = self._http.request(method, path, json=body, params=clean)
        _raise_for(response)
        data = response.json()
        return data if into is None else from_jsonable(into, data)

    def upload(self, project: str, artifact: bytes | Path) -> str:
        """Stream bytes or a file to the server's staging area; returns the upload id."""
        headers = {"content-type": "application/octet-stream"}
        url = f"/api/v1/projects/{segment(project)}/uploads"
        if isinstance(artifact, bytes):
            response = self._http.post(url, content=artifact, headers=headers)
        else:
            with open(artifact, "rb") as handle:
                response = self._http.post(url, content=_chunks(handle), headers=headers)
        _raise_for(response)
        return str(response.json()["upload_id"])

    def download(self, path: str) -> bytes:
        response = self._http.get(path)
        _raise_for(response)
        return response.content

    def lines(self, path: str) -> Iterator[str]:
        with self._http.stream("GET", path) as response:
            if response.status_code >= 400:
                response.read()
                _raise_for(response)
            yield from response.iter_lines()

    def close(self) -> None:
        self._http.close()


def _chunks(handle: IO[bytes]) -> Iterator[bytes]:
    while chunk := handle.read(_CHUNK):
        yield chunk


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    details: dict[str, Any] = {}
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
        if isinstance(error.get("details"), dict):
            details = error["details"]
    except (ValueError, KeyError, TypeError):
        code, message = "HTTP_ERROR", f"HTTP {response.status_code}: {response.text[:300]}"
    kind = _error_classes().get(code, KeelError)
    exc = kind.__new__(kind)
    KeelError.__init__(exc, message, **{**details, "status": response.status_code})
    raise exc


def segment(value: object) -> str:
    """One URL path segment: every reserved character (``/`` too) percent-encoded."""
    return quote(str(value), safe="")


def base_path(ctx: Context) -> str:
    return f"/api/v1/projects/{segment(ctx.project_name)}"


def token_from_env() -> str | None:
    """The token in ``KEEL_TOKEN``, for ``connect(url)`` without ``token=``."""
    return os.environ.get("KEEL_TOKEN") or None
