"""Cross-agency notification: the registration body, the dispatch action
body and the answers (categories, cases, dispatches, work lists), for the
API and the screens alike.

Unknown fields are refused; a boolean is not an id; integers are bounded to
64 bits and texts in length; texts with lone surrogates are refused.
"""

from __future__ import annotations

import base64
import binascii
import datetime

from flask_babel import lazy_gettext as _l
from marshmallow import Schema, ValidationError, fields, post_load, validate

from app.lib import identifiers
from app.lib.rocdate import format_roc, parse_roc
from app.models.notify import DISPATCH_STATES
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
    contact_by = fields.String(
        load_default="",
        validate=validate.OneOf(("", *notify.CONTACT_WAYS)),
        metadata={"description": "how the citizen is told of progress: email (default with an e-mail), "
                  "else phone or postal notice, recorded on the case's timeline"},
    )  # fmt: skip

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
    field_values = fields.Dict(
        data_key="fields",
        keys=text(40),
        values=fields.Raw(),
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=50),
        metadata={"description": "the category's structured fields: name -> text, or {old, new} for a pair; "
                  "checked against the category's declaration when given"},
    )  # fmt: skip
    case_no = text(
        20,
        load_default=None,
        allow_none=True,
        metadata={"description": "the case number a lookup in the household register took for this case"},
    )

    @post_load
    def make(self, data, **kwargs) -> notify.CaseDraft:
        return notify.CaseDraft(
            category=data["category"],
            citizen=data["citizen"],
            content=data["content"],
            receivers=data["receivers"],
            uploads=data["attachments"],
            fields=data["field_values"],
            case_no=data["case_no"],
        )


class CitizenLookupSchema(Schema):
    """POST /api/v1/cases/lookup and the new-case page's lookup button."""

    category = id_or_text("its id or 'main item/sub item'", required=True)
    id_no = text(20, required=True)
    case_no = text(20, load_default=None, allow_none=True, metadata={"description": "the number an earlier lookup "
                   "of the same registration took"})  # fmt: skip


class CitizenFoundSchema(Schema):
    case_no = fields.String(metadata={"description": "the number the case is to be registered with"})
    query_id = fields.Integer(allow_none=True)
    found = fields.Boolean()
    name = fields.String()
    address = fields.String()
    household_no = fields.String()
    error = fields.String()


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


def _choice(value, choices, message) -> str | None:
    """One of ``choices``; None for blank."""
    if value is None or value == "":
        return None
    if value not in choices:
        raise ValidationError(str(message))
    return value


def _whole(value, maximum: int, message) -> int | None:
    """A whole number from JSON (an integer) or a form (digits); None for blank."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) < 19:
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= maximum:
        raise ValidationError(str(message))
    return value


def _day(value, which):
    """An ROC date (115/11/01) or an ISO one (2026-11-01); None for blank."""
    text = value.strip() if isinstance(value, str) else None
    if text is None:
        raise ValidationError(str(_l("The %(which)s date is not a date like 115/11/01.", which=which)))
    if not text:
        return None
    try:
        return parse_roc(text)
    except ValueError:
        try:
            return datetime.date.fromisoformat(text)
        except ValueError:
            raise ValidationError(str(_l("The %(which)s date is not a date like 115/11/01.", which=which))) from None


def _flag(value) -> bool:
    """A tick: true/false from JSON, or a form's checkbox ("on", "1", "true", or absent/blank)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("", "0", "false", "off", "1", "true", "on", "yes"):
        return value.strip().lower() in ("1", "true", "on", "yes")
    raise ValidationError(str(_l("Tick it or leave it unticked.")))


_DATE = {"type": "string", "description": "an ROC date (115/11/01) or an ISO one (2026-11-01)", "maxLength": 10}


