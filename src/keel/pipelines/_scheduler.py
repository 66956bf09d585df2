"""The scheduler daemon: record due schedules, claim firings under a lease, run their pipelines.

Several replicas may run against one PostgreSQL store: each tick records due occurrences and
claims pending firings with ``FOR UPDATE SKIP LOCKED``, so every firing runs once. While a
replica runs a firing it renews the lease; if it dies, the lease expires and another replica
claims the firing again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from keel import clock
from keel.errors import KeelError
from keel.pipelines._environment import process_owner
from keel.pipelines._model import Firing
from keel.pipelines._pipeline import Pipeline
from keel.types import new_id

if TYPE_CHECKING:
    from keel.governance import Context
    from keel.pipelines._executors import Executor
    from keel.pipelines._service import PipelineService

__all__ = ["FiringOutcome", "Scheduler"]

_log = logging.getLogger("keel.pipelines.scheduler")


@dataclass(frozen=True, slots=True)
class FiringOutcome:
    """A firing this replica ran: the run it started and how that run ended."""

    firing: Firing
    pipeline_run_id: str | None
    status: str
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "firing": self.firing.to_dict(),
            "pipeline_run_id": self.pipeline_run_id,
            "status": self.status,
            "error": self.error,
        }


class Scheduler:
    """One scheduler replica for one project.

    Args:
        service: The pipeline service.
        ctx: Who the scheduler acts as (needs ``pipeline.run``).
        resolve: Finds a pipeline by name (default: ``keel.yaml`` of the current folder).
        owner: This replica's name in leases (default ``host:pid:<random>``).
        lease: How long a claim holds without renewal.
        poll: Seconds between ticks of :meth:`serve`.
        executor: Where the pipelines' steps run.
        jobs: Other periodic work run at every tick with its time (for example scheduled
            monitors: ``ws.monitors.run_due``); a job's failure is logged, never raised.
    """

    def __init__(
        self,
        service: PipelineService,
        ctx: Context,
        *,
        resolve: Callable[[str], Pipeline] | None = None,
        owner: str | None = None,
        lease: timedelta = timedelta(minutes=5),
        poll: float = 5.0,
        executor: Executor | str | None = None,
        jobs: Sequence[Callable[[datetime], object]] = (),
    ) -> None:
        from keel.pipelines._pipeline import find_pipeline

        self.service = service
        self.ctx = ctx
        self.resolve = resolve or (lambda name: find_pipeline(name))
        self.owner = owner or f"{process_owner()}:{new_id()[-6:]}"
        self.lease = lease
        self.poll = poll
        self.executor = executor
        self.jobs = list(jobs)

    def tick(self, now: datetime | None = None) -> list[FiringOutcome]:
        """Record due schedules, then claim and run pending firings; returns what ran."""
        moment = now or clock.now()
        triggers = self.service.triggers
        for fired in triggers.record_due(self.ctx, moment):
            _log.info("Schedule %s fired for %s", fired.trigger, fired.due_at.isoformat())
        for job in self.jobs:
            try:
                job(moment)
            except Exception:  # one failing job must not stop the schedules
                _log.exception("Scheduled job %s failed", getattr(job, "__name__", job))
        outcomes = []
        while True:
            claimed = triggers.claim(
                self.ctx, clock.now(), owner=self.owner, lease=self.lease, limit=1
            )
            if not claimed:
                break
            firing, trigger = claimed[0]
            outcomes.append(
                self._run(firing, trigger.pipeline, trigger.params, trigger.kind, trigger.id)
            )
        return outcomes

    def _run(
        self, firing: Firing, pipeline_name: str, params: dict[str, Any], kind: str, trigger_id: str
    ) -> FiringOutcome:
        triggers = self.service.triggers
        stop = threading.Event()

        def keep_lease() -> None:
            while not stop.wait(self.lease.total_seconds() / 3):
                if not triggers.extend(
                    self.ctx, firing.id, owner=self.owner, until=clock.now() + self.lease
                ):
                    _log.warning("Lost the lease of firing %s", firing.id)
                    return

        keeper = threading.Thread(target=keep_lease, name="keel-lease", daemon=True)
        keeper.start()
        run_id: str | None = None
        try:
            pipeline = self.resolve(pipeline_name)
            cause = {
                **firing.cause,
                "trigger": firing.trigger,
                "trigger_id": trigger_id,
                "firing_id": firing.id,
            }
            result = self.service.run(
                self.ctx,
                pipeline,
                params=params,
                executor=self.executor,
                trigger=str(firing.cause.get("kind") or kind),
                cause=cause,
            )
            run_id = result.id
            status = "done" if result.ok else "failed"
            error = result.run.error
        except KeelError as exc:
            status, error = "failed", str(exc)[:2000]
            _log.error("Firing %s of %s failed: %s", firing.id, firing.trigger, error)
        finally:
            stop.set()
            keeper.join()
        triggers.complete(
            self.ctx,
            firing.id,
            owner=self.owner,
            status=status,
            pipeline_run_id=run_id,
            error=error,
        )
        return FiringOutcome(firing, run_id, status, error)

    def serve(self, stop: threading.Event | None = None) -> None:
        """Tick every ``poll`` seconds until ``stop`` is set (or KeyboardInterrupt)."""
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                self.tick()
            except KeelError as exc:  # a store hiccup must not kill the daemon
                _log.error("Scheduler tick failed: %s", exc)
            stop.wait(self.poll)
