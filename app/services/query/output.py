"""What a viewer sees of a source's rows: field-level authorisation, formats and masks."""

from __future__ import annotations

import datetime
import re

from app.lib import identifiers
from app.lib.rocdate import format_roc, parse_roc
from app.services import actors
from app.services.actors import Actor


def mask_value(value: str, mask: str) -> str:
    if not mask or value == "":
        return value
    if mask == "last4":
        return identifiers.mask_id(value, 4)
    if mask == "first1":
        return value[:1] + "*" * max(len(value) - 1, 0)
    if mask == "name":
        if len(value) <= 1:
            return value
        if len(value) == 2:
            return value[0] + "○"
        return value[0] + "○" * (len(value) - 2) + value[-1]
    if mask == "all":
        return "*" * 4
    return value


def _roc_date(value) -> str:
    try:
        if isinstance(value, (datetime.date, datetime.datetime)):
            return format_roc(value if isinstance(value, datetime.date) else value.date())
        text = str(value).strip()
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}.*", text):
            return format_roc(datetime.date.fromisoformat(text[:10]))
        return format_roc(parse_roc(text))
    except (ValueError, TypeError):
        return str(value)


_PARCEL_NO = re.compile(r"([0-9]{4})-?([0-9]{4})")
_BUILDING_NO = re.compile(r"([0-9]{5})-?([0-9]{3})")


def _numbers(value, pattern: re.Pattern, shown: str) -> str:
    """地號 0018-0001 / 建號 00173-000 as the register writes them; a list
    (建物坐落地號 "00180001,00180002") each so, joined with 、; anything else as it is."""
    text = str(value).strip()
    parts = [p.strip() for p in text.split(",")]
    matches = [pattern.fullmatch(p) for p in parts]
    if not text or not all(matches):
        return text
    return "、".join(shown.format(*m.groups()) for m in matches)


def format_value(value, fmt: str) -> str:
    if value is None:
        return ""
    if fmt == "parcel":
        return _numbers(value, _PARCEL_NO, "{}-{}")
    if fmt == "building":
        return _numbers(value, _BUILDING_NO, "{}-{}")
    if fmt == "roc_date":
        return _roc_date(value)
    if fmt in ("number", "money", "area"):
        try:
            number = float(value)
        except (ValueError, TypeError):
            return str(value)
        if fmt == "money":
            return f"NT${number:,.0f}"
        if fmt == "area":
            return f"{number:,.2f} m²"
        return f"{number:,.0f}" if number == int(number) else f"{number:,.2f}"
    return str(value)


def visible_columns(section, who: Actor) -> list:
    """The section's columns ``who`` may see (a column may be limited to some
    agencies: field-level authorisation by duty)."""
    return [
        col
        for col in section.columns
        if not col.agencies or who.can(actors.ALL_FORMS) or any(a.id == who.agency_id for a in col.agencies)
    ]


def shown_row(row: dict, columns) -> list[str]:
    return [mask_value(format_value(row.get(c.column), c.format), c.mask) for c in columns]
