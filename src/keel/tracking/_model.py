"""Tracking and registry value objects returned by the services (frozen, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from keel.types import RunStatus

__all__ = [
    "AliasMove",
    "Artifact",
    "Experiment",
    "Metric",
    "ModelVersion",
    "RegisteredModel",
    "Run",
    "RunPage",
]


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric value at a step; ``timestamp`` is epoch milliseconds (now when omitted)."""

    key: str
    value: float
    step: int = 0
    timestamp: int | None = None


@dataclass(frozen=True, slots=True)
class Experiment:
    id: str
    name: str
    description: str
    lifecycle: str
    created_at: datetime
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Artifact:
    path: str
    digest: str
    size: int


@dataclass(frozen=True, slots=True)
class Run:
    """A run with its params, tags and the latest value of each metric."""

    id: str
    name: str
    experiment_id: str
    status: RunStatus
    user: str
    start_time: int
    end_time: int | None
    lifecycle: str
    parent_run_id: str | None
    code_version: str | None
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    environment: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (NaN and infinities as strings)."""
        return {
            "id": self.id,
            "name": self.name,
            "experiment_id": self.experiment_id,
            "status": self.status.value,
            "user": self.user,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "lifecycle": self.lifecycle,
            "parent_run_id": self.parent_run_id,
            "code_version": self.code_version,
            "params": self.params,
            "metrics": {key: _json_float(value) for key, value in self.metrics.items()},
            "tags": self.tags,
            "environment": self.environment,
        }


@dataclass(frozen=True, slots=True)
class RunPage:
    """One page of search results; ``next_page_token`` is None on the last page."""

    runs: list[Run]
    next_page_token: str | None


@dataclass(frozen=True, slots=True)
class ModelVersion:
    id: str
    model: str
    version: int
    run_id: str | None
    artifact_digest: str
    artifact_size: int
    format: str
    signature: dict[str, Any] | None
    metrics: dict[str, Any] | None
    description: str
    creator: str
    status: str
    created_at: datetime
    row_version: int
    aliases: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "version": self.version,
            "run_id": self.run_id,
            "artifact_digest": self.artifact_digest,
            "artifact_size": self.artifact_size,
            "format": self.format,
            "signature": self.signature,
            "metrics": self.metrics,
            "description": self.description,
            "creator": self.creator,
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            "row_version": self.row_version,
            "aliases": list(self.aliases),
            "tags": self.tags,
        }


@dataclass(frozen=True, slots=True)
class RegisteredModel:
    id: str
    name: str
    description: str
    created_at: datetime
    updated_at: datetime
    row_version: int
    aliases: dict[str, int] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    latest_version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "row_version": self.row_version,
            "aliases": self.aliases,
            "tags": self.tags,
            "latest_version": self.latest_version,
        }


@dataclass(frozen=True, slots=True)
class AliasMove:
    """One recorded move of an alias (kind: set, rollback or delete)."""

    alias: str
    kind: str
    from_version: int | None
    to_version: int | None
    principal: str
    reason: str
    undone: bool
    moved_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "kind": self.kind,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "principal": self.principal,
            "reason": self.reason,
            "undone": self.undone,
            "moved_at": self.moved_at.isoformat(),
        }


def _json_float(value: float) -> float | str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return value
