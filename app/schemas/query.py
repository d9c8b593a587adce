"""The query capability's resources as the API and the screens take and give them.

Input is refused when it has unknown fields or wrong JSON types (a number
where text is expected is a 400, never coerced); lengths are bounded. The
bounds here are against abuse: the command itself refuses (and records) a
purpose or an input that breaks the form's own rules, with a clear message.
"""

from __future__ import annotations

import datetime
import json

from flask_babel import lazy_gettext as _l
from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate

from app.lib.rocdate import parse_roc

MAX_ID = 9223372036854775807  # 64-bit database ids
MAX_PARAM_VALUE = 10_000  # longer than any input, so the form's own check refuses and records it
MAX_PARAMS = 50


NOT_A_DAY = _l("Not a valid date (for example 115/11/26).")
NOT_TEXT = _l("The text holds characters that cannot be stored.")


def storable(value: str) -> None:
    """Refuse text the database cannot store: a lone UTF-16 surrogate or a NUL character."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(str(NOT_TEXT)) from None
    if "\x00" in value:
        raise ValidationError(str(NOT_TEXT))


def text(max_length: int, **kwargs) -> fields.String:
    """Bounded text that the database can store."""
    return fields.String(validate=[validate.Length(max=max_length), storable], **kwargs)


class _Strict(Schema):
    """Unknown fields and anything but a JSON object are refused."""

    class Meta:
        unknown = RAISE

    error_messages = {"unknown": _l("Unknown field."), "type": _l("The request must be a JSON object.")}


class QueryRunSchema(_Strict):
    """A query to run: the form, the purpose (case number or reason, and the
    business item) and the inputs by name, as text."""

    form = fields.String(required=True, validate=[validate.Length(min=1, max=60), storable])
    case_no = text(1000, allow_none=True, load_default=None)
    reason = text(2000, allow_none=True, load_default=None)
    business_item = text(1000, allow_none=True, load_default=None)
    params = fields.Dict(
        keys=fields.String(validate=[validate.Length(min=1, max=60), storable]),
        values=text(MAX_PARAM_VALUE, allow_none=True),
        allow_none=True,
        load_default=dict,
        validate=validate.Length(max=MAX_PARAMS),
    )

    pick = fields.List(
        fields.String(validate=[validate.Length(min=1, max=200), storable]),
        allow_none=True,
        load_default=None,
        validate=validate.Length(min=1, max=10),
        metadata={"description": "the property picked among the candidates of an earlier run (its pick values)"},
    )

    @post_load
    def _no_null_params(self, data, **kwargs):
        data["params"] = data.get("params") or {}
        return data


class QueryPageSchema(_Strict):
    """The query page's form: the purpose; the inputs are the other fields
    (``split_page_form`` separates them)."""

    case_no = text(1000, load_default="")
    reason = text(2000, load_default="")
    business_item = text(1000, load_default="")
    params = fields.Dict(
        keys=fields.String(validate=[validate.Length(min=1, max=60), storable]),
        values=text(MAX_PARAM_VALUE),
        load_default=dict,
        validate=validate.Length(max=MAX_PARAMS),
    )
    pick = text(2000, load_default="", metadata={"description": "the picked candidate, as JSON"})

    @post_load
    def _pick(self, data, **kwargs):
        raw = data.get("pick") or ""
        try:
            pick = json.loads(raw) if raw else None
        except ValueError:
            pick = False
        if pick is not None and not (isinstance(pick, list) and all(isinstance(v, str) for v in pick)):
            raise ValidationError("not a list of values", "pick")
        data["pick"] = pick
        return data


def split_page_form(form) -> dict:
    """The page's posted fields as QueryPageSchema's input (the CSRF token left out;
    ``_pick``, the candidate picked, apart from the inputs)."""
    purpose = ("case_no", "reason", "business_item")
    data = {k: form.get(k, "") for k in purpose}
    data["pick"] = form.get("_pick", "")
    data["params"] = {k: v for k, v in form.items() if k not in purpose and k not in ("csrf_token", "_pick")}
    return data


class SectionAnswerSchema(Schema):
    title = fields.String()
    columns = fields.List(fields.String(), metadata={"description": "the labels of the visible columns"})
    rows = fields.List(fields.List(fields.String()), metadata={"description": "formatted and masked values"})
    error = fields.String(allow_none=True)
    truncated = fields.Boolean()
    groups = fields.List(
        fields.Dict(),
        metadata={"description": "with group_by: each group's title and count of rows, in the order of the rows"},
    )
    display = fields.String(metadata={"description": "table, fields, map or plan"})
    map = fields.Dict(
        metadata={
            "description": "display map: epsg, crs, parcels (label, rings in the projection's metres, area m², "
            "hit: a parcel of the result, else a neighbour), notes (what could not be drawn, and why), cut"
        }
    )
    plan = fields.Dict(
        metadata={
            "description": "display plan: floors (floor, parts: part, main, rings in metres, area m² computed, "
            "registered; total), main_total, annex_total, registered_total, site (the location plan's parcel), notes"
        }
    )


class CandidateSchema(Schema):
    pick = fields.List(fields.String(), metadata={"description": "send back as pick to run for this property"})
    values = fields.List(fields.String(), metadata={"description": "what identifies it (section, number, township)"})


class CandidatesAnswerSchema(Schema):
    title = fields.String()
    columns = fields.List(fields.String())
    rows = fields.List(fields.Nested(CandidateSchema))
    truncated = fields.Boolean()


class QueryRunAnswerSchema(Schema):
    """A query just run: its id, the printout's verification code, the outcome
    (ok, partial, source_error) and each section as shown."""

    query_id = fields.Integer()
    verification_code = fields.String()
    outcome = fields.String()
    sections = fields.List(fields.Nested(SectionAnswerSchema))
    candidates = fields.Nested(
        CandidatesAnswerSchema,
        metadata={"description": "outcome candidates: the properties the inputs match; run again with a pick"},
    )


def run_answer(run) -> dict:
    sections = [
        {
            "title": s["title"],
            "columns": [c["label"] for c in s["columns"]],
            "rows": s["rows"],
            "error": s["error"],
            "truncated": s["truncated"],
            "display": s.get("display") or "table",
            **({"groups": s["groups"]} if s.get("groups") else {}),
            **{k: s[k] for k in ("map", "plan") if isinstance(s.get(k), dict)},
        }
        for s in run.snapshot["sections"]
    ]
    answer = {"query_id": run.id, "verification_code": run.verification_code, "outcome": run.outcome,
              "sections": sections}  # fmt: skip
    if run.snapshot.get("candidates"):
        answer["candidates"] = run.snapshot["candidates"]
    return _RUN_ANSWER.dump(answer)


# Built once: a schema's construction copies its fields (marshmallow's
# documented use is one instance reused across calls; these hold no state).
_RUN_ANSWER = QueryRunAnswerSchema()


class InputChoiceSchema(Schema):
    value = fields.String()
    label = fields.String()


class FormInputAnswerSchema(Schema):
    name = fields.String()
    label = fields.String()
    type = fields.String()
    required = fields.Boolean()
    choices = fields.List(
        fields.Nested(InputChoiceSchema),
        metadata={"description": "land_section inputs: the sections of the source (send the value: a code or a 段)"},
    )


class BusinessItemAnswerSchema(Schema):
    code = fields.String()
    name = fields.String()


class QueryFormAnswerSchema(Schema):
    """A form the caller may run: its inputs and allowed business items."""

    code = fields.String()
    title = fields.String()
    inputs = fields.List(fields.Nested(FormInputAnswerSchema))
    business_items = fields.List(fields.Nested(BusinessItemAnswerSchema))


class QueryFormListSchema(Schema):
    result = fields.List(fields.Nested(QueryFormAnswerSchema))


def forms_answer(plans, items: dict, section_lists: dict | None = None) -> dict:
    """``items``: per form code, the business items offered to the caller's agency;
    ``section_lists``: per form code, per land_section input, the sections offered (value, label)."""
    section_lists = section_lists or {}

    def inputs(p):
        lists = section_lists.get(p.code, {})
        return [
            {"name": i.name, "label": i.label, "type": i.type, "required": i.required,
             **({"choices": [{"value": v, "label": str(t)} for v, t in lists[i.name]]} if i.name in lists else {})}
            for i in p.inputs
        ]  # fmt: skip

    forms = [
        {
            "code": p.code,
            "title": p.title,
            "inputs": inputs(p),
            "business_items": items[p.code],
        }
        for p in plans
    ]
    return QueryFormListSchema().dump({"result": forms})


def parse_day(text: str | None) -> datetime.date | None:
    """A day typed as a ROC date (115/11/26) or an ISO one (2026-11-26); None when blank."""
    text = (text or "").strip()
    if not text:
        return None
    return parse_roc(text) if "-" not in text else datetime.date.fromisoformat(text)


def _a_day(value: str) -> None:
    try:
        parse_day(value)
    except ValueError:
        raise ValidationError(str(NOT_A_DAY)) from None


class HistoryQuerySchema(_Strict):
    """The history's filters (query string): form, case number or words of
    the reason, Taipei days from/to, everyone's (auditors only), how many."""

    form = fields.String(validate=validate.Length(max=60))
    case_no = fields.String(validate=validate.Length(max=60))
    date_from = fields.String(data_key="from", validate=[validate.Length(max=20), _a_day])
    date_to = fields.String(data_key="to", validate=[validate.Length(max=20), _a_day])
    everyone = fields.String(validate=validate.OneOf(["", "0", "1"]))
    limit = fields.Integer(validate=validate.Range(min=1, max=200))

    @post_load
    def _as_filters(self, data, **kwargs):
        return {
            "form_code": (data.get("form") or "").strip() or None,
            "case_no": (data.get("case_no") or "").strip() or None,
            "date_from": parse_day(data.get("date_from")),
            "date_to": parse_day(data.get("date_to")),
            "everyone": data.get("everyone") == "1",
            "limit": data.get("limit", 50),
        }


