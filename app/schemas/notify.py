"""Cross-agency notification: the registration body, the dispatch action
body and the answers (categories, cases, dispatches, work lists), for the
API and the screens alike.

Unknown fields are refused; a boolean is not an id; integers are bounded to
64 bits and texts in length; texts with lone surrogates are refused.
"""

from __future__ import annotations

import base64
import binascii

from flask_babel import lazy_gettext as _l
from marshmallow import Schema, ValidationError, fields, post_load, validate

from app.services import notify

MAX_ID = 2**63 - 1
ISO = "%Y-%m-%dT%H:%M:%SZ"  # naive UTC timestamps, as the platform stores them
ID_OR_TEXT = {"oneOf": [{"type": "integer", "minimum": 1, "maximum": MAX_ID}, {"type": "string", "maxLength": 200}]}


def _no_surrogates(value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(str(_l("The text holds characters that cannot be stored."))) from exc


def text(max_length: int, **kwargs) -> fields.String:
    return fields.String(validate=[validate.Length(max=max_length), _no_surrogates], **kwargs)


def _id_or_text(value) -> None:
    """An id (an integer, never a boolean) or a text such as a code or "main item/sub item"."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValidationError(str(_l("Give an id (a number) or a code (a text).")))
    if isinstance(value, int) and not 0 < value <= MAX_ID:
        raise ValidationError(str(_l("No such id.")))
    if isinstance(value, str):
        if len(value) > 200:
            raise ValidationError(str(_l("The text is too long.")))
        _no_surrogates(value)


def id_or_text(description: str | None = None, **kwargs) -> fields.Raw:
    metadata = {**ID_OR_TEXT, "description": description} if description else ID_OR_TEXT
    return fields.Raw(validate=_id_or_text, metadata=metadata, **kwargs)


def _iso(value) -> str | None:
    return value.strftime(ISO) if value is not None else None


def timestamp(attribute: str, **kwargs) -> fields.Function:
    """The result's UTC time ``attribute`` as 2026-12-02T08:30:00Z (answers only)."""
    return fields.Function(
        lambda obj: _iso(getattr(obj, attribute)), metadata={"type": "string", "format": "date-time"}, **kwargs
    )


# --- input ----------------------------------------------------------------------------------


class CitizenSchema(Schema):
    name = text(200, load_default="")
    id_no = text(20, load_default="")
    email = text(254, load_default="")
    phone = text(40, load_default="")
    address = text(400, load_default="")

    @post_load
    def make(self, data, **kwargs) -> notify.Citizen:
        return notify.Citizen(**data)


class AttachmentInSchema(Schema):
    filename = text(255, required=True)
    content_base64 = fields.String(required=True, validate=validate.Length(max=64 * 1024 * 1024))
    kind = fields.String(load_default="other", validate=validate.OneOf(("consent", "other")))

    @post_load
    def make(self, data, **kwargs) -> notify.Upload:
        try:
            content = base64.b64decode(data["content_base64"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValidationError(str(_l("An attachment is not valid base64.")), "content_base64") from exc
        return notify.Upload(data["filename"] or "upload", content, data["kind"])


class CaseRegistrationSchema(Schema):
    """POST /api/v1/cases/ and the new-case page."""

    category = id_or_text("its id or 'main item/sub item'", required=True)
    citizen = fields.Nested(CitizenSchema, load_default=lambda: notify.Citizen())
    content = text(20000, load_default="")
    receivers = fields.List(
        id_or_text(),
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=200),
        metadata={"description": "agency ids or codes; the category's defaults when absent"},
    )
    attachments = fields.List(fields.Nested(AttachmentInSchema), load_default=list, validate=validate.Length(max=20))

    @post_load
    def make(self, data, **kwargs) -> notify.CaseDraft:
        return notify.CaseDraft(
            category=data["category"],
            citizen=data["citizen"],
            content=data["content"],
            receivers=data["receivers"],
            uploads=data["attachments"],
        )


class DispatchActionSchema(Schema):
    """POST /api/v1/dispatches/<id>/<action> and the dispatch page's forms."""

    version = fields.Integer(strict=True, allow_none=True, load_default=None, validate=validate.Range(0, MAX_ID))
    handler = id_or_text(allow_none=True, load_default=None)
    result = text(8000, allow_none=True, load_default=None)
    control_type = text(20, allow_none=True, load_default=None)
    notes = text(8000, allow_none=True, load_default=None)
    reason = text(8000, allow_none=True, load_default=None)
    publish_result = fields.Boolean(
        allow_none=True, load_default=None, metadata={"description": "process: show the result to the applicant"}
    )

    @post_load
    def make(self, data, **kwargs) -> notify.Action:
        return notify.Action(**data)


# --- answers -----------------------------------------------------------------------------


class AgencyRefSchema(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()


class PersonSchema(Schema):
    id = fields.Integer()
    username = fields.String()
    full_name = fields.String()


class CategoryRefSchema(Schema):
    id = fields.Integer()
    main_item = fields.String()
    sub_item = fields.String()
    kind = fields.String()


class CategorySchema(Schema):
    id = fields.Integer()
    main_item = fields.String()
    sub_item = fields.String()
    kind = fields.String()
    consent_required = fields.Boolean()
    due_days = fields.Integer(allow_none=True)
    description = fields.String(allow_none=True)
    default_receivers = fields.List(fields.Nested(AgencyRefSchema))


class DispatchSchema(Schema):
    id = fields.Integer()
    case_no = fields.String()
    category = fields.Nested(CategoryRefSchema)
    notifying_agency = fields.Nested(AgencyRefSchema, allow_none=True)
    agency = fields.Nested(AgencyRefSchema)
    state = fields.String()
    version = fields.Integer()
    sent_at = timestamp("sent_at", allow_none=True)
    sent_by = fields.String(allow_none=True)
    received_at = timestamp("received_at", allow_none=True)
    received_by = fields.String(allow_none=True)
    assigned_at = timestamp("assigned_at", allow_none=True)
    assigned_by = fields.String(allow_none=True)
    handler = fields.Pluck(PersonSchema, "username", allow_none=True)
    accepted_at = timestamp("accepted_at", allow_none=True)
    processed_at = timestamp("processed_at", allow_none=True)
    closed_at = timestamp("closed_at", allow_none=True)
    returned_at = timestamp("returned_at", allow_none=True)
    result = fields.String(allow_none=True)
    control_type = fields.String(allow_none=True)
    notes = fields.String(allow_none=True)
    return_reason = fields.String(allow_none=True)
    due_at = timestamp("due_at", allow_none=True)
    overdue = fields.Boolean()
    allowed_actions = fields.List(fields.String())


class CitizenViewSchema(Schema):
    name = fields.String()
    id_no = fields.String(metadata={"description": "masked (******6789) unless the viewer's agency notified"})
    email = fields.String(allow_none=True, metadata={"description": "null unless the viewer's agency notified"})
    phone = fields.String()
    address = fields.String()


class AttachmentSchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    filename = fields.String()
    mime = fields.String()
    size = fields.Integer()
    sha256 = fields.String()
    stamped = fields.Boolean()


class EventSchema(Schema):
    at = timestamp("at")
    at_roc = fields.String()
    user = fields.String(attribute="username", allow_none=True)
    agency = fields.String(attribute="agency_code", allow_none=True)
    action = fields.String()
    note = fields.String(allow_none=True)


class CaseSchema(Schema):
    case_no = fields.String()
    category = fields.Nested(CategoryRefSchema)
    notifying_agency = fields.Nested(AgencyRefSchema, allow_none=True)
    registered_by = fields.Nested(PersonSchema, allow_none=True)
    status = fields.String()
    created_at = timestamp("created_at")
    due_at = timestamp("due_at", allow_none=True)
    completed_at = timestamp("completed_at", allow_none=True)
    overdue = fields.Boolean()
    citizen = fields.Nested(CitizenViewSchema)
    content = fields.String()
    attachments = fields.List(fields.Nested(AttachmentSchema))
    dispatches = fields.List(fields.Nested(DispatchSchema))
    events = fields.List(fields.Nested(EventSchema))


class CategoryLabelSchema(Schema):
    label = fields.String()


class CaseRowSchema(Schema):
    case_no = fields.String()
    status = fields.String()
    overdue = fields.Boolean()
    category = fields.Pluck(CategoryLabelSchema, "label", metadata={"description": "main item－sub item"})
    created_at = timestamp("created_at")
    due_at = timestamp("due_at", allow_none=True)


class AttachmentCheckSchema(Schema):
    id = fields.Integer()
    case_no = fields.String()
    filename = fields.String()
    kind = fields.String()
    sha256 = fields.String()
    intact = fields.Boolean()


# --- envelopes (what the API answers) --------------------------------------------------------------


class MessageSchema(Schema):
    message = fields.String()


class CategoryListSchema(Schema):
    result = fields.List(fields.Nested(CategorySchema))


class CaseAnswerSchema(Schema):
    result = fields.Nested(CaseSchema)


class CaseRegisteredSchema(Schema):
    case_no = fields.String()
    result = fields.Nested(CaseSchema)


class DispatchAnswerSchema(Schema):
    result = fields.Nested(DispatchSchema)


class _WorklistSchema(Schema):
    count = fields.Integer()
    overdue = fields.Integer()
    page = fields.Integer()
    more = fields.Boolean()


class CaseWorklistSchema(_WorklistSchema):
    result = fields.List(fields.Nested(CaseRowSchema), attribute="items")


class DispatchWorklistSchema(_WorklistSchema):
    result = fields.List(fields.Nested(DispatchSchema), attribute="items")


COMPONENTS = (
    CaseRegistrationSchema,
    DispatchActionSchema,
    CategoryListSchema,
    CaseAnswerSchema,
    CaseRegisteredSchema,
    DispatchAnswerSchema,
    CaseWorklistSchema,
    DispatchWorklistSchema,
    AttachmentCheckSchema,
    MessageSchema,
)
