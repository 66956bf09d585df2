"""Persistence of metadata: typed tables, per-aggregate repositories, migrations."""

from keel.store._audit import AuditQuery, AuditRepository
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
    "current_revisions",
    "ensure_schema",
    "make_engine",
    "parse_filter",
    "parse_order_by",
    "required_heads",
    "upgrade",
]
