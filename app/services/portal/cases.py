"""My cases: the notification cases where the visitor is the citizen (matched by the
keyed hash of the bound ID, as registration keeps it), as the person may see them:
receiving agencies, each dispatch's state and dates, the timeline (never a staff
member's name); and withdrawing an application no agency has accepted yet."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.models.notify import CITIZEN_CHOICE_STAGES, CaseEvent, Dispatch, NotificationCase
from app.services import audit, payments
from app.services.actors import Actor
from app.services.command import refuse, transaction
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.portal.person import person_of

NO_CASE = _l("No such case of yours.")
UNKNOWN_STAGE = _l("Choose among the stages listed.")
NOT_WITHDRAWABLE = _l("An agency has accepted this application already: it can no longer be withdrawn.")
WITHDRAWN_ALREADY = _l("This application was withdrawn already.")
FINISHED = _l("This case is complete: there is nothing to withdraw.")
# Once a receiving agency has accepted, the application is being worked on.
_ACCEPTED = ("accepted", "processed", "closed")


@dataclass
class MyDispatch:
    agency_name: str
    state: str
    sent_at: datetime.datetime | None
    received_at: datetime.datetime | None
    accepted_at: datetime.datetime | None
    processed_at: datetime.datetime | None
    closed_at: datetime.datetime | None
    due_at: datetime.datetime | None
    result: str | None = None  # only when the agency chose to publish it


@dataclass
class MyEvent:
    at: datetime.datetime
    agency_name: str | None
    action: str


@dataclass
class MyCase:
    case_no: str
    category: str
    notifying_agency: str | None
    status: str
    created_at: datetime.datetime
    due_at: datetime.datetime | None
    completed_at: datetime.datetime | None
    withdrawable: bool
    mail_stages: list[str] = field(default_factory=list)  # the stages that e-mail me
    mail_choices: list[str] = field(default_factory=list)  # the stages I may turn on or off
    dispatches: list[MyDispatch] = field(default_factory=list)
    events: list[MyEvent] = field(default_factory=list)


def _withdrawable(case: NotificationCase) -> bool:
    return case.status == "open" and not any(d.state in _ACCEPTED or d.accepted_at is not None for d in case.dispatches)


def _choices(case: NotificationCase) -> list[str]:
    """The stages the citizen may turn off: those the case's category mails the citizen at all."""
    return [s for s in CITIZEN_CHOICE_STAGES if case.category.mails_citizen(s)]


def _shape(case: NotificationCase, full: bool) -> MyCase:
    names = {d.agency.code: d.agency.name for d in case.dispatches}
    if case.agency is not None:
        names[case.agency.code] = case.agency.name
    return MyCase(
        case_no=case.case_no,
        category=str(case.category),
        notifying_agency=case.agency.name if case.agency else None,
        status=case.status,
        created_at=case.created_at,
        due_at=case.due_at,
        completed_at=case.completed_at,
        withdrawable=_withdrawable(case),
        mail_stages=[s for s in _choices(case) if s not in (case.mail_off or "").split(",")],
        mail_choices=_choices(case),
        dispatches=[
            MyDispatch(
                d.agency.name,
                d.state,
                d.sent_at,
                d.received_at,
                d.accepted_at,
                d.processed_at,
                d.closed_at,
                d.due_at,
                result=d.result if d.result_public and d.result else None,
            )  # fmt: skip
            for d in case.dispatches
        ],
        events=[MyEvent(e.at, names.get(e.agency_code), e.action) for e in case.events] if full else [],
    )


def _mine(subject: str):
    return (
        select(NotificationCase)
        .where(NotificationCase.citizen_id_hash == subject)
        .options(
            selectinload(NotificationCase.dispatches).selectinload(Dispatch.agency),
            selectinload(NotificationCase.agency),
            selectinload(NotificationCase.category),
        )
    )


