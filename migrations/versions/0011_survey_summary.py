"""survey summary: the answers counted once by flask report summarise

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 06:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("report_build", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_invitation_id", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "survey_summary",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("build_id", sa.Integer(), nullable=False),
        sa.Column("questionnaire_id", sa.Integer(), nullable=False),
        sa.Column("span", sa.String(length=5), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("category_id", sa.Integer(), nullable=True),
        sa.Column("agency_id", sa.Integer(), nullable=True),
        sa.Column("receivers", sa.Text(), nullable=True),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("question_id", sa.Integer(), nullable=True),
        sa.Column("choice_id", sa.Integer(), nullable=True),
        sa.Column("rating", sa.SmallInteger(), nullable=True),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("survey_summary", schema=None) as batch_op:
        batch_op.create_index(
            "ix_survey_summary_build_questionnaire_span_day",
            ["build_id", "questionnaire_id", "span", "day"],
            unique=False,
        )


def downgrade():
    with op.batch_alter_table("survey_summary", schema=None) as batch_op:
        batch_op.drop_index("ix_survey_summary_build_questionnaire_span_day")
    op.drop_table("survey_summary")
    with op.batch_alter_table("report_build", schema=None) as batch_op:
        batch_op.drop_column("last_invitation_id")
