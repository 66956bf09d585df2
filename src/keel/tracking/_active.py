"""The handle of a run in progress: log to it, and end it by leaving its ``with`` block."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from keel.governance import Context
from keel.tracking._model import Artifact, Metric, Run
from keel.types import RunStatus

if TYPE_CHECKING:
    from keel.tracking._runs import RunService

__all__ = ["ActiveRun"]


class ActiveRun:
    """An explicit run handle (Keel has no hidden global "current run").

    Example:
        >>> with ws.runs.start(experiment="churn") as run:  # doctest: +SKIP
        ...     run.log_params({"model": "rf"})
        ...     run.log_metrics({"auc": 0.91}, step=3)
    """

    def __init__(self, service: RunService, ctx: Context, run: Run) -> None:
        self._service = service
        self._ctx = ctx
        self.info = run
        self.id = run.id
        self.status = run.status

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.status.is_final:
            return
        if exc_type is None:
            self.end(RunStatus.FINISHED)
        elif issubclass(exc_type, KeyboardInterrupt):
            self.end(RunStatus.KILLED)
        else:
            self.end(RunStatus.FAILED)

    def log_metric(self, key: str, value: float, *, step: int = 0) -> None:
        self._service.log_metrics(self._ctx, self.id, {key: value}, step=step)

    def log_metrics(self, metrics: Mapping[str, float], *, step: int = 0) -> None:
        self._service.log_metrics(self._ctx, self.id, metrics, step=step)

    def log_batch(
        self,
        metrics: Sequence[Metric] = (),
        *,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        self._service.log_batch(self._ctx, self.id, metrics=metrics, params=params, tags=tags)

    def log_param(self, key: str, value: Any) -> None:
        self._service.log_params(self._ctx, self.id, {key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._service.log_params(self._ctx, self.id, params)

    def set_tag(self, key: str, value: str) -> None:
        self._service.set_tags(self._ctx, self.id, {key: value})

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self._service.set_tags(self._ctx, self.id, tags)

    def log_artifact(self, path: str | Path, *, name: str | None = None) -> Artifact:
        return self._service.log_artifact(self._ctx, self.id, path, name=name)

    def log_bytes(self, data: bytes, *, name: str) -> Artifact:
        return self._service.log_bytes(self._ctx, self.id, data, name=name)

    def end(self, status: RunStatus = RunStatus.FINISHED) -> Run:
        """End the run now (leaving the ``with`` block does this for you)."""
        self.info = self._service.end(self._ctx, self.id, status)
        self.status = self.info.status
        return self.info

    def refresh(self) -> Run:
        """Read the run back from the store."""
        self.info = self._service.get(self._ctx, self.id)
        return self.info
