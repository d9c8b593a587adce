"""Payments in and out: starting one (the case, the fee, the method) and one payment as
its payer sees it. Used by the REST API (/api/v1/me/payments) and the portal's pages."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from marshmallow import fields, validate

from app.models.payments import METHODS
from app.schemas.transfer import StrictSchema, messages, text, timestamp


class PaymentStartSchema(StrictSchema):
    """Pay a fee of one of my cases with one method; the answer says where to go to pay."""

    case_no = text(20, required=True)
    fee_item = fields.Integer(
        required=True,
        strict=True,
        validate=validate.Range(min=1, max=2**31 - 1),
        error_messages=messages(invalid=_l("Give the fee item's id."), required=_l("This field is required.")),
        metadata={"description": "the fee item's id (as GET /api/v1/me/cases/<case_no> and the case page list)"},
    )
    method = fields.String(
        required=True,
        validate=validate.OneOf(METHODS, error=_l("Choose card, chip or account.")),
        metadata={"description": "card (credit card), chip (chip financial card) or account (bank account)"},
    )


class PaymentSchema(StrictSchema):
    """One of my payments. ``redirect_url`` (on start only): the gateway's page where I pay."""

    id = fields.Integer()
    order_no = fields.String()
    case_no = fields.String()
    fee_item = fields.String()
    agency = fields.String(metadata={"description": "the collecting agency"})
    amount = fields.Integer(metadata={"description": "NT$"})
    currency = fields.String()
    method = fields.String(metadata={"description": "card, chip or account"})
    state = fields.String(metadata={"description": "created, pending, paid, failed, expired or refunded"})
    created_at = timestamp("created_at")
    paid_at = timestamp("paid_at")
    refunded_at = timestamp("refunded_at")
    redirect_url = fields.String(allow_none=True)


payment_start_schema = PaymentStartSchema()
payment_schema = PaymentSchema()
COMPONENTS = (PaymentStartSchema, PaymentSchema)
