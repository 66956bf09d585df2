"""prediction log batches by time across deployments

Tracing a prediction id (``keel deployments trace``) looks up the batches logged around the
id's time in every deployment of the project; the index of (project, deployment, time) does
not serve a range on time alone.

Revision ID: 0013
Revises: 0007
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_prediction_log_batches_project_id_first_at"),
        "prediction_log_batches",
        ["project_id", "first_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_prediction_log_batches_project_id_first_at"), table_name="prediction_log_batches"
    )
