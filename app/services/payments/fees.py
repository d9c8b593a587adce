"""Fee items (規費): which apply to a case, and the dispatches held until those due
before dispatch are paid (registration asks ``held``; a payment releases them)."""

from __future__ import annotations

import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.models.notify import CaseEvent, Dispatch, NotificationCase
from app.models.org import Agency
from app.models.payments import FEE_DUE, DispatchHold, FeeItem, Payment, fee_item_category
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


def dispatch_waits_for_fee(session, category_id: int) -> bool:
    """Whether a case of this category waits for a fee due before dispatch (one indexed read)."""
    stmt = (
        select(FeeItem.id)
        .join(fee_item_category, fee_item_category.c.fee_item_id == FeeItem.id)
        .where(
            fee_item_category.c.category_id == category_id,
            FeeItem.active.is_(True),
            FeeItem.due == "before_dispatch",
        )
        .limit(1)
    )
    return session.scalar(stmt) is not None


def hold(session, case: NotificationCase, receivers: list[Agency]) -> None:
    """Keep the receiving agencies: their dispatches are made once the fee is paid."""
    for agency in receivers:
        session.add(DispatchHold(case_id=case.id, agency_id=agency.id))


def release(session, case_id: int, now: datetime.datetime) -> int:
    """Make the held dispatches once every fee due before dispatch is paid; the number made.

    In the caller's transaction (the payment's), with the timeline and the receivers' e-mails."""
    from app.services.notify import mails

    held = list(session.scalars(select(DispatchHold).where(DispatchHold.case_id == case_id)))
    if not held:
        return 0
    case = session.get(NotificationCase, case_id)
    wanted = {f.id for f in fees_for_category(session, case.category_id, "before_dispatch")}
    paid = set(
        session.scalars(select(Payment.fee_item_id).where(Payment.case_id == case_id, Payment.state.in_(("paid",))))
    )
    if not wanted <= paid or case.status != "open":
        return 0
    agencies = [session.get(Agency, h.agency_id) for h in held]
    for h in held:
        session.delete(h)
    for agency in agencies:
        session.add(
            Dispatch(case=case, agency=agency, state="sent", sent_at=now, sent_by="payment", due_at=case.due_at)
        )
    session.add(CaseEvent(case=case, at=now, username=None, agency_code=None, action="dispatch",
                          note="、".join(a.name for a in agencies)))  # fmt: skip
    session.flush()
    ctx = mails.context(case)
    for agency in agencies:
        if agency.email:
            mails.queue(session, case, "receiver_dispatched", agency.email, {**ctx, "agency": agency.name})
    return len(agencies)
