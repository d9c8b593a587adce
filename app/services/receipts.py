"""What an electronic receipt's verification code confirms at /verify/<code> (no personal
data), and the digest of its facts printed on it. Models only: the public check of codes
(app.services.query) reads it without the payment commands."""

from __future__ import annotations

import hashlib

from sqlalchemy import select

from app.lib.twamount import capital_ntd
from app.models.payments import Payment


def digest(p: Payment) -> str:
    """SHA-256 of the receipt's facts: printed on it and shown by /verify, so the paper can be compared."""
    facts = "|".join([p.receipt_no or "", p.order_no, str(p.amount), p.currency,
                      p.paid_at.isoformat(timespec="seconds") if p.paid_at else "", str(p.fee_item_id),
                      str(p.fee_item.agency_id)])  # fmt: skip
    return hashlib.sha256(facts.encode()).hexdigest()


def verify_receipt(session, canonical: str) -> dict | None:
    """What a receipt's verification code confirms (no personal data), or None when no receipt has it."""
    p = session.scalar(select(Payment).where(Payment.verification_code == canonical))
    if p is None:
        return None
    state = "（已退費）" if p.state == "refunded" else ""
    return {
        "valid": True,
        "verification_code": canonical,
        "agency": p.fee_item.agency.name if p.fee_item.agency else None,
        "form": f"電子收據 {p.receipt_no}：{p.fee_item.name} {capital_ntd(p.amount)}{state}",
        "issued_at": p.paid_at.isoformat(timespec="seconds") + "Z" if p.paid_at else None,
        "valid_until": None,
        "sha256": digest(p),
    }
