"""partial indexes for the open work lists (a handler's work, an agency's incoming)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 04:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

OPEN_WORK = "state IN ('assigned', 'accepted')"
INCOMING = "state IN ('sent', 'received', 'processed')"


def upgrade():
    with op.batch_alter_table("dispatch", schema=None) as batch_op:
        batch_op.create_index("ix_dispatch_handler_open", ["handler_id", "sent_at"], unique=False,
                              postgresql_where=sa.text(OPEN_WORK), sqlite_where=sa.text(OPEN_WORK))
        batch_op.create_index("ix_dispatch_agency_incoming", ["agency_id", "sent_at"], unique=False,
                              postgresql_where=sa.text(INCOMING), sqlite_where=sa.text(INCOMING))


def downgrade():
    with op.batch_alter_table("dispatch", schema=None) as batch_op:
        batch_op.drop_index("ix_dispatch_agency_incoming")
        batch_op.drop_index("ix_dispatch_handler_open")
