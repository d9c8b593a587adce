"""The form designer: a whole query form (inputs, sections, filters, output
columns, grants) built on one page and saved at once, checked against what
its sources say they offer (``Connector.describe``), and tried with sample
input before it is granted.

Commands and reads:

- ``describe``: what a source offers (tables, views, file, resources, transactions and their columns);
- ``definition``: a stored form as a draft (the dict ``app.schemas.designer.FormDesignSchema`` loads);
- ``save_form``: the draft saved whole in one transaction, or nothing at all: every record's
  rule (``design``), a filter's input among the form's own, and every table, view, file and
  column the sections name checked against the source's description; a form is granted
  (from no grant to some) only once a designer test of what it reads ran without error
  (``grants.check_granting``, the rule the older record screens keep too). The stored rows
  are changed in place: a row of the draft that carries the id of one of the form's rows
  (the definition gives each row's) changes that row, a row without one is added, and a
  stored row the draft leaves out is removed; so the rows keep their ids (what audit events,
  column grants and stored results refer to) across saves;
- ``try_form``: the draft (saved or not) run with sample input, audited as a designer test
  (``designer_test``); the result is shown, never stored as a citizen query.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask_appbuilder.security.sqla.models import Role
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.models.org import Agency
from app.models.queries import BusinessItem, FormInput, FormSection, QueryForm, SectionColumn, SectionFilter
from app.models.sources import DataSource
from app.services import audit
from app.services.actors import Actor
from app.services.command import transaction
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.query import design, grants, lookup, maps
from app.services.query import plan as formplan
from app.services.query.inputs import validate_inputs
from app.services.query.record import subject_hash
from app.services.query.sections import read_sections
from app.services.roles import ROLE_LABELS
from app.services.sources import SourceDescription, describe_source

FORM_FIELDS = ("code", "title", "description", "active", "sort_order")
INPUT_FIELDS = ("name", "label", "type", "required", "pattern", "choices", "max_length", "help_text")
SECTION_FIELDS = ("title", "target", "order_by", "display", "options")
COLUMN_FIELDS = ("column", "label", "mask", "format")
DESIGNER_REASON = "表單設計測試"  # what the sources' requester header says of a designer test
CHANGED_ELSEWHERE = _l(
    "The form was changed elsewhere since this page was opened (a row the page names is no longer the "
    "form's). Open the form again and redo the change."
)


@dataclass(frozen=True)
class SavedForm:
    """A form saved by the designer; ``notes``: the sections whose columns could not be checked, and why."""

    id: int
    code: str
    notes: tuple[str, ...] = ()


@dataclass
class TryRun:
    """A designer test: each section as the designer would see it (not stored), and the notes."""

    outcome: str
    sections: list[dict] = field(default_factory=list)
    notes: tuple[str, ...] = ()


# --- reads -------------------------------------------------------------------


def describe(session, source_id: int) -> SourceDescription:
    """What the source offers the designer. Raises NotFound."""
    src = session.get(DataSource, source_id) if isinstance(source_id, int) else None
    if src is None:
        raise NotFound(_l("No such data source."))
    return describe_source(src)


def catalogue(session, draft: dict) -> dict[int, SourceDescription]:
    """The descriptions of the sources a draft's sections read, by source id (each described once)."""
    described = {}
    for section in draft.get("sections") or ():
        source_id = section.get("source")
        if isinstance(source_id, int) and source_id not in described:
            try:
                described[source_id] = describe(session, source_id)
            except NotFound:
                continue
    return described


def choices(session) -> dict:
    """What the designer's page offers to pick: sources, agencies, roles, business items, and the forms to open."""
    return {
        "sources": list(session.scalars(select(DataSource).order_by(DataSource.name))),
        "agencies": list(session.scalars(select(Agency).order_by(Agency.code))),
        "roles": [
            (r.id, str(ROLE_LABELS.get(r.name, r.name))) for r in session.scalars(select(Role).order_by(Role.name))
        ],
        "business_items": list(session.scalars(select(BusinessItem).order_by(BusinessItem.code))),
        "forms": list(session.execute(select(QueryForm.id, QueryForm.code, QueryForm.title).order_by(QueryForm.code))),
    }


