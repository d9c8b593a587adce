"""A category's structured fields (app.models.notify.CategoryField): the values
a case gives for them checked against their declaration, and the lines the
receiving agencies read. An ``old_new`` field is a pair (the old and the new
address, the old and the new name). The counter's registration screen and the
portal's online applications check them here, each with its own messages."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l

from app.services.errors import InvalidInput

MAX_VALUE = 2000


@dataclass(frozen=True)
class FieldMessages:
    missing: object
    missing_old_new: object
    unknown: object
    too_long: object
    bad_date: object
    bad_number: object


COUNTER = FieldMessages(
    missing=_l("Fill in \u201c%(field)s\u201d: nothing was registered."),
    missing_old_new=_l("Fill in both the old and the new \u201c%(field)s\u201d: nothing was registered."),
    unknown=_l("The case holds a field this category does not declare: nothing was registered."),
    too_long=_l("\u201c%(field)s\u201d is longer than %(limit)s characters: nothing was registered."),
    bad_date=_l("\u201c%(field)s\u201d must be a date (year-month-day): nothing was registered."),
    bad_number=_l("\u201c%(field)s\u201d must be a number: nothing was registered."),
)


def _value(spec, raw, messages: FieldMessages) -> str:
    if raw is None:
        return ""
    if not isinstance(raw, str | int | float) or isinstance(raw, bool):
        raise InvalidInput(messages.unknown)
    text = " ".join(str(raw).split()) if spec.type != "textarea" else str(raw).strip()
    if len(text) > min(spec.max_length or 200, MAX_VALUE):
        raise InvalidInput(messages.too_long, field=spec.label, limit=spec.max_length)
    if text and spec.type == "date":
        try:
            text = datetime.date.fromisoformat(text).isoformat()
        except ValueError:
            raise InvalidInput(messages.bad_date, field=spec.label) from None
    if text and spec.type == "number":
        try:
            float(text)
        except ValueError:
            raise InvalidInput(messages.bad_number, field=spec.label) from None
    return text


def check_fields(specs, given, messages: FieldMessages = COUNTER) -> dict:
    """The given values of the declared fields ``specs``, checked: name -> text, or
    {"old", "new"} for a pair; empty ones left out. Raises InvalidInput."""
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise InvalidInput(messages.unknown)
    by_name = {f.name: f for f in specs}
    if any(k not in by_name for k in given):
        raise InvalidInput(messages.unknown)
    out = {}
    for spec in specs:
        raw = given.get(spec.name)
        if spec.old_new:
            pair = raw if isinstance(raw, dict) else {}
            if raw is not None and not isinstance(raw, dict) or set(pair) - {"old", "new"}:
                raise InvalidInput(messages.unknown)
            old, new = _value(spec, pair.get("old"), messages), _value(spec, pair.get("new"), messages)
            if spec.required and not (old and new):
                raise InvalidInput(messages.missing_old_new, field=spec.label)
            if old or new:
                out[spec.name] = {"old": old, "new": new}
        else:
            value = _value(spec, raw, messages)
            if spec.required and not value:
                raise InvalidInput(messages.missing, field=spec.label)
            if value:
                out[spec.name] = value
    return out


def field_lines(specs, values: dict) -> list[str]:
    """What the receiving agencies read, in the category's order (Chinese labels, as the county's)."""
    lines = []
    for spec in specs:
        value = values.get(spec.name)
        if isinstance(value, dict):
            lines.append(f"{spec.label}：原 {value['old']} → 新 {value['new']}")
        elif value:
            lines.append(f"{spec.label}：{value}")
    return lines
