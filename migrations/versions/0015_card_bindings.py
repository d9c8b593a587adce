"""sign-in with certificate cards: cards bound to accounts, one-time
challenges, accounts that require card plus password, sessions signed in
with a card (rechecked)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 10:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "card_binding",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("issuer", sa.String(length=500), nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("subject_hash", sa.String(length=64), nullable=True),
        sa.Column("business_no", sa.String(length=8), nullable=True),
        sa.Column("org_oid", sa.String(length=100), nullable=True),
        sa.Column("not_after", sa.DateTime(), nullable=False),
        sa.Column("certificate", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["created_by"], ["ab_user.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["user_id"], ["ab_user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("fingerprint"),
        sa.UniqueConstraint("issuer", "serial", name="uq_card_binding_issuer_serial"),
    )
    with op.batch_alter_table("card_binding", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_card_binding_user_id"), ["user_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_card_binding_business_no"), ["business_no"], unique=False)
        batch_op.create_index(batch_op.f("ix_card_binding_org_oid"), ["org_oid"], unique=False)
        batch_op.create_index(batch_op.f("ix_card_binding_subject_hash"), ["subject_hash"], unique=False)
    op.create_table(
        "card_challenge",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=20), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("certificate", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["ab_user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
    )
    with op.batch_alter_table("card_challenge", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_card_challenge_expires_at"), ["expires_at"], unique=False)
    with op.batch_alter_table("ab_user", schema=None) as batch_op:
        batch_op.add_column(sa.Column("card_required", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("user_session", schema=None) as batch_op:
        batch_op.add_column(sa.Column("card_binding_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("card_checked_at", sa.DateTime(), nullable=True))
        batch_op.create_index(batch_op.f("ix_user_session_card_binding_id"), ["card_binding_id"], unique=False)
        batch_op.create_foreign_key(
            "fk_user_session_card_binding_id", "card_binding", ["card_binding_id"], ["id"], ondelete="SET NULL"
        )


def downgrade():
    with op.batch_alter_table("user_session", schema=None) as batch_op:
        batch_op.drop_constraint("fk_user_session_card_binding_id", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_user_session_card_binding_id"))
        batch_op.drop_column("card_checked_at")
        batch_op.drop_column("card_binding_id")
    with op.batch_alter_table("ab_user", schema=None) as batch_op:
        batch_op.drop_column("card_required")
    with op.batch_alter_table("card_challenge", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_card_challenge_expires_at"))
    op.drop_table("card_challenge")
    with op.batch_alter_table("card_binding", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_card_binding_subject_hash"))
        batch_op.drop_index(batch_op.f("ix_card_binding_org_oid"))
        batch_op.drop_index(batch_op.f("ix_card_binding_business_no"))
        batch_op.drop_index(batch_op.f("ix_card_binding_user_id"))
    op.drop_table("card_binding")
