"""datasets

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dataset_pending_blobs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("project_id", sa.String(length=26), nullable=False),
        sa.Column("ingest_id", sa.String(length=26), nullable=False),
        sa.Column("digest", sa.String(length=71), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_dataset_pending_blobs_project_id_projects"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_pending_blobs")),
    )
    op.create_index(
        op.f("ix_dataset_pending_blobs_ingest_id"),
        "dataset_pending_blobs",
        ["ingest_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_dataset_pending_blobs_project_id_digest"),
        "dataset_pending_blobs",
        ["project_id", "digest"],
        unique=False,
    )

    op.create_table(
        "dataset_secrets",
        sa.Column("project_id", sa.String(length=26), nullable=False),
        sa.Column("purpose", sa.String(length=64), nullable=False),
        sa.Column("digest", sa.String(length=71), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_dataset_secrets_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("project_id", "purpose", name=op.f("pk_dataset_secrets")),
    )
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("project_id", sa.String(length=26), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("row_version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_datasets_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datasets")),
        sa.UniqueConstraint("project_id", "name", name=op.f("uq_datasets_project_id_name")),
    )
    op.create_index(op.f("ix_datasets_project_id"), "datasets", ["project_id"], unique=False)

    op.create_table(
        "dataset_stream_messages",
        sa.Column("dataset_id", sa.String(length=26), nullable=False),
        sa.Column("stream", sa.String(length=256), nullable=False),
        sa.Column("message_id", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_dataset_stream_messages_dataset_id_datasets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "dataset_id", "stream", "message_id", name=op.f("pk_dataset_stream_messages")
        ),
    )
    op.create_table(
        "dataset_tags",
        sa.Column("dataset_id", sa.String(length=26), nullable=False),
        sa.Column("tag", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_dataset_tags_dataset_id_datasets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("dataset_id", "tag", name=op.f("pk_dataset_tags")),
    )
    op.create_table(
        "dataset_versions",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("project_id", sa.String(length=26), nullable=False),
        sa.Column("dataset_id", sa.String(length=26), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("digest", sa.String(length=71), nullable=False),
        sa.Column("row_count", sa.BigInteger(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("source", sa.JSON(), nullable=True),
        sa.Column("parents", sa.JSON(), nullable=True),
        sa.Column("transform", sa.JSON(), nullable=True),
        sa.Column("classification", sa.JSON(), nullable=True),
        sa.Column("sensitivity", sa.String(length=16), nullable=True),
        sa.Column("residency", sa.String(length=32), nullable=True),
        sa.Column("rejected_rows", sa.BigInteger(), nullable=False),
        sa.Column("rejects_digest", sa.String(length=71), nullable=True),
        sa.Column("published", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("row_version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_dataset_versions_dataset_id_datasets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_dataset_versions_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_versions")),
        sa.UniqueConstraint(
            "dataset_id", "version", name=op.f("uq_dataset_versions_dataset_id_version")
        ),
    )
    op.create_index(
        op.f("ix_dataset_versions_project_id"), "dataset_versions", ["project_id"], unique=False
    )

    op.create_table(
        "dataset_blobs",
        sa.Column("version_id", sa.String(length=26), nullable=False),
        sa.Column("digest", sa.String(length=71), nullable=False),
        sa.Column("project_id", sa.String(length=26), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_dataset_blobs_project_id_projects")
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["dataset_versions.id"],
            name=op.f("fk_dataset_blobs_version_id_dataset_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("version_id", "digest", name=op.f("pk_dataset_blobs")),
    )
    op.create_index(
        op.f("ix_dataset_blobs_project_id_digest"),
        "dataset_blobs",
        ["project_id", "digest"],
        unique=False,
    )

    op.create_table(
        "validation_reports",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("project_id", sa.String(length=26), nullable=False),
        sa.Column("version_id", sa.String(length=26), nullable=False),
        sa.Column("reference_version_id", sa.String(length=26), nullable=True),
        sa.Column("suite", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("warnings", sa.Integer(), nullable=False),
        sa.Column("html_digest", sa.String(length=71), nullable=True),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_validation_reports_project_id_projects")
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["dataset_versions.id"],
            name=op.f("fk_validation_reports_version_id_dataset_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_validation_reports")),
    )
    op.create_index(
        op.f("ix_validation_reports_project_id"), "validation_reports", ["project_id"], unique=False
    )
    op.create_index(
        op.f("ix_validation_reports_version_id_created_at"),
        "validation_reports",
        ["version_id", "created_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_validation_reports_version_id_created_at"), table_name="validation_reports"
    )
    op.drop_index(op.f("ix_validation_reports_project_id"), table_name="validation_reports")

    op.drop_table("validation_reports")
    op.drop_index(op.f("ix_dataset_blobs_project_id_digest"), table_name="dataset_blobs")

    op.drop_table("dataset_blobs")
    op.drop_index(op.f("ix_dataset_versions_project_id"), table_name="dataset_versions")

    op.drop_table("dataset_versions")
    op.drop_table("dataset_tags")
    op.drop_table("dataset_stream_messages")
    op.drop_index(op.f("ix_datasets_project_id"), table_name="datasets")

    op.drop_table("datasets")
    op.drop_table("dataset_secrets")
    op.drop_index(
        op.f("ix_dataset_pending_blobs_project_id_digest"), table_name="dataset_pending_blobs"
    )
    op.drop_index(op.f("ix_dataset_pending_blobs_ingest_id"), table_name="dataset_pending_blobs")

    op.drop_table("dataset_pending_blobs")
