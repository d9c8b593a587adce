"""Online applications, in and out: the categories open to me (what each asks for), an
application (JSON; attachments as base64), its canonical content to sign, and the answer.
Used by the REST API (/api/v1/me/categories, /api/v1/me/applications) and the portal's pages."""

from __future__ import annotations

import base64
import binascii

from flask_babel import lazy_gettext as _l
from marshmallow import ValidationError, fields, post_load, validate, validates

from app.schemas.transfer import StrictSchema, messages, text, timestamp
from app.services.portal.applications import Application, ApplicationFile

BAD_FILE = _l("The file's content must be base64.")
TOO_MANY = _l("At most 10 attachments.")
BAD_TIME = _l("Give the time as in the canonical content, e.g. 2026-12-03T05:30:00Z.")
FIELD_VALUE = _l("A field's value is text, or an object with old and new for an old/new field.")


class FieldSpecSchema(StrictSchema):
    name = fields.String(metadata={"description": "The key in the application's fields"})
    label = fields.String()
    label_en = fields.String(allow_none=True)
    type = fields.String(metadata={"description": "text, textarea, date (YYYY-MM-DD) or number"})
    old_new = fields.Boolean(metadata={"description": 'Give {"old": ..., "new": ...}'})
    required = fields.Boolean()
    max_length = fields.Integer()
    help = fields.String(allow_none=True)


class SlotSpecSchema(StrictSchema):
    name = fields.String(metadata={"description": "The attachment's slot"})
    label = fields.String()
    label_en = fields.String(allow_none=True)
    types = fields.List(fields.String(), metadata={"description": "Of pdf, jpeg, png, tiff"})
    required = fields.Boolean()


class OpenCategorySchema(StrictSchema):
    """A category open to my online applications, and what it asks for."""

    id = fields.Integer()
    main_item = fields.String()
    sub_item = fields.String()
    description = fields.String(allow_none=True)
    applicant = fields.String(metadata={"description": "citizen or business"})
    agency_name = fields.String(metadata={"description": "The agency recorded as the notifier"})
    receivers = fields.List(fields.String(), metadata={"description": "The receiving agencies"})
    field_specs = fields.List(fields.Nested(FieldSpecSchema), attribute="fields", data_key="fields")
    attachments = fields.List(fields.Nested(SlotSpecSchema))


class OpenCategoryListSchema(StrictSchema):
    result = fields.List(fields.Nested(OpenCategorySchema))


class ApplicationFileSchema(StrictSchema):
    slot = text(40, required=True)
    filename = text(200, required=True)
    content = fields.String(
        required=True,
        error_messages=messages(invalid=BAD_FILE, required=BAD_FILE),
        metadata={"description": "The file, base64", "format": "byte"},
    )

    @post_load
    def decode(self, data, **kwargs):
        try:
            raw = base64.b64decode(data["content"], validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError(str(BAD_FILE), "content") from None
        return ApplicationFile(data["slot"], data["filename"], raw)


def field_value(value) -> None:
    """Text, or {"old": text, "new": text}."""
    if isinstance(value, str) and len(value) <= 2000:
        return
    if (
        isinstance(value, dict)
        and set(value) <= {"old", "new"}
        and all(isinstance(v, str) and len(v) <= 2000 for v in value.values())
    ):
        return
    raise ValidationError(str(FIELD_VALUE))


class ApplicationContentSchema(StrictSchema):
    """An application: what the card signs is its canonical content (POST .../applications/canonical)."""

    category = fields.Integer(strict=True, required=True, validate=validate.Range(min=1, max=2**31 - 1))
    values = fields.Dict(
        data_key="fields",
        keys=fields.String(validate=validate.Length(max=40)),
        values=fields.Raw(validate=field_value, metadata={"oneOf": [{"type": "string"}, {"type": "object"}]}),
        load_default=dict,
        metadata={"description": 'Each field by its key: text, or {"old", "new"} for an old/new field'},
    )
    email = text(200, load_default="")
    phone = text(20, load_default="")
    id_number = text(10, load_default="", metadata={"description": "Citizens: the full ID number bound to the card"})
    attachments = fields.List(fields.Nested(ApplicationFileSchema), load_default=list)
    time = fields.AwareDateTime(
        load_default=None,
        default_timezone=None,
        error_messages=messages(invalid=BAD_TIME),
        metadata={"description": "The canonical content's time (UTC); leave out to have it made now"},
    )

    @validates("attachments")
    def few(self, value, **kwargs):
        if len(value) > 10:
            raise ValidationError(str(TOO_MANY))

    @post_load
    def make(self, data, **kwargs):
        return Application(
            category=data["category"], fields=data["values"], email=data["email"], phone=data["phone"],
            id_number=data["id_number"], files=data["attachments"], time=data["time"],
        )  # fmt: skip


class SignedApplicationSchema(ApplicationContentSchema):
    """An application with the card's PKCS#7 (CMS SignedData, base64) over its canonical content."""

    signature = fields.String(
        required=True,
        validate=validate.Length(min=1, max=100_000),
        metadata={"description": "base64 PKCS#7 SignedData over the canonical content"},
    )

    @post_load
    def make(self, data, **kwargs):
        return super().make(data, **kwargs), data["signature"]


class CanonicalSchema(StrictSchema):
    """The canonical content to sign (UTF-8 JSON, sorted keys, no spaces) and its time."""

    content = fields.Function(lambda p: p.text, metadata={"type": "string", "description": "The exact text to sign"})
    content_base64 = fields.Function(lambda p: base64.b64encode(p.content).decode())
    time = timestamp("time")


class AppliedSchema(StrictSchema):
    case_no = fields.String(metadata={"description": "The registered case (see /api/v1/me/cases/{case_no})"})


content_schema = ApplicationContentSchema()
signed_schema = SignedApplicationSchema()
canonical_schema = CanonicalSchema()
open_category_schema = OpenCategorySchema()
open_category_list_schema = OpenCategoryListSchema()
applied_schema = AppliedSchema()
COMPONENTS = (OpenCategorySchema, OpenCategoryListSchema, ApplicationContentSchema, SignedApplicationSchema,
              CanonicalSchema, AppliedSchema)  # fmt: skip
