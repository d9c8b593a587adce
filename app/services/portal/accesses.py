"""Who read my data: the query log entries whose data subject is the visitor,
newest first, as the person may see them (agency, form, business item, whether a
case number or reason was given; never the official nor the other subjects), and
the "I don't recognise this" flags the querying agency's Auditor answers."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, or_, select, true

from app.models.org import Agency
from app.models.portal import AccessFlag
from app.models.queries import QueryForm, QueryLog
from app.services import audit
from app.services.actors import Actor
from app.services.command import refuse, transaction
from app.services.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.services.portal.person import REVIEW_FLAGS, person_of

NO_ENTRY = _l("No such entry in the record of who read your data.")
NO_FLAG = _l("No such flag for your agency.")
READ_OUTCOMES = ("ok", "partial")  # a refused query read nothing
MAX_NOTE = 500
MAX_ENTRIES = 500


@dataclass
class AccessEntry:
    id: int
    at: datetime.datetime
    agency_code: str | None
    agency_name: str | None
    form_title: str | None
    business_item: str | None
    case_no_given: bool
    reason_given: bool
    flagged_at: datetime.datetime | None = None
    answer_due: datetime.datetime | None = None
    answer: str | None = None
    answered_at: datetime.datetime | None = None


@dataclass
class FlagReview:
    """A flag with the full record, as the querying agency's Auditor sees it."""

    id: int
    flagged_at: datetime.datetime
    due_at: datetime.datetime
    overdue: bool
    note: str | None
    answer: str | None
    answered_at: datetime.datetime | None
    query_id: int
    query_at: datetime.datetime
    username: str | None
    agency_code: str | None
    form_title: str | None
    case_no: str | None
    reason: str | None
    business_item: str | None
    client_ip: str | None


def _visible(session, subject: str, now: datetime.datetime):
    """The query log rows of one subject the person may see now: a restricted form's only
    once its delay has passed (the restricted forms are few: one condition each)."""
    restricted = session.execute(select(QueryForm.id, QueryForm.restricted_days).where(QueryForm.restricted)).all()
    shown = or_(
        QueryLog.form_id.is_(None),
        QueryLog.form_id.not_in([r.id for r in restricted]) if restricted else true(),
        *[and_(QueryLog.form_id == r.id, QueryLog.at <= now - datetime.timedelta(days=r.restricted_days or 0))
          for r in restricted],
    )  # fmt: skip
    return and_(QueryLog.subjects.contains(subject, autoescape=True), QueryLog.outcome.in_(READ_OUTCOMES), shown)


def _entries(session, subject: str, user_id: int, now: datetime.datetime):
    return (
        select(QueryLog, Agency.name, AccessFlag)
        .outerjoin(Agency, Agency.code == QueryLog.agency_code)
        .outerjoin(AccessFlag, and_(AccessFlag.query_log_id == QueryLog.id, AccessFlag.user_id == user_id))
        .where(_visible(session, subject, now))
    )


def _entry(log: QueryLog, agency_name, flag: AccessFlag | None) -> AccessEntry:
    return AccessEntry(
        id=log.id,
        at=log.at,
        agency_code=log.agency_code,
        agency_name=agency_name,
        form_title=log.form_title,
        business_item=log.business_item,
        case_no_given=bool(log.case_no),
        reason_given=bool(log.reason),
        flagged_at=flag.created_at if flag else None,
        answer_due=flag.due_at if flag else None,
        answer=flag.answer if flag else None,
        answered_at=flag.answered_at if flag else None,
    )


def list_accesses(session, actor: Actor) -> list[AccessEntry]:
    """Command: who read my data, newest first (the page view audited). Raises Forbidden."""
    person = person_of(session, actor)
    if person.subject is None:
        rows = []
    else:
        now = datetime.datetime.utcnow()
        stmt = _entries(session, person.subject, actor.user_id, now)
        rows = session.execute(stmt.order_by(QueryLog.at.desc(), QueryLog.id.desc()).limit(MAX_ENTRIES)).all()
    entries = [_entry(log, name, flag) for log, name, flag in rows]
    with transaction(session):
        audit.record(session, "portal.accesses_viewed", detail={"entries": len(entries)}, actor=actor)
    return entries


def _find(session, actor: Actor, log_id) -> tuple:
    person = person_of(session, actor)
    found = None
    if person.subject is not None and isinstance(log_id, int) and 0 < log_id < 2**63:
        stmt = _entries(session, person.subject, actor.user_id, datetime.datetime.utcnow())
        found = session.execute(stmt.where(QueryLog.id == log_id)).first()
    if found is None:
        ref = log_id if isinstance(log_id, int) and 0 < log_id < 2**63 else None
        raise refuse(session, NotFound(NO_ENTRY), actor, "portal.access_refused", object_type="QueryLog",
                     object_id=ref)  # fmt: skip
    return found


