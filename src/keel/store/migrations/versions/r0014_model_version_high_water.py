"""registered models keep the highest version number they gave

A deleted model version's number was given again to the next version (max + 1), so
``churn:3`` in a deployment, a policy decision or a report could come to name another artifact.

Revision ID: 0014
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("registered_models") as batch:
        batch.add_column(
            sa.Column("last_version", sa.Integer(), server_default="0", nullable=False)
        )
    op.execute(
        "UPDATE registered_models SET last_version = COALESCE((SELECT MAX(model_versions.version)"
        " FROM model_versions WHERE model_versions.model_id = registered_models.id), 0)"
    )


def downgrade() -> None:
    with op.batch_alter_table("registered_models") as batch:
        batch.drop_column("last_version")
