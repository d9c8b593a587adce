"""the portal: restricted query forms (an Admin's flag and its delay in days)
and the "I don't recognise this" flags on query log entries

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 10:40:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("query_form") as batch:
        batch.add_column(sa.Column("restricted", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("restricted_days", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "access_flag",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("query_log_id", sa.Integer(), sa.ForeignKey("query_log.id", ondelete="CASCADE"), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False),
        sa.Column("agency_code", sa.String(20), nullable=False),
        sa.Column("note", sa.Text()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("answer", sa.Text()),
        sa.Column("answered_at", sa.DateTime()),
        sa.Column("answered_by", sa.Integer(), sa.ForeignKey("ab_user.id", ondelete="SET NULL")),
        sa.UniqueConstraint("query_log_id", "user_id", name="uq_access_flag_log_user"),
    )
    op.create_index("ix_access_flag_user_id", "access_flag", ["user_id"])
    op.create_index("ix_access_flag_agency_code", "access_flag", ["agency_code"])


def downgrade():
    op.drop_index("ix_access_flag_agency_code", "access_flag")
    op.drop_index("ix_access_flag_user_id", "access_flag")
    op.drop_table("access_flag")
    with op.batch_alter_table("query_form") as batch:
        batch.drop_column("restricted_days")
        batch.drop_column("restricted")
