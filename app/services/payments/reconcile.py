"""The provider's daily settlement file against the platform's payments: every
mismatch is kept and listed for finance staff (a payment the file misses, an
order the platform does not know, a different amount or state). The payments worker
reconciles each enabled provider's previous day once, after PAYMENT_SETTLEMENT_HOUR (Taipei);
finance staff can reconcile any day again from the daily collections page."""

from __future__ import annotations

import csv
import datetime
import hashlib
import io

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from app.models.payments import Payment, PaymentProvider, Reconciliation, ReconciliationMismatch
from app.services import audit
from app.services.actors import Actor
from app.services.command import refuse, transaction
from app.services.errors import Forbidden, InvalidInput, NotFound, Unavailable
from app.services.payments import providers
from app.services.payments.admin import config_of

COLUMNS = ("merchant_trade_no", "amount", "status")
BAD_FILE = _l("The settlement file is not readable (a CSV with merchant_trade_no, amount and status columns).")
GATEWAY_DOWN = _l("The payment gateway did not deliver the settlement file; try again later.")
NOT_FINANCE = _l("Only finance staff may reconcile settlement files.")
NO_PROVIDER = _l("Choose one of the payment providers.")
FUTURE_DAY = _l("A settlement file exists only for a day that has ended.")
TAIPEI_OFFSET = datetime.timedelta(hours=8)
# One worker at a time reconciles (PostgreSQL advisory lock; the key is arbitrary but fixed).
_RECONCILE_LOCK = 0x5E77_1E


def _rows(text: str) -> dict[str, tuple[int, str]]:
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or not set(COLUMNS) <= set(reader.fieldnames):
        raise InvalidInput(BAD_FILE)
    rows = {}
    for row in reader:
        amount = (row.get("amount") or "").strip()
        if not amount.lstrip("-").isdigit():
            raise InvalidInput(BAD_FILE)
        rows[row["merchant_trade_no"].strip()] = (int(amount), (row.get("status") or "").strip())
    return rows


