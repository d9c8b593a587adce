"""The flags the rules raised, for the querying agency's supervisors and the auditors: the
list (with the queries it covers) and the resolution, an outcome and a comment, audited.
Nobody resolves a flag on their own queries."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from sqlalchemy import case, func, select

from app.models.anomaly import OUTCOMES, AnomalyFlag
from app.models.queries import QueryLog
from app.services import actors, audit
from app.services.actors import Actor
from app.services.command import refuse, transaction
from app.services.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.services.roles import RESOLVE_ANOMALIES

OUTCOME_LABELS = {
    "justified": _l("Justified"),
    "misconduct": _l("Misconduct"),
    "false_alarm": _l("False alarm"),
}
NO_FLAG = _l("No such flag for you to review.")
MAX_COMMENT = 2000
MAX_LIST = 500
_SEVERITY_ORDER = case({"high": 0, "medium": 1, "low": 2}, value=AnomalyFlag.severity, else_=3)


@dataclass
class FlagView:
    """A flag as its reviewer sees it: the rule, who, when, the counts, the query that raised
    it (its purpose as given), and the resolution."""

    id: int
    rule_name: str
    kind: str
    severity: str
    username: str | None
    agency_code: str | None
    raised_at: datetime.datetime
    first_at: datetime.datetime
    last_at: datetime.datetime
    query_count: int
    subject_count: int
    query_id: int | None
    form_title: str | None
    case_no: str | None
    reason: str | None
    outcome: str | None
    comment: str | None
    resolved_at: datetime.datetime | None
    resolved_by_name: str | None
    own: bool  # about the viewer's own queries: the viewer may not resolve it


def may_review(actor: Actor) -> bool:
    return actor.signed_in and actor.can(RESOLVE_ANOMALIES)


def _scope(actor: Actor):
    """Auditors who read every agency's queries see every agency's flags; others their agency's."""
    if actor.can(actors.READ_ALL_QUERIES):
        return ()
    return (AnomalyFlag.agency_code == (actor.agency_code or ""),)


def _reviewer(actor: Actor) -> None:
    if not may_review(actor) or (not actor.agency_code and not actor.can(actors.READ_ALL_QUERIES)):
        raise Forbidden(_l("Only the agency's supervisors and the auditors review anomaly flags."))


def open_count(session, actor: Actor) -> int | None:
    """Open flags the actor reviews (the home page and the auditor's desk); None for others."""
    if not may_review(actor):
        return None
    return int(
        session.scalar(select(func.count(AnomalyFlag.id)).where(AnomalyFlag.resolved_at.is_(None), *_scope(actor))) or 0
    )


def _view(flag: AnomalyFlag, log: QueryLog | None, actor: Actor) -> FlagView:
    return FlagView(
        id=flag.id, rule_name=flag.rule_name, kind=flag.kind, severity=flag.severity, username=flag.username,
        agency_code=flag.agency_code, raised_at=flag.raised_at, first_at=flag.first_at, last_at=flag.last_at,
        query_count=flag.query_count, subject_count=flag.subject_count, query_id=flag.query_log_id,
        form_title=log.form_title if log else None, case_no=log.case_no if log else None,
        reason=log.reason if log else None, outcome=flag.outcome, comment=flag.comment,
        resolved_at=flag.resolved_at, resolved_by_name=flag.resolved_by_name,
        own=flag.user_id is not None and flag.user_id == actor.user_id,
    )  # fmt: skip


def list_flags(session, actor: Actor, state: str = "open") -> list[FlagView]:
    """Command: the flags the actor reviews, open first by severity (``state`` open | all),
    audited (it shows who queried what). Raises Forbidden."""
    _reviewer(actor)
    stmt = (
        select(AnomalyFlag, QueryLog)
        .outerjoin(QueryLog, QueryLog.id == AnomalyFlag.query_log_id)
        .where(*_scope(actor))
        .order_by(AnomalyFlag.resolved_at.is_not(None), _SEVERITY_ORDER, AnomalyFlag.raised_at.desc())
        .limit(MAX_LIST)
    )
    if state != "all":
        stmt = stmt.where(AnomalyFlag.resolved_at.is_(None))
    rows = session.execute(stmt).all()
    with transaction(session):
        audit.record(session, "anomaly.flags_viewed", detail={"flags": len(rows), "state": state}, actor=actor)
    return [_view(flag, log, actor) for flag, log in rows]


def resolve_flag(session, actor: Actor, flag_id, outcome: str | None, comment: str | None) -> FlagView:
    """Command: the reviewer's outcome (justified, misconduct, false alarm) and comment, audited.
    Raises Forbidden (not a reviewer; one's own queries, audited), NotFound (not in scope,
    audited), Conflict (resolved already), InvalidInput (outcome, comment)."""
    _reviewer(actor)
    if outcome not in OUTCOMES:
        raise InvalidInput(_l("Choose the outcome: justified, misconduct or false alarm."))
    comment = (comment or "").strip()
    if not comment:
        raise InvalidInput(_l("Write a comment saying what you found."))
    if len(comment) > MAX_COMMENT:
        raise InvalidInput(_l("Say it in at most %(n)s characters."), n=MAX_COMMENT)
    ref = flag_id if isinstance(flag_id, int) and 0 < flag_id < 2**31 else None
    found = None
    if ref is not None:
        found = session.execute(
            select(AnomalyFlag, QueryLog)
            .outerjoin(QueryLog, QueryLog.id == AnomalyFlag.query_log_id)
            .where(AnomalyFlag.id == ref, *_scope(actor))
        ).first()
    if found is None:
        raise refuse(session, NotFound(NO_FLAG), actor, "anomaly.flag_resolved", object_type="AnomalyFlag",
                     object_id=ref)  # fmt: skip
    flag, log = found
    if flag.user_id is not None and flag.user_id == actor.user_id:
        raise refuse(session, Forbidden(_l("A flag on your own queries is reviewed by someone else.")), actor,
                     "anomaly.flag_resolved", object_type="AnomalyFlag", object_id=flag.id)  # fmt: skip
    if flag.resolved_at is not None:
        raise Conflict(_l("This flag has been resolved already."))
    with transaction(session):
        flag.outcome, flag.comment = outcome, comment
        flag.resolved_at, flag.resolved_by, flag.resolved_by_name = (
            datetime.datetime.utcnow(),
            actor.user_id,
            actor.username,
        )
        audit.record(session, "anomaly.flag_resolved", object_type="AnomalyFlag", object_id=flag.id,
                     detail={"outcome": outcome, "rule": flag.rule_name, "agency": flag.agency_code},
                     actor=actor)  # fmt: skip
    return _view(flag, log, actor)
