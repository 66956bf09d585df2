"""Remote mode: the same Workspace API over HTTP, ``keel.connect("https://host", token=...)``.

The client stays thin: the remote services (``_remote_services``) subclass the local services
they stand for and turn each method into one HTTP call to the REST server, which calls the
*same* local service. The Workspace's facades are reused unchanged, so behaviour lives in one
place. Adding a service is mechanical: subclass it in ``_remote_services``, map each public
method to its route, list methods that only compose others in ``COMPOSED``, and add its facade
in :class:`RemoteWorkspace`. A test checks that no public method of a local service is left
unmapped.
"""

from __future__ import annotations

from typing import Any

from keel.compliance import Compliance
from keel.governance import Context
from keel.monitoring import Monitors
from keel.pipelines import Pipelines
from keel.serving import Deployments
from keel.settings import load_settings
from keel.workspace._http import HttpClient, is_remote_url, token_from_env
from keel.workspace._policies import Approvals, Policies
from keel.workspace._remote_compliance import (
    RemoteComplianceService,
    RemoteErasureService,
    RemoteSupplyChain,
)
from keel.workspace._remote_data import RemoteDatasets, RemoteDatasetService
from keel.workspace._remote_gate import RemoteDatasetGate
from keel.workspace._remote_monitors import (
    RemoteAlertService,
    RemoteLabelService,
    RemoteMonitorService,
)
from keel.workspace._remote_services import (
    RemoteApprovalService,
    RemoteAudit,
    RemoteExperimentService,
    RemoteLineageService,
    RemoteModelRegistry,
    RemotePolicyService,
    RemoteProjectService,
    RemoteRunService,
)
from keel.workspace._remote_serving import (
    RemoteDeploymentService,
    RemotePipelineService,
    RemoteTriggerService,
)
from keel.workspace._workspace import Experiments, Lineage, Models, Projects, Runs, Workspace

__all__ = [
    "RemoteAlertService",
    "RemoteApprovalService",
    "RemoteAudit",
    "RemoteComplianceService",
    "RemoteDatasetGate",
    "RemoteDatasetService",
    "RemoteDatasets",
    "RemoteDeploymentService",
    "RemoteErasureService",
    "RemoteExperimentService",
    "RemoteLabelService",
    "RemoteLineageService",
    "RemoteModelRegistry",
    "RemoteMonitorService",
    "RemotePipelineService",
    "RemotePolicyService",
    "RemoteProjectService",
    "RemoteRunService",
    "RemoteSupplyChain",
    "RemoteTriggerService",
    "RemoteWorkspace",
    "is_remote_url",
    "token_from_env",
]


class RemoteWorkspace(Workspace):
    """A Workspace whose services live on a Keel server (see :func:`keel.connect`)."""

    def __init__(
        self,
        url: str,
        *,
        token: str,
        project: str | None = None,
        timeout: float = 60.0,
        verify: Any = True,
    ) -> None:
        self._http = HttpClient(url, token, timeout=timeout, verify=verify)
        self.url = self._http.url
        try:
            data = self._http.call("GET", "/api/v1/whoami", params={"project": project})
        except BaseException:
            self._http.close()
            raise
        ctx = Context(
            principal=data["principal"],
            project_id=data["project_id"],
            project_name=data["project"],
            roles=frozenset(data["roles"]),
        )
        self.settings = load_settings(project=ctx.project_name)
        self.ctx = ctx
        self.experiments = Experiments(RemoteExperimentService(self._http), ctx)
        self.runs = Runs(RemoteRunService(self._http), ctx)
        self.models = Models(RemoteModelRegistry(self._http), ctx)
        self.audit = RemoteAudit(self._http, ctx)
        self.lineage = Lineage(RemoteLineageService(self._http), ctx)
        self.projects = Projects(RemoteProjectService(self._http), ctx)
        self.policies = Policies(RemotePolicyService(self._http), ctx)
        self.approvals = Approvals(RemoteApprovalService(self._http), ctx)
        self.compliance = Compliance(
            RemoteComplianceService(self._http), RemoteErasureService(self._http), ctx
        )
        self.supplychain = RemoteSupplyChain(self._http, ctx)
        self.datasets = RemoteDatasets(self._http, ctx)
        self.pipelines = Pipelines(RemotePipelineService(self._http), ctx)
        self.deployments = Deployments(RemoteDeploymentService(self._http), ctx)
        self.monitors = Monitors(RemoteMonitorService(self._http, ctx), ctx)

    def close(self) -> None:
        """Close the HTTP connection."""
        self._http.close()

    def __repr__(self) -> str:
        return (
            f"RemoteWorkspace(url={self.url!r}, project={self.project!r}, "
            f"principal={self.ctx.principal!r})"
        )
