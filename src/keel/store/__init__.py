"""Persistence of metadata: typed tables, per-aggregate repositories, migrations."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel._lazy import lazy_names

if TYPE_CHECKING:
    from keel.store._audit import AuditQuery, AuditRepository
    from keel.store._checkpoint import WalCheckpointer
    from keel.store._cicd import ProjectStateRepository
    from keel.store._database import Database, make_engine
    from keel.store._datasets import DatasetRepository
    from keel.store._deployments import DeploymentRepository
    from keel.store._erasure import ErasureRepository
    from keel.store._experiments import ExperimentRepository
    from keel.store._filter import (
        ATTRIBUTES,
        And,
        Comparison,
        Expr,
        Not,
        Or,
        OrderKey,
        parse_filter,
        parse_order_by,
    )
    from keel.store._identity import IdentityRepository
    from keel.store._lineage import LineageRepository, NodeKey
    from keel.store._migrate import current_revisions, ensure_schema, required_heads, upgrade
    from keel.store._mlflow import MlflowRepository
    from keel.store._monitoring import MonitorRepository
    from keel.store._monitoring_alerts import AlertRepository
    from keel.store._monitoring_labels import GroundTruthRepository, LabelWrite
    from keel.store._pipelines import PipelineRunRepository, TriggerRepository
    from keel.store._policy import (
        ApprovalRepository,
        ComplianceRepository,
        PolicyRepository,
        SupplyChainRepository,
    )
    from keel.store._projects import ProjectRepository
    from keel.store._registry import RegistryRepository
    from keel.store._runs import MetricPoint, RunRepository

__all__ = [
    "ATTRIBUTES",
    "AlertRepository",
    "And",
    "ApprovalRepository",
    "AuditQuery",
    "AuditRepository",
    "Comparison",
    "ComplianceRepository",
    "Database",
    "DatasetRepository",
    "DeploymentRepository",
    "ErasureRepository",
    "ExperimentRepository",
    "Expr",
    "GroundTruthRepository",
    "IdentityRepository",
    "LabelWrite",
    "LineageRepository",
    "MetricPoint",
    "MlflowRepository",
    "MonitorRepository",
    "NodeKey",
    "Not",
    "Or",
    "OrderKey",
    "PipelineRunRepository",
    "PolicyRepository",
    "ProjectRepository",
    "ProjectStateRepository",
    "RegistryRepository",
    "RunRepository",
    "SupplyChainRepository",
    "TriggerRepository",
    "WalCheckpointer",
    "current_revisions",
    "ensure_schema",
    "make_engine",
    "parse_filter",
    "parse_order_by",
    "required_heads",
    "upgrade",
]

# The names load on first use (PEP 562), so a command imports only the modules it calls.
_LAZY: dict[str, str] = {
    "WalCheckpointer": "keel.store._checkpoint",
    "ATTRIBUTES": "keel.store._filter",
    "AlertRepository": "keel.store._monitoring_alerts",
    "And": "keel.store._filter",
    "ApprovalRepository": "keel.store._policy",
    "AuditQuery": "keel.store._audit",
    "AuditRepository": "keel.store._audit",
    "Comparison": "keel.store._filter",
    "ComplianceRepository": "keel.store._policy",
    "Database": "keel.store._database",
    "DatasetRepository": "keel.store._datasets",
    "DeploymentRepository": "keel.store._deployments",
    "ErasureRepository": "keel.store._erasure",
    "ExperimentRepository": "keel.store._experiments",
    "Expr": "keel.store._filter",
    "GroundTruthRepository": "keel.store._monitoring_labels",
    "IdentityRepository": "keel.store._identity",
    "LabelWrite": "keel.store._monitoring_labels",
    "LineageRepository": "keel.store._lineage",
    "MetricPoint": "keel.store._runs",
    "MlflowRepository": "keel.store._mlflow",
    "MonitorRepository": "keel.store._monitoring",
    "NodeKey": "keel.store._lineage",
    "Not": "keel.store._filter",
    "Or": "keel.store._filter",
    "OrderKey": "keel.store._filter",
    "PipelineRunRepository": "keel.store._pipelines",
    "PolicyRepository": "keel.store._policy",
    "ProjectRepository": "keel.store._projects",
    "ProjectStateRepository": "keel.store._cicd",
    "RegistryRepository": "keel.store._registry",
    "RunRepository": "keel.store._runs",
    "SupplyChainRepository": "keel.store._policy",
    "TriggerRepository": "keel.store._pipelines",
    "current_revisions": "keel.store._migrate",
    "ensure_schema": "keel.store._migrate",
    "make_engine": "keel.store._database",
    "parse_filter": "keel.store._filter",
    "parse_order_by": "keel.store._filter",
    "required_heads": "keel.store._migrate",
    "upgrade": "keel.store._migrate",
}


__getattr__, __dir__ = lazy_names(__name__, __all__, _LAZY)