def definition(session, form_id: int) -> dict:
    """The stored form as a draft. Raises NotFound."""
    form = session.get(QueryForm, form_id) if isinstance(form_id, int) else None
    if form is None:
        raise NotFound(_l("No such query form."))
    return {
        **{name: getattr(form, name) for name in FORM_FIELDS},
        "description": form.description or "",
        "agency": form.agency_id,
        "granted_agencies": [a.id for a in form.granted_agencies],
        "granted_roles": [r.id for r in form.granted_roles],
        "business_items": [b.id for b in form.business_items],
        "inputs": [{"id": i.id, **{name: getattr(i, name) for name in INPUT_FIELDS}} for i in form.inputs],
        "sections": [
            {
                "id": s.id,
                **{name: getattr(s, name) or "" for name in SECTION_FIELDS},
                "source": s.source_id,
                "filters": [
                    {
                        "id": f.id,
                        "column": f.column,
                        "op": f.op,
                        "input": f.input_name or "",
                        "constant": f.constant or "",
                    }
                    for f in s.filters
                ],  # fmt: skip
                "columns": [
                    {
                        "id": c.id,
                        **{name: getattr(c, name) or "" for name in COLUMN_FIELDS},
                        "agencies": [a.id for a in c.agencies],
                    }
                    for c in s.columns
                ],  # fmt: skip
            }
            for s in form.sections
        ],
    }


# --- the draft as records ------------------------------------------------------


def _rows(session, model, ids, what) -> list:
    ids = list(dict.fromkeys(ids or ()))
    if not ids:
        return []
    found = list(session.scalars(select(model).where(model.id.in_(ids))))
    if len(found) != len(ids):
        raise InvalidInput(_l("Unknown %(what)s."), what=what)
    return found


def _claimed(stored, rows, in_place: bool) -> dict:
    """The stored records the draft's rows name by id (each at most once), by id. Raises Conflict
    when a row names an id that is not one of ``stored`` (a row of another form, or one removed
    since the page was opened). A new form (``in_place`` false) takes no ids: every row is new."""
    if not in_place:
        return {}
    by_id = {record.id: record for record in stored if record.id is not None}
    claimed = {}
    for row in rows:
        row_id = row.get("id")
        if row_id is None:
            continue
        if row_id not in by_id or row_id in claimed:
            raise Conflict(CHANGED_ELSEWHERE)
        claimed[row_id] = by_id[row_id]
    return claimed


def _set(record, **values):
    """Set only what differs: an unchanged row stays unchanged (no audit event, no write)."""
    for name, value in values.items():
        if getattr(record, name) != value:
            setattr(record, name, value)
    return record


def _apply(session, draft: dict, form: QueryForm) -> QueryForm:
    """Write the draft onto ``form``: a new record, or a stored one whose rows the draft's rows
    change in place by id (rows without an id are added, stored rows left out are removed)."""
    for name in FORM_FIELDS:
        if name in draft:
            setattr(form, name, draft[name])
    form.code = (form.code or "").strip()
    form.description = (form.description or "").strip() or None
    form.agency = _rows(session, Agency, [draft["agency"]], _l("agency"))[0] if draft.get("agency") else None
    form.granted_agencies = _rows(session, Agency, draft.get("granted_agencies"), _l("agency"))
    form.granted_roles = _rows(session, Role, draft.get("granted_roles"), _l("role"))
    form.business_items = _rows(session, BusinessItem, draft.get("business_items"), _l("business item"))
    in_place = form.id is not None
    rows = list(draft.get("inputs") or ())
    kept = _claimed(form.inputs if in_place else (), rows, in_place)
    form.inputs = [
        _set(kept.get(inp.get("id")) or FormInput(), sort_order=n,
             **{k: _blank_none(v) for k, v in inp.items() if k in INPUT_FIELDS})
        for n, inp in enumerate(rows, 1)
    ]  # fmt: skip
    rows = list(draft.get("sections") or ())
    kept = _claimed(form.sections if in_place else (), rows, in_place)
    form.sections = [_section(session, s, n, kept.get(s.get("id")), in_place) for n, s in enumerate(rows, 1)]
    return form


def _blank_none(value):
    return None if isinstance(value, str) and not value.strip() else value


