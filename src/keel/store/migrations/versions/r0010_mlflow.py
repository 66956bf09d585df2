"""mlflow

Revision ID: 0010
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mlflow_logged_models",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=26), nullable=False),
        sa.Column("experiment_id", sa.String(length=26), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("source_run_id", sa.String(length=26), nullable=True),
        sa.Column("model_type", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_message", sa.Text(), nullable=False),
        sa.Column("creator", sa.String(length=256), nullable=False),
        sa.Column("lifecycle", sa.String(length=16), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.id"],
            name=op.f("fk_mlflow_logged_models_experiment_id_experiments"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_mlflow_logged_models_project_id_projects"),
        ),
        sa.ForeignKeyConstraint(
            ["source_run_id"], ["runs.id"], name=op.f("fk_mlflow_logged_models_source_run_id_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mlflow_logged_models")),
    )
    op.create_index(
        op.f("ix_mlflow_logged_models_project_id_experiment_id"),
        "mlflow_logged_models",
        ["project_id", "experiment_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_mlflow_logged_models_source_run_id"),
        "mlflow_logged_models",
        ["source_run_id"],
        unique=False,
    )

    op.create_table(
        "mlflow_run_io",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("run_id", sa.String(length=26), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ref", sa.String(length=250), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_mlflow_run_io_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mlflow_run_io")),
    )
    op.create_index(
        op.f("ix_mlflow_run_io_run_id_kind_ref"),
        "mlflow_run_io",
        ["run_id", "kind", "ref"],
        unique=True,
    )

    op.create_table(
        "mlflow_logged_model_files",
        sa.Column("model_id", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("digest", sa.String(length=71), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["mlflow_logged_models.id"],
            name=op.f("fk_mlflow_logged_model_files_model_id_mlflow_logged_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_id", "path", name=op.f("pk_mlflow_logged_model_files")),
    )
    op.create_table(
        "mlflow_model_versions",
        sa.Column("version_id", sa.String(length=26), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("download_uri", sa.Text(), nullable=False),
        sa.Column("logged_model_id", sa.String(length=64), nullable=True),
        sa.Column("run_link", sa.Text(), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.String(length=26), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_versions.id"],
            name=op.f("fk_mlflow_model_versions_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("version_id", name=op.f("pk_mlflow_model_versions")),
    )
    op.create_index(
        op.f("ix_mlflow_model_versions_project_id"),
        "mlflow_model_versions",
        ["project_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_mlflow_model_versions_project_id"), table_name="mlflow_model_versions")

    op.drop_table("mlflow_model_versions")
    op.drop_table("mlflow_logged_model_files")
    op.drop_index(op.f("ix_mlflow_run_io_run_id_kind_ref"), table_name="mlflow_run_io")

    op.drop_table("mlflow_run_io")
    op.drop_index(op.f("ix_mlflow_logged_models_source_run_id"), table_name="mlflow_logged_models")
    op.drop_index(
        op.f("ix_mlflow_logged_models_project_id_experiment_id"), table_name="mlflow_logged_models"
    )

    op.drop_table("mlflow_logged_models")
