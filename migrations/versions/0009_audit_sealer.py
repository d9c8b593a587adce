"""audit events are inserted unsealed and linked into the chain by the sealer

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27 06:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

UNSEALED = "seq IS NULL"


def upgrade():
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.alter_column("seq", existing_type=sa.Integer(), nullable=True)
        batch_op.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=True)
        batch_op.alter_column("hash", existing_type=sa.String(length=64), nullable=True)
        batch_op.create_index("ix_audit_event_unsealed", ["id"], unique=False,
                              postgresql_where=sa.text(UNSEALED), sqlite_where=sa.text(UNSEALED))  # fmt: skip


def downgrade():
    # Seal everything first (`flask audit seal`): unsealed rows cannot go back under NOT NULL.
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_event_unsealed")
        batch_op.alter_column("hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("seq", existing_type=sa.Integer(), nullable=False)
