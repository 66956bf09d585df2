"""Persistence of metadata: typed tables, per-aggregate repositories, migrations."""

from keel.store._audit import AuditQuery, AuditRepository
from keel.store._database import Database, make_engine
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
from keel.store._migrate import HEAD_REVISION, current_revision, ensure_schema, upgrade
from keel.store._projects import ProjectRepository
from keel.store._registry import RegistryRepository
from keel.store._runs import MetricPoint, RunRepository

__all__ = [
    "ATTRIBUTES",
    "HEAD_REVISION",
    "And",
    "Comparison",
    "Expr",
    "ExperimentRepository",
    "MetricPoint",
    "Not",
    "Or",
    "OrderKey",
    "RegistryRepository",
    "RunRepository",
    "parse_filter",
    "parse_order_by",
    "AuditQuery",
    "AuditRepository",
    "Database",
    "ProjectRepository",
    "current_revision",
    "ensure_schema",
    "make_engine",
    "upgrade",
]