def list_cases(session, actor: Actor) -> list[MyCase]:
    """Command: my cases, newest first (the page view audited). Raises Forbidden.

    A business's cases: those it applied for online (the case keeps its number's keyed hash as the party's)."""
    person = person_of(session, actor)
    cases = []
    if person.kind in ("citizen", "business") and person.subject:
        stmt = _mine(person.subject).order_by(NotificationCase.created_at.desc()).limit(200)
        cases = [_shape(c, full=False) for c in session.scalars(stmt)]
    with transaction(session):
        audit.record(session, "portal.cases_viewed", detail={"cases": len(cases)}, actor=actor)
    return cases


def _find(session, actor: Actor, case_no, action: str) -> NotificationCase:
    person = person_of(session, actor)
    case = None
    if person.kind in ("citizen", "business") and person.subject and isinstance(case_no, str) and len(case_no) <= 20:
        stmt = _mine(person.subject).where(NotificationCase.case_no == case_no)
        case = session.scalar(stmt.options(selectinload(NotificationCase.events)))
    if case is None:
        # the guessed number is not recorded: it may be someone else's
        raise refuse(session, NotFound(NO_CASE), actor, action, object_type="NotificationCase")
    return case


def get_case(session, actor: Actor, case_no: str) -> MyCase:
    """Command: one of my cases with its timeline (audited). Raises NotFound (audited), Forbidden."""
    case = _find(session, actor, case_no, "portal.case_refused")
    shaped = _shape(case, full=True)
    with transaction(session):
        audit.record(session, "portal.case_viewed", object_type="NotificationCase", object_id=case.id, actor=actor)
    return shaped


def withdraw(session, actor: Actor, case_no: str) -> MyCase:
    """Command: withdraw my application while no agency has accepted it; the receiving agencies
    can no longer act on it. Raises NotFound (audited), Conflict (accepted, complete or withdrawn
    already: audited)."""
    case = _find(session, actor, case_no, "portal.withdraw")
    refusal = None
    if case.status == "withdrawn":
        refusal = WITHDRAWN_ALREADY
    elif case.status != "open":
        refusal = FINISHED
    elif not _withdrawable(case):
        refusal = NOT_WITHDRAWABLE
    if refusal is not None:
        raise refuse(session, Conflict(refusal), actor, "portal.withdraw", object_type="NotificationCase",
                     object_id=case.id)  # fmt: skip
    now = datetime.datetime.utcnow()
    with transaction(session):
        case.status = "withdrawn"
        session.add(CaseEvent(case=case, at=now, username=None, agency_code=None, action="withdraw"))
        session.flush()
        audit.record(session, "portal.withdraw", object_type="NotificationCase", object_id=case.id, actor=actor)
        refunds = payments.request_refunds(session, actor, case, "withdrawn")
    if refunds:  # through the provider, after the commit; the payments worker retries what fails
        payments.refund_payments(session, refunds)
    session.refresh(case)
    return _shape(case, full=True)


def set_mail_stages(session, actor: Actor, case_no: str, stages) -> MyCase:
    """Command: choose which stages of my case e-mail me (of CITIZEN_CHOICE_STAGES; the others
    are turned off). Audited. Raises NotFound (audited), InvalidInput."""
    case = _find(session, actor, case_no, "portal.mail_stages")
    if not isinstance(stages, list | tuple) or any(s not in CITIZEN_CHOICE_STAGES for s in stages):
        raise refuse(session, InvalidInput(UNKNOWN_STAGE), actor, "portal.mail_stages", object_type="NotificationCase",
                     object_id=case.id)  # fmt: skip
    off = [s for s in CITIZEN_CHOICE_STAGES if s not in stages]
    with transaction(session):
        case.mail_off = ",".join(off) or None
        audit.record(session, "portal.mail_stages", object_type="NotificationCase", object_id=case.id,
                     detail={"on": list(dict.fromkeys(stages)), "off": off}, actor=actor)  # fmt: skip
    session.refresh(case)
    return _shape(case, full=True)
