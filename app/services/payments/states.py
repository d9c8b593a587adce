"""The payment's states as data (``app.models.payments.TRANSITIONS``) and one function applying them."""

from __future__ import annotations

import datetime

from flask_babel import lazy_gettext as _l

from app.models.payments import TRANSITIONS, Payment
from app.services.errors import Conflict

STAMPS = {"pending": "pending_at", "paid": "paid_at", "failed": "failed_at", "expired": "expired_at",
          "refunded": "refunded_at"}  # fmt: skip


def advance(payment: Payment, event: str, now: datetime.datetime) -> str:
    """Move the payment by ``event`` and stamp the time; Conflict for a step the table does not allow."""
    nxt = TRANSITIONS.get((payment.state, event))
    if nxt is None:
        raise Conflict(_l("This payment cannot go from %(state)s that way."), state=payment.state)
    payment.state = nxt
    setattr(payment, STAMPS[nxt], now)
    return nxt
