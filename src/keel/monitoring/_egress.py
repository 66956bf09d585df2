"""Egress policy for outgoing notifications: scheme allow-list, resolve then pin, deny ranges.

A target's host is resolved once; every address it resolves to must be public (no private,
loopback, link-local, multicast, reserved or unspecified address, IPv4-mapped forms
included) unless the channel explicitly allows private targets. The connection then goes
to the checked address (pinned), so a second DNS answer cannot redirect it, and redirects
are never followed.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from keel.errors import InvalidInputError, PermissionDeniedError

__all__ = ["EgressTarget", "check_address", "http_request", "parse_url", "resolve_target"]

SCHEMES = ("https", "http")
_MAX_URL = 2048


@dataclass(frozen=True, slots=True)
class EgressTarget:
    """A checked destination: where to connect (``address``) and what to call it (``host``)."""

    scheme: str
    host: str
    port: int
    address: str
    path: str


def check_address(address: str, *, allow_private: bool) -> str | None:
    """Why ``address`` is refused (None when it may be reached)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return f"{ip} is a multicast, reserved or unspecified address"
    if allow_private:
        return None
    if ip.is_loopback:
        return f"{ip} is a loopback address"
    if ip.is_link_local:
        return f"{ip} is a link-local address"
    if ip.is_private or not ip.is_global:
        return f"{ip} is a private address"
    return None


def resolve_target(host: str, port: int, *, allow_private: bool, what: str = "target") -> str:
    """Resolve ``host`` and return the address to pin; refuse any denied answer."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise InvalidInputError(f"Cannot resolve the {what} host {host!r:.100}: {exc}.") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        why = check_address(address, allow_private=allow_private)
        if why is not None:
            raise PermissionDeniedError(
                f"The {what} {host!r:.100} resolves to {why}; the egress policy refuses it. "
                "Use a public address, or set allow_private: true on the channel if this "
                "internal target is intended.",
                host=host[:100],
            )
    if not addresses:
        raise InvalidInputError(f"The {what} host {host!r:.100} has no address.")
    return addresses[0]


def parse_url(url: str, *, allow_private: bool) -> EgressTarget:
    """Check ``url``'s scheme and host, and pin its address."""
    if not isinstance(url, str) or len(url) > _MAX_URL:
        raise InvalidInputError(f"A webhook URL is a string of at most {_MAX_URL} characters.")
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise InvalidInputError(
            f"Webhook URL scheme {parts.scheme!r:.20} is not allowed; use https (or http)."
        )
    if parts.username or parts.password:
        raise InvalidInputError(
            "Webhook URLs may not carry credentials; use the channel's secret (secret://...)."
        )
    host = parts.hostname
    if not host:
        raise InvalidInputError(f"Webhook URL {url[:100]!r} has no host.")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = resolve_target(host, port, allow_private=allow_private, what="webhook")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return EgressTarget(parts.scheme, host, port, address, path)


def http_request(
    target: EgressTarget,
    body: bytes | None,
    headers: dict[str, str],
    *,
    timeout: float,
    method: str = "POST",
    limit: int = 4096,
) -> tuple[int, bytes]:
    """Send one request to the pinned address of ``target``; returns (status, body up to
    ``limit`` bytes). Redirects are not followed."""
    import http.client

    connection: http.client.HTTPConnection
    if target.scheme == "https":
        import ssl

        connection = http.client.HTTPSConnection(
            target.host, target.port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
    pinned = (target.address, target.port)

    def connect(_address: Any, timeout: Any = None, source: Any = None) -> socket.socket:
        return socket.create_connection(pinned, timeout, source)

    connection._create_connection = connect  # type: ignore[attr-defined]
    try:
        connection.request(method, target.path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read(limit)
    finally:
        connection.close()
