"""The Workspace: the SDK's entry point, whose attributes are the services bound to a caller."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Literal

from keel.cicd import ProjectFiles, ProjectStateService
from keel.compliance import Compliance, ErasureService
from keel.data import Datasets
from keel.governance import (
    ApprovalService,
    AuditEvent,
    AuditLog,
    ChainReport,
    ComplianceService,
    Context,
    Governor,
    ModelSigner,
    PolicyService,
    Project,
    ProjectService,
    SupplyChainService,
)
from keel.lineage import (
    LineageGraph,
    LineageService,
    Node,
    NodeDescription,
    export_openlineage,
    parse_node,
)
from keel.monitoring import ClosedLoop, Loop, Monitors, MonitorService
from keel.pipelines import Pipelines, PipelineService
from keel.serving import Deployments, DeploymentService
from keel.settings import Settings
from keel.store import AuditQuery
from keel.tracking import (
    ActiveRun,
    AliasMove,
    Artifact,
    Experiment,
    ExperimentService,
    LoadedModel,
    Metric,
    MetricCurves,
    ModelRegistry,
    ModelVersion,
    RegisteredModel,
    Run,
    RunPage,
    RunService,
)
from keel.types import RunStatus
from keel.workspace._policies import Approvals, Policies, SupplyChain

if TYPE_CHECKING:
    from keel.blobs import BlobStore

__all__ = ["Audit", "Experiments", "Lineage", "Models", "Projects", "Runs", "Workspace"]


class Experiments:
    """Experiments of the workspace's project (see ExperimentService)."""

    def __init__(self, service: ExperimentService, ctx: Context) -> None:
        self._s, self._ctx = service, ctx

    def create(self, name: str, *, description: str = "") -> Experiment:
        return self._s.create(self._ctx, name, description=description)

    def get(self, experiment_id: str) -> Experiment:
        return self._s.get(self._ctx, experiment_id)

    def get_by_name(self, name: str) -> Experiment:
        return self._s.get_by_name(self._ctx, name)

    def list(self, *, include_deleted: bool = False) -> list[Experiment]:
        return self._s.list(self._ctx, include_deleted=include_deleted)

    def set_tag(self, experiment_id: str, key: str, value: str) -> None:
        self._s.set_tag(self._ctx, experiment_id, key, value)

    def delete(self, experiment_id: str) -> None:
        self._s.delete(self._ctx, experiment_id)

    def restore(self, experiment_id: str) -> None:
        self._s.restore(self._ctx, experiment_id)


