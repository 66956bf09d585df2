"""Values the pipeline service returns: frozen dataclasses with ``to_dict()``; rows stay inside."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "DatasetInput",
    "Firing",
    "PipelineRun",
    "PipelineRunStatus",
    "RunResult",
    "StepRun",
    "StepStatus",
    "Trigger",
]


class PipelineRunStatus(StrEnum):
    """A pipeline run is RUNNING until it ends FINISHED, FAILED or CANCELLED."""

    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class StepStatus(StrEnum):
    """PENDING → RUNNING → COMPLETED | CACHED | FAILED; SKIPPED after a failed upstream."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    CACHED = "CACHED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    CANCELLED = "CANCELLED"

    @property
    def is_done(self) -> bool:
        """True when the step's outputs are stored (it need not run again on resume)."""
        return self in (StepStatus.COMPLETED, StepStatus.CACHED)


@dataclass(frozen=True, slots=True)
class DatasetInput:
    """A dataset version given as a pipeline input; recorded with the run and in lineage.

    Objects of other packages can stand in for it by having a method
    ``__keel_dataset_version__()`` that returns ``{"id", "dataset", "version"}``.
    """

    dataset: str
    version: int
    id: str | None = None

    def __keel_dataset_version__(self) -> dict[str, Any]:
        return {"id": self.id, "dataset": self.dataset, "version": self.version}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@dataclass(frozen=True, slots=True)
class StepRun:
    id: str
    name: str
    status: StepStatus
    code_digest: str
    cache_key: str | None
    params: dict[str, Any]
    inputs: dict[str, str]
    outputs: dict[str, str]
    attempts: int
    started_at: datetime | None
    ended_at: datetime | None
    error: str | None
    traceback: str | None

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        data["started_at"], data["ended_at"] = _iso(self.started_at), _iso(self.ended_at)
        data["duration"] = self.duration
        return data


@dataclass(frozen=True, slots=True)
class PipelineRun:
    id: str
    pipeline: str
    status: PipelineRunStatus
    trigger: str
    cause: dict[str, Any] | None
    params: dict[str, Any]
    inputs: dict[str, str]
    datasets: dict[str, Any]
    code_version: str | None
    environment: dict[str, Any] | None
    executor: str
    created_by: str
    created_at: datetime
    ended_at: datetime | None
    attempt: int
    owner: str | None
    heartbeat_at: datetime | None
    error: str | None
    steps: list[StepRun] = field(default_factory=list)

    def step(self, name: str) -> StepRun:
        for item in self.steps:
            if item.name == name:
                return item
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "steps"}
        data["status"] = self.status.value
        for key in ("created_at", "ended_at", "heartbeat_at"):
            data[key] = _iso(data[key])
        data["steps"] = [item.to_dict() for item in self.steps]
        return data


class RunResult(Mapping[str, Any]):
    """The outcome of ``pipeline.run``: the run record and its outputs by name.

    ``result["model"]`` (or ``result.outputs["model"]``) is an output's value; values not kept
    in memory are loaded from the blob store and verified on first access.
    """

    def __init__(
        self,
        run: PipelineRun,
        *,
        values: dict[str, Any],
        digests: dict[str, str],
        load: Callable[[str, str], Any],
    ) -> None:
        self.run = run
        self.digests = dict(digests)
        self._values = dict(values)
        self._load = load

    @property
    def id(self) -> str:
        return self.run.id

    @property
    def status(self) -> PipelineRunStatus:
        return self.run.status

    @property
    def ok(self) -> bool:
        return self.run.status is PipelineRunStatus.FINISHED

    @property
    def outputs(self) -> RunResult:
        return self

    @property
    def cached(self) -> list[str]:
        """The steps whose outputs came from the cache."""
        return [s.name for s in self.run.steps if s.status is StepStatus.CACHED]

    def __getitem__(self, name: str) -> Any:
        if name in self._values:
            return self._values[name]
        digest = self.digests.get(name)
        if digest is None:
            raise KeyError(
                f"The run has no output '{name}' (outputs: {', '.join(sorted(self.digests))})."
            )
        value = self._load(name, digest)
        self._values[name] = value
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self.digests)

    def __len__(self) -> int:
        return len(self.digests)

    def __repr__(self) -> str:
        return f"<RunResult {self.run.id} {self.run.status.value} outputs={sorted(self.digests)}>"


@dataclass(frozen=True, slots=True)
class Trigger:
    id: str
    name: str
    pipeline: str
    kind: str
    spec: dict[str, Any]
    params: dict[str, Any]
    enabled: bool
    next_fire_at: datetime | None
    created_by: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["next_fire_at"], data["created_at"] = _iso(self.next_fire_at), _iso(self.created_at)
        return data


@dataclass(frozen=True, slots=True)
class Firing:
    id: str
    trigger: str
    due_at: datetime
    cause: dict[str, Any]
    status: str
    lease_owner: str | None
    pipeline_run_id: str | None
    created_at: datetime
    finished_at: datetime | None
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("due_at", "created_at", "finished_at"):
            data[key] = _iso(data[key])
        return data
