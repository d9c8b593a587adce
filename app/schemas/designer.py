"""The form designer's resource: a whole query form as one document (the page and the API).

A draft holds the form's fields, its grants (ids of agencies, roles and
business items), its inputs, and its sections with their filters and output
columns. Lengths are bounded against abuse; the designer service checks the
rest (names, the sources' tables and columns) with messages in the reader's
language. ``split_page_form`` turns the designer page's posted fields
(``inputs-0-name``, ``sections-1-columns-2-label``...) into the same document.
"""

from __future__ import annotations

import re

from marshmallow import fields, validate

from app.connectors.base import OPERATORS
from app.models.queries import DISPLAYS, FORMATS, INPUT_TYPES, MASKS
from app.schemas.query import MAX_ID, MAX_PARAM_VALUE, MAX_PARAMS, _Strict, storable, text

MAX_INPUTS = 30
MAX_SECTIONS = 20
MAX_FILTERS = 20
MAX_COLUMNS = 80
MAX_GRANTS = 200


def _id(**kwargs) -> fields.Integer:
    return fields.Integer(strict=True, validate=validate.Range(min=1, max=MAX_ID), **kwargs)


def _ids() -> fields.List:
    return fields.List(_id(), load_default=list, validate=validate.Length(max=MAX_GRANTS))


def _row_id() -> fields.Integer:
    return _id(load_default=None, allow_none=True, metadata={
        "description": "the stored row's id (the definition gives it): the row is changed in place; a row "
                       "without one is added, and a stored row the document leaves out is removed"})  # fmt: skip


class DesignInputSchema(_Strict):
    id = _row_id()
    name = text(40, required=True)
    label = text(100, required=True)
    type = fields.String(load_default="text", validate=validate.OneOf(INPUT_TYPES))
    required = fields.Boolean(load_default=True)
    pattern = text(200, load_default=None, allow_none=True)
    choices = text(5000, load_default=None, allow_none=True)
    max_length = fields.Integer(strict=True, load_default=64, validate=validate.Range(min=1, max=200))
    help_text = text(200, load_default=None, allow_none=True)


class DesignFilterSchema(_Strict):
    """``column <op> input`` (one of the form's inputs, by name) or ``column <op> constant``."""

    id = _row_id()
    column = text(100, required=True)
    op = fields.String(load_default="eq", validate=validate.OneOf(OPERATORS))
    input = text(40, load_default="", metadata={"description": "the name of one of the form's inputs"})
    constant = text(200, load_default="")


class DesignColumnSchema(_Strict):
    id = _row_id()
    column = text(100, required=True, metadata={"description": "a column the source's description offers"})
    label = text(100, required=True)
    mask = fields.String(load_default="", validate=validate.OneOf(MASKS))
    format = fields.String(load_default="", validate=validate.OneOf(FORMATS))
    agencies = _ids()


class DesignSectionSchema(_Strict):
    id = _row_id()
    title = text(100, required=True)
    source = _id(required=True, metadata={"description": "the data source's id"})
    target = text(200, load_default="", metadata={"description": "a table, view, file, resource or transaction the source's description offers"})  # fmt: skip
    order_by = text(200, load_default="")
    display = fields.String(load_default="table", validate=validate.OneOf(DISPLAYS))
    options = text(10_000, load_default="", metadata={"description": "JSON object, kind-specific"})
    filters = fields.List(fields.Nested(DesignFilterSchema), load_default=list, validate=validate.Length(max=MAX_FILTERS))  # fmt: skip
    columns = fields.List(fields.Nested(DesignColumnSchema), load_default=list, validate=validate.Length(max=MAX_COLUMNS))  # fmt: skip


class FormDesignSchema(_Strict):
    """A whole query form, as the designer saves it in one go."""

    code = text(60, required=True)
    title = text(100, required=True)
    description = text(2000, load_default="")
    agency = _id(load_default=None, allow_none=True, metadata={"description": "the owner agency's id"})
    active = fields.Boolean(load_default=True)
    sort_order = fields.Integer(strict=True, load_default=0, validate=validate.Range(min=-100000, max=100000))
    granted_agencies = _ids()
    granted_roles = _ids()
    business_items = _ids()
    inputs = fields.List(fields.Nested(DesignInputSchema), load_default=list, validate=validate.Length(max=MAX_INPUTS))
    sections = fields.List(fields.Nested(DesignSectionSchema), load_default=list, validate=validate.Length(max=MAX_SECTIONS))  # fmt: skip


class DesignTrySchema(_Strict):
    """A draft to try with sample input (nothing is saved)."""

    form = fields.Nested(FormDesignSchema, required=True)
    params = fields.Dict(
        keys=fields.String(validate=[validate.Length(min=1, max=60), storable]),
        values=text(MAX_PARAM_VALUE),
        load_default=dict,
        validate=validate.Length(max=MAX_PARAMS),
    )


