"""Reading a case: by its number for those who may see it, and the agency's
cases about a citizen (found by keyed hash)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.lib import identifiers
from app.models.notify import NotificationCase
from app.services.actors import Actor
from app.services.errors import InvalidInput, NotFound
from app.services.notify import results
from app.services.notify.registration import id_hash


def visible_case(session, actor: Actor, case_no) -> tuple[NotificationCase, list]:
    """The case and the dispatches this actor may see (``results.visible_dispatches``);
    NotFound for anyone else: never confirm another agency's case exists."""
    case = None
    if isinstance(case_no, str) and 0 < len(case_no) <= 20:
        case = session.scalar(select(NotificationCase).where(NotificationCase.case_no == case_no))
    dispatches = results.visible_dispatches(case, actor) if case is not None else None
    if dispatches is None:
        raise NotFound(_l("No such case."))
    return case, dispatches


def view_case(session, actor: Actor, case_no) -> results.CaseView:
    """The case as this actor may see it (the screen and the API render this). Reads only."""
    case, dispatches = visible_case(session, actor, case_no)
    return results.case_view(case, actor, dispatches)


def cases_about_citizen(session, actor: Actor, id_no: str) -> list[results.CaseView]:
    """The actor's agency's cases (notified or received) about a citizen, found by keyed hash."""
    id_no = (id_no or "").strip().upper()
    if not identifiers.is_person_id(id_no):
        raise InvalidInput(_l("The ID number is not valid (check the format and the check digit)."))
    cases = session.scalars(
        select(NotificationCase).where(
            NotificationCase.citizen_id_hash == id_hash(id_no), results.agency_cases(actor.agency_id)
        )
    )
    out = []
    for case in cases:
        dispatches = results.visible_dispatches(case, actor)
        if dispatches is not None:
            out.append(results.case_view(case, actor, dispatches))
    return out
