"""The providers' notifications: the truth about a payment (the browser's return never is).

A notification is verified (check value, merchant, order number, provider,
trade number, amount, currency) and settles its payment once: the state moves
by one conditional UPDATE (``state IN (...)``), so the same notification twice,
a hundred at once, or one racing the query worker makes the payment paid once;
each is acknowledged with the fixed "1|OK". Every notification is kept with
what was decided; a refused one is audited and answered "0|<reason>".

On PostgreSQL (with the audit sealer) the usual case, a payment notified paid,
is one statement inside its transaction: the conditional UPDATE, the kept
notification and the ``payment.paid`` event are data-modifying CTEs, and the
same statement reads whether the case holds dispatches for the fee or was
withdrawn (BEGIN, the statement, COMMIT: three round trips instead of seven).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import DateTime, Integer, String, bindparam, exists, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from app.lib import verifycode
from app.lib.ttlcache import TTLCache
from app.models.notify import NotificationCase
from app.models.payments import DispatchHold, Payment, PaymentNotification, PaymentProvider
from app.services import audit
from app.services.actors import Actor
from app.services.command import transaction
from app.services.notify.holds import release
from app.services.payments import providers
from app.services.payments.admin import config_of
from app.services.payments.refunds import request_refunds
from app.services.payments.states import advance

ACK = "1|OK"
_SETTLEABLE = ("created", "pending", "expired")


@dataclass(frozen=True)
class Answer:
    status: int
    body: str


def gateway_actor(code: str, client_ip: str | None) -> Actor:
    return Actor(user_id=None, username=f"gateway:{code}"[:64], client_ip=client_ip)


def mark_paid(session, provider_id: int, order_no: str, trade_no: str, amount: int | None, currency: str,
              by: str, now: datetime.datetime):  # fmt: skip
    """Settle a payment as paid if (and only if) it still waits and everything matches: the
    (id, case_id) row, or None. In the caller's transaction; one statement, so concurrent
    callers settle it once."""
    t = Payment.__table__
    stmt = (
        update(t)
        .where(
            t.c.order_no == order_no,
            t.c.provider_id == provider_id,
            t.c.amount == amount,
            t.c.currency == currency,
            t.c.state.in_(_SETTLEABLE),
            or_(t.c.provider_trade_no.is_(None), t.c.provider_trade_no == trade_no),
        )
        .values(
            state="paid",
            paid_at=now,
            provider_trade_no=trade_no,
            settled_by=by,
            receipt_no="R" + order_no[1:20],
            verification_code=verifycode.new_code(),
        )  # fmt: skip
        .returning(t.c.id, t.c.case_id, t.c.amount)
    )
    return session.execute(stmt).first()


def after_paid(session, actor: Actor, row, order_no: str, by: str, now) -> None:
    audit.record(session, "payment.paid", object_type="Payment", object_id=row.id, actor=actor,
                 detail={"order_no": order_no, "amount": row.amount, "by": by})  # fmt: skip
    # one read: is the case withdrawn, and does it hold dispatches for its fees?
    held = select(DispatchHold.case_id).where(DispatchHold.case_id == row.case_id).exists()
    status, holds = session.execute(
        select(NotificationCase.status, held).where(NotificationCase.id == row.case_id)
    ).one()
    _follow_up(session, actor, row.case_id, status, holds, now)


def _follow_up(session, actor: Actor, case_id: int, status: str, holds: bool, now) -> None:
    if holds:
        release(session, case_id, now)
    elif status == "withdrawn":  # paid after the citizen withdrew: the money goes back
        request_refunds(session, actor, session.get(NotificationCase, case_id), "paid_after_withdrawal")


_KEPT_COLUMNS = ("provider_id", "order_no", "trade_no", "amount", "rtn_code", "received_at", "client_ip")
_paid_in_one = None


def _paid_in_one_statement():
    """``mark_paid``, the kept notification, the ``payment.paid`` event and the follow-up read as one
    statement (built once; every value a bound parameter, so SQLAlchemy compiles it once)."""
    global _paid_in_one
    if _paid_in_one is None:
        t, n, c, h = (Payment.__table__, PaymentNotification.__table__, NotificationCase.__table__,
                      DispatchHold.__table__)  # fmt: skip
        paid = (
            update(t)
            .where(
                t.c.order_no == bindparam("p_order_no", type_=String),
                t.c.provider_id == bindparam("p_provider_id", type_=Integer),
                t.c.amount == bindparam("p_amount", type_=Integer),
                t.c.currency == bindparam("p_currency", type_=String),
                t.c.state.in_(bindparam("p_settleable", expanding=True)),
                or_(t.c.provider_trade_no.is_(None), t.c.provider_trade_no == bindparam("p_trade_no", type_=String)),
            )
            .values(
                state=bindparam("p_paid", type_=String),
                paid_at=bindparam("p_now", type_=DateTime),
                provider_trade_no=bindparam("p_trade_no"),
                settled_by=bindparam("p_by", type_=String),
                receipt_no=bindparam("p_receipt_no", type_=String),
                verification_code=bindparam("p_verification_code", type_=String),
            )  # fmt: skip
            .returning(t.c.id, t.c.case_id)
            .cte("paid")
        )
        kept = insert(n).from_select(
            ["payment_id", "outcome", *_KEPT_COLUMNS],
            select(
                paid.c.id,
                bindparam("p_accepted", type_=String),
                *(bindparam(f"n_{name}", type_=n.c[name].type) for name in _KEPT_COLUMNS),
            ).select_from(paid),  # fmt: skip
        )
        held = exists(select(h.c.case_id).where(h.c.case_id == paid.c.case_id))
        _paid_in_one = (
            select(paid.c.id, paid.c.case_id, c.c.status, held.label("holds"))
            .select_from(paid.join(c, c.c.id == paid.c.case_id))
            .add_cte(kept.cte("kept"))
            .add_cte(audit.event_insert_from(paid, paid.c.id).cte("paid_event"))
        )
    return _paid_in_one


def _settle_in_one(session, actor: Actor, provider_id: int, notice, form, client_ip, now) -> bool:
    """The paid notification in one statement (PostgreSQL with background sealing), in the caller's
    transaction; whether it settled the payment (False: not waiting, or something does not match)."""
    kept = _kept(provider_id, None, form, "accepted", None, client_ip)
    # every value a named parameter, none named like a column (a key that names a column of the
    # UPDATE's table would be taken as one more SET)
    params = {
        "p_settleable": list(_SETTLEABLE),
        "p_paid": "paid",
        "p_by": "notify",
        "p_accepted": "accepted","p_order_no": notice.order_no, "p_provider_id": provider_id, "p_amount": notice.amount,
              "p_currency": notice.currency, "p_trade_no": notice.trade_no, "p_now": now,
              "p_receipt_no": "R" + notice.order_no[1:20], "p_verification_code": verifycode.new_code(),
              **{f"n_{name}": getattr(kept, name) for name in _KEPT_COLUMNS},
              **audit.event_params("payment.paid", at=now, object_type="Payment", actor=actor,
                                   detail={"order_no": notice.order_no, "amount": notice.amount, "by": "notify"})}  # fmt: skip
    row = session.connection().execute(_paid_in_one_statement(), params).first()
    if row is None:
        return False
    _follow_up(session, actor, row.case_id, row.status, row.holds, now)
    return True


def why_not(payment: Payment | None, provider: PaymentProvider, notice: providers.Notice) -> str | None:
    """Why a notification does not fit its payment, or None when it does."""
    if payment is None:
        return "unknown_order"
    if payment.provider_id != provider.id:
        return "provider"
    if payment.provider_trade_no and notice.trade_no != payment.provider_trade_no:
        return "replay"
    if notice.amount != payment.amount:
        return "amount"
    if notice.currency != payment.currency:
        return "currency"
    return None


def _kept(
    provider_id, payment_id, form: Mapping[str, str], outcome: str, reason: str | None, ip
) -> PaymentNotification:
    return PaymentNotification(
        provider_id=provider_id,
        payment_id=payment_id,
        order_no=(form.get("MerchantTradeNo") or "")[:40] or None,
        trade_no=(form.get("TradeNo") or "")[:40] or None,
        amount=(form.get("TradeAmt") or "")[:20] or None,
        rtn_code=(form.get("RtnCode") or "")[:10] or None,
        outcome=outcome,
        reason=reason,
        received_at=datetime.datetime.utcnow(),
        client_ip=(ip or "")[:45] or None,
    )


def _refused(session, provider, form, reason: str, ip, status: int = 400, payment_id=None) -> Answer:
    session.rollback()
    code = provider.code if provider is not None else None
    with transaction(session):
        session.add(_kept(provider.id if provider is not None else None, payment_id, form, "refused", reason, ip))
        audit.record(session, "payment.notify_refused", object_type="Payment", object_id=payment_id,
                     outcome="refused", actor=gateway_actor(code or "unknown", ip),
                     detail={"reason": reason, "provider": code,
                             "order_no": (form.get("MerchantTradeNo") or "")[:40]})  # fmt: skip
    return Answer(status, f"0|{reason}")


@dataclass(frozen=True)
class _Known:
    """A provider as the notifications need it (kept PROVIDER_CACHE_SECONDS: no read, no decryption each time)."""

    id: int
    code: str
    merchant_id: str
    enabled: bool
    config: providers.ProviderConfig


_providers = TTLCache(max_entries=100)
PROVIDER_CACHE_SECONDS = 10.0  # a key changed or a provider disabled on the screen counts after this at most


def _known(session, code: str) -> _Known | None:
    def load():
        p = session.scalar(select(PaymentProvider).where(PaymentProvider.code == code))
        return None if p is None else _Known(p.id, p.code, p.merchant_id, p.enabled, config_of(p))

    return _providers.get(code, PROVIDER_CACHE_SECONDS, load)


def handle_notification(session, provider_code: str, form: Mapping[str, str], client_ip: str | None) -> Answer:
    """Command: a provider's notification, verified and applied once; the answer to give it."""
    form = {str(k)[:40]: str(v)[:200] for k, v in form.items()}
    provider = None
    if isinstance(provider_code, str) and len(provider_code) <= 40:
        provider = _known(session, provider_code)
    if provider is None or not provider.enabled:
        return _refused(session, None, form, "provider", client_ip, 404)
    try:
        notice = providers.provider_for(provider.config).notice(form)
    except providers.ProviderError:
        return _refused(session, provider, form, "check_value", client_ip)
    if notice.merchant_id != provider.merchant_id:
        return _refused(session, provider, form, "merchant", client_ip)
    actor = gateway_actor(provider.code, client_ip)
    now = datetime.datetime.utcnow()
    try:
        with transaction(session):
            if notice.paid and audit.can_write_with_event(session.get_bind()):
                if _settle_in_one(session, actor, provider.id, notice, form, client_ip, now):
                    return Answer(200, ACK)
            elif notice.paid:
                row = mark_paid(session, provider.id, notice.order_no, notice.trade_no, notice.amount,
                                notice.currency, "notify", now)  # fmt: skip
                if row is not None:
                    session.add(_kept(provider.id, row.id, form, "accepted", None, client_ip))
                    after_paid(session, actor, row, notice.order_no, "notify", now)
                    return Answer(200, ACK)
            payment = session.scalar(select(Payment).where(Payment.order_no == notice.order_no).with_for_update())
            reason = why_not(payment, provider, notice)
            if reason is None:
                outcome = "duplicate"
                if not notice.paid and payment.state in ("created", "pending"):
                    advance(payment, "fail", now)
                    audit.record(session, "payment.failed", object_type="Payment", object_id=payment.id,
                                 actor=actor, detail={"order_no": payment.order_no, "rtn_code": notice.rtn_code})  # fmt: skip
                    outcome = "accepted"
                session.add(_kept(provider.id, payment.id, form, outcome, None, client_ip))
                return Answer(200, ACK)
            payment_id = payment.id if payment is not None else None
    except IntegrityError:  # the trade number is another payment's: a replay
        return _refused(session, provider, form, "replay", client_ip)
    return _refused(session, provider, form, reason, client_ip, payment_id=payment_id)
