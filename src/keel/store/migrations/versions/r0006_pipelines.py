"""pipelines

Revision ID: 0006
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pipeline_runs",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("project_id", sa.String(length=26), nullable=False),
        sa.Column("pipeline", sa.String(length=256), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("trigger", sa.String(length=32), nullable=False),
        sa.Column("cause", sa.JSON(), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("datasets", sa.JSON(), nullable=True),
        sa.Column("code_version", sa.String(length=64), nullable=True),
        sa.Column("environment", sa.JSON(), nullable=True),
        sa.Column("executor", sa.String(length=32), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(length=256), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_pipeline_runs_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipeline_runs")),
    )
    op.create_index(
        op.f("ix_pipeline_runs_project_id"), "pipeline_runs", ["project_id"], unique=False
    )
    op.create_index(
        op.f("ix_pipeline_runs_project_id_pipeline_created_at"),
        "pipeline_runs",
        ["project_id", "pipeline", "created_at"],
        unique=False,
    )

    op.create_table(
        "pipeline_triggers",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("project_id", sa.String(length=26), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("pipeline", sa.String(length=256), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("next_fire_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_pipeline_triggers_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipeline_triggers")),
        sa.UniqueConstraint(
            "project_id", "name", name=op.f("uq_pipeline_triggers_project_id_name")
        ),
    )
    op.create_index(
        op.f("ix_pipeline_triggers_kind_next_fire_at"),
        "pipeline_triggers",
        ["kind", "next_fire_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_pipeline_triggers_project_id"), "pipeline_triggers", ["project_id"], unique=False
    )

    op.create_table(
        "step_cache",
        sa.Column("project_id", sa.String(length=26), nullable=False),
        sa.Column("cache_key", sa.String(length=71), nullable=False),
        sa.Column("step", sa.String(length=256), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("step_run_id", sa.String(length=26), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_step_cache_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("project_id", "cache_key", name=op.f("pk_step_cache")),
    )
    op.create_table(
        "step_runs",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("project_id", sa.String(length=26), nullable=False),
        sa.Column("pipeline_run_id", sa.String(length=26), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("code_digest", sa.String(length=71), nullable=False),
        sa.Column("cache_key", sa.String(length=71), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=True),
        sa.Column("outputs", sa.JSON(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("traceback", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["pipeline_run_id"],
            ["pipeline_runs.id"],
            name=op.f("fk_step_runs_pipeline_run_id_pipeline_runs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_step_runs_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_step_runs")),
        sa.UniqueConstraint(
            "pipeline_run_id", "name", name=op.f("uq_step_runs_pipeline_run_id_name")
        ),
    )
    op.create_index(op.f("ix_step_runs_project_id"), "step_runs", ["project_id"], unique=False)

    op.create_table(
        "trigger_firings",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("project_id", sa.String(length=26), nullable=False),
        sa.Column("trigger_id", sa.String(length=26), nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cause", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("lease_owner", sa.String(length=256), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pipeline_run_id", sa.String(length=26), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_trigger_firings_project_id_projects")
        ),
        sa.ForeignKeyConstraint(
            ["trigger_id"],
            ["pipeline_triggers.id"],
            name=op.f("fk_trigger_firings_trigger_id_pipeline_triggers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trigger_firings")),
        sa.UniqueConstraint(
            "trigger_id", "dedupe_key", name=op.f("uq_trigger_firings_trigger_id_dedupe_key")
        ),
    )
    op.create_index(
        op.f("ix_trigger_firings_project_id"), "trigger_firings", ["project_id"], unique=False
    )
    op.create_index(
        op.f("ix_trigger_firings_status_lease_expires_at"),
        "trigger_firings",
        ["status", "lease_expires_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_trigger_firings_status_lease_expires_at"), table_name="trigger_firings")
    op.drop_index(op.f("ix_trigger_firings_project_id"), table_name="trigger_firings")

    op.drop_table("trigger_firings")
    op.drop_index(op.f("ix_step_runs_project_id"), table_name="step_runs")

    op.drop_table("step_runs")
    op.drop_table("step_cache")
    op.drop_index(op.f("ix_pipeline_triggers_project_id"), table_name="pipeline_triggers")
    op.drop_index(op.f("ix_pipeline_triggers_kind_next_fire_at"), table_name="pipeline_triggers")

    op.drop_table("pipeline_triggers")
    op.drop_index(
        op.f("ix_pipeline_runs_project_id_pipeline_created_at"), table_name="pipeline_runs"
    )
    op.drop_index(op.f("ix_pipeline_runs_project_id"), table_name="pipeline_runs")

    op.drop_table("pipeline_runs")
