"""Refunds through the provider: a withdrawn or refused case's paid, refundable payments are
marked in the withdrawal's (or refusal's) transaction and refunded right after; what fails is
retried by the worker.

Refusal (駁回) is decided per receiving agency: the fees an agency collects itself go back when
it refuses its part; the fees of other agencies (the application's fee, collected by the
notifying office) go back once every agency of the case has refused."""

from __future__ import annotations

import datetime

from sqlalchemy import select

from app.models.notify import NotificationCase
from app.models.payments import Payment
from app.services import audit
from app.services.actors import SYSTEM, Actor
from app.services.command import transaction
from app.services.payments import providers
from app.services.payments.admin import config_of
from app.services.payments.states import advance


def request_refunds(session, actor: Actor, case: NotificationCase, reason: str, *, agency_id=None) -> list[int]:
    """Mark the case's paid, refundable payments for refund (only the fees ``agency_id`` collects,
    when given) in the caller's transaction; their ids. The refund itself goes through the
    provider after the commit (``refund_payments``)."""
    now = datetime.datetime.utcnow()
    ids = []
    for payment in session.scalars(select(Payment).where(Payment.case_id == case.id, Payment.state == "paid")):
        if agency_id is not None and payment.fee_item.agency_id != agency_id:
            continue
        if payment.fee_item.refundable and payment.refund_requested_at is None:
            payment.refund_requested_at = now
            ids.append(payment.id)
            audit.record(session, "payment.refund_requested", object_type="Payment", object_id=payment.id,
                         actor=actor, detail={"order_no": payment.order_no, "reason": reason})  # fmt: skip
    return ids


def refunds_on_refusal(session, actor: Actor, case: NotificationCase, agency_id: int) -> list[int]:
    """A receiving agency has closed its dispatch as refused: its own fees, and every fee once all
    the case's dispatches are closed as refused (in the caller's transaction); the ids marked."""
    ids = request_refunds(session, actor, case, "refused", agency_id=agency_id)
    if all(d.state == "closed" and d.control_type == "refused" for d in case.dispatches):
        ids += request_refunds(session, actor, case, "refused")
    return ids


def refund_payments(session, ids=None) -> dict:
    """Command: refund through the provider the payments marked for refund (all of them when ``ids``
    is None: the worker's retry); a provider that fails leaves the mark for the next round."""
    stmt = select(Payment.id).where(Payment.state == "paid", Payment.refund_requested_at.is_not(None))
    if ids is not None:
        stmt = stmt.where(Payment.id.in_(list(ids) or [0]))
    wanted = session.scalars(stmt.order_by(Payment.id)).all()
    session.rollback()
    counts = {"refunded": 0, "failed": 0}
    for payment_id in wanted:
        payment = session.get(Payment, payment_id)
        provider = payment.provider
        try:
            providers.provider_for(config_of(provider)).refund(payment.order_no, payment.provider_trade_no or "",
                                                               payment.amount)  # fmt: skip
        except providers.ProviderError as exc:
            counts["failed"] += 1
            session.rollback()
            with transaction(session):
                audit.record(session, "payment.refund_failed", object_type="Payment", object_id=payment.id,
                             outcome="error", actor=SYSTEM, detail={"order_no": payment.order_no,
                                                                    "reason": exc.reason})  # fmt: skip
            continue
        with transaction(session):
            advance(payment, "refund", datetime.datetime.utcnow())
            audit.record(session, "payment.refunded", object_type="Payment", object_id=payment.id, actor=SYSTEM,
                         detail={"order_no": payment.order_no, "amount": payment.amount})  # fmt: skip
        counts["refunded"] += 1
    return counts