def _section(session, data: dict, order: int, section: FormSection | None, in_place: bool) -> FormSection:
    """The section of the draft's ``data``: ``section`` (a stored one, changed in place) or a new one."""
    title = (data.get("title") or "").strip()
    src = session.get(DataSource, data["source"]) if isinstance(data.get("source"), int) else None
    if src is None:
        raise InvalidInput(_l("Section “%(section)s”: choose its data source."), section=title or order)
    section = _set(
        section or FormSection(),
        title=title,
        source=src,
        target=(data.get("target") or "").strip(),
        order_by=(data.get("order_by") or "").strip() or None,
        display=data.get("display") or "table",
        options=(data.get("options") or "").strip() or None,
        sort_order=order,
    )
    in_place = in_place and section.id is not None
    rows = list(data.get("filters") or ())
    kept = _claimed(section.filters if in_place else (), rows, in_place)
    section.filters = [
        _set(
            kept.get(f.get("id")) or SectionFilter(),
            column=(f.get("column") or "").strip(),
            op=f.get("op") or "eq",
            input_name=(f.get("input") or "").strip() or None,
            constant=f.get("constant") if (f.get("constant") or "") != "" else None,
        )
        for f in rows
    ]
    rows = list(data.get("columns") or ())
    kept = _claimed(section.columns if in_place else (), rows, in_place)
    section.columns = [_column(session, kept.get(c.get("id")) or SectionColumn(), c, n) for n, c in enumerate(rows, 1)]
    return section


def _column(session, column: SectionColumn, data: dict, order: int) -> SectionColumn:
    _set(
        column,
        sort_order=order,
        column=(data.get("column") or "").strip(),
        label=(data.get("label") or "").strip(),
        mask=data.get("mask") or "",
        format=data.get("format") or "",
    )
    agencies = _rows(session, Agency, data.get("agencies"), _l("agency"))
    if {a.id for a in column.agencies} != {a.id for a in agencies}:
        column.agencies = agencies
    return column


# --- the checks against the sources ------------------------------------------------


def _entity(section, described: SourceDescription):
    """The entity the section reads, or None when the source declares nothing (a web service
    whose resources its administrator did not declare): then its columns go unchecked."""
    if not described.ok:
        raise InvalidInput(
            _l("Section “%(section)s”: the data source could not say what it offers (%(reason)s), so its columns "
               "cannot be checked; save again when the source answers."),
            section=section.title, reason=described.message,
        )  # fmt: skip
    if not described.entities:
        return None
    for entity in described.entities:
        if entity.target == section.target:
            return entity
    known = "、".join(e.target or e.label for e in described.entities[:12])
    raise InvalidInput(
        _l("Section “%(section)s”: the data source has no table, view, file or transaction “%(target)s” "
           "(it offers %(known)s)."),
        section=section.title, target=section.target, known=known,
    )  # fmt: skip


def _columns_named(section, entity) -> list[str]:
    """Every source column the section names: filters (unless the source says which fields it is
    asked by: the e-gate's query fields are not its records' columns), output, sort order,
    grouping and drawing."""
    named = [] if entity.inputs else [f.column for f in section.filters]
    named += [c.column for c in section.columns]
    named += [c.strip() for c in (section.order_by or "").split(",") if c.strip()]
    named += lookup.group_by(section) + maps.columns_read(section)
    return list(dict.fromkeys(named))


def _check_columns(section, entity) -> None:
    offered = {c.name for c in entity.columns}
    where = entity.target or entity.label
    for column in _columns_named(section, entity):
        if column not in offered:
            raise InvalidInput(
                _l("Section “%(section)s”: %(target)s has no column “%(column)s”."),
                section=section.title, target=where, column=column,
            )  # fmt: skip
    if entity.inputs:
        for flt in section.filters:
            if flt.column not in entity.inputs:
                raise InvalidInput(
                    _l("Section “%(section)s”: %(target)s can only be asked by %(inputs)s, not by “%(column)s”."),
                    section=section.title, target=where, inputs="、".join(entity.inputs), column=flt.column,
                )  # fmt: skip