def get_access(session, actor: Actor, log_id: int) -> AccessEntry:
    """Command: one entry of who read my data (audited). Raises NotFound (audited), Forbidden."""
    log, name, flag = _find(session, actor, log_id)
    with transaction(session):
        audit.record(session, "portal.access_viewed", object_type="QueryLog", object_id=log.id, actor=actor)
    return _entry(log, name, flag)


def flag_access(session, actor: Actor, log_id: int, note: str | None) -> AccessEntry:
    """Command: "I don't recognise this": a review for the querying agency's Auditor, due within
    ACCESS_FLAG_ANSWER_DAYS. Raises NotFound (audited), Conflict (flagged already), InvalidInput."""
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        raise InvalidInput(_l("Say it in at most %(n)s characters."), n=MAX_NOTE)
    log, name, flag = _find(session, actor, log_id)
    if flag is not None:
        raise refuse(session, Conflict(_l("You have flagged this entry already.")), actor, "portal.access_flag",
                     object_type="QueryLog", object_id=log.id)  # fmt: skip
    now = datetime.datetime.utcnow()
    with transaction(session):
        flag = AccessFlag(
            query_log_id=log.id,
            user_id=actor.user_id,
            agency_code=log.agency_code or "",
            note=note or None,
            created_at=now,
            due_at=now + datetime.timedelta(days=current_app.config["ACCESS_FLAG_ANSWER_DAYS"]),
        )
        session.add(flag)
        session.flush()
        audit.record(session, "portal.access_flag", object_type="AccessFlag", object_id=flag.id,
                     detail={"query": log.id, "agency": log.agency_code}, actor=actor)  # fmt: skip
    return _entry(log, name, flag)


# --- the querying agency's Auditor ------------------------------------------------------------


def _review(flag: AccessFlag, log: QueryLog, now: datetime.datetime) -> FlagReview:
    return FlagReview(
        id=flag.id,
        flagged_at=flag.created_at,
        due_at=flag.due_at,
        overdue=flag.answered_at is None and flag.due_at < now,
        note=flag.note,
        answer=flag.answer,
        answered_at=flag.answered_at,
        query_id=log.id,
        query_at=log.at,
        username=log.username,
        agency_code=log.agency_code,
        form_title=log.form_title,
        case_no=log.case_no,
        reason=log.reason,
        business_item=log.business_item,
        client_ip=log.client_ip,
    )


def _auditor(actor: Actor) -> None:
    if not actor.can(REVIEW_FLAGS) or not actor.agency_code:
        raise Forbidden(_l("Only an Auditor of the querying agency reviews these flags."))


def list_flags(session, actor: Actor) -> list[FlagReview]:
    """Command: the flags on one's agency's queries, unanswered first, each with the full record
    (audited: it shows who queried whom). Raises Forbidden."""
    _auditor(actor)
    rows = session.execute(
        select(AccessFlag, QueryLog)
        .join(QueryLog, QueryLog.id == AccessFlag.query_log_id)
        .where(AccessFlag.agency_code == actor.agency_code)
        .order_by(AccessFlag.answered_at.is_not(None), AccessFlag.due_at)
        .limit(MAX_ENTRIES)
    ).all()
    now = datetime.datetime.utcnow()
    with transaction(session):
        audit.record(session, "portal.flags_viewed", detail={"flags": len(rows)}, actor=actor)
    return [_review(flag, log, now) for flag, log in rows]


def answer_flag(session, actor: Actor, flag_id: int, answer: str | None) -> FlagReview:
    """Command: the Auditor's answer, shown to the person (audited). Raises Forbidden, NotFound
    (another agency's flag, audited), Conflict (answered already), InvalidInput (blank or too long)."""
    _auditor(actor)
    answer = (answer or "").strip()
    if not answer:
        raise InvalidInput(_l("Write the answer the person will read."))
    if len(answer) > 2000:
        raise InvalidInput(_l("Say it in at most %(n)s characters."), n=2000)
    found = None
    if isinstance(flag_id, int) and 0 < flag_id < 2**63:
        found = session.execute(
            select(AccessFlag, QueryLog)
            .join(QueryLog, QueryLog.id == AccessFlag.query_log_id)
            .where(AccessFlag.id == flag_id, AccessFlag.agency_code == actor.agency_code)
        ).first()
    if found is None:
        raise refuse(session, NotFound(NO_FLAG), actor, "portal.flag_answer", object_type="AccessFlag",
                     object_id=flag_id if isinstance(flag_id, int) and 0 < flag_id < 2**63 else None)  # fmt: skip
    flag, log = found
    if flag.answered_at is not None:
        raise refuse(session, Conflict(_l("This flag has been answered already.")), actor, "portal.flag_answer",
                     object_type="AccessFlag", object_id=flag.id)  # fmt: skip
    with transaction(session):
        flag.answer, flag.answered_at, flag.answered_by = answer, datetime.datetime.utcnow(), actor.user_id
        audit.record(session, "portal.flag_answer", object_type="AccessFlag", object_id=flag.id,
                     detail={"query": log.id, "late": flag.answered_at > flag.due_at}, actor=actor)  # fmt: skip
    return _review(flag, log, datetime.datetime.utcnow())
