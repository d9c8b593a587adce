"""Fee items (規費): their checks and which apply to a category. (The dispatches held
until a fee due before dispatch is paid are the notification's: app.services.notify.holds.)"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.models.payments import FEE_DUE, FeeItem, fee_item_category
from app.services.errors import InvalidInput


def check_fee_item(item: FeeItem) -> None:
    """Raise InvalidInput when a fee item cannot be saved as the screen or API filled it."""
    if not isinstance(item.amount, int) or isinstance(item.amount, bool) or not 0 < item.amount <= 10_000_000:
        raise InvalidInput(_l("The fee must be a whole number of NT dollars between 1 and 10,000,000."))
    if item.due not in FEE_DUE:
        raise InvalidInput(_l("Choose when the fee is due: before dispatch or after approval."))
    if not (item.code or "").strip() or not (item.name or "").strip():
        raise InvalidInput(_l("A fee item needs a code and a name."))
    if item.agency is None and item.agency_id is None:
        raise InvalidInput(_l("Choose the collecting agency."))


def fees_for_category(session, category_id: int, due: str | None = None) -> list[FeeItem]:
    stmt = (
        select(FeeItem)
        .join(fee_item_category, fee_item_category.c.fee_item_id == FeeItem.id)
        .where(fee_item_category.c.category_id == category_id, FeeItem.active.is_(True))
        .order_by(FeeItem.id)
    )
    if due:
        stmt = stmt.where(FeeItem.due == due)
    return list(session.scalars(stmt))
