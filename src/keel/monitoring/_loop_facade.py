"""``ws.loop``: the closed loop bound to a workspace's caller (see :class:`ClosedLoop`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from keel.governance import Context
from keel.monitoring._loop import ClosedLoop
from keel.monitoring._loop_model import DEFAULT_STEPS, LoopCycle

if TYPE_CHECKING:
    from keel.pipelines import Executor, Firing, Pipeline, Trigger

__all__ = ["Loop"]


class Loop:
    """``ws.loop``: the closed loop bound to the workspace's caller (see :class:`ClosedLoop`)."""

    def __init__(self, service: ClosedLoop, ctx: Context) -> None:
        self.service, self._ctx = service, ctx

    def connect(
        self,
        name: str,
        *,
        rule: str,
        pipeline: str,
        deployment: str,
        steps: str = DEFAULT_STEPS,
        replace: bool = True,
    ) -> Trigger:
        return self.service.connect(
            self._ctx,
            name,
            rule=rule,
            pipeline=pipeline,
            deployment=deployment,
            steps=steps,
            replace=replace,
        )

    def deliver(
        self, *, alert_id: str, rule: str, details: Mapping[str, Any] | None = None
    ) -> list[Firing]:
        return self.service.deliver(self._ctx, alert_id=alert_id, rule=rule, details=details)

    def tick(
        self,
        *,
        resolve: Callable[[str], Pipeline] | Mapping[str, Pipeline] | None = None,
        executor: Executor | str | None = None,
        run_pipelines: bool = True,
        limit: int = 100,
    ) -> list[LoopCycle]:
        return self.service.tick(
            self._ctx,
            resolve=resolve,
            executor=executor,
            run_pipelines=run_pipelines,
            limit=limit,
        )

    def advance(self, now: datetime | None = None) -> list[LoopCycle]:
        """Move open cycles on without running pipelines (a job of ``keel scheduler``).

        ``now`` is the scheduler's tick time; the loop reads its state from the store, not
        the clock, so it is not used.
        """
        return self.service.tick(self._ctx, run_pipelines=False)

    def cycles(self, *, limit: int = 100) -> list[LoopCycle]:
        return self.service.cycles(self._ctx, limit=limit)

    def serve(
        self,
        *,
        resolve: Callable[[str], Pipeline] | Mapping[str, Pipeline] | None = None,
        executor: Executor | str | None = None,
        poll: float = 10.0,
        stop: threading.Event | None = None,
    ) -> None:
        self.service.serve(self._ctx, resolve=resolve, executor=executor, poll=poll, stop=stop)