def _first(session, provider: PaymentProvider, day: datetime.date) -> bool:
    """In the caller's transaction: no reconciliation of this provider's day exists yet. On PostgreSQL a
    transaction-scoped advisory lock on (reconciliation, provider) makes a second worker wait and then
    see the first one's row, so a day is never reconciled twice by the workers."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(_RECONCILE_LOCK, provider.id)))
    found = select(Reconciliation.id).where(Reconciliation.provider_id == provider.id, Reconciliation.day == day)
    return session.scalar(found.limit(1)) is None


def reconcile(
    session, actor: Actor, provider: PaymentProvider, day: datetime.date, text: str, *, once: bool = False
) -> Reconciliation | None:
    """Command: compare one day's settlement file with the payments paid that day (Taipei time) through
    the provider; keep and return the reconciliation with its mismatches (None when ``once`` and the day
    is already reconciled: the worker's round). Raises InvalidInput."""
    found = _rows(text)
    start = datetime.datetime.combine(day, datetime.time()) - TAIPEI_OFFSET
    ours = {
        p.order_no: p
        for p in session.scalars(
            select(Payment).where(
                Payment.provider_id == provider.id,
                Payment.paid_at >= start,
                Payment.paid_at < start + datetime.timedelta(days=1),
                Payment.state.in_(("paid", "refunded")),
            )
        )
    }
    others = {}
    unknown = [n for n in found if n not in ours]
    if unknown:
        others = {p.order_no: p for p in session.scalars(select(Payment).where(Payment.order_no.in_(unknown[:5000])))}
    mismatches = []
    for order_no, (amount, status) in found.items():
        p = ours.get(order_no) or others.get(order_no)
        if p is None or p.provider_id != provider.id:
            mismatches.append(ReconciliationMismatch(kind="unknown_to_platform", order_no=order_no[:40],
                                                     file_amount=amount, file_state=status[:10]))  # fmt: skip
        elif p.amount != amount:
            mismatches.append(ReconciliationMismatch(kind="amount", order_no=order_no, platform_amount=p.amount,
                                                     file_amount=amount, platform_state=p.state,
                                                     file_state=status[:10]))  # fmt: skip
        elif p.state != status:
            mismatches.append(ReconciliationMismatch(kind="state", order_no=order_no, platform_amount=p.amount,
                                                     file_amount=amount, platform_state=p.state,
                                                     file_state=status[:10]))  # fmt: skip
    for order_no, p in ours.items():
        if order_no not in found:
            mismatches.append(ReconciliationMismatch(kind="missing_in_file", order_no=order_no,
                                                     platform_amount=p.amount, platform_state=p.state))  # fmt: skip
    with transaction(session):
        if once and not _first(session, provider, day):
            return None
        rec = Reconciliation(provider=provider, day=day, file_sha256=hashlib.sha256(text.encode()).hexdigest(),
                             rows=len(found), matched=len(found) - sum(m.kind != "missing_in_file" for m in mismatches),
                             mismatched=len(mismatches), run_by=actor.username, mismatches=mismatches)  # fmt: skip
        session.add(rec)
        session.flush()
        audit.record(session, "payment.reconcile", object_type="Reconciliation", object_id=rec.id, actor=actor,
                     outcome="ok" if not mismatches else "error",
                     detail={"provider": provider.code, "day": day.isoformat(), "rows": len(found),
                             "mismatched": len(mismatches)})  # fmt: skip
    return rec


def fetch_and_reconcile(session, actor: Actor, provider: PaymentProvider, day: datetime.date) -> Reconciliation:
    """Command: get the day's file from the provider and reconcile it. Raises Unavailable, InvalidInput."""
    try:
        text = providers.provider_for(config_of(provider)).settlement(day)
    except providers.ProviderError:
        raise Unavailable(GATEWAY_DOWN) from None
    return reconcile(session, actor, provider, day, text)


def settling_providers(session) -> list[PaymentProvider]:
    """The enabled providers, whose settlement files finance staff may reconcile."""
    return session.scalars(
        select(PaymentProvider).where(PaymentProvider.enabled.is_(True)).order_by(PaymentProvider.name)
    ).all()


def reconcile_day(session, actor: Actor, provider_id, day) -> Reconciliation:
    """Command (finance staff, from the daily collections page): fetch a day's settlement file
    from an enabled provider and reconcile it. Raises Forbidden, NotFound, InvalidInput, Unavailable
    (each refusal audited)."""
    from app.services.roles import READ_PAYMENTS

    if not actor.can(READ_PAYMENTS):
        raise refuse(session, Forbidden(NOT_FINANCE), actor, "payment.reconcile", object_type="Reconciliation")
    provider = session.get(PaymentProvider, provider_id) if isinstance(provider_id, int) else None
    if provider is None or not provider.enabled:
        raise refuse(session, NotFound(NO_PROVIDER), actor, "payment.reconcile", object_type="Reconciliation")
    if not isinstance(day, datetime.date) or day >= (datetime.datetime.utcnow() + TAIPEI_OFFSET).date():
        raise refuse(session, InvalidInput(FUTURE_DAY), actor, "payment.reconcile", object_type="Reconciliation",
                     object_id=provider.id)  # fmt: skip
    return fetch_and_reconcile(session, actor, provider, day)


def reconcile_due(session, actor: Actor, now: datetime.datetime | None = None) -> list[Reconciliation]:
    """The payments worker's daily round: each enabled provider's previous day (Taipei), once, after
    PAYMENT_SETTLEMENT_HOUR. A gateway that does not deliver is asked again in the next round."""
    local = (now or datetime.datetime.utcnow()) + TAIPEI_OFFSET
    if local.hour < current_app.config.get("PAYMENT_SETTLEMENT_HOUR", 6):
        return []
    day = local.date() - datetime.timedelta(days=1)
    reconciled = set(session.scalars(select(Reconciliation.provider_id).where(Reconciliation.day == day)))
    due = [p.id for p in session.scalars(select(PaymentProvider).where(PaymentProvider.enabled.is_(True)))
           if p.id not in reconciled]  # fmt: skip
    session.rollback()
    done = []
    for provider_id in due:
        provider = session.get(PaymentProvider, provider_id)
        try:
            settlement = providers.provider_for(config_of(provider)).settlement(day)
            rec = reconcile(session, actor, provider, day, settlement, once=True)
        except (providers.ProviderError, InvalidInput):
            session.rollback()
            continue
        if rec is not None:
            done.append(rec)
    return done
