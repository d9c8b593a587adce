"""business items belong to an agency (none: county-wide, offered to every agency's clerks);
the demo's items get their agencies

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-03 16:50:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

# The demo's items (app.services.seed.queries.BUSINESS_ITEMS) by the agency whose duty they are;
# HH-NOTIFY (handling a household change) stays county-wide: every receiving agency does it.
DEMO = {
    "TAX": ("TAX-LAND", "TAX-HOUSE", "TAX-VEHICLE", "TAX-EXEMPT"),
    "SOCIAL": ("SOC-AID", "SOC-DISABLED", "SOC-SENIOR"),
    "LAND": ("LAND-REG",),
}


def upgrade():
    with op.batch_alter_table("business_item") as batch:
        batch.add_column(sa.Column("agency_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_business_item_agency", "agency", ["agency_id"], ["id"], ondelete="SET NULL")
        batch.create_index("ix_business_item_agency_id", ["agency_id"])
    item = sa.table("business_item", sa.column("code", sa.String), sa.column("agency_id", sa.Integer))
    agency = sa.table("agency", sa.column("id", sa.Integer), sa.column("code", sa.String))
    for code, items in DEMO.items():
        owner = sa.select(agency.c.id).where(agency.c.code == code).scalar_subquery()
        op.execute(sa.update(item).where(item.c.code.in_(items)).values(agency_id=owner))


def downgrade():
    with op.batch_alter_table("business_item") as batch:
        batch.drop_index("ix_business_item_agency_id")
        batch.drop_constraint("fk_business_item_agency", type_="foreignkey")
        batch.drop_column("agency_id")
