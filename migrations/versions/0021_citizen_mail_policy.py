"""citizen mail policy: the stages each category mails the citizen; coalescing in the outbox
(a key, the message's line, the combined text, and which message carried a merged one)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03 15:05:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

DEFAULT = "registered,accepted,dispatch_closed,completed"


def upgrade():
    with op.batch_alter_table("notification_category") as batch:
        batch.add_column(sa.Column("citizen_mail_stages", sa.String(100), nullable=False, server_default=DEFAULT))
    with op.batch_alter_table("outbox_message") as batch:
        batch.add_column(sa.Column("coalesce_key", sa.String(120)))
        batch.add_column(sa.Column("part", sa.Text()))
        batch.add_column(sa.Column("digest_subject", sa.String(255)))
        batch.add_column(sa.Column("digest_body", sa.Text()))
        batch.add_column(sa.Column("merged_into", sa.Integer()))
    op.create_index("ix_outbox_message_coalesce", "outbox_message", ["coalesce_key", "status"])


def downgrade():
    op.drop_index("ix_outbox_message_coalesce", table_name="outbox_message")
    with op.batch_alter_table("outbox_message") as batch:
        for column in ("merged_into", "digest_body", "digest_subject", "part", "coalesce_key"):
            batch.drop_column(column)
    with op.batch_alter_table("notification_category") as batch:
        batch.drop_column("citizen_mail_stages")
