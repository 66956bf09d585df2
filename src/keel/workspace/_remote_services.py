"""Remote services: each subclasses the local service it stands for, one route per method.

The Workspace's facades (``ws.runs``, ``ws.models``…) and ``ActiveRun`` take these unchanged,
so remote mode runs the same facade code as local mode, and the server runs the same service
code. ``COMPOSED`` names methods that only call other (mapped) methods; ``SERVER_ONLY`` names
methods that run inside the server's own transactions. A test checks nothing else is unmapped.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, ClassVar

from keel import errors
from keel.governance import (
    ApprovalRequest,
    ApprovalService,
    AuditEvent,
    ChainBreak,
    ChainReport,
    Context,
    PolicyDecision,
    PolicyService,
    PolicyVersion,
    Project,
    ProjectService,
)
from keel.lineage import LineageGraph, LineageService, Node
from keel.store import AuditQuery
from keel.tracking import (
    Artifact,
    Experiment,
    ExperimentService,
    Metric,
    MetricCurves,
    Run,
    RunPage,
    RunService,
    capture_environment,
)
from keel.tracking._validate import check_artifact_path
from keel.types import RunStatus
from keel.workspace._codec import from_jsonable, to_jsonable
from keel.workspace._http import HttpClient
from keel.workspace._http import base_path as _base
from keel.workspace._http import segment as _seg
from keel.workspace._remote_models import RemoteModelRegistry
from keel.workspace._workspace import Audit

__all__ = [
    "RemoteApprovalService",
    "RemoteAudit",
    "RemoteExperimentService",
    "RemoteLineageService",
    "RemoteModelRegistry",
    "RemotePolicyService",
    "RemoteProjectService",
    "RemoteRunService",
]


class RemoteExperimentService(ExperimentService):
    """ExperimentService over HTTP."""

    COMPOSED: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, http: HttpClient) -> None:
        self._http = http

    def create(self, ctx: Context, name: str, *, description: str = "") -> Experiment:
        body = {"name": name, "description": description}
        return self._http.call("POST", f"{_base(ctx)}/experiments", json=body, into=Experiment)

    def ensure(self, ctx: Context, name: str) -> Experiment:
        try:
            return self.get_by_name(ctx, name)
        except errors.NotFoundError:
            try:
                return self.create(ctx, name)
            except errors.AlreadyExistsError:
                return self.get_by_name(ctx, name)

    def get(self, ctx: Context, experiment_id: str) -> Experiment:
        path = f"{_base(ctx)}/experiments/{_seg(experiment_id)}"
        return self._http.call("GET", path, into=Experiment)

    def get_by_name(self, ctx: Context, name: str) -> Experiment:
        path = f"{_base(ctx)}/experiments/by-name/{_seg(name)}"
        return self._http.call("GET", path, into=Experiment)

    def list(self, ctx: Context, *, include_deleted: bool = False) -> list[Experiment]:
        params = {"include_deleted": include_deleted}
        path = f"{_base(ctx)}/experiments"
        return self._http.call("GET", path, params=params, into=list[Experiment])

    def set_tag(self, ctx: Context, experiment_id: str, key: str, value: str) -> None:
        path = f"{_base(ctx)}/experiments/{_seg(experiment_id)}/tags"
        self._http.call("POST", path, json={"key": key, "value": str(value)})

    def delete(self, ctx: Context, experiment_id: str) -> None:
        self._http.call("DELETE", f"{_base(ctx)}/experiments/{_seg(experiment_id)}")

    def restore(self, ctx: Context, experiment_id: str) -> None:
        self._http.call("POST", f"{_base(ctx)}/experiments/{_seg(experiment_id)}/restore", json={})


class RemoteRunService(RunService):
    """RunService over HTTP; ``start``, ``log_metrics``… compose the mapped methods."""

    COMPOSED: ClassVar[frozenset[str]] = frozenset({"start", "log_params", "set_tags"})

    def __init__(self, http: HttpClient) -> None:
        self._http = http

    def _run(self, ctx: Context, run_id: str) -> str:
        return f"{_base(ctx)}/runs/{_seg(run_id)}"

    def create(
        self,
        ctx: Context,
        *,
        experiment: str = "Default",
        name: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        parent_run_id: str | None = None,
        capture_env: bool = True,
        environment: Mapping[str, Any] | None = None,
    ) -> Run:
        """Create the run on the server with this process's environment (what the code runs
        on), as a local run records it."""
        if environment is None and capture_env:
            environment = capture_environment()
        body = {
            "experiment": experiment,
            "name": name,
            "params": None if params is None else {k: _param(v) for k, v in params.items()},
            "tags": None if tags is None else {k: str(v) for k, v in tags.items()},
            "parent_run_id": parent_run_id,
            "environment": None if environment is None else dict(environment),
        }
        return self._http.call("POST", f"{_base(ctx)}/runs", json=body, into=Run)

    def end(self, ctx: Context, run_id: str, status: RunStatus = RunStatus.FINISHED) -> Run:
        body = {"status": RunStatus(status).value}
        return self._http.call("POST", f"{self._run(ctx, run_id)}/end", json=body, into=Run)

    def delete(self, ctx: Context, run_id: str) -> None:
        self._http.call("DELETE", self._run(ctx, run_id))

    def restore(self, ctx: Context, run_id: str) -> None:
        self._http.call("POST", f"{self._run(ctx, run_id)}/restore", json={})

    def log_metrics(
        self,
        ctx: Context,
        run_id: str,
        metrics: Mapping[str, float],
        *,
        step: int = 0,
        timestamp: int | None = None,
    ) -> None:
        self.log_batch(
            ctx, run_id, metrics=[Metric(k, v, step, timestamp) for k, v in metrics.items()]
        )

    def log_batch(
        self,
        ctx: Context,
        run_id: str,
        *,
        metrics: Sequence[Metric] = (),
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        points: Sequence[tuple[str, Any, Any, Any]] = (),
    ) -> None:
        every = [*metrics, *(Metric(k, v, s, t) for k, v, s, t in points)]
        body = {
            "metrics": [_metric(m) for m in every],
            "params": None if params is None else {k: _param(v) for k, v in params.items()},
            "tags": None if tags is None else {k: str(v) for k, v in tags.items()},
        }
        self._http.call("POST", f"{self._run(ctx, run_id)}/batch", json=body)

    def delete_tag(self, ctx: Context, run_id: str, key: str) -> None:
        self._http.call("DELETE", f"{self._run(ctx, run_id)}/tags", params={"key": key})

    def log_artifact(
        self, ctx: Context, run_id: str, local_path: str | Path, *, name: str | None = None
    ) -> Artifact:
        path = Path(local_path)
        if not path.is_file():
            raise errors.InvalidInputError(
                f"Cannot log artifact '{path}': it is not a readable file.", path=str(path)
            )
        target = check_artifact_path(name or path.name)
        self.get(ctx, run_id)  # fail before uploading to a run that is not there
        upload = self._http.upload(ctx.project_name, path)
        return self._record(ctx, run_id, upload, target)

    def log_bytes(self, ctx: Context, run_id: str, data: bytes, *, name: str) -> Artifact:
        target = check_artifact_path(name)
        self.get(ctx, run_id)
        return self._record(ctx, run_id, self._http.upload(ctx.project_name, data), target)

    def _record(self, ctx: Context, run_id: str, upload: str, target: str) -> Artifact:
        body = {"upload_id": upload, "path": target}
        path = f"{self._run(ctx, run_id)}/artifacts"
        return self._http.call("POST", path, json=body, into=Artifact)

    def get(self, ctx: Context, run_id: str) -> Run:
        return self._http.call("GET", self._run(ctx, run_id), into=Run)

    def artifacts(self, ctx: Context, run_id: str) -> list[Artifact]:
        path = f"{self._run(ctx, run_id)}/artifacts"
        return self._http.call("GET", path, into=list[Artifact])

    def read_artifact(self, ctx: Context, run_id: str, path: str) -> bytes:
        target = check_artifact_path(path)
        encoded = "/".join(_seg(part) for part in target.split("/"))
        return self._http.download(f"{self._run(ctx, run_id)}/artifacts/{encoded}")

    def metric_history(self, ctx: Context, run_id: str, key: str) -> list[Metric]:
        path = f"{self._run(ctx, run_id)}/metrics/history"
        return self._http.call("GET", path, params={"key": key}, into=list[Metric])

    def metric_curves(
        self, ctx: Context, run_ids: Sequence[str], key: str, *, buckets: int = 500
    ) -> MetricCurves:
        body = {"run_ids": list(run_ids), "key": key, "buckets": buckets}
        return self._http.call(
            "POST", f"{_base(ctx)}/runs/metric-curves", json=body, into=MetricCurves
        )

    def search(
        self,
        ctx: Context,
        filter: str | None = None,
        *,
        experiments: Sequence[str] | None = None,
        order_by: str | Sequence[str] | None = None,
        max_results: int = 100,
        page_token: str | None = None,
        include_deleted: bool = False,
    ) -> RunPage:
        body = {
            "filter": filter,
            "experiments": None if experiments is None else list(experiments),
            "order_by": [order_by] if isinstance(order_by, str) else order_by,
            "max_results": max_results,
            "page_token": page_token,
            "include_deleted": include_deleted,
        }
        path = f"{_base(ctx)}/runs/search"
        return self._http.call("POST", path, json=body, into=RunPage)


def _metric(metric: Metric) -> dict[str, Any]:
    value = metric.value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise errors.InvalidInputError(
            f"Metric '{metric.key}' has value {value!r:.60} of type {type(value).__name__}; a "
            "metric value must be a number (int or float). Log text as a tag or param instead.",
            key=metric.key,
        )
    return {
        "key": metric.key,
        "value": to_jsonable(float(value)),
        "step": metric.step,
        "timestamp": metric.timestamp,
    }


def _param(value: Any) -> Any:
    return value if isinstance(value, (str, int, bool)) or value is None else str(value)


class RemoteLineageService(LineageService):
    """LineageService over HTTP (``link`` runs only inside a server-side transaction)."""

    COMPOSED: ClassVar[frozenset[str]] = frozenset()
    SERVER_ONLY: ClassVar[frozenset[str]] = frozenset({"link"})

    def __init__(self, http: HttpClient) -> None:
        self._http = http

    def graph(
        self, ctx: Context, node: Node, *, depth: int = 10, direction: str = "both"
    ) -> LineageGraph:
        path = f"{_base(ctx)}/lineage/{_seg(node)}"
        data = self._http.call("GET", path, params={"depth": depth, "direction": direction})
        return LineageGraph.from_dict(data)


class RemoteProjectService(ProjectService):
    """ProjectService over HTTP (``bootstrap`` is the local store's own first step)."""

    COMPOSED: ClassVar[frozenset[str]] = frozenset()
    SERVER_ONLY: ClassVar[frozenset[str]] = frozenset({"bootstrap"})

    def __init__(self, http: HttpClient) -> None:
        self._http = http

    def context(self, principal: str, project: str, *, source: str | None = None) -> Context:
        """The caller's own Context in ``project`` (a server names only its own caller)."""
        data = self._http.call("GET", "/api/v1/whoami", params={"project": project})
        if principal and principal != data["principal"]:
            raise errors.PermissionDeniedError(
                f"This token acts as {data['principal']}, not {principal}.",
                principal=data["principal"],
            )
        return Context(
            principal=data["principal"],
            project_id=data["project_id"],
            project_name=data["project"],
            roles=frozenset(data["roles"]),
            source=source,
        )

    def create(self, ctx: Context, name: str, *, description: str = "") -> Project:
        body = {"name": name, "description": description}
        params = {"project": ctx.project_name}
        return self._http.call("POST", "/api/v1/projects", json=body, params=params, into=Project)

    def grant(self, ctx: Context, principal: str, role: str) -> None:
        path = f"{_base(ctx)}/bindings/{_seg(principal)}"
        self._http.call("PUT", path, json={"role": role})

    def list(self, ctx: Context) -> builtins.list[Project]:
        params = {"project": ctx.project_name}
        return self._http.call("GET", "/api/v1/projects", params=params, into=list[Project])


class RemotePolicyService(PolicyService):
    """PolicyService over HTTP (gates are evaluated by the services on the server)."""

    COMPOSED: ClassVar[frozenset[str]] = frozenset({"apply_dir"})
    SERVER_ONLY: ClassVar[frozenset[str]] = frozenset({"gate", "evaluate_only"})

    def __init__(self, http: HttpClient) -> None:
        self._http = http

    def apply(self, ctx: Context, source: str, *, origin: str = "<policy>") -> PolicyVersion:
        body = {"source": source, "origin": origin}
        return self._http.call("POST", f"{_base(ctx)}/policies", json=body, into=PolicyVersion)

    def list(self, ctx: Context, *, include_history: bool = False) -> builtins.list[PolicyVersion]:
        path = f"{_base(ctx)}/policies"
        params = {"include_history": include_history}
        return self._http.call("GET", path, params=params, into=list[PolicyVersion])

    def get(self, ctx: Context, name: str, version: int | None = None) -> PolicyVersion:
        path = f"{_base(ctx)}/policies/{_seg(name)}"
        return self._http.call("GET", path, params={"version": version}, into=PolicyVersion)

    def decisions(
        self,
        ctx: Context,
        *,
        gate: str | None = None,
        subject: str | None = None,
        limit: int = 100,
        subject_under: str | None = None,
    ) -> builtins.list[PolicyDecision]:
        path = f"{_base(ctx)}/policies/decisions"
        params = {"gate": gate, "subject": subject, "limit": limit, "subject_under": subject_under}
        return self._http.call("GET", path, params=params, into=list[PolicyDecision])


class RemoteApprovalService(ApprovalService):
    """ApprovalService over HTTP."""

    COMPOSED: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, http: HttpClient) -> None:
        self._http = http

    def list(self, ctx: Context, *, status: str | None = "pending") -> list[ApprovalRequest]:
        path = f"{_base(ctx)}/approvals"
        return self._http.call("GET", path, params={"status": status}, into=list[ApprovalRequest])

    def get(self, ctx: Context, request_id: str) -> ApprovalRequest:
        path = f"{_base(ctx)}/approvals/{_seg(request_id)}"
        return self._http.call("GET", path, into=ApprovalRequest)

    def approve(self, ctx: Context, request_id: str, *, comment: str = "") -> ApprovalRequest:
        path = f"{_base(ctx)}/approvals/{_seg(request_id)}/approve"
        return self._http.call("POST", path, json={"comment": comment}, into=ApprovalRequest)

    def reject(self, ctx: Context, request_id: str, *, comment: str = "") -> ApprovalRequest:
        path = f"{_base(ctx)}/approvals/{_seg(request_id)}/reject"
        return self._http.call("POST", path, json={"comment": comment}, into=ApprovalRequest)


