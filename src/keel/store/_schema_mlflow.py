"""Tables for what MLflow's API records that Keel's own objects do not hold.

Everything else an MLflow client logs lands in Keel's own tables (experiments, runs, metrics,
registered models, versions, aliases); these hold the rest: MLflow 3 logged models and their
files, run inputs and outputs, and the MLflow view of a model version (source, stage).
"""

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from keel.store._schema import DIGEST, ID, KEY, NAME, SERIAL, Base

__all__ = ["LoggedModelFileRow", "LoggedModelRow", "MlflowVersionRow", "RunIoRow"]


class LoggedModelRow(Base):
    """An MLflow 3 logged model: a model directory produced by a run, before registration."""

    __tablename__ = "mlflow_logged_models"
    __table_args__ = (Index(None, "project_id", "experiment_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    experiment_id: Mapped[str] = mapped_column(ForeignKey("experiments.id"))
    name: Mapped[str] = mapped_column(NAME)
    source_run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id"), index=True)
    model_type: Mapped[str] = mapped_column(String(128), default="")
    status: Mapped[str] = mapped_column(String(16))
    status_message: Mapped[str] = mapped_column(Text, default="")
    creator: Mapped[str] = mapped_column(NAME)
    lifecycle: Mapped[str] = mapped_column(String(16), default="active")
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)
    tags: Mapped[dict[str, Any]]
    params: Mapped[dict[str, Any]]


class LoggedModelFileRow(Base):
    """One file of a logged model's directory (the bytes are a blob of the project)."""

    __tablename__ = "mlflow_logged_model_files"

    model_id: Mapped[str] = mapped_column(
        ForeignKey("mlflow_logged_models.id", ondelete="CASCADE"), primary_key=True
    )
    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    digest: Mapped[str] = mapped_column(DIGEST)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime]


class RunIoRow(Base):
    """A dataset or model input of a run, or a model output (``kind``), as MLflow sent it."""

    __tablename__ = "mlflow_run_io"
    __table_args__ = (Index(None, "run_id", "kind", "ref", unique=True),)

    id: Mapped[int] = mapped_column(SERIAL, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # dataset | model_input | model_output
    ref: Mapped[str] = mapped_column(KEY)  # dataset name+digest, or the logged model id
    body: Mapped[dict[str, Any]]


class MlflowVersionRow(Base):
    """MLflow's view of a Keel model version: where it came from, and its (legacy) stage."""

    __tablename__ = "mlflow_model_versions"

    version_id: Mapped[str] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    source: Mapped[str] = mapped_column(Text)
    download_uri: Mapped[str] = mapped_column(Text)
    logged_model_id: Mapped[str | None] = mapped_column(String(64))
    run_link: Mapped[str] = mapped_column(Text, default="")
    stage: Mapped[str] = mapped_column(String(32), default="None")
    project_id: Mapped[str] = mapped_column(ID, index=True)
