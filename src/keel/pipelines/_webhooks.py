"""Commit webhooks: verify GitHub and GitLab deliveries, then fire the matching triggers.

The verification functions are pure (no I/O) and compare in constant time. The handler is
framework-free — the API server mounts it on a route and passes the raw body and headers:

    result = handle_webhook(service.triggers, ctx, provider="github", headers=request.headers,
                            body=await request.body(), secret=resolved_secret)
    return JSONResponse(result.to_dict(), status_code=result.status)
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keel.pipelines._model import Firing

if TYPE_CHECKING:
    from keel.governance import Context
    from keel.pipelines._triggers import TriggerService

__all__ = [
    "MAX_WEBHOOK_BODY",
    "CommitEvent",
    "WebhookResult",
    "handle_webhook",
    "parse_commit_event",
    "verify_github_signature",
    "verify_gitlab_token",
]

MAX_WEBHOOK_BODY = 1024 * 1024
_MAX_REF = 255


def _bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def verify_github_signature(secret: str | bytes, body: bytes, header: str | None) -> bool:
    """Whether ``header`` (``X-Hub-Signature-256``) is the HMAC-SHA256 of ``body``."""
    if not secret or not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(_bytes(secret), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header[len("sha256=") :].strip().encode())


def verify_gitlab_token(secret: str | bytes, header: str | None) -> bool:
    """Whether ``header`` (``X-Gitlab-Token``) equals the shared ``secret``."""
    if not secret or not header:
        return False
    return hmac.compare_digest(_bytes(secret), header.encode())


@dataclass(frozen=True, slots=True)
class CommitEvent:
    """A push: the repository (``owner/name``), branch and commit; ``deleted`` when the push
    deletes its branch or tag (the commit is then all zeros); ``delivery`` the provider's id
    of the delivery."""

    provider: str
    repository: str
    branch: str | None
    commit: str
    deleted: bool = False
    delivery: str | None = None

    def details(self) -> dict[str, Any]:
        found = {"provider": self.provider, "branch": self.branch, "commit": self.commit}
        return found | ({"delivery": self.delivery} if self.delivery else {})


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def parse_commit_event(
    provider: str, headers: Mapping[str, str], body: bytes
) -> CommitEvent | None:
    """The push in a (verified) delivery; None for other events (ping, issues, …).

    Raises:
        ValueError: If the body is not the JSON of a push event.
    """
    event = _header(headers, "X-GitHub-Event" if provider == "github" else "X-Gitlab-Event")
    if provider == "github" and event != "push":
        return None
    if provider == "gitlab" and event not in ("Push Hook", "Tag Push Hook"):
        return None
    payload = json.loads(body)
    if not isinstance(payload, dict):
        raise ValueError("the payload is not a JSON object")
    ref = str(payload.get("ref") or "")[:_MAX_REF]
    branch = ref[len("refs/heads/") :] if ref.startswith("refs/heads/") else None
    if provider == "github":
        repository = (payload.get("repository") or {}).get("full_name")
        commit = payload.get("after")
    else:
        repository = (payload.get("project") or {}).get("path_with_namespace")
        commit = payload.get("checkout_sha") or payload.get("after")
    if not isinstance(repository, str) or not isinstance(commit, str) or not commit:
        raise ValueError("the push names no repository or commit")
    deleted = payload.get("deleted") is True or not commit.strip("0")
    delivery = _header(
        headers, "X-GitHub-Delivery" if provider == "github" else "X-Gitlab-Event-UUID"
    )
    return CommitEvent(
        provider,
        repository[:_MAX_REF],
        branch,
        commit[:64],
        deleted,
        (delivery or "")[:100] or None,
    )


@dataclass(frozen=True, slots=True)
class WebhookResult:
    """What to answer the provider: an HTTP status, a message, and the firings recorded."""

    status: int
    message: str
    firings: list[Firing] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"message": self.message, "firings": [f.to_dict() for f in self.firings]}


def handle_webhook(
    triggers: TriggerService,
    ctx: Context,
    *,
    provider: str,
    headers: Mapping[str, str],
    body: bytes,
    secret: str | bytes,
) -> WebhookResult:
    """Verify a delivery and fire the commit triggers watching its repository and branch.

    Answers 401 for a bad or missing signature (nothing is parsed before it verifies), 413 for
    a body over 1 MiB, 400 for a malformed push, 200 for events that are not pushes and for
    pushes that delete a branch or tag, and 202 with the firings otherwise. A redelivery of the
    same commit fires nothing new.
    """
    if provider not in ("github", "gitlab"):
        return WebhookResult(404, f"Unknown webhook provider {provider!r:.40}.")
    if len(body) > MAX_WEBHOOK_BODY:
        return WebhookResult(413, "The webhook body is larger than 1 MiB.")
    if provider == "github":
        ok = verify_github_signature(secret, body, _header(headers, "X-Hub-Signature-256"))
    else:
        ok = verify_gitlab_token(secret, _header(headers, "X-Gitlab-Token"))
    if not ok:
        return WebhookResult(401, "The webhook signature does not verify.")
    try:
        event = parse_commit_event(provider, headers, body)
    except (ValueError, AttributeError, TypeError, RecursionError) as exc:
        return WebhookResult(400, f"Malformed push payload: {str(exc)[:200]}")
    if event is None:
        return WebhookResult(200, "Not a push event; nothing to do.")
    if event.deleted:
        return WebhookResult(200, "The push deletes a branch or tag; nothing to run.")
    fired = triggers.fire_event(
        ctx,
        "commit",
        event.repository,
        event_id=event.commit,
        details=event.details(),
    )
    return WebhookResult(202, f"{len(fired)} trigger(s) fired.", fired)
