"""The transfer resources, in and out: one schema each, for the API and the screens.

Input is strict: unknown fields are refused, a boolean or text is not a
number, integers stay within 64 bits, text is bounded and holds no lone
surrogates. Output dumps the answers of ``app.services.transfer`` (already
shaped for the viewer: notes only for whom may see them).
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate

from app.services.transfer import TransferDraft

MAX_ID = 2**63 - 1
ISO = "%Y-%m-%dT%H:%M:%SZ"
ISO_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"
NOT_TEXT = _l("The text holds characters that cannot be stored.")


def storable(value: str) -> None:
    """Refuse text the database cannot store: a lone UTF-16 surrogate ("\\ud800") or a NUL character."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(str(NOT_TEXT)) from None
    if "\x00" in value:
        raise ValidationError(str(NOT_TEXT))


def _utc(value) -> str | None:
    return value.strftime(ISO) if value is not None else None


def timestamp(name: str, **kwargs) -> fields.Function:
    """A UTC time, dumped as ``2026-12-02T09:30:00Z``."""
    meta = {"type": "string", "format": "date-time", "example": "2026-12-02T09:30:00Z"}
    return fields.Function(lambda obj: _utc(getattr(obj, name)), metadata=meta, **kwargs)


def messages(**by_key) -> dict:
    """Field error messages, each a one-item list as marshmallow's own (a lazy text is not a str)."""
    return {key: [message] for key, message in by_key.items()}


def text(max_length: int, message=None, error_messages=None, **kwargs) -> fields.String:
    """A bounded text field that refuses what the database could not store."""
    too_long = message or _l("The text is too long.")
    own = {"invalid": _l("Write text here."), "required": _l("This field is required."), **(error_messages or {})}
    return fields.String(
        validate=[validate.Length(max=max_length, error=too_long), storable],
        error_messages=messages(**own),
        **kwargs,
    )


def identifier(message, **kwargs) -> fields.Integer:
    """A database id: a JSON integer (not a boolean, not text) between 1 and 2**63 - 1."""
    return fields.Integer(
        strict=True,
        validate=validate.Range(min=1, max=MAX_ID, error=message),
        error_messages=messages(invalid=message, required=message),
        **kwargs,
    )


class StrictSchema(Schema):
    """Unknown fields and anything but a JSON object are refused."""

    class Meta:
        unknown = RAISE

    error_messages = {"unknown": _l("Unknown field."), "type": _l("The request must be a JSON object.")}


# --- in -----------------------------------------------------------------------------------------


class TransferDraftSchema(StrictSchema):
    """Registering a transfer: the item, where the data comes from, how many records, who receives it."""

    item = identifier(_l("Choose an active transfer item."), required=True)
    source = text(200, _l("Name the sending source (at most 200 characters)."), required=True)
    record_count = fields.Integer(
        strict=True,
        required=True,
        validate=validate.Range(min=1, max=10**9, error=_l("The record count must be between 1 and 1,000,000,000.")),
        error_messages=messages(
            invalid=_l("The record count must be a whole number."),
            required=_l("The record count must be a whole number."),
        ),
    )
    upload_no = text(
        40,
        _l("The upload number may hold letters, digits, - and _ only (at most 40)."),
        load_default="",
    )
    remarks = text(2000, _l("The remarks are too long."), load_default="", allow_none=True)
    recipients = fields.List(
        identifier(_l("Choose the receiving staff from the list.")),
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=1000),
        error_messages=messages(invalid=_l("Recipients must be a list of certificate ids.")),
        metadata={"description": "Certificate ids of the receiving staff (default: every proposed one)."},
    )

    @post_load
    def draft(self, data, **_kwargs) -> TransferDraft:
        return TransferDraft(
            item_id=data["item"],
            source=data["source"],
            record_count=data["record_count"],
            upload_no=data.get("upload_no") or "",
            remarks=data.get("remarks") or "",
            recipient_cert_ids=data.get("recipients"),
        )


class TransferNotesSchema(StrictSchema):
    """The receiving agency's processing notes."""

    notes = text(4000, _l("Write the processing notes (at most 4,000 characters)."), required=True)


