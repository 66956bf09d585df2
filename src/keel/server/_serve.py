"""Running the app: one uvicorn worker per process, on a socket with TCP_NODELAY.

Keep-alive clients otherwise stall ~40 ms per request on delayed ACKs (uvicorn issue 3149,
seen here with several workers). The listening socket is made here with TCP_NODELAY (Linux
hands it down to accepted connections) and asyncio sets it again on each connection.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

from keel.errors import ConfigurationError, MissingDependencyError
from keel.settings import Settings

if TYPE_CHECKING:
    import uvicorn

__all__ = ["listen", "uvicorn_server"]


def listen(host: str, port: int) -> socket.socket:
    """A bound, listening TCP socket with TCP_NODELAY and SO_REUSEADDR."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(
            f"Cannot listen on {host}:{port}: {exc.strerror}. Pick another --port or stop "
            "what holds it.",
            host=host,
            port=port,
        ) from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def uvicorn_server(app: Any, settings: Settings, *, log_level: str = "info") -> uvicorn.Server:
    """A one-worker uvicorn server for ``app`` (TLS when a certificate is configured)."""
    try:
        import uvicorn
    except ImportError as exc:
        raise MissingDependencyError("uvicorn", extra="server", purpose="keel server") from exc
    tls: dict[str, Any] = {}
    if (settings.tls_cert_file is None) != (settings.tls_key_file is None):
        raise ConfigurationError(
            "TLS needs both KEEL_TLS_CERT_FILE and KEEL_TLS_KEY_FILE (or neither)."
        )
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        for path in (settings.tls_cert_file, settings.tls_key_file):
            if not path.is_file():
                raise ConfigurationError(f"The TLS file {path} does not exist.", path=str(path))
        tls = {
            "ssl_certfile": str(settings.tls_cert_file),
            "ssl_keyfile": str(settings.tls_key_file),
        }
    config = uvicorn.Config(
        app,
        workers=1,
        log_level=log_level,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_keep_alive=30,
        h11_max_incomplete_event_size=64 * 1024,
        **tls,
    )
    return uvicorn.Server(config)
