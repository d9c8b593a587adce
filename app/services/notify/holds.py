"""Cases whose category has a fee due before dispatch: registration keeps the receiving
agencies (``hold``) instead of dispatching; the payment of every such fee makes the
dispatches, the timeline entry and the agencies' e-mails (``release``, in the payment's
transaction). Reads the fee tables (app.models.payments) but no payment command."""

from __future__ import annotations

import datetime

from sqlalchemy import select

from app.models.notify import CaseEvent, Dispatch, NotificationCase
from app.models.org import Agency
from app.models.payments import DispatchHold, FeeItem, Payment, fee_item_category
from app.services.notify.mails import context as mail_context
from app.services.notify.mails import queue as queue_mail


def _before_dispatch(category_id: int):
    return (
        select(FeeItem.id)
        .join(fee_item_category, fee_item_category.c.fee_item_id == FeeItem.id)
        .where(
            fee_item_category.c.category_id == category_id,
            FeeItem.active.is_(True),
            FeeItem.due == "before_dispatch",
        )
    )


def dispatch_waits_for_fee(session, category_id: int) -> bool:
    """Whether a case of this category waits for a fee due before dispatch (one indexed read)."""
    return session.scalar(_before_dispatch(category_id).limit(1)) is not None


def hold(session, case: NotificationCase, receivers: list[Agency]) -> None:
    """Keep the receiving agencies: their dispatches are made once the fee is paid."""
    for agency in receivers:
        session.add(DispatchHold(case_id=case.id, agency_id=agency.id))


def release(session, case_id: int, now: datetime.datetime) -> int:
    """Make the held dispatches once every fee due before dispatch is paid; the number made.

    In the caller's transaction (the payment's), with the timeline and the receivers' e-mails."""
    held = list(session.scalars(select(DispatchHold).where(DispatchHold.case_id == case_id)))
    if not held:
        return 0
    case = session.get(NotificationCase, case_id)
    wanted = set(session.scalars(_before_dispatch(case.category_id)))
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
    ctx = mail_context(case)
    for agency in agencies:
        if agency.email:
            queue_mail(session, case, "receiver_dispatched", agency.email, {**ctx, "agency": agency.name})
    return len(agencies)