class CaseSearchSchema(Schema):
    """POST /api/v1/cases/search and the case search page: every criterion optional
    (none: the newest cases the caller may see); closed cases are included."""

    case_no = text(20, load_default="", metadata={"description": "the exact case number"})
    id_no = text(20, load_default="", metadata={"description": "the citizen's ID number (found by its keyed hash)"})
    name = text(60, load_default="", metadata={"description": "the citizen's full name, exact (spaces ignored)"})
    category = fields.Raw(load_default=None, allow_none=True, metadata={"type": "integer", "minimum": 1})
    status = fields.Raw(
        load_default=None, allow_none=True,
        metadata={"type": "string", "enum": list(notify.CASE_STATUSES), "description": "the case's"},
    )  # fmt: skip
    state = fields.Raw(
        load_default=None, allow_none=True,
        metadata={"type": "string", "enum": list(DISPATCH_STATES), "description": "that of a dispatch the caller sees"},
    )  # fmt: skip
    date_from = fields.Raw(load_default="", metadata={**_DATE, "description": "registered on or after"})
    date_to = fields.Raw(load_default="", metadata={**_DATE, "description": "registered on or before"})
    overdue = fields.Raw(load_default=False, metadata={"type": "boolean", "description": "open and past due"})
    page = fields.Raw(load_default=1, metadata={"type": "integer", "minimum": 1, "maximum": 10000})

    @post_load
    def make(self, data, **kwargs) -> notify.Criteria:
        errors, values = {}, {}
        checks = {
            "category": lambda v: _whole(v, MAX_ID, _l("Choose a category from the list.")),
            "status": lambda v: _choice(v, notify.CASE_STATUSES, _l("Choose a case status from the list.")),
            "state": lambda v: _choice(v, DISPATCH_STATES, _l("Choose a dispatch state from the list.")),
            "date_from": lambda v: _day(v, _l("start")),
            "date_to": lambda v: _day(v, _l("end")),
            "overdue": _flag,
            "page": lambda v: _whole(v, 10_000, _l("The page is not a page number.")) or 1,
        }
        for key, check in checks.items():
            try:
                values[key] = check(data[key])
            except ValidationError as exc:
                errors[key] = exc.messages
        id_no = data["id_no"].strip().upper()
        if id_no and not identifiers.is_person_id(id_no):
            errors["id_no"] = [str(_l("The ID number is not valid (check the format and the check digit)."))]
        if values.get("date_from") and values.get("date_to") and values["date_to"] < values["date_from"]:
            errors["date_to"] = [str(_l("The date range ends before it begins."))]
        if errors:
            raise ValidationError(errors)
        return notify.Criteria(case_no=data["case_no"].strip(), id_no=id_no, name=data["name"].strip(), **values)


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
    contact_by = fields.String(metadata={"description": "how the citizen is told of progress: email, phone, postal"})


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


class AgencyStateSchema(Schema):
    agency = fields.Nested(AgencyRefSchema)
    state = fields.String()


class SearchRowSchema(Schema):
    case_no = fields.String()
    category = fields.Pluck(CategoryLabelSchema, "label", metadata={"description": "main item－sub item"})
    notifying_agency = fields.Nested(AgencyRefSchema, allow_none=True)
    status = fields.String()
    overdue = fields.Boolean()
    created_at = timestamp("created_at")
    created_roc = fields.Function(lambda row: format_roc(row.created_at), metadata={"type": "string"})
    due_at = timestamp("due_at", allow_none=True)
    completed_at = timestamp("completed_at", allow_none=True)
    dispatches = fields.List(fields.Nested(AgencyStateSchema), metadata={"description": "those the caller may see"})
    linked = fields.Boolean(metadata={"description": "the caller may open the case (GET /api/v1/cases/{case_no})"})


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


class CaseSearchAnswerSchema(Schema):
    count = fields.Integer()
    page = fields.Integer()
    more = fields.Boolean()
    result = fields.List(fields.Nested(SearchRowSchema), attribute="items")


COMPONENTS = (
    CaseSearchSchema,
    CaseSearchAnswerSchema,
    CaseRegistrationSchema,
    CitizenLookupSchema,
    CitizenFoundSchema,
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
