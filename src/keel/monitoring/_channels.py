"""Alert channels: log, generic webhook (JSON, HMAC-SHA256 signed), Slack webhook, SMTP email.

``check_channel`` validates a channel definition when a rule is saved (no network);
``deliver`` sends one event through one channel, retrying with exponential backoff, and
raises ``DeliveryFailedError`` after the last attempt. Secrets (the HMAC key, the SMTP password)
are ``secret://`` references resolved at delivery time, never stored values.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from keel.errors import InvalidInputError, KeelError
from keel.governance import SecretResolver, is_secret_ref, redact
from keel.monitoring._egress import SCHEMES, http_request, parse_url, resolve_target

__all__ = [
    "CHANNEL_KINDS",
    "SIGNATURE_HEADER",
    "DeliveryFailedError",
    "check_channel",
    "deliver",
    "describe_channel",
    "sign",
]

_log = logging.getLogger("keel.monitoring.alerts")
CHANNEL_KINDS = ("log", "webhook", "slack", "email")
SIGNATURE_HEADER = "X-Keel-Signature"
_COMMON = {"type", "allow_private", "timeout", "retries", "backoff"}
_FIELDS = {
    "log": {"type"},
    "webhook": _COMMON | {"url", "secret"},
    "slack": _COMMON | {"url"},
    "email": _COMMON | {"to", "sender", "host", "port", "username", "password", "starttls"},
}


class DeliveryFailedError(Exception):
    """Every attempt to deliver failed; ``attempts`` made, the last ``reason``."""

    def __init__(self, reason: str, attempts: int) -> None:
        super().__init__(reason)
        self.reason, self.attempts = reason, attempts


def sign(secret: str, body: bytes) -> str:
    """The signature header value: ``sha256=<hex HMAC-SHA256 of the body>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _number(raw: Mapping[str, Any], key: str, default: float, lo: float, hi: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise InvalidInputError(f"Channel field '{key}' must be a number from {lo:g} to {hi:g}.")
    return float(value)


def check_channel(raw: Any) -> dict[str, Any]:
    """A validated copy of one channel definition (see the module docstring for kinds)."""
    if not isinstance(raw, Mapping) or raw.get("type") not in CHANNEL_KINDS:
        raise InvalidInputError(
            f"Each channel is an object with type one of {', '.join(CHANNEL_KINDS)}; got "
            f"{str(raw)[:80]!r}."
        )
    kind = str(raw["type"])
    extra = set(raw) - _FIELDS[kind]
    if extra:
        raise InvalidInputError(
            f"Unknown field(s) {', '.join(sorted(extra))[:100]} for a {kind} channel; allowed: "
            f"{', '.join(sorted(_FIELDS[kind]))}."
        )
    clean: dict[str, Any] = {"type": kind}
    if kind == "log":
        return clean
    clean["allow_private"] = bool(raw.get("allow_private", False))
    clean["timeout"] = _number(raw, "timeout", 5.0, 0.05, 60.0)
    clean["retries"] = int(_number(raw, "retries", 3, 1, 10))
    clean["backoff"] = _number(raw, "backoff", 0.5, 0.0, 30.0)
    for key in ("secret", "password"):
        value = raw.get(key)
        if value is not None and not is_secret_ref(value):
            raise InvalidInputError(
                f"Channel field '{key}' must be a secret reference (secret://name), never the "
                "value itself: store the value with your secret provider."
            )
        if value is not None:
            clean[key] = value
    if kind in ("webhook", "slack"):
        url = raw.get("url")
        if not isinstance(url, str) or urlsplit(url).scheme not in SCHEMES:
            raise InvalidInputError(f"A {kind} channel needs 'url': an https:// (or http://) URL.")
        if urlsplit(url).username or urlsplit(url).password:
            raise InvalidInputError("Webhook URLs may not carry credentials.")
        clean["url"] = url[:2048]
        return clean
    to = raw.get("to")
    if isinstance(to, str):
        to = [to]
    if not to or not all(isinstance(t, str) and "@" in t for t in to) or len(to) > 50:
        raise InvalidInputError("An email channel needs 'to': one or more addresses (at most 50).")
    if not isinstance(raw.get("host"), str) or not raw["host"]:
        raise InvalidInputError("An email channel needs 'host': the SMTP server.")
    clean.update(
        to=list(to),
        host=str(raw["host"])[:253],
        port=int(_number(raw, "port", 25, 1, 65535)),
        sender=str(raw.get("sender") or "keel-alerts@localhost")[:256],
        starttls=bool(raw.get("starttls", False)),
    )
    if raw.get("username") is not None:
        clean["username"] = str(raw["username"])[:256]
    return clean


def describe_channel(channel: Mapping[str, Any]) -> str:
    """A short, secret-free description (``webhook https://host/…``)."""
    kind = channel.get("type", "?")
    if kind in ("webhook", "slack"):
        parts = urlsplit(str(channel.get("url", "")))
        return f"{kind} {parts.scheme}://{parts.hostname}"
    if kind == "email":
        return f"email {', '.join(channel.get('to', []))[:120]}"
    return str(kind)


def summary(payload: Mapping[str, Any]) -> str:
    alert = payload.get("alert", {})
    state = str(payload.get("event", "")).upper()
    value = alert.get("value")
    shown = f"{value:.4g}" if isinstance(value, int | float) else "n/a"
    head = f"[{state}] {alert.get('rule')} on monitor {alert.get('monitor')}: "
    message = alert.get("message")
    if message:  # the rule's own sentence already names the metric, value and limit
        return (head + str(message))[:2000]
    return (
        head + f"{alert.get('metric')} = {shown} ({alert.get('comparison', '')} "
        f"{alert.get('threshold')})."
    )[:2000]


def _send_http(channel: Mapping[str, Any], body: bytes, headers: dict[str, str]) -> None:
    target = parse_url(str(channel["url"]), allow_private=bool(channel.get("allow_private")))
    status, text = http_request(target, body, headers, timeout=float(channel["timeout"]))
    if not 200 <= status < 300:
        snippet = text[:200].decode("utf-8", "replace")
        raise _AttemptError(f"HTTP {status} from {describe_channel(channel)}: {snippet}", status)


def _send_email(channel: Mapping[str, Any], payload: Mapping[str, Any], secrets: Any) -> None:
    import smtplib
    from email.message import EmailMessage

    host, port = str(channel["host"]), int(channel["port"])
    address = resolve_target(
        host, port, allow_private=bool(channel.get("allow_private")), what="SMTP server"
    )

    class _Pinned(smtplib.SMTP):
        def _get_socket(self, _host: str, _port: int, timeout: float) -> socket.socket:
            return socket.create_connection((address, port), timeout)

    message = EmailMessage()
    message["Subject"] = summary(payload).split(": ", 1)[0][:200]  # "[FIRING] rule on monitor m"
    message["From"] = str(channel["sender"])
    message["To"] = ", ".join(channel["to"])
    message.set_content(summary(payload) + "\n\n" + json.dumps(payload, indent=2, default=str))
    with _Pinned(host, port, timeout=float(channel["timeout"])) as smtp:
        if channel.get("starttls"):
            import ssl

            smtp.starttls(context=ssl.create_default_context())
        if channel.get("username"):
            password = secrets.resolve(channel["password"]) if channel.get("password") else ""
            smtp.login(str(channel["username"]), password)
        smtp.send_message(message)


class _AttemptError(Exception):
    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.status = status


def _once(
    channel: Mapping[str, Any],
    payload: Mapping[str, Any],
    *,
    delivery_id: str,
    secrets: SecretResolver | None,
) -> None:
    kind = channel["type"]
    if kind == "log":
        _log.warning("alert %s", summary(payload))
        return
    if kind == "email":
        _send_email(channel, payload, secrets)
        return
    if kind == "slack":
        body = json.dumps({"text": summary(payload)}).encode()
        _send_http(channel, body, {"Content-Type": "application/json"})
        return
    body = json.dumps(payload, default=str, sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "keel-alerts/1",
        "X-Keel-Event": str(payload.get("event", "")),
        "X-Keel-Delivery": delivery_id,
    }
    if channel.get("secret"):
        if secrets is None:
            raise _AttemptError("No secret resolver is configured to sign webhooks.")
        headers[SIGNATURE_HEADER] = sign(secrets.resolve(str(channel["secret"])), body)
    _send_http(channel, body, headers)


def deliver(
    channel: Mapping[str, Any],
    payload: Mapping[str, Any],
    *,
    delivery_id: str,
    secrets: SecretResolver | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Send ``payload`` through ``channel``; returns the attempts it took.

    Retries timeouts, connection errors, 429 and 5xx answers with exponential backoff; a
    refusal by the egress policy or another 4xx answer fails at once.

    Raises:
        DeliveryFailedError: after the last attempt.
    """
    retries = int(channel.get("retries", 1))
    backoff = float(channel.get("backoff", 0.5))
    reason = ""
    for attempt in range(1, retries + 1):
        try:
            _once(channel, payload, delivery_id=delivery_id, secrets=secrets)
            return attempt
        except _AttemptError as exc:
            reason = str(exc)
            if exc.status is not None and 400 <= exc.status < 500 and exc.status != 429:
                raise DeliveryFailedError(reason, attempt) from None
        except KeelError as exc:  # egress refusal, unknown secret: retrying cannot help
            raise DeliveryFailedError(redact(str(exc)), attempt) from None
        except OSError as exc:  # timeouts, refused connections, SMTP errors
            reason = f"{type(exc).__name__}: {exc}"
        if attempt < retries:
            sleep(backoff * 2 ** (attempt - 1))
    raise DeliveryFailedError(redact(reason)[:1000], retries)
