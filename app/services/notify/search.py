"""Case search: every case the actor may see, found by number, citizen (keyed hashes
of the ID number and of the name, never a decrypted column), category, state, date
range or lateness, closed ones included, a page at a time, newest first.

Who finds what is the case page's rule (``results.visible_cases``): a holder of
``all_agencies`` every case; anyone else with casework (notifying, supervising,
handling) the cases their agency notified or has a dispatch of. A holder of
``list_all_cases`` (managers) finds every agency's cases as the reports count
them: never by personal data, and with no link to a case page they cannot open.
A search by ID number or name is audited; the list itself shows no personal data.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import exists, select, true
from sqlalchemy.orm import joinedload, selectinload

from app.lib import identifiers
from app.lib.rocdate import utc_midnight
from app.models.notify import Dispatch, NotificationCase, NotificationCategory
from app.services import actors, audit
from app.services.actors import Actor
from app.services.command import transaction
from app.services.errors import Forbidden, InvalidInput
from app.services.notify import results
from app.services.notify.registration import id_hash, name_hash
from app.services.notify.worklists import MAX_PAGE, list_columns
from app.services.roles import DISPATCH_HANDLE, DISPATCH_SUPERVISE, LIST_ALL_CASES, NOTIFY_CASES

CASE_STATUSES = ("open", "completed", "withdrawn")
_CASEWORK = (NOTIFY_CASES, DISPATCH_SUPERVISE, DISPATCH_HANDLE)


@dataclass(frozen=True)
class Criteria:
    """What a search asks for (``app.schemas.notify.CaseSearchSchema`` checks the input); all optional."""

    case_no: str = ""
    id_no: str = ""
    name: str = ""
    category: int | None = None
    status: str | None = None  # of the case: CASE_STATUSES
    state: str | None = None  # of a dispatch the searcher sees: DISPATCH_STATES
    date_from: datetime.date | None = None  # registered on or after (Taipei day)
    date_to: datetime.date | None = None
    overdue: bool = False
    page: int = 1

    @property
    def personal(self) -> list[str]:
        """The personal data the search uses (their names, for the audit trail)."""
        return [k for k in ("id_no", "name") if getattr(self, k)]


@dataclass(frozen=True)
class DispatchState:
    agency: results.AgencyRef
    state: str


@dataclass(frozen=True)
class SearchRow:
    """A case found (no personal data); ``linked``: the searcher may open its page."""

    case_no: str
    category: results.CategoryRef
    notifying_agency: results.AgencyRef | None
    status: str
    created_at: datetime.datetime
    due_at: datetime.datetime | None
    completed_at: datetime.datetime | None
    overdue: bool
    dispatches: list[DispatchState]
    linked: bool


@dataclass(frozen=True)
class SearchPage:
    page: int
    size: int
    more: bool
    items: list[SearchRow] = field(default_factory=list)
    everywhere: bool = False  # the searcher's reach is every agency

    @property
    def count(self) -> int:
        return len(self.items)


def search_categories(session) -> list[results.CategoryRef]:
    """Every category, ended ones too (old cases keep theirs), for the search form."""
    cats = session.scalars(
        select(NotificationCategory).order_by(NotificationCategory.main_item, NotificationCategory.sub_item)
    )
    return [results.category_ref(c) for c in cats]


def _casework(actor: Actor) -> bool:
    return actor.can(actors.ALL_AGENCIES) or (actor.agency_id is not None and any(actor.can(c) for c in _CASEWORK))


def searches_by_citizen(actor: Actor) -> bool:
    """Whether the actor may search by ID number or name (the form offers those fields)."""
    return _casework(actor)


def _reach(actor: Actor, criteria: Criteria) -> tuple[object, bool]:
    """The WHERE clause of the cases the actor may find, and whether it may open them."""
    if _casework(actor):
        return results.visible_cases(actor), True
    if actor.can(LIST_ALL_CASES):
        if criteria.personal:
            raise Forbidden(_l("Your role may search cases by number, category, state and dates, not by citizen."))
        return None, False
    raise Forbidden(_l("Your role may not search cases."))


def _where(actor: Actor, c: Criteria, now: datetime.datetime, reach) -> list:
    case = NotificationCase
    where = [reach] if reach is not None else []
    if c.case_no:
        where.append(case.case_no == c.case_no)
    if c.id_no:
        where.append(case.citizen_id_hash == id_hash(c.id_no))
    if c.name:
        where.append(case.citizen_name_hash == name_hash(c.name))
    if c.category is not None:
        where.append(case.category_id == c.category)
    if c.status:
        where.append(case.status == c.status)
    if c.date_from is not None:
        where.append(case.created_at >= utc_midnight(c.date_from))
    if c.date_to is not None:
        where.append(case.created_at < utc_midnight(c.date_to + datetime.timedelta(days=1)))
    if c.overdue:  # as the home page counts them: open and past due
        where += [case.status == "open", case.due_at < now]
    if c.state:
        seen = results.visible_dispatch_of_case(actor) if reach is not None else true()
        where.append(exists().where(Dispatch.case_id == case.id, Dispatch.state == c.state, seen))
    return where


def _row(case: NotificationCase, actor: Actor, linked: bool, now) -> SearchRow:
    shown = results.visible_dispatches(case, actor) if linked else list(case.dispatches)
    return SearchRow(
        case_no=case.case_no,
        category=results.category_ref(case.category),
        notifying_agency=results.agency_ref(case.agency),
        status=case.status,
        created_at=case.created_at,
        due_at=case.due_at,
        completed_at=case.completed_at,
        overdue=case.status == "open" and case.due_at is not None and case.due_at < now,
        dispatches=[DispatchState(results.agency_ref(d.agency), d.state) for d in shown or []],
        linked=linked,
    )


def search_cases(session, actor: Actor, criteria: Criteria, size: int | None = None, *, reader=None) -> SearchPage:
    """The cases matching ``criteria`` that the actor may find, newest first, one page
    (CASE_SEARCH_PAGE_SIZE). A search by ID number or name is audited (which kinds of
    personal data, the case numbers found; never the values) through ``session``; the
    cases are read through ``reader`` when given (the reports' replica), else ``session``.

    Raises Forbidden (no reach, or personal criteria beyond the actor's reach), InvalidInput.
    """
    reach, linked = _reach(actor, criteria)
    if criteria.id_no and not identifiers.is_person_id(criteria.id_no):
        raise InvalidInput(_l("The ID number is not valid (check the format and the check digit)."))
    if criteria.date_from and criteria.date_to and criteria.date_to < criteria.date_from:
        raise InvalidInput(_l("The date range ends before it begins."))
    size = size or int(current_app.config.get("CASE_SEARCH_PAGE_SIZE", 20))
    page = max(1, min(criteria.page, MAX_PAGE))
    now = datetime.datetime.utcnow()
    with transaction(session):
        stmt = (
            select(NotificationCase)
            .where(*_where(actor, criteria, now, reach))
            .options(
                *list_columns(),
                joinedload(NotificationCase.category),
                joinedload(NotificationCase.agency),
                selectinload(NotificationCase.dispatches).joinedload(Dispatch.agency),
            )
            .order_by(NotificationCase.created_at.desc(), NotificationCase.id.desc())
            .limit(size + 1)
            .offset((page - 1) * size)
        )
        found = list((reader or session).scalars(stmt).unique())
        items = [_row(case, actor, linked, now) for case in found[:size]]
        if criteria.personal:
            audit.record(
                session,
                "case_search",
                object_type="NotificationCase",
                detail={"by": criteria.personal, "page": page, "cases": [i.case_no for i in items]},
                actor=actor,
            )
    return SearchPage(page=page, size=size, more=len(found) > size, items=items, everywhere=reach is None)
