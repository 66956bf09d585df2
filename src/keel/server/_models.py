"""Request bodies: strict pydantic models (unknown fields refused, every size bounded)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AliasBody",
    "ArtifactBody",
    "BatchBody",
    "CreateExperimentBody",
    "CreateModelBody",
    "CreateProjectBody",
    "CreateRunBody",
    "CreateTokenBody",
    "CreateUserBody",
    "DescriptionBody",
    "EndRunBody",
    "GrantBody",
    "MetricBody",
    "MetricsBody",
    "ParamsBody",
    "ReasonBody",
    "RegisterBody",
    "SearchBody",
    "TagBody",
    "TagsBody",
]

Name = Annotated[str, Field(min_length=1, max_length=256)]
Text = Annotated[str, Field(max_length=10_000)]
Key = Annotated[str, Field(min_length=1, max_length=250)]
Number = float | Annotated[str, Field(pattern=r"^(NaN|Infinity|-Infinity)$")]
Step = Annotated[int, Field(ge=-(2**63), lt=2**63)]
Millis = Annotated[int, Field(ge=0, lt=2**63)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CreateProjectBody(_Body):
    name: Name
    description: Text = ""


class GrantBody(_Body):
    role: Annotated[str, Field(min_length=1, max_length=32)]


class CreateExperimentBody(_Body):
    name: Name
    description: Text = ""


class TagBody(_Body):
    key: Key
    value: Annotated[str, Field(max_length=8000)]


class CreateRunBody(_Body):
    experiment: Name = "Default"
    name: Name | None = None
    params: dict[Key, Any] | None = None
    tags: dict[Key, Annotated[str, Field(max_length=8000)]] | None = None
    parent_run_id: Annotated[str, Field(max_length=64)] | None = None
    environment: dict[Key, Any] | None = None


class EndRunBody(_Body):
    status: Annotated[str, Field(pattern=r"^(FINISHED|FAILED|KILLED)$")] = "FINISHED"


class MetricBody(_Body):
    key: Key
    value: Number
    step: Step = 0
    timestamp: Millis | None = None


class BatchBody(_Body):
    metrics: Annotated[list[MetricBody], Field(max_length=1_000_000)] = []
    params: dict[Key, Any] | None = None
    tags: dict[Key, Annotated[str, Field(max_length=8000)]] | None = None


class MetricsBody(_Body):
    metrics: dict[Key, Number]
    step: Step = 0


class ParamsBody(_Body):
    params: dict[Key, Any]


class TagsBody(_Body):
    tags: dict[Key, Annotated[str, Field(max_length=8000)]]


class ArtifactBody(_Body):
    upload_id: Annotated[str, Field(min_length=1, max_length=64)]
    path: Annotated[str, Field(min_length=1, max_length=1024)]


class SearchBody(_Body):
    filter: Annotated[str, Field(max_length=10_000)] | None = None
    experiments: Annotated[list[Name], Field(max_length=1000)] | None = None
    order_by: (
        Annotated[list[Annotated[str, Field(max_length=300)]], Field(max_length=20)] | None
    ) = None
    max_results: Annotated[int, Field(ge=1, le=50_000)] = 100
    page_token: Annotated[str, Field(max_length=200)] | None = None
    include_deleted: bool = False


class CurvesBody(_Body):
    run_ids: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=64)]], Field(max_length=1000)
    ]
    key: Annotated[str, Field(min_length=1, max_length=250)]
    buckets: Annotated[int, Field(ge=1, le=100_000)] = 500


class CreateModelBody(_Body):
    name: Name
    description: Text = ""


class DescriptionBody(_Body):
    description: Text
    expected_row_version: Annotated[int, Field(ge=0)] | None = None


class RegisterBody(_Body):
    upload_id: Annotated[str, Field(min_length=1, max_length=64)]
    format: Annotated[str, Field(min_length=1, max_length=32)]
    run_id: Annotated[str, Field(max_length=64)] | None = None
    signature: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    description: Text = ""
    tags: dict[Key, Annotated[str, Field(max_length=8000)]] | None = None


class AliasBody(_Body):
    version: Annotated[int, Field(ge=1, lt=2**31)]
    reason: Text = ""
    expected_current: Annotated[int, Field(ge=1, lt=2**31)] | None = None


class ReasonBody(_Body):
    reason: Text = ""


class CreateUserBody(_Body):
    name: Annotated[str, Field(min_length=6, max_length=210)]
    display_name: Annotated[str, Field(max_length=200)] = ""
    email: Annotated[str, Field(max_length=320)] | None = None
    is_admin: bool = False


class CreateTokenBody(_Body):
    role: Annotated[str, Field(min_length=1, max_length=32)]
    project: Name | None = None
    principal: Annotated[str, Field(min_length=6, max_length=210)] | None = None
    days: Annotated[int, Field(ge=1, le=3650)] = 90
    description: Annotated[str, Field(max_length=500)] = ""
