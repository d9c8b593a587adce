"""notifier: how the citizen is told of progress (e-mail, phone or postal notice) and the
values of the category's structured fields (old/new address, old/new name) a case holds

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-03 17:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("notification_case") as batch:
        batch.add_column(sa.Column("contact_by", sa.String(10)))
        batch.add_column(sa.Column("fields", sa.Text()))


def downgrade():
    with op.batch_alter_table("notification_case") as batch:
        batch.drop_column("fields")
        batch.drop_column("contact_by")
