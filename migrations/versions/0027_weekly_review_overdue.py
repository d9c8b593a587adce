"""overdue weekly reviews told to the auditors: one row per agency and week, told once

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-03 20:30:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "weekly_review_overdue",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("agency_code", sa.String(20), nullable=False),
        sa.Column("week_start", sa.Date(), nullable=False),
        sa.Column("reported_at", sa.DateTime(), nullable=False),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.UniqueConstraint("agency_code", "week_start", name="uq_weekly_review_overdue_agency_week"),
    )


def downgrade():
    op.drop_table("weekly_review_overdue")
