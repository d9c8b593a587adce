"""Sign-in with certificate cards, in and out: the challenge, the signed
challenge (or a citizen's first-sign-in ticket with the full ID number), and a
card bound to an account. Used by the REST API and the sign-in pages alike.

The signature is base64 PKCS#7 SignedData, bounded; the PIN never reaches the
platform (it goes to the local signing component only)."""

from __future__ import annotations

import base64
import binascii

from flask_babel import lazy_gettext as _l
from marshmallow import Schema, ValidationError, fields, post_load, validates

from app.schemas.transfer import StrictSchema, messages, text, timestamp

# A card's PKCS#7 with its chain is a few kilobytes; 64 KiB of base64 is far beyond any.
MAX_SIGNATURE = 65536
BAD_SIGNATURE = _l("The signature must be the base64 PKCS#7 the signing component returned.")


def _decode(value: str) -> bytes:
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(str(BAD_SIGNATURE)) from None


class CardChallengeSchema(Schema):
    """A new challenge: its id (give it back with the signature) and the nonce to sign."""

    challenge_id = fields.String(metadata={"description": "Give it back with the signature (single use)."})
    nonce = fields.String(metadata={"description": "The exact text the card signs (tbs)."})
    expires_at = timestamp("expires_at")
    expires_in = fields.Integer(metadata={"description": "Seconds left."})


class CardLoginSchema(StrictSchema):
    """A signed challenge: the PKCS#7 (base64) over the nonce, the challenge id, and what the
    account may need besides: a staff account's password, a citizen's full ID number and name on
    the first sign-in (or the ticket of that first sign-in instead of a signature)."""

    challenge_id = text(200, _l("The challenge id is not valid."), load_default=None)
    signature = text(
        MAX_SIGNATURE,
        BAD_SIGNATURE,
        load_default=None,
        error_messages={"invalid": BAD_SIGNATURE},
        metadata={"description": "base64 PKCS#7 SignedData over the nonce (the component's `signature`)."},
    )
    ticket = text(200, _l("The first sign-in ticket is not valid."), load_default=None,
                  metadata={"description": "A citizen's first sign-in: the ticket the previous answer gave."})  # fmt: skip
    password = text(1024, _l("The password is too long."), load_default=None)
    id_number = text(20, _l("The ID number is not valid (check its letters and digits)."), load_default=None)
    name = text(100, _l("The name is too long."), load_default=None)
    refresh = fields.Boolean(load_default=False, error_messages=messages(invalid=_l("refresh must be true or false.")))

    @validates("signature")
    def _signature(self, value, **_kwargs):
        if value is not None:
            _decode(value)

    @post_load
    def decoded(self, data, **_kwargs) -> dict:
        if data.get("signature") is not None:
            data["signature"] = _decode(data["signature"])
        if not data.get("ticket") and (not data.get("challenge_id") or data.get("signature") is None):
            raise ValidationError(str(_l("Send the challenge_id and the signature (or a first sign-in ticket).")))
        return data


class CardTlsLoginSchema(StrictSchema):
    """Sign-in with the client certificate a trusted proxy verified (mTLS): what the account may need besides."""

    password = text(1024, _l("The password is too long."), load_default=None)
    id_number = text(20, _l("The ID number is not valid (check its letters and digits)."), load_default=None)
    name = text(100, _l("The name is too long."), load_default=None)
    refresh = fields.Boolean(load_default=False, error_messages=messages(invalid=_l("refresh must be true or false.")))


class CardCertificateSchema(StrictSchema):
    """An administrator binds a staff account to a GCA card: the card's certificate (PEM or base64 DER)."""

    certificate = text(90_000, _l("A certificate file is never this large; choose the certificate itself."),
                       required=True)  # fmt: skip


class CardBindingSchema(Schema):
    """A card bound to an account (never the holder's name or ID number)."""

    id = fields.Integer()
    user_id = fields.Integer()
    kind = fields.String()
    serial = fields.String()
    issuer = fields.String()
    fingerprint = fields.String()
    not_after = timestamp("not_after")
    created_at = timestamp("created_at")


challenge_schema = CardChallengeSchema()
login_schema = CardLoginSchema()
tls_login_schema = CardTlsLoginSchema()
certificate_schema = CardCertificateSchema()
binding_schema = CardBindingSchema()
