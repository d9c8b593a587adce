"""The portal's resources, in and out: my cases (a dispatch and the timeline as the
person may see them), who read my data (an entry), a flag and an Auditor's answer.
Used by the REST API (/api/v1/me/) and the portal's pages alike."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from marshmallow import Schema, fields, validate

from app.schemas.transfer import StrictSchema, text, timestamp

TOO_LONG = _l("Say it in at most 500 characters.")


class MyDispatchSchema(Schema):
    """A receiving agency's progress: its state and dates (never who)."""

    agency_name = fields.String()
    state = fields.String(metadata={"description": "sent, received, assigned, accepted, processed or closed"})
    sent_at = timestamp("sent_at")
    received_at = timestamp("received_at")
    accepted_at = timestamp("accepted_at")
    processed_at = timestamp("processed_at")
    closed_at = timestamp("closed_at")
    due_at = timestamp("due_at")
    result = fields.String(allow_none=True, metadata={"description": "The result, when the agency published it"})


class MyEventSchema(Schema):
    at = timestamp("at")
    agency_name = fields.String(allow_none=True)
    action = fields.String()


class MyCaseSchema(Schema):
    """One of my cases: where it went and how far each agency is."""

    case_no = fields.String()
    category = fields.String()
    notifying_agency = fields.String(allow_none=True)
    status = fields.String(metadata={"description": "open, completed or withdrawn"})
    created_at = timestamp("created_at")
    due_at = timestamp("due_at")
    completed_at = timestamp("completed_at")
    withdrawable = fields.Boolean(metadata={"description": "No agency has accepted it yet"})
    mail_stages = fields.List(
        fields.String(), metadata={"description": "The stages that e-mail me, of accepted, dispatch_closed, completed"}
    )
    mail_choices = fields.List(
        fields.String(), metadata={"description": "The stages I may turn on or off: those the category mails at all"}
    )
    dispatches = fields.List(fields.Nested(MyDispatchSchema))
    events = fields.List(fields.Nested(MyEventSchema), metadata={"description": "The timeline (one case only)"})


class MyCaseListSchema(Schema):
    result = fields.List(fields.Nested(MyCaseSchema))


class MyAccessSchema(Schema):
    """One query of my data: when, which agency, which form and business item, whether a case
    number or a reason was given; never the official nor the other subjects."""

    id = fields.Integer()
    at = timestamp("at")
    agency_code = fields.String(allow_none=True)
    agency_name = fields.String(allow_none=True)
    form_title = fields.String(allow_none=True)
    business_item = fields.String(allow_none=True)
    case_no_given = fields.Boolean()
    reason_given = fields.Boolean()
    flagged_at = timestamp("flagged_at")
    answer_due = timestamp("answer_due")
    answer = fields.String(allow_none=True, metadata={"description": "The querying agency's Auditor's answer"})
    answered_at = timestamp("answered_at")


class MyAccessListSchema(Schema):
    """A page of who read my data, newest first."""

    result = fields.List(fields.Nested(MyAccessSchema))
    page = fields.Integer()
    next_page = fields.Integer(allow_none=True, metadata={"description": "The next (older) page; null on the last"})


class AccessFlagSchema(StrictSchema):
    """ "I don't recognise this": optionally, what the person wants to say."""

    note = text(500, TOO_LONG, load_default=None, allow_none=True)


class FlagAnswerSchema(StrictSchema):
    """The Auditor's answer, shown to the person."""

    answer = text(2000, _l("Say it in at most 2000 characters."), required=True)


class MailStagesSchema(StrictSchema):
    """The stages of my case that e-mail me (the others are turned off)."""

    stages = fields.List(
        text(20),
        required=True,
        validate=validate.Length(max=10),
        metadata={"description": "Of accepted, dispatch_closed, completed"},
    )


my_case_schema = MyCaseSchema()
mail_stages_schema = MailStagesSchema()
my_case_list_schema = MyCaseListSchema()
my_access_schema = MyAccessSchema()
my_access_list_schema = MyAccessListSchema()
access_flag_schema = AccessFlagSchema()
flag_answer_schema = FlagAnswerSchema()
COMPONENTS = (MyCaseSchema, MyCaseListSchema, MyAccessSchema, MyAccessListSchema, AccessFlagSchema, MailStagesSchema)
