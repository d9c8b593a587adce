"""Who may run which form: grants by agency and role, or the all-forms capability."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from app.services import actors
from app.services.actors import Actor
from app.services.errors import Forbidden, NotFound
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
