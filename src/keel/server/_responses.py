"""Response models for the OpenAPI document, where a value's JSON is not just its fields.

Routes answer with the value's ``to_dict()`` (see ``ok``); most values are frozen dataclasses
whose JSON is their fields, and FastAPI documents those directly. These models describe the
few whose JSON is shaped differently: a dataset version's schema is a list of ``{name, dtype}``
objects, and a deployment carries its routing state at the top level.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ColumnOut",
    "DatasetVersionOut",
    "DeploymentOut",
    "DeploymentRevisionOut",
    "PartOut",
    "PredictionTraceOut",
]


class _Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class ColumnOut(_Out):
    name: str
    dtype: str = Field(description="The Polars dtype, e.g. Int64, Float64, String.")


class PartOut(_Out):
    digest: str
    rows: int
    size: int
    stats: dict[str, dict[str, Any]] = {}


class DatasetVersionOut(_Out):
    """An immutable dataset version: manifest, provenance and labels."""

    id: str
    dataset: str
    dataset_id: str
    version: int
    kind: str = Field(description="table, or files for folders and archives.")
    digest: str
    row_count: int
    size_bytes: int
    columns: list[ColumnOut] = Field(alias="schema")
    stats: dict[str, dict[str, Any]]
    parts: list[PartOut]
    source: dict[str, Any] | None
    parents: list[str]
    transform: dict[str, Any] | None
    classification: dict[str, Any] | None
    sensitivity: str | None
    residency: str | None
    rejected_rows: int
    published: bool
    tags: list[str]
    created_by: str
    created_at: datetime
    erased: bool = Field(
        default=False, description="Its data was erased (a subject's erasure or retention)."
    )
    replaced_by: int | None = Field(
        default=None, description="The version written without the erased rows, if any."
    )


class _Routing(_Out):
    strategy: str = Field(description="blue-green, canary or shadow.")
    primary: int = Field(description="The version answering requests.")
    candidate: int | None = Field(description="The version rolling out, if any.")
    previous: int | None = Field(description="The version a rollback returns to.")
    steps: list[float] = Field(description="Canary traffic percentages, in order.")
    step: int
    phase: str = Field(description="stable, rolling, promoted or rolled_back.")
    weight: float = Field(description="The share of traffic (0..1) the candidate answers now.")


class DeploymentOut(_Routing):
    """A deployment and its current routing state."""

    id: str
    name: str
    model: str
    environment: str
    revision: int
    created_by: str
    created_at: datetime
    updated_at: datetime


class DeploymentRevisionOut(_Routing):
    """One change of a deployment's routing state, with why it was made."""

    revision: int
    action: str
    reason: str
    analysis: dict[str, Any] | None
    created_by: str
    created_at: datetime


class PredictionTraceOut(_Out):
    """One logged prediction followed back to its data (``ws.deployments.trace``)."""

    prediction_id: str
    timestamp: datetime
    deployment: str
    deployment_id: str | None
    model: str
    version: int
    model_version_id: str | None = Field(description="The registry version that answered.")
    variant: str = Field(description="primary, candidate or shadow: the route it took.")
    request_id: str | None
    latency_ms: float | None
    inputs: Any = Field(description="The logged features; personal data shows [REDACTED].")
    prediction: Any
    score: float | None
    scores: Any
    labelled: bool = Field(description="A late label (ground truth) is stored for it.")
    label: Any
    revision: int | None = Field(description="The deployment revision in force when it ran.")
    revision_action: str | None
    revision_reason: str | None
    log: str | None = Field(description="Its prediction_log lineage node (TYPE:ID).")
    lineage: dict[str, Any] | None = Field(
        description="The lineage graph upstream of the log: model version, run, datasets."
    )
