"""compliance subject index and erasures

Revision ID: 0012
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "compliance_erased_versions",
        sa.Column("version_id", sa.String(length=26), nullable=False),
        sa.Column("project_id", sa.String(length=26), nullable=False),
        sa.Column("erasure_id", sa.String(length=26), nullable=False),
        sa.Column("dataset", sa.String(length=256), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("replaced_by", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_compliance_erased_versions_project_id_projects"),
        ),
        sa.PrimaryKeyConstraint("version_id", name=op.f("pk_compliance_erased_versions")),
    )
    op.create_index(
        op.f("ix_compliance_erased_versions_project_id"),
        "compliance_erased_versions",
        ["project_id"],
        unique=False,
    )

    op.create_table(
        "compliance_erasures",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("project_id", sa.String(length=26), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=32), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("plan", sa.JSON(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=True),
        sa.Column("requested_by", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.String(length=26), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_compliance_erasures_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_erasures")),
    )
    running_subject = sa.text("state = 'running' AND kind = 'subject'")
    op.create_index(
        "uq_compliance_erasures_running_subject",
        "compliance_erasures",
        ["project_id", "subject"],
        unique=True,
        sqlite_where=running_subject,
        postgresql_where=running_subject,
    )
    running_retention = sa.text("state = 'running' AND kind = 'retention'")
    op.create_index(
        "uq_compliance_erasures_running_retention",
        "compliance_erasures",
        ["project_id"],
        unique=True,
        sqlite_where=running_retention,
        postgresql_where=running_retention,
    )
    op.create_table(
        "compliance_leases",
        sa.Column("project_id", sa.String(length=26), nullable=False),
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("owner", sa.String(length=256), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_compliance_leases_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("project_id", "name", name=op.f("pk_compliance_leases")),
    )
    op.create_index(
        op.f("ix_compliance_erasures_project_id"),
        "compliance_erasures",
        ["project_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_compliance_erasures_project_id_subject"),
        "compliance_erasures",
        ["project_id", "subject"],
        unique=False,
    )

    op.create_table(
        "compliance_indexed_parts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("project_id", sa.String(length=26), nullable=False),
        sa.Column("digest", sa.String(length=71), nullable=False),
        sa.Column("column", sa.String(length=250), nullable=False),
        sa.Column("subjects", sa.Integer(), nullable=False),
        sa.Column("indexed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_compliance_indexed_parts_project_id_projects"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_indexed_parts")),
        sa.UniqueConstraint(
            "project_id",
            "digest",
            "column",
            name=op.f("uq_compliance_indexed_parts_project_id_digest_column"),
        ),
    )
    op.create_table(
        "compliance_secrets",
        sa.Column("project_id", sa.String(length=26), nullable=False),
        sa.Column("digest", sa.String(length=71), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_compliance_secrets_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_compliance_secrets")),
    )
    op.create_table(
        "compliance_subject_index",
        sa.Column("part_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("subject", sa.String(length=32), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["part_id"],
            ["compliance_indexed_parts.id"],
            name=op.f("fk_compliance_subject_index_part_id_compliance_indexed_parts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("part_id", "subject", name=op.f("pk_compliance_subject_index")),
    )
    op.create_index(
        op.f("ix_compliance_subject_index_subject"),
        "compliance_subject_index",
        ["subject"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_compliance_subject_index_subject"), table_name="compliance_subject_index"
    )

    op.drop_table("compliance_subject_index")
    op.drop_table("compliance_secrets")
    op.drop_table("compliance_indexed_parts")
    op.drop_table("compliance_leases")
    op.drop_index("uq_compliance_erasures_running_retention", table_name="compliance_erasures")
    op.drop_index("uq_compliance_erasures_running_subject", table_name="compliance_erasures")
    op.drop_index(
        op.f("ix_compliance_erasures_project_id_subject"), table_name="compliance_erasures"
    )
    op.drop_index(op.f("ix_compliance_erasures_project_id"), table_name="compliance_erasures")

    op.drop_table("compliance_erasures")
    op.drop_index(
        op.f("ix_compliance_erased_versions_project_id"), table_name="compliance_erased_versions"
    )

    op.drop_table("compliance_erased_versions")
