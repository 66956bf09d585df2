"""The remote SDK's one HTTP connection: URL checks, streaming uploads, and Keel's errors back.

A Keel server answers errors as ``{"error": {"code", "message", "details"}}``; the client raises
the Keel error class of that code with the same message, so remote callers catch exactly what
local callers catch.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar, overload
from urllib.parse import quote, urlsplit

from keel import errors
from keel.errors import ConfigurationError, KeelError, MissingDependencyError, StorageError
from keel.governance import Context
from keel.workspace._codec import from_jsonable, to_jsonable
from keel.workspace._connect import is_remote_url

if TYPE_CHECKING:
    import httpx

__all__ = [
    "HttpClient",
    "InvalidSegmentError",
    "base_path",
    "is_remote_url",
    "segment",
    "token_from_env",
]

T = TypeVar("T")
_CHUNK = 1024 * 1024
#: Connect/write/pool timeout of a long call, whose answer has no read timeout (an erasure
#: or a retention run lasts as long as the data it rewrites).
_LONG_CONNECT = 60.0
_CODES: dict[str, type[KeelError]] = {}


def _error_classes() -> dict[str, type[KeelError]]:
    if not _CODES:
        import keel.governance  # noqa: F401  (its error classes, e.g. POLICY_DENIED)

        pending: list[type[KeelError]] = [KeelError]
        while pending:
            kind = pending.pop()
            if "code" in vars(kind):  # a subclass sharing its base's code never claims it
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
        long: bool = ...,
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
        long: bool = ...,
    ) -> Any: ...

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        into: type[T] | None = None,
        long: bool = False,
    ) -> Any:
        """Send one request; decode the JSON answer (into ``into``) or raise its Keel error.

        ``long``: the server may work for minutes (erasure, retention, a subject lookup that
        indexes new parts); wait for the answer without a read timeout.
        """
        import httpx

        clean = None if params is None else {k: v for k, v in params.items() if v is not None}
        body = None if json is None else to_jsonable(json)
        timeout: Any = httpx.Timeout(_LONG_CONNECT, read=None) if long else httpx.USE_CLIENT_DEFAULT
        with _transport(method, self.url + path):
            response = self._http.request(method, path, json=body, params=clean, timeout=timeout)
        _raise_for(response)
        data = response.json()
        return data if into is None else from_jsonable(into, data)

    def upload(
        self,
        project: str,
        artifact: bytes | Path | IO[bytes],
        *,
        progress: Callable[[int], None] | None = None,
    ) -> str:
        """Stream bytes, a file or an open binary handle to the server's staging area;
        returns the upload id.

        ``progress`` is called with the bytes sent so far after each chunk of a file.
        """
        headers = {"content-type": "application/octet-stream"}
        url = f"/api/v1/projects/{segment(project)}/uploads"
        with _transport("POST", self.url + url):
            if isinstance(artifact, bytes):
                response = self._http.post(url, content=artifact, headers=headers)
            elif not isinstance(artifact, Path):
                content = _chunks(artifact, progress)
                response = self._http.post(url, content=content, headers=headers)
            else:
                with open(artifact, "rb") as handle:
                    content = _chunks(handle, progress)
                    response = self._http.post(url, content=content, headers=headers)
        _raise_for(response)
        return str(response.json()["upload_id"])

    def download(self, path: str, *, params: Mapping[str, Any] | None = None) -> bytes:
        clean = None if params is None else {k: v for k, v in params.items() if v is not None}
        with _transport("GET", self.url + path):
            response = self._http.get(path, params=clean)
        _raise_for(response)
        return response.content

    def download_to(
        self, path: str, target: IO[bytes], *, params: Mapping[str, Any] | None = None
    ) -> int:
        """Stream a download into ``target`` chunk by chunk (bounded memory); returns its size."""
        clean = None if params is None else {k: v for k, v in params.items() if v is not None}
        size = 0
        with (
            _transport("GET", self.url + path, partial=True),
            self._http.stream("GET", path, params=clean) as response,
        ):
            if response.status_code >= 300:
                response.read()
                _raise_for(response)
            for chunk in response.iter_bytes(_CHUNK):
                target.write(chunk)
                size += len(chunk)
        return size

    def lines(self, path: str) -> Iterator[str]:
        with _transport("GET", self.url + path), self._http.stream("GET", path) as response:
            if response.status_code >= 300:
                response.read()
                _raise_for(response)
            yield from response.iter_lines()

    def close(self) -> None:
        self._http.close()


def _chunks(handle: IO[bytes], progress: Callable[[int], None] | None = None) -> Iterator[bytes]:
    sent = 0
    while chunk := handle.read(_CHUNK):
        yield chunk
        sent += len(chunk)
        if progress is not None:
            progress(sent)


@contextmanager
def _transport(method: str, url: str, *, partial: bool = False) -> Iterator[None]:
    """Map a failed connection, a timeout or a cut-off answer to a Keel error."""
    import httpx

    where = f"{method} {url.split('?')[0][:200]}"
    try:
        yield
    except httpx.TimeoutException as exc:
        raise StorageError(
            f"The Keel server did not answer in time ({where}): {type(exc).__name__}. It may "
            "still be working: an erasure or retention run resumes where it stopped, so run "
            "the same command again. For a slow network, give a larger timeout: "
            "RemoteWorkspace(url, token=..., timeout=SECONDS) from keel.workspace.",
            url=where,
        ) from exc
    except httpx.TransportError as exc:
        lost = "the download was cut off, and what was written is incomplete; " if partial else ""
        reason = str(exc)[:200] or type(exc).__name__
        raise StorageError(
            f"The connection to the Keel server failed ({where}): {reason}. "
            f"{lost}Check that the server is running and reachable, then retry.",
            url=where,
        ) from exc


def _raise_for(response: httpx.Response) -> None:
    """Raise the Keel error of a failed answer; a redirect is one too.

    The API never redirects, so a 3xx comes from a path that is no API route or from a proxy
    in front of the server; its body is not Keel's JSON, and following it could resend the
    token elsewhere.
    """
    if response.status_code < 300:
        return
    if response.status_code < 400:
        request = response.request
        where = f"{request.method} {str(request.url).split('?')[0][:200]}"
        location = response.headers.get("location", "")[:200]
        raise ConfigurationError(
            f"The Keel server answered {where} with a redirect (HTTP {response.status_code} "
            f"to {location!r}), which the client does not follow: Keel's API never redirects. "
            "Check the URL given to connect() (the server's root, e.g. https://HOST:PORT, "
            "without a path) and any proxy in front of the server.",
            url=where,
            status=response.status_code,
            location=location,
        )
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


class InvalidSegmentError(errors.InvalidInputError, errors.NotFoundError):
    """A name, tag, ref or id that cannot be one URL path segment, so it names nothing.

    It is both errors a local workspace raises for such a value: ``NotFoundError`` where the
    value is looked up (no stored name is empty, ``.``, ``..`` or holds ``/``) and
    ``InvalidInputError`` where it names something new (the local names check refuses it).
    The client cannot tell which, and a caller catching either sees what it sees locally.
    """


def segment(value: object) -> str:
    """One URL path segment: every reserved character (``/`` too) percent-encoded.

    An empty value, ``.`` and ``..`` are refused before any request: httpx drops dot segments
    and an empty one makes a different path, so the call would reach another route (or
    another dataset). A ``/`` is refused too: the server decodes ``%2F`` before routing, so
    the value would be split into two segments. No name, tag, ref or id Keel stores can be
    any of these.
    """
    text = str(value)
    if text in ("", ".", "..") or "/" in text:
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise InvalidSegmentError(
            f"Invalid name, tag or id {shown!r}: it cannot name anything in Keel (names use "
            "1-128 letters, digits, '_', '.' or '-', starting with a letter or digit; ids and "
            "refs never hold '/' and are never empty, '.' or '..'). Nothing was sent to the "
            "server; pass an existing or valid name.",
            value=shown,
        )
    return quote(text, safe="")


def base_path(ctx: Context) -> str:
    return f"/api/v1/projects/{segment(ctx.project_name)}"


def token_from_env() -> str | None:
    """The token in ``KEEL_TOKEN``, for ``connect(url)`` without ``token=``."""
    return os.environ.get("KEEL_TOKEN") or None
