"""project file state and apply lock

Revision ID: 0011
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "project_apply_locks",
        sa.Column("project_id", sa.String(length=26), nullable=False),
        sa.Column("token", sa.String(length=26), nullable=False),
        sa.Column("holder", sa.String(length=256), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_project_apply_locks_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_project_apply_locks")),
    )
    op.create_table(
        "project_resources",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("project_id", sa.String(length=26), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("digest", sa.String(length=71), nullable=False),
        sa.Column("applied_by", sa.String(length=256), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_project_resources_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_project_resources")),
        sa.UniqueConstraint(
            "project_id", "kind", "name", name=op.f("uq_project_resources_project_id_kind_name")
        ),
    )
    op.create_index(
        op.f("ix_project_resources_project_id"), "project_resources", ["project_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_project_resources_project_id"), table_name="project_resources")
    op.drop_table("project_resources")
    op.drop_table("project_apply_locks")
