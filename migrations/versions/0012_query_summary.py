"""query summary: the query log counted once by flask report summarise

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 06:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("report_build", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_query_log_id", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "query_summary",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("build_id", sa.Integer(), nullable=False),
        sa.Column("span", sa.String(length=5), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("agency_code", sa.String(length=20), nullable=True),
        sa.Column("form_code", sa.String(length=60), nullable=True),
        sa.Column("business_item", sa.String(length=40), nullable=True),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("ok", sa.Integer(), nullable=False),
        sa.Column("partial", sa.Integer(), nullable=False),
        sa.Column("refused", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("ms", sa.Float(), nullable=False),
        sa.Column("timed", sa.Integer(), nullable=False),
        sa.Column("users", sa.LargeBinary().with_variant(sa.Text(), "sqlite"), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("query_summary", schema=None) as batch_op:
        batch_op.create_index("ix_query_summary_build_span_day", ["build_id", "span", "day"], unique=False)


def downgrade():
    with op.batch_alter_table("query_summary", schema=None) as batch_op:
        batch_op.drop_index("ix_query_summary_build_span_day")
    op.drop_table("query_summary")
    with op.batch_alter_table("report_build", schema=None) as batch_op:
        batch_op.drop_column("last_query_log_id")
