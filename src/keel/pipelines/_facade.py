"""``ws.pipelines``: the pipeline service bound to the workspace's caller."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from keel.errors import ConfigurationError
from keel.governance import Context
from keel.pipelines._executors import Executor
from keel.pipelines._model import Firing, PipelineRun, RunResult, Trigger
from keel.pipelines._pipeline import (
    PROJECT_FILE,
    Pipeline,
    find_pipeline,
    project_pipelines,
    read_project_file,
)
from keel.pipelines._runner import Progress
from keel.pipelines._scheduler import Scheduler
from keel.pipelines._service import PipelineService

__all__ = ["Pipelines"]


class Pipelines:
    """Pipelines of the workspace's project (see PipelineService and TriggerService)."""

    def __init__(self, service: PipelineService, ctx: Context) -> None:
        self._s, self._ctx = service, ctx

    @property
    def service(self) -> PipelineService:
        return self._s

    # -- definitions ---------------------------------------------------------------------

    def defined(self, root: Path | None = None) -> dict[str, str]:
        """The pipelines named in ``keel.yaml``: ``{name: "module:attribute"}``."""
        return project_pipelines(root)

    def load(self, name: str, root: Path | None = None) -> Pipeline:
        """The pipeline ``name`` of ``keel.yaml`` (or a ``module:attribute`` reference)."""
        return find_pipeline(name, root)

    # -- runs ----------------------------------------------------------------------------

    def run(
        self,
        pipeline: Pipeline | str,
        *,
        params: Mapping[str, Any] | None = None,
        inputs: Mapping[str, Any] | None = None,
        executor: Executor | str | None = None,
        trigger: str = "manual",
        cause: Mapping[str, Any] | None = None,
        cancel: threading.Event | None = None,
        progress: Progress | None = None,
    ) -> RunResult:
        """Run a pipeline (an object, or a name of ``keel.yaml``) and wait for it."""
        target = self.load(pipeline) if isinstance(pipeline, str) else pipeline
        return self._s.run(
            self._ctx,
            target,
            params=params,
            inputs=inputs,
            executor=executor,
            trigger=trigger,
            cause=cause,
            cancel=cancel,
            progress=progress,
        )

    def resume(
        self,
        run_id: str,
        *,
        pipeline: Pipeline | None = None,
        executor: Executor | str | None = None,
        cancel: threading.Event | None = None,
        progress: Progress | None = None,
        force: bool = False,
    ) -> RunResult:
        """Continue a failed, cancelled or killed run from its unfinished steps."""
        return self._s.resume(
            self._ctx,
            run_id,
            pipeline=pipeline,
            executor=executor,
            cancel=cancel,
            progress=progress,
            force=force,
        )

    def get(self, run_id: str) -> PipelineRun:
        return self._s.get(self._ctx, run_id)

    def runs(self, *, pipeline: str | None = None, limit: int = 50) -> list[PipelineRun]:
        return self._s.list_runs(self._ctx, pipeline=pipeline, limit=limit)

    def cancel(self, run_id: str) -> PipelineRun:
        return self._s.cancel(self._ctx, run_id)

    def read_output(self, run_id: str, name: str) -> Any:
        return self._s.read_output(self._ctx, run_id, name)

    # -- triggers ------------------------------------------------------------------------

    def create_trigger(
        self,
        name: str,
        *,
        pipeline: str,
        kind: str,
        spec: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        enabled: bool = True,
        replace: bool = False,
    ) -> Trigger:
        return self._s.triggers.create(
            self._ctx,
            name,
            pipeline=pipeline,
            kind=kind,
            spec=spec,
            params=params,
            enabled=enabled,
            replace=replace,
        )

    def triggers(self, *, kind: str | None = None) -> list[Trigger]:
        return self._s.triggers.all(self._ctx, kind=kind)

    def fire(self, name: str, *, cause: Mapping[str, Any] | None = None) -> Firing:
        return self._s.triggers.fire(self._ctx, name, cause=cause)

    def fire_event(
        self, kind: str, subject: str, *, event_id: str, details: Mapping[str, Any] | None = None
    ) -> list[Firing]:
        return self._s.triggers.fire_event(
            self._ctx, kind, subject, event_id=event_id, details=details
        )

    def firings(self, *, trigger: str | None = None, limit: int = 100) -> list[Firing]:
        return self._s.triggers.firings(self._ctx, trigger=trigger, limit=limit)

    def sync_triggers(self, root: Path | None = None) -> list[Trigger]:
        """Create or update the triggers of the ``triggers:`` section of ``keel.yaml``.

        Each entry names its pipeline and one of ``schedule: CRON``, ``dataset: NAME``,
        ``alert: RULE`` or ``commit: {repository: owner/name, branch: main}``; ``params`` are
        optional.
        """
        section = read_project_file(root).get("triggers") or {}
        if not isinstance(section, dict):
            raise ConfigurationError(f"The 'triggers' section of {PROJECT_FILE} is a mapping.")
        synced = []
        for name, entry in section.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("pipeline"), str):
                raise ConfigurationError(
                    f"Trigger '{name}' in {PROJECT_FILE} needs 'pipeline: NAME' and one of "
                    "schedule/dataset/alert/commit."
                )
            kinds = [k for k in ("schedule", "dataset", "alert", "commit") if k in entry]
            if len(kinds) != 1:
                raise ConfigurationError(
                    f"Trigger '{name}' in {PROJECT_FILE} needs exactly one of schedule, dataset, "
                    f"alert or commit; it has {kinds or 'none'}."
                )
            kind = kinds[0]
            value = entry[kind]
            spec = (
                {"cron": value}
                if kind == "schedule"
                else {"dataset": value}
                if kind == "dataset"
                else {"rule": value}
                if kind == "alert"
                else dict(value)
                if isinstance(value, dict)
                else {"repository": value}
            )
            synced.append(
                self.create_trigger(
                    str(name),
                    pipeline=entry["pipeline"],
                    kind=kind,
                    spec=spec,
                    params=entry.get("params") or {},
                    enabled=bool(entry.get("enabled", True)),
                    replace=True,
                )
            )
        return synced

    def scheduler(
        self,
        *,
        owner: str | None = None,
        lease: timedelta = timedelta(minutes=5),
        poll: float = 5.0,
        executor: Executor | str | None = None,
        root: Path | None = None,
        jobs: Sequence[Callable[[datetime], object]] = (),
    ) -> Scheduler:
        """A scheduler replica for this project (``.tick()`` once or ``.serve()``); ``jobs``
        run at every tick too (e.g. ``ws.monitors.run_due``)."""
        return Scheduler(
            self._s,
            self._ctx,
            resolve=lambda name: find_pipeline(name, root),
            owner=owner,
            lease=lease,
            poll=poll,
            executor=executor,
            jobs=jobs,
        )