class HistoryRowSchema(Schema):
    """One query of the history; ``user`` and ``agency`` only on others' queries."""

    query_id = fields.Integer()
    at = fields.String(metadata={"description": "UTC, ISO 8601"})
    form = fields.String()
    case_no = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    business_item = fields.String(allow_none=True)
    outcome = fields.String()
    row_count = fields.Integer(allow_none=True)
    user = fields.String()
    agency = fields.String(allow_none=True)


class HistoryAnswerSchema(Schema):
    result = fields.List(fields.Nested(HistoryRowSchema))


def history_answer(entries, who) -> dict:
    rows = []
    for entry in entries:
        row = {
            "query_id": entry.id,
            "at": entry.at.isoformat(timespec="seconds") + "Z",
            "form": entry.form_code,
            "case_no": entry.case_no,
            "reason": entry.reason,
            "business_item": entry.business_item,
            "outcome": entry.outcome,
            "row_count": entry.row_count,
        }
        if entry.user_id != who.user_id:
            row.update(user=entry.username, agency=entry.agency_code)
        rows.append(row)
    return HistoryAnswerSchema().dump({"result": rows})


class StoredResultAnswerSchema(Schema):
    """A stored result exactly as it was shown (the snapshot), with its code."""

    query_id = fields.Integer()
    verification_code = fields.String(allow_none=True)
    result = fields.Dict(metadata={"description": "the snapshot: form, title, at, agency, user, purpose, sections"})


def stored_answer(entry, snapshot: dict) -> dict:
    return StoredResultAnswerSchema().dump(
        {"query_id": entry.id, "verification_code": entry.verification_code, "result": snapshot}
    )


class VerifyAnswerSchema(Schema):
    """What a printout's verification code confirms (no personal data)."""

    valid = fields.Boolean()
    verification_code = fields.String()
    agency = fields.String(allow_none=True)
    form = fields.String(allow_none=True)
    issued_at = fields.String(allow_none=True)
    valid_until = fields.String(allow_none=True)
    sha256 = fields.String()


class VerifyRefusedSchema(Schema):
    valid = fields.Boolean()
    message = fields.String()
