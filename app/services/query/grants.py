"""Who may run which form: grants by agency and role, or the all-forms capability; and
the rule for granting one: a form goes from granted to nobody to granted to some only
once a designer test of its inputs and sections as they stand ran without error."""

from __future__ import annotations

import hashlib
import json

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from app.models.audit import AuditEvent
from app.models.queries import form_agency, form_role
from app.services import actors
from app.services.actors import Actor
from app.services.errors import Forbidden, InvalidInput, NotFound
from app.services.query import plan as formplan

MAX_FORM_CODE = 60


def granted(form, who: Actor) -> bool:
    """Whether ``who`` may run ``form`` (a plan): active, and granted to their agency and role."""
    if not form.active:
        return False
    if who.can(actors.ALL_FORMS):
        return True
    agencies_ok = not form.granted_agencies or any(a.id == who.agency_id for a in form.granted_agencies)
    roles_ok = not form.granted_roles or any(r.name in who.roles for r in form.granted_roles)
    # A form granted to nobody is granted to nobody (not to everybody).
    granted_somewhere = bool(form.granted_agencies or form.granted_roles)
    return granted_somewhere and agencies_ok and roles_ok


def granted_forms(session, who: Actor) -> list:
    """The plans of the active forms ``who`` may run, in the designers' order."""
    plans = (formplan.plan(session, code) for code in formplan.active_codes(session))
    return [p for p in plans if p is not None and granted(p, who)]


def find_form(session, who: Actor, code: str):
    """The form's cached plan (read-only), if it exists and is granted to ``who``.

    Raises NotFound (no such active form) or Forbidden (not granted).
    """
    form = formplan.plan(session, code) if isinstance(code, str) and len(code) <= MAX_FORM_CODE else None
    if form is None or not form.active:
        raise NotFound(_l("No such query form."))
    if not granted(form, who):
        raise Forbidden(_l("This query form is not granted to your agency or role."))
    return form


# --- tried before granted ------------------------------------------------------------

UNTRIED = _l(
    "Try the form before granting it: it has had no successful designer test since it last changed. "
    "Open it in the form designer, try it with sample input (the designer test shows what the clerks "
    "will get), then grant it."
)


def _ordered(records) -> list:
    return sorted(records, key=lambda r: r.sort_order or 0)


def form_digest(form) -> str:
    """What a designer test vouches for: the form's code, inputs and sections with their
    filters and output columns (not its grants, title or order), read from its records, so a
    draft tried on the designer's page and the same form as stored digest alike."""
    tried = {
        "code": (form.code or "").strip(),
        "inputs": [
            [i.name, i.label, i.type or "text", i.required is not False, i.pattern or "", i.choices or "",
             i.max_length or 64, i.help_text or ""]
            for i in _ordered(form.inputs)
        ],
        "sections": [
            {
                "title": s.title or "",
                "source": s.source.id if s.source is not None else s.source_id,
                "target": s.target or "",
                "order_by": s.order_by or "",
                "display": s.display or "table",
                "options": s.options or "",
                # a conjunction: their order says nothing
                "filters": sorted([f.column, f.op or "eq", f.input_name or "", f.constant or ""] for f in s.filters),
                "columns": [
                    [c.column, c.label, c.mask or "", c.format or "", sorted(a.id for a in c.agencies)]
                    for c in _ordered(s.columns)
                ],
            }
            for s in _ordered(form.sections)
        ],
    }  # fmt: skip
    return hashlib.sha256(json.dumps(tried, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def _granted_as_stored(session, form_id) -> bool:
    """Whether the form is granted as committed (read on a connection of its own: the edit being
    checked may have been flushed already)."""
    if form_id is None:
        return False
    with session.get_bind().connect() as conn:
        counted = conn.execute(
            select(
                select(func.count()).select_from(form_agency).where(form_agency.c.form_id == form_id).scalar_subquery()
                + select(func.count()).select_from(form_role).where(form_role.c.form_id == form_id).scalar_subquery()
            )
        ).scalar_one()
    return bool(counted)


def check_granting(session, form, was_granted: bool | None = None) -> None:
    """The rule every screen and API that grants a form keeps: a form granted to nobody (or new)
    becomes granted to some agency or role only when a designer test of its inputs and sections
    as they stand ran without error. ``was_granted``: whether it was granted before the change
    (read from the store when not given). Raises InvalidInput."""
    if not (form.granted_agencies or form.granted_roles):
        return
    with session.no_autoflush:
        if was_granted is None:
            was_granted = _granted_as_stored(session, form.id)
        if was_granted:
            return
        digest = form_digest(form)
        tried = session.scalar(
            select(AuditEvent.id)
            .where(AuditEvent.action == "designer_test", AuditEvent.object_id == (form.code or "").strip())
            .where(AuditEvent.outcome == "ok", AuditEvent.detail.contains(digest))
            .limit(1)
        )
    if tried is None:
        raise InvalidInput(UNTRIED)
