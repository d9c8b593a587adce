"""accountability of the query log: anomaly rules, the office calendar, the protected list,
flags and the worker's cursor, signed weekly reviews

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-03 17:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade():
    # the anomaly rules count one user's queries of an hour or a day
    op.create_index("ix_query_log_user_at", "query_log", ["user_id", "at"])
    op.create_table(
        "anomaly_rule",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code", sa.String(40), nullable=False, unique=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("severity", sa.String(10), nullable=False),
        sa.Column("threshold", sa.Integer()),
        sa.Column("window_minutes", sa.Integer()),
        sa.Column("office_start", sa.String(5)),
        sa.Column("office_end", sa.String(5)),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("description", sa.Text()),
    )
    op.create_table(
        "office_day",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("day", sa.Date(), nullable=False, unique=True),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
    )
    op.create_table(
        "protected_subject",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("subject_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("added_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "anomaly_flag",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(200), nullable=False, unique=True),
        sa.Column("rule_id", sa.Integer(), sa.ForeignKey("anomaly_rule.id", ondelete="SET NULL")),
        sa.Column("rule_name", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("severity", sa.String(10), nullable=False),
        sa.Column("query_log_id", sa.Integer()),
        sa.Column("user_id", sa.Integer(), index=True),
        sa.Column("username", sa.String(128)),
        sa.Column("agency_code", sa.String(20)),
        sa.Column("raised_at", sa.DateTime(), nullable=False),
        sa.Column("first_at", sa.DateTime(), nullable=False),
        sa.Column("last_at", sa.DateTime(), nullable=False),
        sa.Column("query_count", sa.Integer(), nullable=False),
        sa.Column("subject_count", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(20)),
        sa.Column("comment", sa.Text()),
        sa.Column("resolved_at", sa.DateTime()),
        sa.Column("resolved_by", sa.Integer(), sa.ForeignKey("ab_user.id", ondelete="SET NULL")),
        sa.Column("resolved_by_name", sa.String(128)),
    )
    op.create_index("ix_anomaly_flag_open", "anomaly_flag", ["agency_code", "resolved_at"])
    op.create_table(
        "anomaly_cursor",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("last_query_id", sa.Integer(), nullable=False),
        sa.Column("last_run_at", sa.DateTime()),
    )
    op.create_table(
        "weekly_review",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("agency_code", sa.String(20), nullable=False),
        sa.Column("week_start", sa.Date(), nullable=False),
        sa.Column("pdf", sa.LargeBinary()),
        sa.Column("pdf_sha256", sa.String(64), nullable=False),
        sa.Column("prepared_at", sa.DateTime()),
        sa.Column("method", sa.String(10)),
        sa.Column("signature", sa.LargeBinary()),
        sa.Column("signer_fingerprint", sa.String(64)),
        sa.Column("comment", sa.Text()),
        sa.Column("signed_by", sa.Integer(), sa.ForeignKey("ab_user.id", ondelete="SET NULL")),
        sa.Column("signed_by_name", sa.String(128)),
        sa.Column("signed_at", sa.DateTime()),
        sa.UniqueConstraint("agency_code", "week_start", name="uq_weekly_review_agency_week"),
    )


def downgrade():
    op.drop_table("weekly_review")
    op.drop_table("anomaly_cursor")
    op.drop_index("ix_anomaly_flag_open", table_name="anomaly_flag")
    op.drop_table("anomaly_flag")
    op.drop_table("protected_subject")
    op.drop_table("office_day")
    op.drop_table("anomaly_rule")
    op.drop_index("ix_query_log_user_at", table_name="query_log")
