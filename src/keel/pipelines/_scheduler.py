"""The scheduler daemon: record due schedules, claim firings under a lease, run their pipelines.

Several replicas may run against one PostgreSQL store: each tick records due occurrences and
claims pending firings with ``FOR UPDATE SKIP LOCKED``, so every firing runs once. While a
replica runs a firing it renews the lease; if it dies, the lease expires and another replica
claims the firing again: that replica resumes the run the dead one started (or records it, if it
ended), and while that run still looks alive it defers the firing rather than run it twice. A
replica that lost its lease cannot record the outcome.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from keel import clock
from keel.errors import ConflictError
from keel.pipelines._environment import process_owner
from keel.pipelines._model import Firing, PipelineRun, PipelineRunStatus, RunResult, Trigger
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
    """A firing this replica ran: the run it started and how that run ended (``done``,
    ``failed``, or ``deferred`` while a run it started earlier still runs elsewhere)."""

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
        outcomes: list[FiringOutcome] = []
        seen: set[str] = set()
        while True:
            claimed = triggers.claim(
                self.ctx, clock.now(), owner=self.owner, lease=self.lease, limit=1
            )
            if not claimed or claimed[0][0].id in seen:
                break  # nothing left, or a firing deferred in this tick came back: next tick
            firing, trigger = claimed[0]
            seen.add(firing.id)
            outcomes.append(self._run(firing, trigger))
        return outcomes

    def _keep_lease(self, firing: Firing, stop: threading.Event) -> None:
        triggers = self.service.triggers
        while not stop.wait(self.lease.total_seconds() / 3):
            try:
                held = triggers.extend(
                    self.ctx, firing.id, owner=self.owner, until=clock.now() + self.lease
                )
            except Exception as exc:  # a store hiccup: try again at the next renewal
                _log.warning("Could not renew the lease of firing %s: %s", firing.id, exc)
                continue
            if not held:
                _log.warning("Lost the lease of firing %s", firing.id)
                return

    def _run(self, firing: Firing, trigger: Trigger) -> FiringOutcome:
        stop = threading.Event()
        keeper = threading.Thread(
            target=self._keep_lease, args=(firing, stop), name="keel-lease", daemon=True
        )
        keeper.start()
        run_id: str | None = None
        earlier: PipelineRun | None = None
        try:
            pipeline = self.resolve(trigger.pipeline)
            earlier = self._earlier_run(firing, pipeline)
            if earlier is not None and earlier.status is not PipelineRunStatus.RUNNING:
                # it ended, but the replica that ran it died before recording that
                run_id, error = earlier.id, earlier.error
                status = "done" if earlier.status is PipelineRunStatus.FINISHED else "failed"
            else:
                result = self._start(firing, trigger, pipeline, earlier)
                run_id, error = result.id, result.run.error
                status = "done" if result.ok else "failed"
        except ConflictError as exc:
            if earlier is None:
                status, error = "failed", str(exc)[:2000]
            else:
                # the run this firing started still looks alive (its owner runs, or it wrote
                # lately): leave the firing to a later claim, after this lease, not a 2nd run
                _log.warning("Firing %s deferred: %s", firing.id, exc)
                return FiringOutcome(firing, earlier.id, "deferred", str(exc)[:2000])
        except Exception as exc:  # a broken pipeline module must not stop the scheduler
            status, error = "failed", f"{type(exc).__name__}: {exc}"[:2000]
            _log.error("Firing %s of %s failed: %s", firing.id, firing.trigger, error)
        finally:
            stop.set()
            keeper.join()
        try:
            self.service.triggers.complete(
                self.ctx,
                firing.id,
                owner=self.owner,
                status=status,
                pipeline_run_id=run_id,
                error=error,
            )
        except ConflictError as exc:  # this replica lost its lease to another one
            _log.warning("%s", exc)
        return FiringOutcome(firing, run_id, status, error)

    def _earlier_run(self, firing: Firing, pipeline: Pipeline) -> PipelineRun | None:
        """The run a replica that died started for ``firing`` (with its steps), if any."""
        since = firing.created_at - timedelta(hours=1)  # the replicas' clocks may differ
        for run in self.service.list_runs(self.ctx, pipeline=pipeline.name, limit=200):
            if run.created_at < since:
                break
            if run.cause is not None and run.cause.get("firing_id") == firing.id:
                return self.service.get(self.ctx, run.id)
        return None

    def _start(
        self, firing: Firing, trigger: Trigger, pipeline: Pipeline, earlier: PipelineRun | None
    ) -> RunResult:
        if earlier is not None and {s.name for s in earlier.steps} == set(pipeline.steps):
            _log.info("Firing %s resumes its run %s", firing.id, earlier.id)
            return self.service.resume(
                self.ctx, earlier.id, pipeline=pipeline, executor=self.executor
            )
        if earlier is not None:
            _log.warning(
                "Firing %s starts a new run: its run %s has other steps than pipeline %s now",
                firing.id,
                earlier.id,
                pipeline.name,
            )
        cause = {
            **firing.cause,
            "trigger": firing.trigger,
            "trigger_id": trigger.id,
            "firing_id": firing.id,
        }
        return self.service.run(
            self.ctx,
            pipeline,
            params=trigger.params,
            executor=self.executor,
            trigger=str(firing.cause.get("kind") or trigger.kind),
            cause=cause,
        )

    def serve(self, stop: threading.Event | None = None) -> None:
        """Tick every ``poll`` seconds until ``stop`` is set (or KeyboardInterrupt)."""
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                self.tick()
            except Exception:  # a store hiccup or a bug must not kill the daemon
                _log.exception("Scheduler tick failed")
            stop.wait(self.poll)
