"""The services a server holds, and the dependencies that hand them and the caller to routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request
from starlette.responses import JSONResponse

from keel.governance import (
    ApprovalService,
    AuditLog,
    Context,
    Governor,
    IdentityService,
    PolicyService,
    ProjectService,
    SupplyChainService,
)
from keel.lineage import LineageService
from keel.settings import Settings
from keel.tracking import ExperimentService, ModelRegistry, RunService
from keel.workspace._codec import to_jsonable

if TYPE_CHECKING:
    from keel.blobs import BlobStore
    from keel.data import DatasetGate, DatasetService
    from keel.monitoring import MonitorService
    from keel.pipelines import PipelineService
    from keel.server._requests import RequestAuditor
    from keel.server._uploads import UploadStaging
    from keel.serving import DeploymentService

__all__ = ["Caller", "Services", "ServicesDep", "Someone", "ok"]


@dataclass(slots=True)
class Services:
    """Everything a route may call: the same services local mode uses."""

    settings: Settings
    governor: Governor
    blobs: BlobStore
    audit: AuditLog
    identity: IdentityService
    projects: ProjectService
    experiments: ExperimentService
    runs: RunService
    models: ModelRegistry
    lineage: LineageService
    policies: PolicyService
    approvals: ApprovalService
    datasets: DatasetService
    dataset_gate: DatasetGate
    pipelines: PipelineService
    deployments: DeploymentService
    uploads: UploadStaging
    auditor: RequestAuditor | None
    supplychain: SupplyChainService | None = None
    monitors: MonitorService | None = None


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(_services)]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        return None
    return credential.strip()


def _authenticate(request: Request, services: Services, project: str | None) -> Context:
    state = request.scope.setdefault("state", {})
    client = request.client
    ctx = services.identity.authenticate(
        _bearer(request),
        project=project,
        source=client.host if client else None,
        request_id=state.get("request_id"),
    )
    state["principal"] = ctx.principal
    state["project_id"] = ctx.project_id
    return ctx


def _caller(request: Request, project: str, services: ServicesDep) -> Context:
    return _authenticate(request, services, project)


def _someone(request: Request, services: ServicesDep, project: str | None = None) -> Context:
    return _authenticate(request, services, project)


#: The caller in the project named by the route's ``{project}``.
Caller = Annotated[Context, Depends(_caller)]
#: The caller in the project of its token (or the ``project`` query parameter).
Someone = Annotated[Context, Depends(_someone)]


def ok(value: Any, status: int = 200) -> JSONResponse:
    """A JSON response of a service's value (dataclasses, lists, dicts)."""
    return JSONResponse(to_jsonable(value), status_code=status)