class RemoteAudit(Audit):
    """The audit facade over HTTP (always scoped to the workspace's project)."""

    def __init__(self, http: HttpClient, ctx: Context) -> None:
        self._http, self._ctx = http, ctx

    def events(self, query: AuditQuery | None = None, **filters: Any) -> list[AuditEvent]:
        chosen = query or AuditQuery(**filters)
        params = {
            "principal": chosen.principal,
            "action": chosen.action,
            "object_id": chosen.object_id,
            "since": None if chosen.since is None else chosen.since.isoformat(),
            "until": None if chosen.until is None else chosen.until.isoformat(),
            "limit": chosen.limit or 10_000,
        }
        path = f"{_base(self._ctx)}/audit/events"
        return self._http.call("GET", path, params=params, into=list[AuditEvent])

    def verify(self) -> ChainReport:
        data = self._http.call("GET", f"{_base(self._ctx)}/audit/verify")
        broken = None if data["broken"] is None else from_jsonable(ChainBreak, data["broken"])
        return ChainReport(checked=data["checked"], head_seq=data["head_seq"], broken=broken)

    def export(self, out: IO[str]) -> int:
        count = 0
        for line in self._http.lines(f"{_base(self._ctx)}/audit/export"):
            if line:
                out.write(line + "\n")
                count += 1
        return count
