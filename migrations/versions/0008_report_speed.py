"""report summary (flask report summarise) and the indexes that find what it does not hold yet

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 06:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "report_build",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cutoff", sa.DateTime(), nullable=False),
        sa.Column("last_dispatch_id", sa.Integer(), nullable=False),
        sa.Column("last_case_id", sa.Integer(), nullable=False),
        sa.Column("last_response_id", sa.Integer(), nullable=False),
        sa.Column("built_at", sa.DateTime(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "report_summary",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("build_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("span", sa.String(length=5), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=True),
        sa.Column("category_id", sa.Integer(), nullable=True),
        sa.Column("operator_id", sa.Integer(), nullable=True),
        sa.Column("receivers", sa.Text(), nullable=True),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("late", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.BigInteger(), nullable=False),
        sa.Column("durations", sa.LargeBinary().with_variant(sa.Text(), "sqlite"), nullable=True),
        sa.Column("responses", sa.Integer(), nullable=False),
        sa.Column("rating_sum", sa.BigInteger(), nullable=False),
        sa.Column("rating_count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("report_summary", schema=None) as batch_op:
        batch_op.create_index(
            "ix_report_summary_build_kind_span_day", ["build_id", "kind", "span", "day"], unique=False
        )
    # The reports read from the live tables only what the summary does not hold:
    # open work, work finished since the build, responses submitted since.
    with op.batch_alter_table("dispatch", schema=None) as batch_op:
        batch_op.create_index("ix_dispatch_closed_at", ["closed_at"], unique=False)
    with op.batch_alter_table("notification_case", schema=None) as batch_op:
        batch_op.create_index("ix_notification_case_completed_at", ["completed_at"], unique=False)
    with op.batch_alter_table("survey_response", schema=None) as batch_op:
        batch_op.create_index("ix_survey_response_submitted_at", ["submitted_at"], unique=False)


def downgrade():
    with op.batch_alter_table("survey_response", schema=None) as batch_op:
        batch_op.drop_index("ix_survey_response_submitted_at")
    with op.batch_alter_table("notification_case", schema=None) as batch_op:
        batch_op.drop_index("ix_notification_case_completed_at")
    with op.batch_alter_table("dispatch", schema=None) as batch_op:
        batch_op.drop_index("ix_dispatch_closed_at")
    with op.batch_alter_table("report_summary", schema=None) as batch_op:
        batch_op.drop_index("ix_report_summary_build_kind_span_day")
    op.drop_table("report_summary")
    op.drop_table("report_build")
