"""Dataset tables: datasets, immutable versions, their blobs, tags, reports and stream offsets."""

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from keel.store._schema import DIGEST, ID, NAME, SERIAL, Base

__all__ = [
    "DatasetBlobRow",
    "DatasetPendingBlobRow",
    "DatasetRow",
    "DatasetSecretRow",
    "DatasetStreamMessageRow",
    "DatasetTagRow",
    "DatasetVersionRow",
    "ValidationReportRow",
]


class DatasetRow(Base):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(NAME)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    row_version: Mapped[int] = mapped_column(Integer, default=1)
    __mapper_args__ = {"version_id_col": row_version}  # noqa: RUF012


class DatasetVersionRow(Base):
    """An immutable version: its manifest (schema, parts, statistics) and its labels."""

    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("dataset_id", "version"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # table | files
    digest: Mapped[str] = mapped_column(DIGEST)
    row_count: Mapped[int] = mapped_column(BigInteger)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    manifest: Mapped[dict[str, Any]]  # schema, parts, stats
    source: Mapped[dict[str, Any] | None]
    parents: Mapped[dict[str, Any] | None]  # {"versions": [ids]}
    transform: Mapped[dict[str, Any] | None]
    classification: Mapped[dict[str, Any] | None]
    sensitivity: Mapped[str | None] = mapped_column(String(16))
    residency: Mapped[str | None] = mapped_column(String(32))
    rejected_rows: Mapped[int] = mapped_column(BigInteger, default=0)
    rejects_digest: Mapped[str | None] = mapped_column(DIGEST)
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(NAME)
    created_at: Mapped[datetime]
    row_version: Mapped[int] = mapped_column(Integer, default=1)
    __mapper_args__ = {"version_id_col": row_version}  # noqa: RUF012


class DatasetBlobRow(Base):
    """A blob a version references (a Parquet part, a file, its rejects); used by ``keel gc``."""

    __tablename__ = "dataset_blobs"
    version_id: Mapped[str] = mapped_column(
        ForeignKey("dataset_versions.id", ondelete="CASCADE"), primary_key=True
    )
    digest: Mapped[str] = mapped_column(DIGEST, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    role: Mapped[str] = mapped_column(String(16))  # part | file | rejects | report
    __table_args__ = (Index(None, "project_id", "digest"),)


class DatasetPendingBlobRow(Base):
    """A blob an ingest is writing; removed when its version commits, else collected by gc."""

    __tablename__ = "dataset_pending_blobs"
    __table_args__ = (Index(None, "project_id", "digest"), Index(None, "ingest_id"))
    id: Mapped[int] = mapped_column(SERIAL, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    ingest_id: Mapped[str] = mapped_column(ID)
    digest: Mapped[str] = mapped_column(DIGEST)
    created_at: Mapped[datetime]


class DatasetTagRow(Base):
    __tablename__ = "dataset_tags"
    dataset_id: Mapped[str] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]


class ValidationReportRow(Base):
    __tablename__ = "validation_reports"
    __table_args__ = (Index(None, "version_id", "created_at"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    version_id: Mapped[str] = mapped_column(ForeignKey("dataset_versions.id", ondelete="CASCADE"))
    reference_version_id: Mapped[str | None] = mapped_column(ID)
    suite: Mapped[dict[str, Any]]
    result: Mapped[dict[str, Any]]
    passed: Mapped[bool] = mapped_column(Boolean)
    errors: Mapped[int] = mapped_column(Integer)
    warnings: Mapped[int] = mapped_column(Integer)
    html_digest: Mapped[str | None] = mapped_column(DIGEST)
    created_by: Mapped[str] = mapped_column(NAME)
    created_at: Mapped[datetime]


class DatasetStreamMessageRow(Base):
    """A stream message already held by a dataset: the exactly-once ledger."""

    __tablename__ = "dataset_stream_messages"
    dataset_id: Mapped[str] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True
    )
    stream: Mapped[str] = mapped_column(String(256), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)


class DatasetSecretRow(Base):
    """A per-project secret (the pseudonymization key), kept as an encrypted blob."""

    __tablename__ = "dataset_secrets"
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(64), primary_key=True)
    digest: Mapped[str] = mapped_column(DIGEST)
    created_at: Mapped[datetime]
