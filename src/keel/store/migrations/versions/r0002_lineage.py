"""Lineage edges: every "made from" fact between two objects of a project.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lineage_edges",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("project_id", sa.String(length=26), nullable=False),
        sa.Column("src_type", sa.String(length=32), nullable=False),
        sa.Column("src_id", sa.String(length=256), nullable=False),
        sa.Column("dst_type", sa.String(length=32), nullable=False),
        sa.Column("dst_id", sa.String(length=256), nullable=False),
        sa.Column("relation", sa.String(length=64), nullable=False),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_id", sa.String(length=26), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_lineage_edges_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lineage_edges")),
        sa.UniqueConstraint(
            "project_id",
            "src_type",
            "src_id",
            "dst_type",
            "dst_id",
            "relation",
            name="uq_lineage_edges_edge",
        ),
    )
    op.create_index(
        op.f("ix_lineage_edges_project_id_dst_type_dst_id"),
        "lineage_edges",
        ["project_id", "dst_type", "dst_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_lineage_edges_project_id_src_type_src_id"),
        "lineage_edges",
        ["project_id", "src_type", "src_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_lineage_edges_project_id_src_type_src_id"), table_name="lineage_edges")
    op.drop_index(op.f("ix_lineage_edges_project_id_dst_type_dst_id"), table_name="lineage_edges")

    op.drop_table("lineage_edges")
