"""A query's inputs and purpose, checked and normalised before any source is touched.

Each input type is one normaliser in ``INPUT_TYPES``: ``normalise(inp, value)``
returns the value as the sources expect it or raises InvalidInput naming the
input's label (never the value typed). A new type is one function and one
entry here (and its name in ``app.models.queries.INPUT_TYPES``).
"""

from __future__ import annotations

import datetime
import re
import unicodedata
from collections.abc import Callable

from flask_babel import lazy_gettext as _l

from app.lib import identifiers
from app.lib.rocdate import parse_roc
from app.services.errors import InvalidInput

MAX_INPUT = 200  # no input of any form is longer than this
MAX_CASE_NO = 60
MAX_REASON = 200

_PARCEL = re.compile(r"^([0-9]{1,4})(?:-([0-9]{1,4}))?$")
_BUILDING = re.compile(r"^(?:([0-9]{5})([0-9]{3})|([0-9]{1,5})(?:-([0-9]{1,3}))?)$")
_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_WHOLE = re.compile(r"-?[0-9]{1,15}")


def _text(inp, value: str) -> str:
    return value


def _national_id(inp, value: str) -> str:
    value = value.upper()
    if not identifiers.is_person_id(value):
        raise InvalidInput(
            _l("%(label)s is not a valid ID number (check the format and the check digit)."), label=inp.label
        )
    return value


def _business_number(inp, value: str) -> str:
    if not identifiers.is_business_number(value):
        raise InvalidInput(_l("%(label)s is not a valid business number."), label=inp.label)
    return value


def _land_parcel(inp, value: str) -> str:
    """18-1, 18 or 00180001 (section number and sub-number, four digits each)."""
    if re.fullmatch(r"[0-9]{8}", value):
        return value
    m = _PARCEL.match(value)
    if not m:
        raise InvalidInput(_l("%(label)s must be a parcel number such as 18-1 or 00180001."), label=inp.label)
    return f"{int(m.group(1)):04d}{int(m.group(2) or 0):04d}"


def _building_no(inp, value: str) -> str:
    """173, 173-0, 00173-000 or 00173000 as 00173-000 (five digits, three for the sub-number)."""
    m = _BUILDING.match(value)
    if not m:
        raise InvalidInput(_l("%(label)s must be a building number such as 173, 173-0 or 00173-000."), label=inp.label)
    main, sub = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4) or "0")
    return f"{int(main):05d}-{int(sub):03d}"


def _land_section(inp, value: str) -> str:
    from app.services.query.lookup import land_section

    return land_section(inp, value)


def _date(inp, value: str) -> str:
    """A ROC date (115/11/26, 民國115年11月26日) or an ISO one, as ISO."""
    try:
        day = datetime.date.fromisoformat(value) if _ISO_DAY.fullmatch(value) else parse_roc(value)
    except ValueError as exc:
        raise InvalidInput(_l("%(label)s is not a valid date (for example 115/11/26)."), label=inp.label) from exc
    return day.isoformat()


def _number(inp, value: str) -> str:
    if not _WHOLE.fullmatch(value):
        raise InvalidInput(_l("%(label)s must be a whole number."), label=inp.label)
    return value


def _choice(inp, value: str) -> str:
    allowed = [line.split("|", 1)[0].strip() for line in (inp.choices or "").splitlines() if line.strip()]
    if value not in allowed:
        raise InvalidInput(_l("%(label)s: please choose one of the listed values."), label=inp.label)
    return value


INPUT_TYPES: dict[str, Callable] = {
    "text": _text,
    "national_id": _national_id,
    "business_number": _business_number,
    "land_parcel": _land_parcel,
    "land_section": _land_section,
    "building_no": _building_no,
    "date": _date,
    "number": _number,
    "choice": _choice,
}


def normalise_input(inp, raw: str) -> str:
    """One input's value, folded (full-width letters and digits, as Chinese
    input methods type them), trimmed, length-checked and normalised by its type."""
    value = unicodedata.normalize("NFKC", raw).strip()
    if len(value) > min(inp.max_length or 64, MAX_INPUT):
        raise InvalidInput(_l("%(label)s is too long."), label=inp.label)
    value = INPUT_TYPES.get(inp.type, _text)(inp, value)
    if inp.pattern and value and not re.fullmatch(inp.pattern, value):
        raise InvalidInput(_l("%(label)s is not in the expected format."), label=inp.label)
    return value


def validate_inputs(form, params: dict) -> dict:
    """Check and normalise every input of ``form`` before any source is touched."""
    if not isinstance(params, dict):
        raise InvalidInput(_l("Query parameters must be given as names and values."))
    known = {i.name for i in form.inputs}
    unknown = [k for k in params if k not in known]
    if unknown:
        raise InvalidInput(_l("This form has no input named %(name)s."), name=str(unknown[0])[:40])
    clean = {}
    for inp in form.inputs:
        raw = params.get(inp.name)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            if inp.required:
                raise InvalidInput(_l("%(label)s is required."), label=inp.label)
            if inp.type == "land_section":  # left empty: any section of the list
                clean[inp.name] = _land_section(inp, "")
            continue
        if not isinstance(raw, str):
            raise InvalidInput(_l("%(label)s must be text."), label=inp.label)
        clean[inp.name] = normalise_input(inp, raw)
    return clean


def offered_items(form, agency_code: str | None) -> list:
    """The form's active business items a clerk of ``agency_code`` may query under: those
    of their agency and the county-wide ones (no agency), never another agency's duty."""
    return [b for b in form.business_items if b.active and (b.agency is None or b.agency == agency_code)]


def check_purpose(form, case_no, reason, business_item, *, agency_code: str | None):
    """The business item under which the query is made (one the form allows and the
    clerk's agency is offered, ``offered_items``), given a case number or a reason.
    Raises InvalidInput."""
    if not all(isinstance(v, str) for v in (case_no or "", reason or "", business_item or "")):
        raise InvalidInput(_l("The case number, reason and business item must be text."))
    case_no, reason = (case_no or "").strip(), (reason or "").strip()
    if not case_no and not reason:
        raise InvalidInput(_l("Every query needs a case number or a reason."))
    if len(case_no) > MAX_CASE_NO or len(reason) > MAX_REASON:
        raise InvalidInput(_l("The case number or reason is too long."))
    if not business_item:
        raise InvalidInput(_l("Every query needs a business item."))
    item = next((b for b in offered_items(form, agency_code) if b.code == business_item), None)
    if item is None:
        raise InvalidInput(_l("This business item is not allowed for this form."))
    return item
