"""retention and account review: the monthly audit archives, the quarterly account
reviews and their items, and the dormant-account warning; on PostgreSQL the query
log, its subjects and the audit trail partitioned by month

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-03 17:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "audit_archive",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("month", sa.String(7), nullable=False, unique=True),
        sa.Column("file_name", sa.String(200), nullable=False),
        sa.Column("file_sha256", sa.String(64), nullable=False),
        sa.Column("first_seq", sa.Integer(), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("query_logs", sa.Integer(), nullable=False),
        sa.Column("query_subjects", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("removed_at", sa.DateTime()),
    )
    op.create_table(
        "account_review",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("agency_id", sa.Integer(), sa.ForeignKey("agency.id"), nullable=False, index=True),
        sa.Column("period", sa.String(6), nullable=False),
        sa.Column("due_on", sa.DateTime(), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=False),
        sa.Column("completed_at", sa.DateTime()),
        sa.Column("completed_by", sa.Integer()),
        sa.Column("export_sha256", sa.String(64)),
        sa.Column("export_data", sa.LargeBinary()),
        sa.Column("signature", sa.Text()),
        sa.Column("overdue_reported_at", sa.DateTime()),
        sa.UniqueConstraint("agency_id", "period", name="ux_account_review_agency_period"),
    )
    op.create_table(
        "account_review_item",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("review_id", sa.Integer(), sa.ForeignKey("account_review.id", ondelete="CASCADE"), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False, index=True),
        sa.Column("username", sa.String(128), nullable=False),
        sa.Column("roles_before", sa.String(400)),
        sa.Column("roles_after", sa.String(400)),
        sa.Column("role_changes", sa.Text()),
        sa.Column("last_login", sa.DateTime()),
        sa.Column("decision", sa.String(10)),
        sa.Column("decided_at", sa.DateTime()),
        sa.Column("decided_by", sa.Integer()),
        sa.UniqueConstraint("review_id", "user_id", name="ux_account_review_item_user"),
    )
    with op.batch_alter_table("ab_user") as batch:
        batch.add_column(sa.Column("dormant_warned_at", sa.DateTime()))
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # Monthly partitions, so that removing an archived month drops them
        # (app.services.audit.partitions says what it costs).
        from app.services.audit import partitions

        for table in ("query_subject", "query_log", "audit_event"):
            partitions.convert(bind, table)


# The foreign keys to the query log that partitioning dropped (app.services.audit.partitions).
QUERY_LOG_REFERRERS = (
    ("query_subject", "query_subject_query_log_id_fkey"),
    ("access_flag", "access_flag_query_log_id_fkey"),
)


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # Plain tables again, with their keys and the foreign keys to the query log as before.
        from app.services.audit import partitions

        for table in ("query_log", "query_subject", "audit_event"):
            partitions.restore(bind, table)
        for table, name in QUERY_LOG_REFERRERS:
            op.create_foreign_key(name, table, "query_log", ["query_log_id"], ["id"], ondelete="CASCADE")
    with op.batch_alter_table("ab_user") as batch:
        batch.drop_column("dormant_warned_at")
    op.drop_table("account_review_item")
    op.drop_table("account_review")
    op.drop_table("audit_archive")
