"""Query forms as form designers configure them: the rule of each record,
and the commands that save or remove one (each in its own transaction)."""

from __future__ import annotations

import json
import re

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.connectors.base import OPERATORS
from app.models.queries import (
    DISPLAYS,
    FORMATS,
    INPUT_TYPES,
    MASKS,
    BusinessItem,
    FormInput,
    FormSection,
    QueryForm,
    SectionColumn,
    SectionFilter,
)
from app.models.sources import DataSource
from app.services.command import refuse, transaction
from app.services.errors import Forbidden, InvalidInput
from app.services.query.grants import check_granting
from app.services.query.lookup import check_rule_options, section_list_setting
from app.services.query.maps import check_options as check_drawing_options
from app.services.sources import TargetOutside, check_section_target

_CODE = re.compile(r"^[a-z][a-z0-9_.-]{1,59}$")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,99}$")


def validate_business_item(session, item) -> None:
    item.code = (item.code or "").strip()
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", item.code) or not (item.name or "").strip():
        raise InvalidInput(_l("A business item needs a code (letters, digits, '.', '-', '_') and a name."))


RESTRICTED_DAYS_MAX = 3650


def validate_form(session, form) -> None:
    form.code = (form.code or "").strip()
    if not _CODE.match(form.code):
        raise InvalidInput(_l("Form codes are lower-case letters, digits, '.', '-' or '_' (for example land.parcel)."))
    if not (form.title or "").strip():
        raise InvalidInput(_l("A form needs a title."))


def check_restriction(session, actor, form) -> None:
    """Only an Admin (RESTRICT_FORMS) marks a form restricted or changes its delay; a restricted
    form delays its entries in "who read my data" by 1 to 3650 days. Compared with the form as
    committed (read on a connection of its own: the edit may have been flushed already). Raises
    Forbidden, InvalidInput."""
    from app.services.roles import RESTRICT_FORMS

    restricted, days = bool(form.restricted), form.restricted_days or 0
    if not isinstance(days, int) or not 0 <= days <= RESTRICTED_DAYS_MAX:
        raise InvalidInput(_l("The delay of a restricted form is between 0 and 3650 days."))
    if restricted and days < 1:
        raise InvalidInput(_l("A restricted form needs a delay of at least one day."))
    stored = (False, 0)
    if form.id is not None:
        with session.get_bind().connect() as conn:
            row = conn.execute(
                select(QueryForm.restricted, QueryForm.restricted_days).where(QueryForm.id == form.id)
            ).first()
        stored = (bool(row[0]), row[1] or 0) if row is not None else stored
    if (restricted, days) != stored and not actor.can(RESTRICT_FORMS):
        raise Forbidden(_l("Only a system administrator may mark a form restricted or change its delay."))
    form.restricted, form.restricted_days = restricted, days


def validate_input(session, inp) -> None:
    if not _NAME.match(inp.name or ""):
        raise InvalidInput(_l("Input names are lower-case letters, digits and '_' (for example id_no)."))
    if inp.type not in INPUT_TYPES:
        raise InvalidInput(_l("Unknown input type."))
    if inp.type == "choice" and not (inp.choices or "").strip():
        raise InvalidInput(_l("A choice input needs its choices, one 'value|label' per line."))
    if inp.type == "land_section":
        section_list_setting(inp.choices)
    if inp.pattern:
        try:
            re.compile(inp.pattern)
        except re.error as exc:
            raise InvalidInput(_l("The pattern is not a valid regular expression.")) from exc
    if inp.max_length is not None and not (1 <= int(inp.max_length) <= 200):
        raise InvalidInput(_l("The maximum length must be between 1 and 200."))


def validate_section(session, section, *, whole_source: bool = False, known=frozenset()) -> None:
    """``whole_source``: the source offers one thing under the target "" (a text file), so none is named.
    ``known``: the columns the source describes (the form designer's), accepted as named (a Big5 file's
    "年度") where a column typed blind must be a plain name."""
    if not (section.title or "").strip() or not ((section.target or "").strip() or whole_source):
        raise InvalidInput(_l("A section needs a title and a target (view, file, endpoint or transaction)."))
    if section.display not in DISPLAYS:
        raise InvalidInput(_l("Unknown display."))
    if section.options:
        try:
            options = json.loads(section.options)
            if not isinstance(options, dict):
                raise ValueError
        except ValueError as exc:
            raise InvalidInput(_l("Options must be a JSON object.")) from exc
        check_rule_options(options)
    if section.display in ("map", "plan"):
        check_drawing_options(json.loads(section.options) if section.options else {}, section.display)
    for col in (section.order_by or "").split(","):
        if col.strip() and not _COLUMN.match(col.strip()) and col.strip() not in known:
            raise InvalidInput(_l("Sort columns must be plain column names."))
    _confined_target(session, section)


def _confined_target(session, section) -> None:
    """A target outside the section's source (an SQL table in another database of
    its server) is refused, and the attempt audited (a security event: who,
    which source, which rule), nothing saved."""
    with session.no_autoflush:
        src = section.source
        if src is None and section.source_id is not None:
            src = session.get(DataSource, section.source_id)
    if src is None:
        return
    try:
        check_section_target(src, section.target)
    except TargetOutside as exc:
        detail = {"source": src.code, "kind": src.kind, "field": exc.field, "rule": exc.rule}
        raise refuse(session, exc, None, "source_refused", object_type="FormSection", object_id=section.id,
                     detail=detail) from None  # fmt: skip


def validate_filter(session, flt, known=frozenset()) -> None:
    if not _COLUMN.match(flt.column or "") and flt.column not in known:
        raise InvalidInput(_l("Filter columns must be plain column names."))
    if flt.op not in OPERATORS:
        raise InvalidInput(_l("Unknown filter operator."))
    if not flt.input_name and flt.constant is None:
        raise InvalidInput(_l("A filter compares a column with an input or a constant."))
    with session.no_autoflush:
        section = flt.section
        names = {i.name for i in section.form.inputs} if section is not None and section.form is not None else None
    if flt.input_name and names is not None and flt.input_name not in names:
        raise InvalidInput(_l("The form has no input named %(name)s."), name=flt.input_name)


def validate_column(session, col, known=frozenset()) -> None:
    if not (_COLUMN.match(col.column or "") or col.column in known) or not (col.label or "").strip():
        raise InvalidInput(_l("An output column needs a plain column name and a label."))
    if (col.mask or "") not in MASKS:
        raise InvalidInput(_l("Unknown mask."))
    if (col.format or "") not in FORMATS:
        raise InvalidInput(_l("Unknown format."))


# --- commands: a form-configuration record created, changed or removed --------

RULES = {
    BusinessItem: validate_business_item,
    QueryForm: validate_form,
    FormInput: validate_input,
    FormSection: validate_section,
    SectionFilter: validate_filter,
    SectionColumn: validate_column,
}


def save(session, item, *, existing: bool = False):
    """Create (or, ``existing``, change) one record of a query form's design:
    checked by its rule, written with its audit event and the configuration
    generation's bump (session hooks) in one transaction. A form granted here
    for the first time must have passed a designer test as it stands
    (``grants.check_granting``). Returns the record. Raises InvalidInput."""
    with transaction(session):
        RULES[type(item)](session, item)
        if isinstance(item, QueryForm):
            check_granting(session, item)
        if existing:
            item = session.merge(item)
        else:
            session.add(item)
    return item


def remove(session, items) -> None:
    """Remove records of a query form's design, audited, in one transaction."""
    with transaction(session):
        for item in items:
            session.delete(item)
