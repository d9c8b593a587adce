"""The work lists (by agency, newest first, a page at a time, no personal data)
and who in an agency may be assigned a dispatch."""

from __future__ import annotations

import datetime

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import defer, joinedload, selectinload

from app.models.notify import Dispatch, NotificationCase
from app.models.org import PlatformUser
from app.services import actors
from app.services.actors import Actor
from app.services.errors import Forbidden, NotFound
from app.services.notify import results
from app.services.roles import DISPATCH_HANDLE, DISPATCH_SUPERVISE, NOTIFY_CASES, holders_of

# work list -> the capability that gives it
BOXES = {"cases": NOTIFY_CASES, "incoming": DISPATCH_SUPERVISE, "work": DISPATCH_HANDLE, "all": None}
MAX_PAGE = 10_000
_PERSONAL = ("citizen_name", "citizen_id_no", "citizen_email", "citizen_phone", "citizen_address", "content")


def list_columns():
    """A work list shows no personal data: leave those (encrypted) columns unread."""
    return [defer(getattr(NotificationCase, c)) for c in _PERSONAL]


def boxes_of(actor: Actor) -> list[str]:
    """The work lists this actor has (in tab order)."""
    return [box for box, capability in BOXES.items() if capability is not None and actor.can(capability)]


def page_number(raw) -> int:
    """A page asked for in a query string: 1 when absent or not a number, at most MAX_PAGE."""
    text = str(raw or "")
    return max(1, min(int(text), MAX_PAGE)) if text.isdigit() and len(text) < 7 else 1


def _cases(session, actor: Actor, limit: int, offset: int, now) -> list[results.CaseRow]:
    cases = session.scalars(
        select(NotificationCase)
        .where(NotificationCase.agency_id == actor.agency_id)
        .options(
            *list_columns(),
            joinedload(NotificationCase.category),
            joinedload(NotificationCase.agency),
            selectinload(NotificationCase.dispatches).options(
                joinedload(Dispatch.agency), joinedload(Dispatch.handler), joinedload(Dispatch.supervisor)
            ),
        )
        .order_by(NotificationCase.created_at.desc())
        .limit(limit)
        .offset(offset)
    ).unique()
    return [
        results.CaseRow(
            case_no=c.case_no,
            status=c.status,
            category=results.category_ref(c.category),
            created_at=c.created_at,
            due_at=c.due_at,
            overdue=c.status != "completed" and c.due_at is not None and c.due_at < now,
            dispatches=[results.dispatch_view(d, actor, now) for d in c.dispatches],
        )
        for c in cases
    ]


def _dispatches(session, actor: Actor, box: str, limit: int, offset: int, now) -> list[results.DispatchView]:
    stmt = (
        select(Dispatch)
        .where(Dispatch.agency_id == actor.agency_id)
        .options(
            joinedload(Dispatch.case).options(
                *list_columns(), joinedload(NotificationCase.category), joinedload(NotificationCase.agency)
            ),
            joinedload(Dispatch.agency),
            joinedload(Dispatch.handler),
            joinedload(Dispatch.supervisor),
        )
        .order_by(Dispatch.sent_at.desc())
    )
    # A case the applicant withdrew (portal) waits on nobody: it leaves the boxes of work to do
    # (its dispatches stay in "all", where the case says it was withdrawn).
    not_withdrawn = Dispatch.case.has(NotificationCase.status != "withdrawn")
    if box == "incoming":
        stmt = stmt.where(Dispatch.state.in_(("sent", "received", "processed")), not_withdrawn)
    elif box == "work":
        stmt = stmt.where(
            Dispatch.handler_id == actor.user_id, Dispatch.state.in_(("assigned", "accepted")), not_withdrawn
        )
    rows = session.scalars(stmt.limit(limit).offset(offset)).unique()
    return [results.dispatch_view(d, actor, now) for d in rows]


def worklist(session, actor: Actor, box: str, page: int = 1, size: int | None = None) -> results.WorkList:
    """cases: my agency's cases (notifiers); incoming: to receive, assign or
    review (supervisors); work: assigned to me (handlers); all: every
    dispatch of my agency. Strictly by agency, newest first, a page at a time
    (WORKLIST_PAGE_SIZE), with what the list shows loaded in the same queries.
    Reads only: changes nothing.
    """
    if box not in BOXES:
        raise NotFound(_l("No such work list."))
    capability = BOXES[box]
    if capability is not None and not (actor.can(capability) or actor.can(actors.ALL_AGENCIES)):
        raise Forbidden(_l("This work list is not one of yours."))
    size = size or int(current_app.config.get("WORKLIST_PAGE_SIZE", 50))
    page = max(1, min(page, MAX_PAGE))
    offset, now = (page - 1) * size, datetime.datetime.utcnow()
    if box == "cases":
        items = _cases(session, actor, size, offset, now)
    else:
        items = _dispatches(session, actor, box, size, offset, now)
    return results.WorkList(box=box, page=page, size=size, items=items)


def handlers_of(session, agency_id: int) -> list[PlatformUser]:
    """The agency's active users whose roles hold the ``dispatch_handle`` capability."""
    return holders_of(session, DISPATCH_HANDLE, agency_id=agency_id)
