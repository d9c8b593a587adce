"""What the notifications did not settle: payments left pending are asked of the
provider's query API (paid, failed, or expired past PAYMENT_EXPIRE_MINUTES). ``run``
is the `flask worker payments` loop (which also retries refunds and reconciles the previous
day's settlement files)."""

from __future__ import annotations

import datetime
import logging

from flask import current_app
from sqlalchemy import select

from app.models.payments import Payment
from app.services import audit, worker_lock
from app.services.actors import Actor
from app.services.command import transaction
from app.services.payments import providers
from app.services.payments.admin import config_of
from app.services.payments.notices import after_paid, mark_paid
from app.services.payments.reconcile import reconcile_due
from app.services.payments.refunds import refund_payments
from app.services.payments.states import advance

log = logging.getLogger(__name__)


def settle_pending(session, now: datetime.datetime | None = None, *, older_than_minutes: float | None = None) -> dict:
    """Command: ask the provider about every payment pending past PAYMENT_PENDING_MINUTES; the counts."""
    now = now or datetime.datetime.utcnow()
    cfg = current_app.config
    wait = cfg.get("PAYMENT_PENDING_MINUTES", 15) if older_than_minutes is None else older_than_minutes
    expire_after = datetime.timedelta(minutes=cfg.get("PAYMENT_EXPIRE_MINUTES", 60))
    ids = session.scalars(
        select(Payment.id)
        .where(Payment.state == "pending", Payment.pending_at <= now - datetime.timedelta(minutes=wait))
        .order_by(Payment.id)
        .limit(500)
    ).all()
    session.rollback()
    counts = {"asked": 0, "paid": 0, "failed": 0, "expired": 0, "unanswered": 0}
    for payment_id in ids:
        payment = session.get(Payment, payment_id)
        provider = payment.provider
        counts["asked"] += 1
        try:
            status = providers.provider_for(config_of(provider)).query(payment.order_no)
        except providers.ProviderError as exc:
            counts["unanswered"] += 1
            log.warning("payment %s: the query API did not answer (%s)", payment.order_no, exc.reason)
            session.rollback()
            continue
        actor = Actor(user_id=None, username=f"gateway:{provider.code}"[:64])
        with transaction(session):
            payment.last_queried_at = now
            if status.state == "paid":
                row = mark_paid(session, provider.id, payment.order_no, status.trade_no, status.amount,
                                payment.currency, "query", now)  # fmt: skip
                if row is not None:
                    after_paid(session, actor, row, payment.order_no, "query", now)
                    counts["paid"] += 1
                else:
                    audit.record(session, "payment.query_mismatch", object_type="Payment", object_id=payment.id,
                                 outcome="refused", actor=actor,
                                 detail={"order_no": payment.order_no, "amount": status.amount})  # fmt: skip
            elif status.state == "failed":
                advance(payment, "fail", now)
                audit.record(session, "payment.failed", object_type="Payment", object_id=payment.id, actor=actor,
                             detail={"order_no": payment.order_no, "by": "query"})  # fmt: skip
                counts["failed"] += 1
            elif payment.pending_at and payment.pending_at <= now - expire_after:
                advance(payment, "expire", now)
                audit.record(session, "payment.expired", object_type="Payment", object_id=payment.id, actor=actor,
                             detail={"order_no": payment.order_no})  # fmt: skip
                counts["expired"] += 1
        session.expire_all()
    return counts


def run(app, stop) -> None:
    """The `flask worker payments` loop: a round every PAYMENT_WORKER_SECONDS until ``stop`` is set."""
    from app.extensions import db

    every = app.config.get("PAYMENT_WORKER_SECONDS", 30)
    while not stop.is_set():
        with app.app_context():
            try:
                # Two payments workers (any hosts) never ask and refund the same payments at
                # once: a round runs only while it holds the kind's advisory lock.
                with worker_lock.exclusive(db.engine, "payments") as mine:
                    if mine:
                        settled = settle_pending(db.session)
                        refunded = refund_payments(db.session)
                        reconciled = reconcile_due(db.session, Actor(user_id=None, username="worker:payments"))
                        if settled["asked"] or refunded["refunded"] or refunded["failed"] or reconciled:
                            log.info("payments: %s; refunds: %s; settlement files reconciled: %d", settled, refunded,
                                     len(reconciled))  # fmt: skip
            except Exception:
                log.exception("payments round failed")
            finally:
                db.session.remove()
        stop.wait(every)
