"""online applications from the portal: a category's web settings (open, the
web-notifying agency, citizens or businesses), its fields and attachments, the
drafts waiting for the card's signature, and the signature kept with the case;
the result an agency publishes to the applicant, the e-mails a citizen turned off

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 13:50:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("notification_category") as batch:
        batch.add_column(sa.Column("web_open", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("web_agency_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("web_applicant", sa.String(10), nullable=False, server_default="citizen"))
        batch.create_foreign_key(
            "fk_notification_category_web_agency", "agency", ["web_agency_id"], ["id"], ondelete="SET NULL"
        )
    with op.batch_alter_table("notification_case") as batch:
        batch.add_column(sa.Column("mail_off", sa.String(200), nullable=True))
    with op.batch_alter_table("dispatch") as batch:
        batch.add_column(sa.Column("result_public", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "category_field",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "category_id", sa.Integer(), sa.ForeignKey("notification_category.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("label_en", sa.String(100)),
        sa.Column("type", sa.String(10), nullable=False),
        sa.Column("old_new", sa.Boolean(), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("max_length", sa.Integer(), nullable=False),
        sa.Column("help", sa.String(300)),
        sa.UniqueConstraint("category_id", "name"),
    )
    op.create_table(
        "category_attachment",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "category_id", sa.Integer(), sa.ForeignKey("notification_category.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("label_en", sa.String(100)),
        sa.Column("types", sa.String(40), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("category_id", "name"),
    )
    op.create_table(
        "case_signature",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "case_id", sa.Integer(), sa.ForeignKey("notification_case.id", ondelete="CASCADE"), nullable=False,
            unique=True,
        ),  # fmt: skip
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("seal", sa.String(64), nullable=False),
        sa.Column("pkcs7", sa.LargeBinary(), nullable=False),
        sa.Column("signer_kind", sa.String(20), nullable=False),
        sa.Column("signer_serial", sa.String(64), nullable=False),
        sa.Column("signer_issuer", sa.String(500), nullable=False),
        sa.Column("signer_fingerprint", sa.String(64), nullable=False),
        sa.Column("signed_at", sa.DateTime()),
        sa.Column("verified_at", sa.DateTime(), nullable=False),
        sa.Column("verified_by", sa.String(20)),
    )
    op.create_table(
        "application_draft",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False),
        sa.Column(
            "category_id", sa.Integer(), sa.ForeignKey("notification_category.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_application_draft_user_id", "application_draft", ["user_id"])
    op.create_index("ix_application_draft_expires_at", "application_draft", ["expires_at"])
    op.create_table(
        "application_draft_file",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "draft_id", sa.Integer(), sa.ForeignKey("application_draft.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("slot", sa.String(40), nullable=False),
        sa.Column("filename", sa.String(200), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_application_draft_file_draft_id", "application_draft_file", ["draft_id"])


def downgrade():
    op.drop_index("ix_application_draft_file_draft_id", "application_draft_file")
    op.drop_table("application_draft_file")
    op.drop_index("ix_application_draft_expires_at", "application_draft")
    op.drop_index("ix_application_draft_user_id", "application_draft")
    op.drop_table("application_draft")
    op.drop_table("case_signature")
    op.drop_table("category_attachment")
    op.drop_table("category_field")
    with op.batch_alter_table("dispatch") as batch:
        batch.drop_column("result_public")
    with op.batch_alter_table("notification_case") as batch:
        batch.drop_column("mail_off")
    with op.batch_alter_table("notification_category") as batch:
        batch.drop_constraint("fk_notification_category_web_agency", type_="foreignkey")
        batch.drop_column("web_applicant")
        batch.drop_column("web_agency_id")
        batch.drop_column("web_open")