class DesignDefinitionSchema(_Strict):
    """A stored form as one document (``result``), as FAB's APIs answer a record."""

    id = fields.Integer()
    result = fields.Nested(FormDesignSchema)


class DesignSavedSchema(_Strict):
    id = fields.Integer()
    form = fields.String(attribute="code", metadata={"description": "the form's code"})
    notes = fields.List(fields.String(), metadata={"description": "sections whose columns could not be checked"})


class DesignTrySectionSchema(_Strict):
    title = fields.String()
    source = fields.String()
    columns = fields.List(fields.String(), metadata={"description": "the labels of the columns"})
    rows = fields.List(fields.List(fields.String()), metadata={"description": "formatted and masked values"})
    error = fields.String(allow_none=True)
    truncated = fields.Boolean()


class DesignTryAnswerSchema(_Strict):
    outcome = fields.String(metadata={"description": "ok, partial or source_error"})
    notes = fields.List(fields.String())
    sections = fields.List(fields.Nested(DesignTrySectionSchema))


def try_answer(run) -> dict:
    return {
        "outcome": run.outcome,
        "notes": list(run.notes),
        "sections": [
            {
                "title": s["title"],
                "source": s["source"],
                "columns": [c["label"] for c in s["columns"]],
                "rows": s["rows"],
                "error": s["error"],
                "truncated": s["truncated"],
            }
            for s in run.sections
        ],
    }


# --- the designer page's posted fields ---------------------------------------

_FORM_SCALARS = ("code", "title", "description", "agency", "sort_order")
_FORM_LISTS = ("granted_agencies", "granted_roles", "business_items")
_ROW = re.compile(r"^(inputs|sections)-([0-9]{1,3})-([a-z_]{1,20})$")
_SUB_ROW = re.compile(r"^sections-([0-9]{1,3})-(filters|columns)-([0-9]{1,3})-([a-z_]{1,20})$")
_PARAM = re.compile(r"^param-([a-z][a-z0-9_]{0,39})$")
_CHECKBOXES = {"active", "required"}
_INTEGERS = {"agency", "sort_order", "source", "max_length", "id"}
_INT_LISTS = {"granted_agencies", "granted_roles", "business_items", "agencies"}
# What names a row: a row left without it is dropped (clearing it removes the row).
_KEYS = {"inputs": "name", "filters": "column", "columns": "column"}


def _typed(name: str, value):
    if name in _INTEGERS:
        return (
            int(value)
            if re.fullmatch(r"-?[0-9]{1,18}", value.strip() or "x")
            else (None if not value.strip() else value)
        )
    return value


def split_page_form(form) -> tuple[dict, dict, dict]:
    """The page's fields as (draft, sample params, the section columns picked from the description
    per section index, and per section index the columns picked from the description to add). Rows without their name are dropped."""
    draft: dict = {name: _typed(name, form.get(name, "")) for name in _FORM_SCALARS}
    draft["active"] = bool(form.get("active"))
    for name in _FORM_LISTS:
        draft[name] = [_typed("agency", v) for v in form.getlist(name) if v]
    rows: dict[str, dict[int, dict]] = {"inputs": {}, "sections": {}}
    subs: dict[tuple[int, str], dict[int, dict]] = {}
    params, adding = {}, {}
    for key in form:
        if m := _SUB_ROW.match(key):
            section, kind, n, name = int(m.group(1)), m.group(2), int(m.group(3)), m.group(4)
            row = subs.setdefault((section, kind), {}).setdefault(n, {})
            row[name] = (
                [_typed("agency", v) for v in form.getlist(key) if v]
                if name in _INT_LISTS
                else _typed(name, form.get(key))
            )
        elif m := _ROW.match(key):
            kind, n, name = m.group(1), int(m.group(2)), m.group(3)
            if name == "add_columns":
                adding[n] = [v for v in form.getlist(key) if v]
                continue
            rows[kind].setdefault(n, {})[name] = _typed(name, form.get(key))
        elif m := _PARAM.match(key):
            params[m.group(1)] = form.get(key)
    draft["inputs"] = []
    for n in sorted(rows["inputs"]):
        row = rows["inputs"][n]
        if (row.get("name") or "").strip():
            row["required"] = bool(row.get("required"))
            draft["inputs"].append(row)
    draft["sections"] = []
    removed = set()
    for n in sorted(rows["sections"]):
        row = rows["sections"][n]
        if row.pop("remove", None) or not ((row.get("title") or "").strip() or row.get("source")):
            removed.add(n)
            continue
        for kind in ("filters", "columns"):
            found = subs.get((n, kind), {})
            row[kind] = [found[i] for i in sorted(found) if (found[i].get(_KEYS[kind]) or "").strip()]
        row.setdefault("source", None)
        draft["sections"].append(row)
    kept = [n for n in sorted(rows["sections"]) if n not in removed]
    adding = {kept.index(n): cols for n, cols in adding.items() if n in kept}
    return draft, params, adding