class Runs:
    """Runs of the workspace's project (see RunService)."""

    def __init__(self, service: RunService, ctx: Context) -> None:
        self._s, self._ctx = service, ctx

    def start(
        self,
        *,
        experiment: str = "Default",
        name: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        parent_run_id: str | None = None,
        capture_env: bool = True,
    ) -> ActiveRun:
        """Start a run; ``with ws.runs.start(experiment="churn") as run: ...`` ends it."""
        return self._s.start(
            self._ctx,
            experiment=experiment,
            name=name,
            params=params,
            tags=tags,
            parent_run_id=parent_run_id,
            capture_env=capture_env,
        )

    def get(self, run_id: str) -> Run:
        return self._s.get(self._ctx, run_id)

    def end(self, run_id: str, status: RunStatus = RunStatus.FINISHED) -> Run:
        return self._s.end(self._ctx, run_id, status)

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], *, step: int = 0) -> None:
        self._s.log_metrics(self._ctx, run_id, metrics, step=step)

    def log_batch(
        self,
        run_id: str,
        *,
        metrics: Sequence[Metric] = (),
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        self._s.log_batch(self._ctx, run_id, metrics=metrics, params=params, tags=tags)

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        self._s.log_params(self._ctx, run_id, params)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self._s.set_tags(self._ctx, run_id, tags)

    def delete_tag(self, run_id: str, key: str) -> None:
        self._s.delete_tag(self._ctx, run_id, key)

    def log_artifact(self, run_id: str, path: str | Path, *, name: str | None = None) -> Artifact:
        return self._s.log_artifact(self._ctx, run_id, path, name=name)

    def artifacts(self, run_id: str) -> list[Artifact]:
        return self._s.artifacts(self._ctx, run_id)

    def read_artifact(self, run_id: str, path: str) -> bytes:
        return self._s.read_artifact(self._ctx, run_id, path)

    def metric_history(self, run_id: str, key: str) -> list[Metric]:
        return self._s.metric_history(self._ctx, run_id, key)

    def metric_curves(
        self, run_ids: Sequence[str], key: str, *, buckets: int = 500
    ) -> MetricCurves:
        """One metric of up to 1,000 runs, as min/max per step bucket when the curves are long."""
        return self._s.metric_curves(self._ctx, run_ids, key, buckets=buckets)

    def search(
        self,
        filter: str | None = None,
        *,
        experiments: Sequence[str] | None = None,
        order_by: str | Sequence[str] | None = None,
        max_results: int = 100,
        page_token: str | None = None,
        include_deleted: bool = False,
    ) -> RunPage:
        """Search runs with the filter language, e.g. ``"metrics.auc > 0.8"``."""
        return self._s.search(
            self._ctx,
            filter,
            experiments=experiments,
            order_by=order_by,
            max_results=max_results,
            page_token=page_token,
            include_deleted=include_deleted,
        )

    def delete(self, run_id: str) -> None:
        self._s.delete(self._ctx, run_id)

    def restore(self, run_id: str) -> None:
        self._s.restore(self._ctx, run_id)


class Models:
    """The model registry of the workspace's project (see ModelRegistry)."""

    def __init__(self, service: ModelRegistry, ctx: Context) -> None:
        self._s, self._ctx = service, ctx

    def create(self, name: str, *, description: str = "") -> RegisteredModel:
        return self._s.create(self._ctx, name, description=description)

    def get(self, name: str) -> RegisteredModel:
        return self._s.get(self._ctx, name)

    def list(self, *, name_like: str | None = None) -> list[RegisteredModel]:
        return self._s.list(self._ctx, name_like=name_like)

    def update(
        self, name: str, *, description: str, expected_row_version: int | None = None
    ) -> RegisteredModel:
        return self._s.update(
            self._ctx, name, description=description, expected_row_version=expected_row_version
        )

    def set_tag(self, name: str, key: str, value: str) -> None:
        self._s.set_tag(self._ctx, name, key, value)

    def register(
        self,
        name: str,
        *,
        artifact: bytes | Path,
        format: str,
        run_id: str | None = None,
        signature: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        description: str = "",
        tags: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        return self._s.register(
            self._ctx,
            name,
            artifact=artifact,
            format=format,
            run_id=run_id,
            signature=signature,
            metrics=metrics,
            description=description,
            tags=tags,
        )

    def log_sklearn(
        self,
        model: Any,
        *,
        name: str,
        run_id: str | None = None,
        signature: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        description: str = "",
    ) -> ModelVersion:
        """Save a scikit-learn estimator with skops and register it as a new version."""
        return self._s.log_sklearn(
            self._ctx,
            model,
            name=name,
            run_id=run_id,
            signature=signature,
            metrics=metrics,
            description=description,
        )

    def version(self, ref: str, version: int | str | None = None) -> ModelVersion:
        return self._s.version(self._ctx, ref, version)

    def versions(self, name: str) -> builtins.list[ModelVersion]:
        return self._s.versions(self._ctx, name)

    def update_version(
        self,
        name: str,
        version: int,
        *,
        description: str,
        expected_row_version: int | None = None,
    ) -> ModelVersion:
        return self._s.update_version(
            self._ctx,
            name,
            version,
            description=description,
            expected_row_version=expected_row_version,
        )

    def read_artifact(self, ref: str, version: int | str | None = None) -> bytes:
        return self._s.read_artifact(self._ctx, ref, version)

    def load_sklearn(self, ref: str, version: int | str | None = None) -> Any:
        return self._s.load_sklearn(self._ctx, ref, version)

    def log_model(
        self,
        model: Any,
        *,
        name: str,
        sample: Any,
        holdout: Any | None = None,
        run_id: str | None = None,
        onnx: bool | Literal["auto"] = "auto",
        feature_names: Sequence[str] | None = None,
        code_version: str | None = None,
        dataset_version: str | None = None,
        seed: int | None = None,
        metrics: Mapping[str, Any] | None = None,
        description: str = "",
        tags: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        """Package a model in safe formats (native + ONNX when possible) and register it."""
        return self._s.log_model(
            self._ctx,
            model,
            name=name,
            sample=sample,
            holdout=holdout,
            run_id=run_id,
            onnx=onnx,
            feature_names=feature_names,
            code_version=code_version,
            dataset_version=dataset_version,
            seed=seed,
            metrics=metrics,
            description=description,
            tags=tags,
        )

    def load(
        self,
        ref: str,
        version: int | str | None = None,
        *,
        format: str | None = None,
        verify: bool = True,
    ) -> LoadedModel:
        """Load any safe-format version (``name@alias``) as a predictor; ``format="onnx"``."""
        return self._s.load(self._ctx, ref, version, format=format, verify=verify)

    def package(self, ref: str, version: int | str | None = None) -> dict[str, Any]:
        """The package sidecar of a version: signature, example, environment lock, provenance."""
        return self._s.package(self._ctx, ref, version)

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        reason: str = "",
        expected_current: int | None = None,
    ) -> AliasMove:
        return self._s.set_alias(
            self._ctx, name, alias, version, reason=reason, expected_current=expected_current
        )

    def delete_alias(self, name: str, alias: str, *, reason: str = "") -> None:
        self._s.delete_alias(self._ctx, name, alias, reason=reason)

    def rollback(self, name: str, alias: str, *, reason: str = "") -> AliasMove:
        return self._s.rollback(self._ctx, name, alias, reason=reason)

    def alias_history(self, name: str, alias: str | None = None) -> builtins.list[AliasMove]:
        return self._s.alias_history(self._ctx, name, alias)


class Audit:
    """The audit trail: read (needs the audit.read permission), verify, export."""

    def __init__(self, governor: Governor, ctx: Context) -> None:
        self._gov, self._ctx = governor, ctx

    @property
    def _log(self) -> AuditLog:
        return self._gov.audit

    def events(self, **filters: Any) -> list[AuditEvent]:
        """This project's events, oldest first (filters: principal, action, object_id, since,
        until, limit, outcome)."""
        from keel.governance import Permission

        self._gov.check(self._ctx, Permission.AUDIT_READ, action="audit.read", object_type="audit")
        return self._log.events(AuditQuery(**{**filters, "project_id": self._ctx.project_id}))

    def verify(self) -> ChainReport:
        """Walk the whole chain (it spans every project, so it reveals only whether it holds)."""
        from keel.governance import Permission

        self._gov.check(
            self._ctx, Permission.AUDIT_READ, action="audit.verify", object_type="audit"
        )
        return self._log.verify()

    def export(self, out: IO[str]) -> int:
        from keel.governance import Permission

        self._gov.check(
            self._ctx, Permission.AUDIT_READ, action="audit.export", object_type="audit"
        )
        return self._log.export(out, AuditQuery(project_id=self._ctx.project_id))


class Lineage:
    """The lineage graph of the workspace's project (see LineageService)."""

    def __init__(self, service: LineageService, ctx: Context) -> None:
        self._s, self._ctx = service, ctx

    def graph(self, node: Node | str, *, depth: int = 10, direction: str = "both") -> LineageGraph:
        """Everything upstream and downstream of ``node`` (``Node`` or ``"TYPE:ID"``)."""
        target = parse_node(node) if isinstance(node, str) else node
        return self._s.graph(self._ctx, target, depth=depth, direction=direction)

    def openlineage_events(
        self, *, describe: Callable[[Node], NodeDescription | None] | None = None
    ) -> builtins.list[dict[str, Any]]:
        """The project's whole graph as OpenLineage 2-0-2 RunEvents (see export_openlineage)."""
        return export_openlineage(self._s, self._ctx, describe=describe)


class Projects:
    """Projects and role bindings."""

    def __init__(self, service: ProjectService, ctx: Context) -> None:
        self._s, self._ctx = service, ctx

    def create(self, name: str, *, description: str = "") -> Project:
        return self._s.create(self._ctx, name, description=description)

    def grant(self, principal: str, role: str) -> None:
        self._s.grant(self._ctx, principal, role)

    def list(self) -> list[Project]:
        return self._s.list(self._ctx)


class Workspace:
    """One caller's view of Keel: its project, and the services bound to its Context.

    Created by :func:`keel.connect`. Close it (or use it as a context manager) to release the
    database connections.
    """

    def __init__(
        self, *, settings: Settings, governor: Governor, blobs: BlobStore, ctx: Context
    ) -> None:
        self.settings = settings
        self.ctx = ctx
        self.blobs = blobs
        self._governor = governor
        experiments = ExperimentService(governor)
        self.experiments = Experiments(experiments, ctx)
        self.runs = Runs(RunService(governor, experiments, blobs), ctx)
        policies = PolicyService(governor)
        self.signer = ModelSigner.from_settings(settings)
        self.policies = Policies(policies, ctx)
        self.approvals = Approvals(ApprovalService(governor), ctx)
        registry = ModelRegistry(
            governor, blobs, policies=policies, signer=self.signer, region=settings.region
        )
        self.models = Models(registry, ctx)
        self.supplychain = SupplyChain(
            SupplyChainService(governor, blobs, policies, self.signer), registry, self.runs, ctx
        )
        self.audit = Audit(governor, ctx)
        self.lineage = Lineage(LineageService(governor), ctx)
        self.pipelines = Pipelines(PipelineService(governor, blobs), ctx)
        self.datasets = Datasets(governor, blobs, ctx, region=settings.region)
        self.compliance = Compliance(
            ComplianceService(governor), ErasureService(governor, blobs, self.datasets.service), ctx
        )
        self.projects = Projects(ProjectService(governor), ctx)
        self.deployments = Deployments(
            DeploymentService(governor, registry, blobs, datasets=self.datasets.service), ctx
        )
        self.monitors = Monitors(
            MonitorService(
                governor,
                blobs,
                self.datasets.service,
                triggers=self.pipelines.service.triggers,
                settings=settings,
            ),
            ctx,
        )
        self.loop = Loop(
            ClosedLoop(
                governor,
                pipelines=self.pipelines.service,
                registry=registry,
                deployments=self.deployments.service,
            ),
            ctx,
        )
        self.project_file = ProjectFiles(ProjectStateService(governor), ctx, self)

    @property
    def project(self) -> str:
        """The name of the project this workspace works in."""
        return self.ctx.project_name

    def close(self) -> None:
        """Finish sending alert notifications, then release the database connections."""
        self.monitors.service.alerts.close()
        self._governor.db.dispose()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace(project={self.project!r}, principal={self.ctx.principal!r})"
