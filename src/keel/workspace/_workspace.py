"""The Workspace: the SDK's entry point, whose attributes are the services bound to a caller."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Literal, cast

from keel.types import RunStatus

if TYPE_CHECKING:
    from keel.blobs import BlobStore
    from keel.cicd import ProjectFiles
    from keel.compliance import Compliance
    from keel.data import Datasets, DatasetService
    from keel.governance import (
        AuditEvent,
        AuditLog,
        ChainReport,
        Context,
        Governor,
        ModelSigner,
        PolicyService,
        Project,
        ProjectService,
    )
    from keel.lineage import LineageGraph, LineageService, Node, NodeDescription
    from keel.monitoring import Loop, Monitors
    from keel.pipelines import Pipelines
    from keel.serving import Deployments
    from keel.settings import Settings
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
    from keel.workspace._policies import Approvals, Policies, SupplyChain

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
        from keel.store import AuditQuery

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
        from keel.store import AuditQuery

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
        from keel.lineage import parse_node

        target = parse_node(node) if isinstance(node, str) else node
        return self._s.graph(self._ctx, target, depth=depth, direction=direction)

    def openlineage_events(
        self, *, describe: Callable[[Node], NodeDescription | None] | None = None
    ) -> builtins.list[dict[str, Any]]:
        """The project's whole graph as OpenLineage 2-0-2 RunEvents (see export_openlineage)."""
        from keel.lineage import export_openlineage

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


class _DatasetServiceOnFirstUse:
    """Stands in for ``ws.datasets.service`` where a service only sometimes reads datasets
    (monitors read reference versions when they run, not when they are listed), so listing
    monitors does not import the datasets area."""

    def __init__(self, workspace: Workspace) -> None:
        self._workspace = workspace

    def __getattr__(self, name: str) -> Any:
        return getattr(self._workspace.datasets.service, name)


class Workspace:
    """One caller's view of Keel: its project, and the services bound to its Context.

    Created by :func:`keel.connect`. Close it (or use it as a context manager) to release the
    database connections. Each area's service is built (and its modules imported) on the
    first access of its attribute, so a command pays only for the areas it uses.
    """

    def __init__(
        self, *, settings: Settings, governor: Governor, blobs: BlobStore, ctx: Context
    ) -> None:
        from keel.governance import ModelSigner

        self.settings = settings
        self.ctx = ctx
        self.blobs = blobs
        self._governor = governor
        # Eager: a bad signing-key setting fails at connect, and a new store gets its key file.
        self.signer: ModelSigner = ModelSigner.from_settings(settings)

    # --- services shared by several areas -------------------------------------------------

    @cached_property
    def _experiment_service(self) -> ExperimentService:
        from keel.tracking import ExperimentService

        return ExperimentService(self._governor)

    @cached_property
    def _policy_service(self) -> PolicyService:
        from keel.governance import PolicyService

        return PolicyService(self._governor)

    @cached_property
    def _registry(self) -> ModelRegistry:
        from keel.tracking import ModelRegistry

        return ModelRegistry(
            self._governor,
            self.blobs,
            policies=self._policy_service,
            signer=self.signer,
            region=self.settings.region,
        )

    def _dataset_service(self) -> DatasetService:
        """The datasets service, or a stand-in that builds it when a caller first uses it."""
        if "datasets" in self.__dict__:
            return self.datasets.service
        return cast("DatasetService", _DatasetServiceOnFirstUse(self))

    # --- the areas ------------------------------------------------------------------------

    @cached_property
    def experiments(self) -> Experiments:
        return Experiments(self._experiment_service, self.ctx)

    @cached_property
    def runs(self) -> Runs:
        from keel.tracking import RunService

        return Runs(RunService(self._governor, self._experiment_service, self.blobs), self.ctx)

    @cached_property
    def policies(self) -> Policies:
        from keel.workspace._policies import Policies

        return Policies(self._policy_service, self.ctx)

    @cached_property
    def approvals(self) -> Approvals:
        from keel.governance import ApprovalService
        from keel.workspace._policies import Approvals

        return Approvals(ApprovalService(self._governor), self.ctx)

    @cached_property
    def models(self) -> Models:
        return Models(self._registry, self.ctx)

    @cached_property
    def supplychain(self) -> SupplyChain:
        from keel.governance import SupplyChainService
        from keel.workspace._policies import SupplyChain

        return SupplyChain(
            SupplyChainService(self._governor, self.blobs, self._policy_service, self.signer),
            self._registry,
            self.runs,
            self.ctx,
        )

    @cached_property
    def audit(self) -> Audit:
        return Audit(self._governor, self.ctx)

    @cached_property
    def lineage(self) -> Lineage:
        from keel.lineage import LineageService

        return Lineage(LineageService(self._governor), self.ctx)

    @cached_property
    def pipelines(self) -> Pipelines:
        from keel.pipelines import Pipelines, PipelineService

        return Pipelines(PipelineService(self._governor, self.blobs), self.ctx)

    @cached_property
    def datasets(self) -> Datasets:
        from keel.data import Datasets

        made = Datasets(self._governor, self.blobs, self.ctx, region=self.settings.region)
        made.gate.on_publish(self._fire_dataset_triggers)
        return made

    def _fire_dataset_triggers(self, ctx: Context, name: str, version: int) -> None:
        """A published version fires the ``dataset`` triggers watching its dataset, once per
        version (``name@version``); the scheduler runs their pipelines."""
        self.pipelines.service.triggers.fire_event(
            ctx, "dataset", name, event_id=f"{name}@{version}", details={"version": version}
        )

    @cached_property
    def compliance(self) -> Compliance:
        from keel.compliance import Compliance, ErasureService
        from keel.governance import ComplianceService

        return Compliance(
            ComplianceService(self._governor),
            ErasureService(self._governor, self.blobs, self.datasets.service),
            self.ctx,
        )

    @cached_property
    def projects(self) -> Projects:
        from keel.governance import ProjectService

        return Projects(ProjectService(self._governor), self.ctx)

    @cached_property
    def deployments(self) -> Deployments:
        from keel.serving import Deployments, DeploymentService

        return Deployments(
            DeploymentService(
                self._governor, self._registry, self.blobs, datasets=self.datasets.service
            ),
            self.ctx,
        )

    @cached_property
    def monitors(self) -> Monitors:
        from keel.monitoring import Monitors, MonitorService

        return Monitors(
            MonitorService(
                self._governor,
                self.blobs,
                self._dataset_service(),
                triggers=self.pipelines.service.triggers,
                settings=self.settings,
            ),
            self.ctx,
        )

    @cached_property
    def loop(self) -> Loop:
        from keel.monitoring import ClosedLoop, Loop

        return Loop(
            ClosedLoop(
                self._governor,
                pipelines=self.pipelines.service,
                registry=self._registry,
                deployments=self.deployments.service,
            ),
            self.ctx,
        )

    @cached_property
    def project_file(self) -> ProjectFiles:
        from keel.cicd import ProjectFiles, ProjectStateService

        return ProjectFiles(ProjectStateService(self._governor), self.ctx, self)

    @property
    def project(self) -> str:
        """The name of the project this workspace works in."""
        return self.ctx.project_name

    def close(self) -> None:
        """Finish sending alert notifications, then release the database connections."""
        if "monitors" in self.__dict__:  # built on first use: nothing to finish otherwise
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
