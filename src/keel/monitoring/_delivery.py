"""Sending alert notifications: on background threads, each outcome recorded and audited.

A delivery row is written (``pending``) in the transaction that changed the alert; the sender
then tries the channel (with its retries) and records ``sent`` or ``failed`` with the attempts
and the error. A failure never propagates: the alert stays as it is, visible with the failed
delivery.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import Any

from keel import clock
from keel.errors import KeelError
from keel.governance import Context, Governor, SecretResolver
from keel.monitoring._channels import DeliveryFailedError, deliver
from keel.store import AlertRepository

__all__ = ["Sender"]

_log = logging.getLogger("keel.monitoring.alerts")
THREADS = 4


class Sender:
    """Sends deliveries through their channels and records how each went.

    Args:
        governor: the store and the audit log.
        secrets: resolves channel secrets (default: made from ``settings`` when first needed).
        settings: the Settings a default resolver is made from.
        background: send on a small thread pool (False: in the caller's thread).
    """

    def __init__(
        self,
        governor: Governor,
        *,
        secrets: SecretResolver | None = None,
        settings: Any = None,
        background: bool = True,
    ) -> None:
        self._gov = governor
        self._secrets = secrets
        self._settings = settings
        self._background = background
        self._pool: ThreadPoolExecutor | None = None
        self._futures: list[Future[None]] = []

    def send(
        self, ctx: Context, delivery_id: str, channel: dict[str, Any], payload: dict[str, Any]
    ) -> None:
        if not self._background:
            self._deliver(ctx, delivery_id, channel, payload)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="keel-alerts")
        self._futures = [f for f in self._futures if not f.done()]
        self._futures.append(self._pool.submit(self._deliver, ctx, delivery_id, channel, payload))

    def _deliver(
        self, ctx: Context, delivery_id: str, channel: dict[str, Any], payload: dict[str, Any]
    ) -> None:
        status, error = "sent", None
        try:
            attempts = deliver(channel, payload, delivery_id=delivery_id, secrets=self._resolver())
        except DeliveryFailedError as exc:
            status, error, attempts = "failed", exc.reason, exc.attempts
        except Exception as exc:  # never let a channel bug kill the delivery thread silently
            _log.exception("delivery %s failed unexpectedly", delivery_id)
            status, error, attempts = "failed", f"{type(exc).__name__}: {exc}"[:1000], 1
        try:
            with self._gov.db.write() as session:
                row = AlertRepository(session, ctx.project_id).delivery(delivery_id)
                if row is None:
                    return
                row.status, row.error, row.attempts = status, error, attempts
                row.updated_at = clock.now()
                self._gov.audit.append(
                    session,
                    ctx,
                    "alert.deliver",
                    object_type="alert",
                    object_id=row.alert_id,
                    outcome="success" if status == "sent" else "failure",
                    details={"kind": row.kind, "event": row.event, "attempts": attempts},
                )
        except KeelError as exc:
            _log.error("could not record delivery %s: %s", delivery_id, exc)
        if status == "failed":
            _log.warning(
                "alert delivery %s failed after %d attempt(s): %s", delivery_id, attempts, error
            )

    def _resolver(self) -> SecretResolver | None:
        if self._secrets is None and self._settings is not None:
            self._secrets = SecretResolver.from_settings(self._settings)
        return self._secrets

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for notifications being sent; True when none is left."""
        pending = [f for f in self._futures if not f.done()]
        if pending:
            wait_futures(pending, timeout=timeout)
        return all(f.done() for f in self._futures)

    def close(self) -> None:
        """Finish sending what is queued and stop the threads."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
