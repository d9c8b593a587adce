"""The provider's daily settlement file against the platform's payments: every
mismatch is kept and listed for finance staff (a payment the file misses, an
order the platform does not know, a different amount or state)."""

from __future__ import annotations

import csv
import datetime
import hashlib
import io

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.models.payments import Payment, PaymentProvider, Reconciliation, ReconciliationMismatch
from app.services import audit
from app.services.actors import Actor
from app.services.command import transaction
from app.services.errors import InvalidInput, Unavailable
from app.services.payments import providers
from app.services.payments.admin import config_of

COLUMNS = ("merchant_trade_no", "amount", "status")
BAD_FILE = _l("The settlement file is not readable (a CSV with merchant_trade_no, amount and status columns).")
GATEWAY_DOWN = _l("The payment gateway did not deliver the settlement file; try again later.")
TAIPEI_OFFSET = datetime.timedelta(hours=8)


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


def reconcile(session, actor: Actor, provider: PaymentProvider, day: datetime.date, text: str) -> Reconciliation:
    """Command: compare one day's settlement file with the payments paid that day (Taipei time) through
    the provider; keep and return the reconciliation with its mismatches. Raises InvalidInput."""
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
