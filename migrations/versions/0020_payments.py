"""online payment of fees: fee items, payment providers, payments, their
notifications, dispatches held until paid, settlement reconciliations

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03 13:40:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "fee_item",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code", sa.String(40), nullable=False, unique=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("agency_id", sa.Integer(), sa.ForeignKey("agency.id"), nullable=False),
        sa.Column("due", sa.String(20), nullable=False),
        sa.Column("refundable", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "fee_item_category",
        sa.Column("fee_item_id", sa.Integer(), sa.ForeignKey("fee_item.id", ondelete="CASCADE"), primary_key=True),
        sa.Column(
            "category_id",
            sa.Integer(),
            sa.ForeignKey("notification_category.id", ondelete="CASCADE"),
            primary_key=True,
        ),
    )
    op.create_table(
        "payment_provider",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code", sa.String(40), nullable=False, unique=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("url", sa.String(500), nullable=False),
        sa.Column("merchant_id", sa.String(40), nullable=False),
        sa.Column("merchant_key", sa.Text()),
        sa.Column("merchant_iv", sa.Text()),
        sa.Column("timeout", sa.Float(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("last_checked_at", sa.DateTime()),
        sa.Column("last_ok", sa.Boolean()),
        sa.Column("last_error", sa.String(500)),
    )
    op.create_table(
        "payment",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("order_no", sa.String(20), nullable=False, unique=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("notification_case.id", ondelete="CASCADE"), nullable=False),
        sa.Column("fee_item_id", sa.Integer(), sa.ForeignKey("fee_item.id"), nullable=False),
        sa.Column("provider_id", sa.Integer(), sa.ForeignKey("payment_provider.id"), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("ab_user.id", ondelete="SET NULL")),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("method", sa.String(10), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("provider_trade_no", sa.String(40)),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("pending_at", sa.DateTime()),
        sa.Column("paid_at", sa.DateTime()),
        sa.Column("failed_at", sa.DateTime()),
        sa.Column("expired_at", sa.DateTime()),
        sa.Column("refund_requested_at", sa.DateTime()),
        sa.Column("refunded_at", sa.DateTime()),
        sa.Column("last_queried_at", sa.DateTime()),
        sa.Column("settled_by", sa.String(10)),
        sa.Column("receipt_no", sa.String(20), unique=True),
        sa.Column("verification_code", sa.String(24), unique=True),
        sa.UniqueConstraint("provider_id", "provider_trade_no", name="uq_payment_provider_trade"),
    )
    op.create_index("ix_payment_case_id", "payment", ["case_id"])
    op.create_index("ix_payment_paid_at", "payment", ["paid_at"])
    op.create_index("ix_payment_refunded_at", "payment", ["refunded_at"])
    op.create_index("ix_payment_state_created", "payment", ["state", "created_at"])
    op.create_table(
        "payment_notification",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("provider_id", sa.Integer(), sa.ForeignKey("payment_provider.id", ondelete="SET NULL")),
        sa.Column("payment_id", sa.Integer(), sa.ForeignKey("payment.id", ondelete="SET NULL")),
        sa.Column("order_no", sa.String(40)),
        sa.Column("trade_no", sa.String(40)),
        sa.Column("amount", sa.String(20)),
        sa.Column("rtn_code", sa.String(10)),
        sa.Column("outcome", sa.String(10), nullable=False),
        sa.Column("reason", sa.String(40)),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("client_ip", sa.String(45)),
    )
    op.create_index("ix_payment_notification_payment_id", "payment_notification", ["payment_id"])
    op.create_table(
        "dispatch_hold",
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("notification_case.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("agency_id", sa.Integer(), sa.ForeignKey("agency.id", ondelete="CASCADE"), primary_key=True),
    )
    op.create_table(
        "payment_reconciliation",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "provider_id", sa.Integer(), sa.ForeignKey("payment_provider.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("file_sha256", sa.String(64), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("matched", sa.Integer(), nullable=False),
        sa.Column("mismatched", sa.Integer(), nullable=False),
        sa.Column("run_at", sa.DateTime(), nullable=False),
        sa.Column("run_by", sa.String(128)),
    )
    op.create_table(
        "payment_mismatch",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "reconciliation_id",
            sa.Integer(),
            sa.ForeignKey("payment_reconciliation.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("order_no", sa.String(40), nullable=False),
        sa.Column("platform_amount", sa.Integer()),
        sa.Column("file_amount", sa.Integer()),
        sa.Column("platform_state", sa.String(10)),
        sa.Column("file_state", sa.String(10)),
        sa.Column("note", sa.Text()),
    )
    op.create_index("ix_payment_mismatch_reconciliation_id", "payment_mismatch", ["reconciliation_id"])


def downgrade():
    for table in (
        "payment_mismatch",
        "payment_reconciliation",
        "dispatch_hold",
        "payment_notification",
        "payment",
        "payment_provider",
        "fee_item_category",
        "fee_item",
    ):
        op.drop_table(table)
