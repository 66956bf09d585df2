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

__all__ = ["ColumnOut", "DatasetVersionOut", "DeploymentOut", "DeploymentRevisionOut", "PartOut"]


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
