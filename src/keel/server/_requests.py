"""The request auditor: every HTTP request, allowed or refused, becomes an audit event.

The guard hands each finished request to :meth:`RequestAuditor.record`, which only queues it
(the request does not wait for the disk). A writer thread appends the queued events to the
hash-chained audit log in one transaction per batch, together with the API tokens' last-use
times. The queue is bounded: when the writer falls behind, requests wait (back-pressure)
rather than events being dropped.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, cast

from keel.governance import AuditLog, Context, IdentityService
from keel.store import Database

__all__ = ["RequestAuditor"]

_log = logging.getLogger("keel.server")
_BATCH = 500
_PAUSE = 0.05


@dataclass(frozen=True, slots=True)
class _Event:
    principal: str
    project_id: str | None
    request_id: str
    source: str | None
    method: str
    path: str
    route: str | None
    status: int
    millis: float


def _outcome(status: int) -> str:
    if status < 400:
        return "allowed"
    if status in (401, 403):
        return "denied"
    return "refused" if status < 500 else "failed"


class RequestAuditor:
    """Queues request events and appends them to the audit chain from a writer thread."""

    def __init__(
        self, db: Database, audit: AuditLog, identity: IdentityService, *, capacity: int = 50_000
    ) -> None:
        self._db = db
        self._audit = audit
        self._identity = identity
        self._queue: queue.Queue[_Event | threading.Event | None] = queue.Queue(capacity)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def record(self, scope: MutableMapping[str, Any], status: int, elapsed: float) -> None:
        state = scope.get("state", {})
        client = scope.get("client")
        route = scope.get("route")
        event = _Event(
            principal=state.get("principal", "anonymous"),
            project_id=state.get("project_id"),
            request_id=state.get("request_id", ""),
            source=client[0] if client else None,
            method=scope.get("method", ""),
            path=scope.get("path", "")[:256],
            route=getattr(route, "path", None),
            status=status,
            millis=round(elapsed * 1000, 3),
        )
        self._ensure_started()
        self._queue.put(event)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every event queued so far is written."""
        self._ensure_started()
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    def close(self) -> None:
        """Write what is queued and stop the writer."""
        thread = self._thread
        if thread is None:
            return
        self._queue.put(None)
        thread.join(timeout=30)
        self._thread = None

    def _ensure_started(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="keel-request-audit", daemon=True)
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        stop = False
        while not stop:
            batch: list[_Event] = []
            waiters: list[threading.Event] = []
            item = self._queue.get()
            while True:
                if item is None:
                    stop = True
                elif isinstance(item, threading.Event):
                    waiters.append(item)
                else:
                    batch.append(item)
                if stop or len(batch) >= _BATCH:
                    break
                try:
                    item = self._queue.get(timeout=_PAUSE if batch else 0.001)
                except queue.Empty:
                    break
            try:
                self._write(batch)
            except Exception:  # the writer must outlive a failed batch; the log says why
                _log.exception("could not write %d request audit events", len(batch))
            for waiter in waiters:
                waiter.set()

    def _write(self, batch: list[_Event]) -> None:
        if not batch:
            self._identity.flush_last_use()
            return
        with self._db.write() as session:
            for event in batch:
                ctx = Context(
                    principal=event.principal,
                    # Requests refused before a project was resolved belong to none.
                    project_id=cast(str, event.project_id),
                    project_name="",
                    roles=frozenset(),
                    request_id=event.request_id,
                    source=event.source,
                )
                self._audit.append(
                    session,
                    ctx,
                    f"http.{event.method.lower()}"[:64],
                    object_type="http_request",
                    object_id=event.path,
                    outcome=_outcome(event.status),
                    details={"route": event.route, "status": event.status, "ms": event.millis},
                )
            self._identity.flush_last_use(session)