class StaffCertificateUploadSchema(StrictSchema):
    """A staff certificate as PEM text or base64 DER."""

    certificate = text(
        90_000,
        _l("A certificate file is never this large; choose the certificate itself."),
        required=True,
        error_messages={"required": _l('Send {"certificate": PEM text or base64 DER}.')},
    )


class TransferBoxQuerySchema(StrictSchema):
    """Which work list: outgoing, incoming, completed or all."""

    box = fields.String(
        load_default="all",
        validate=validate.OneOf(("outgoing", "incoming", "completed", "all"), error=_l("Unknown list.")),
    )


# --- out ----------------------------------------------------------------------------------------


class TransferPartySchema(Schema):
    code = fields.String()
    name = fields.String()


class TransferItemFactsSchema(Schema):
    id = fields.Integer()
    description = fields.String()
    ftp_allowed = fields.Boolean()


class TransferRecipientSchema(Schema):
    username = fields.String()
    name = fields.String()
    cert_sha256 = fields.String()


class TransferItemRecipientSchema(Schema):
    cert_id = fields.Integer(metadata={"description": "goes in the draft's recipients when registering"})
    username = fields.String()
    name = fields.String()
    cert_sha256 = fields.String()


class TransferUsableItemSchema(Schema):
    """A transfer item the caller's agency may send, and the receiving staff it may be encrypted for."""

    id = fields.Integer()
    description = fields.String()
    ftp_allowed = fields.Boolean()
    sending_agency = fields.Nested(TransferPartySchema)
    receiving_agency = fields.Nested(TransferPartySchema)
    recipients = fields.List(fields.Nested(TransferItemRecipientSchema))


class TransferFileSchema(Schema):
    channel = fields.String(allow_none=True)
    sha256 = fields.String(allow_none=True)
    size = fields.Integer(allow_none=True)


class TransferEventSchema(Schema):
    at = timestamp("at")
    agency = fields.String(allow_none=True)
    username = fields.String(allow_none=True)
    action = fields.String()
    note = fields.String(allow_none=True)


class TransferCaseSchema(Schema):
    """A transfer case as the viewer may see it (notes only for the receiver, or the sender once returned)."""

    id = fields.Integer()
    upload_no = fields.String()
    item = fields.Nested(TransferItemFactsSchema)
    sending_agency = fields.Nested(TransferPartySchema)
    receiving_agency = fields.Nested(TransferPartySchema)
    source = fields.String()
    record_count = fields.Integer()
    remarks = fields.String(allow_none=True)
    state = fields.String()
    sender = fields.String()
    receiver = fields.String(allow_none=True)
    recipients = fields.List(fields.Nested(TransferRecipientSchema))
    payload = fields.Nested(TransferFileSchema)
    result = fields.Nested(TransferFileSchema)
    notes = fields.String(allow_none=True)
    registered_at = timestamp("registered_at")
    uploaded_at = timestamp("uploaded_at", allow_none=True)
    received_at = timestamp("received_at", allow_none=True)
    processed_at = timestamp("processed_at", allow_none=True)
    result_received_at = timestamp("result_received_at", allow_none=True)
    allowed_actions = fields.List(fields.String())
    events = fields.List(fields.Nested(TransferEventSchema))


class StaffCertificateSchema(Schema):
    """A staff certificate as its owner sees it."""

    id = fields.Integer()
    serial = fields.String()
    subject = fields.String()
    issuer = fields.String()
    fingerprint = fields.String()
    usage = fields.List(fields.String())
    status = fields.String()
    status_reason = fields.String(allow_none=True)
    not_before = timestamp("not_before")
    not_after = timestamp("not_after")


draft_schema = TransferDraftSchema()
notes_schema = TransferNotesSchema()
certificate_upload_schema = StaffCertificateUploadSchema()
box_schema = TransferBoxQuerySchema()
case_schema = TransferCaseSchema()
cert_schema = StaffCertificateSchema()
usable_item_schema = TransferUsableItemSchema()
