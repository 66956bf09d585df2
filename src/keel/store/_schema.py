"""The metadata schema: typed SQLAlchemy 2.0 models, one section per aggregate.

Alembic migrations in ``keel/store/migrations`` create exactly these tables and those of the
``TABLE_MODULES``; a test compares the migrated database with the whole metadata
(``load_all_tables``) so the two never drift apart.
"""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "AliasHistoryRow",
    "AliasRow",
    "AuditEventRow",
    "AuditHeadRow",
    "Base",
    "ExperimentRow",
    "ExperimentTagRow",
    "LatestMetricRow",
    "MetricRow",
    "ModelTagRow",
    "ModelVersionRow",
    "ModelVersionTagRow",
    "ParamRow",
    "ProjectRow",
    "RegisteredModelRow",
    "RoleBindingRow",
    "RunArtifactRow",
    "RunRow",
    "RunTagRow",
]

ID = String(26)
NAME = String(256)
KEY = String(250)
DIGEST = String(71)
# SQLite only aliases INTEGER PRIMARY KEY to the rowid; BigInteger elsewhere.
SERIAL = BigInteger().with_variant(Integer(), "sqlite")

_NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores it naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with stable constraint names (needed by migrations)."""

    metadata = MetaData(naming_convention=_NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


# --- projects and access -------------------------------------------------------------------


class ProjectRow(Base):
    __tablename__ = "projects"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(NAME, unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    row_version: Mapped[int] = mapped_column(Integer, default=1)
    __mapper_args__ = {"version_id_col": row_version}


class RoleBindingRow(Base):
    __tablename__ = "role_bindings"
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    principal: Mapped[str] = mapped_column(NAME, primary_key=True)
    role: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]


# --- experiments and runs ------------------------------------------------------------------


class ExperimentRow(Base):
    __tablename__ = "experiments"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(NAME)
    description: Mapped[str] = mapped_column(Text, default="")
    lifecycle: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    row_version: Mapped[int] = mapped_column(Integer, default=1)
    __mapper_args__ = {"version_id_col": row_version}


class ExperimentTagRow(Base):
    __tablename__ = "experiment_tags"
    experiment_id: Mapped[str] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(KEY, primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class RunRow(Base):
    __tablename__ = "runs"
    __table_args__ = (Index(None, "experiment_id", "start_time"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    experiment_id: Mapped[str] = mapped_column(ForeignKey("experiments.id"))
    parent_run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id"), index=True)
    name: Mapped[str] = mapped_column(NAME)
    status: Mapped[str] = mapped_column(String(16))
    user: Mapped[str] = mapped_column(NAME)
    start_time: Mapped[int] = mapped_column(BigInteger)
    end_time: Mapped[int | None] = mapped_column(BigInteger)
    lifecycle: Mapped[str] = mapped_column(String(16), default="active")
    code_version: Mapped[str | None] = mapped_column(String(64))
    environment: Mapped[dict[str, Any] | None]
    row_version: Mapped[int] = mapped_column(Integer, default=1)
    __mapper_args__ = {"version_id_col": row_version}


class ParamRow(Base):
    __tablename__ = "params"
    __table_args__ = (Index(None, "key", "value_num"),)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(KEY, primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    # The value parsed as a number when it is one, so filters can compare numerically.
    value_num: Mapped[float | None] = mapped_column(Float)


class RunTagRow(Base):
    __tablename__ = "run_tags"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(KEY, primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class MetricRow(Base):
    """Every logged metric value; NaN is stored as NULL (SQLite cannot hold NaN)."""

    __tablename__ = "metrics"
    __table_args__ = (Index(None, "run_id", "key", "step"),)
    id: Mapped[int] = mapped_column(SERIAL, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(KEY)
    value: Mapped[float | None] = mapped_column(Float)
    step: Mapped[int] = mapped_column(BigInteger)
    timestamp: Mapped[int] = mapped_column(BigInteger)


class LatestMetricRow(Base):
    """The value at the highest (step, timestamp) of each metric, for search and ordering."""

    __tablename__ = "latest_metrics"
    __table_args__ = (Index(None, "key", "value"),)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(KEY, primary_key=True)
    value: Mapped[float | None] = mapped_column(Float)
    step: Mapped[int] = mapped_column(BigInteger)
    timestamp: Mapped[int] = mapped_column(BigInteger)


class RunArtifactRow(Base):
    __tablename__ = "run_artifacts"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    digest: Mapped[str] = mapped_column(DIGEST)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime]


# --- model registry ------------------------------------------------------------------------


class RegisteredModelRow(Base):
    __tablename__ = "registered_models"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(NAME)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    row_version: Mapped[int] = mapped_column(Integer, default=1)
    # the highest version number ever given: a deleted version's number is never given again
    last_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    __mapper_args__ = {"version_id_col": row_version}


class ModelTagRow(Base):
    __tablename__ = "model_tags"
    model_id: Mapped[str] = mapped_column(
        ForeignKey("registered_models.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(KEY, primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ModelVersionRow(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("registered_models.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id"), index=True)
    artifact_digest: Mapped[str] = mapped_column(DIGEST)
    artifact_size: Mapped[int] = mapped_column(BigInteger)
    format: Mapped[str] = mapped_column(String(32))
    signature: Mapped[dict[str, Any] | None]
    metrics: Mapped[dict[str, Any] | None]
    description: Mapped[str] = mapped_column(Text, default="")
    creator: Mapped[str] = mapped_column(NAME)
    status: Mapped[str] = mapped_column(String(16), default="READY")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    row_version: Mapped[int] = mapped_column(Integer, default=1)
    __mapper_args__ = {"version_id_col": row_version}


class ModelVersionTagRow(Base):
    __tablename__ = "model_version_tags"
    version_id: Mapped[str] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(KEY, primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class AliasRow(Base):
    __tablename__ = "aliases"
    model_id: Mapped[str] = mapped_column(
        ForeignKey("registered_models.id", ondelete="CASCADE"), primary_key=True
    )
    alias: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]
    row_version: Mapped[int] = mapped_column(Integer, default=1)
    __mapper_args__ = {"version_id_col": row_version}


class AliasHistoryRow(Base):
    """Every move of an alias; ``undone`` marks a move reverted by a rollback."""

    __tablename__ = "alias_history"
    __table_args__ = (Index(None, "model_id", "alias", "id"),)
    id: Mapped[int] = mapped_column(SERIAL, primary_key=True, autoincrement=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("registered_models.id", ondelete="CASCADE"))
    alias: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))  # set | rollback | delete
    from_version: Mapped[int | None] = mapped_column(Integer)
    to_version: Mapped[int | None] = mapped_column(Integer)
    principal: Mapped[str] = mapped_column(NAME)
    reason: Mapped[str] = mapped_column(Text, default="")
    undone: Mapped[bool] = mapped_column(Boolean, default=False)
    moved_at: Mapped[datetime]


# --- audit ---------------------------------------------------------------------------------


class AuditEventRow(Base):
    """One link of the tamper-evident audit chain."""

    __tablename__ = "audit_events"
    seq: Mapped[int] = mapped_column(SERIAL, primary_key=True, autoincrement=False)
    id: Mapped[str] = mapped_column(ID, unique=True)
    occurred_at: Mapped[datetime]
    principal: Mapped[str] = mapped_column(NAME)
    project_id: Mapped[str | None] = mapped_column(ID, index=True)
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(256))
    outcome: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[str] = mapped_column(String(64))
    details: Mapped[str] = mapped_column(Text)  # canonical JSON, hashed as written
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHeadRow(Base):
    """The chain's head: locked by every append so links are written one at a time."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


#: The modules that declare the other aggregates' tables. Each repository imports its own, so a
#: command maps only the tables it uses; migrations load them all (``load_all_tables``).
TABLE_MODULES = (
    "keel.store._schema_cicd",
    "keel.store._schema_compliance",
    "keel.store._schema_data",
    "keel.store._schema_identity",
    "keel.store._schema_lineage",
    "keel.store._schema_mlflow",
    "keel.store._schema_monitoring",
    "keel.store._schema_pipelines",
    "keel.store._schema_policy",
    "keel.store._schema_serving",
)


def load_all_tables() -> MetaData:
    """Import every table module and return ``Base.metadata``, then the whole schema."""
    import importlib

    for name in TABLE_MODULES:
        importlib.import_module(name)
    return Base.metadata