def _check(session, actor: Actor | None, form: QueryForm, restriction: bool = True) -> tuple[str, ...]:
    """Every rule of the draft; returns the notes on sections whose source declares nothing.
    Raises InvalidInput (Forbidden: a restriction changed by a non-Admin)."""
    design.validate_form(session, form)
    if restriction:
        design.check_restriction(session, actor, form)
    seen = set()
    for inp in form.inputs:
        design.validate_input(session, inp)
        if inp.name in seen:
            raise InvalidInput(_l("Two inputs are named %(name)s."), name=inp.name)
        seen.add(inp.name)
    if not form.sections:
        raise InvalidInput(_l("A form needs at least one section."))
    described: dict[int, SourceDescription] = {}
    notes = []
    for section in form.sections:
        src = section.source
        if src.id not in described:
            described[src.id] = describe_source(src)
        whole = any(e.target == "" for e in described[src.id].entities)
        if not (section.title or "").strip() or not ((section.target or "").strip() or whole):
            design.validate_section(session, section, whole_source=whole)  # says what is missing
        entity = _entity(section, described[src.id])
        known = frozenset(c.name for c in entity.columns) if entity is not None else frozenset()
        asked = frozenset(entity.inputs) if entity is not None and entity.inputs else known
        design.validate_section(session, section, whole_source=whole, known=known)
        for flt in section.filters:
            design.validate_filter(session, flt, known=asked)
        if not section.columns:
            raise InvalidInput(_l("Section “%(section)s” needs at least one output column."), section=section.title)
        for col in section.columns:
            design.validate_column(session, col, known=known)
        if entity is None:
            notes.append(
                str(_l("Section “%(section)s”: the source declares no columns, so they were not checked."))
                % {"section": section.title}
            )
            continue
        _check_columns(section, entity)
    return tuple(notes)


# --- commands --------------------------------------------------------------------


def save_form(session, actor: Actor, draft: dict, form_id: int | None = None) -> SavedForm:
    """Save the whole form (a new one, or ``form_id``'s rows changed in place by id) in one
    transaction, audited (``form_designed``); nothing is saved when any check fails. Granting
    a form needs a designer test of its inputs and sections first (``try_form``).
    Raises InvalidInput, NotFound, Conflict (the code is another form's; a row the draft names
    is not the form's), Forbidden."""
    with transaction(session):
        with session.no_autoflush:
            form = QueryForm() if form_id is None else session.get(QueryForm, form_id)
            if form is None:
                raise NotFound(_l("No such query form."))
            code = (draft.get("code") or "").strip()
            other = session.scalar(select(QueryForm.id).where(QueryForm.code == code))
            if other is not None and other != form_id:
                raise Conflict(_l("Another query form has the code %(code)s."), code=code)
            was_granted = bool(form.granted_agencies or form.granted_roles)
            _apply(session, draft, form)
            notes = _check(session, actor, form)
            grants.check_granting(session, form, was_granted=was_granted)
            session.add(form)
        session.flush()
        audit.record(
            session,
            "form_designed",
            object_type="QueryForm",
            object_id=form.id,
            detail={
                "form": form.code,
                "inputs": len(form.inputs),
                "sections": len(form.sections),
                "columns": sum(len(s.columns) for s in form.sections),
                "granted": bool(form.granted_agencies or form.granted_roles),
            },
            actor=actor,
        )
    return SavedForm(id=form.id, code=form.code, notes=notes)


def _outcome(sections: list[dict]) -> str:
    failed = sum(1 for s in sections if s["error"])
    return "ok" if not failed else ("source_error" if failed == len(sections) else "partial")


def try_form(session, actor: Actor, draft: dict, params: dict) -> TryRun:
    """Run the draft (checked as on saving, never stored) with sample input, as ``actor`` would
    see it; audited as a designer test with the keyed hashes of the people it named (an
    auditor finds a designer who tried a real person's ID). Raises InvalidInput."""
    with session.no_autoflush:
        form = _apply(session, draft, QueryForm())
        notes = _check(session, actor, form, restriction=False)
        plan = formplan.form_plan(session, form)
    clean = validate_inputs(plan, params or {})
    requester = {"agency": actor.agency_code, "user": actor.username, "case_no": "", "reason": DESIGNER_REASON}
    named: set[str] = set(v for i in plan.inputs if i.type == "national_id" and (v := clean.get(i.name)))
    refusals: list = []
    sections = read_sections(plan, actor, clean, requester, refusals=refusals, subjects=named)
    outcome = _outcome(sections)
    with transaction(session):
        audit.record(
            session,
            "designer_test",
            object_type="QueryForm",
            object_id=form.code,
            outcome=outcome,
            detail={
                "form": form.code,
                "draft": grants.form_digest(form),
                "sections": len(sections),
                "rows": sum(len(s["rows"]) for s in sections),
                "subjects": sorted(subject_hash(v) for v in named),
                "refused": sorted({config.name for config, _exc in refusals}),
            },
            actor=actor,
        )
    return TryRun(outcome=outcome, sections=sections, notes=notes)
