"""The anomaly worker (``flask worker anomalies``): every ANOMALY_POLL_SECONDS it reads the
query log past its cursor and applies the active rules, raising or growing flags.

Why a worker and not the query's own transaction: a query on PostgreSQL writes its log
row, its subjects and its audit event in ONE autocommitted statement
(``app.services.query.record.write_run``); counting a user's distinct subjects of the
hour or day there would add reads and a transaction to every query. Here the query pays
nothing, and a batch of queries costs one grouped count per user and period. A flag is
raised within ANOMALY_POLL_SECONDS + ANOMALY_SETTLE_SECONDS (well within a minute).

Rows are read in id order once they are ANOMALY_SETTLE_SECONDS old: a query's
transaction commits right after its time is set, so an id still uncommitted when the
worker passes would have to stay open that long. Flags are keyed (rule, user, period or
query): evaluating a row twice never raises a second flag. The cursor row is locked for
the round, so two workers take turns.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import bindparam, distinct, func, select, update

from app.models.anomaly import AnomalyCursor, AnomalyFlag, AnomalyRule, OfficeDay, ProtectedSubject
from app.models.cards import CardBinding
from app.models.queries import QueryLog, QuerySubject
from app.services import audit, outbox
from app.services.actors import SYSTEM
from app.services.anomaly.rules import is_office_time, to_local, to_utc
from app.services.command import transaction
from app.services.query.record import READ_OUTCOMES
from app.services.roles import RESOLVE_ANOMALIES, holders_of

log = logging.getLogger(__name__)
BATCH = 2000
_log, _subject = QueryLog.__table__, QuerySubject.__table__


@dataclass
class Found:
    """A flag a rule wants (new, or grown if its key exists)."""

    key: str
    rule: AnomalyRule
    row: object  # the query log row that raised it (the last one of its period)
    first_at: datetime.datetime
    last_at: datetime.datetime
    query_count: int
    subject_count: int
    additive: bool = False  # counts add to an existing flag's (off hours), else replace them
    query_ids: set = field(default_factory=set)


def _bucket(local: datetime.datetime, minutes: int) -> tuple[datetime.datetime, datetime.datetime]:
    """The local period of ``minutes`` holding ``local``: a part of the day, or whole days."""
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if minutes % 1440 == 0:
        days = minutes // 1440
        start = midnight - datetime.timedelta(days=local.date().toordinal() % days)
    else:
        into = (local.hour * 60 + local.minute) // minutes * minutes
        start = midnight + datetime.timedelta(minutes=into)
    return start, start + datetime.timedelta(minutes=minutes)


def _by_period(rows, minutes: int, local: dict) -> dict[datetime.datetime, dict[int, list]]:
    """The rows by local period start, then by user (``local``: each row's local time by id)."""
    groups: dict[datetime.datetime, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        groups[_bucket(local[row.id], minutes)[0]][row.user_id].append(row)
    return groups


def _period_where(users, start_local: datetime.datetime, minutes: int, upto: datetime.datetime):
    """The period's queries of these users (through the log's (user_id, at) index), up to the
    last one read this round."""
    start = to_utc(start_local)
    end = min(to_utc(start_local + datetime.timedelta(minutes=minutes)), upto + datetime.timedelta(microseconds=1))
    return (_log.c.user_id.in_(sorted(users)), _log.c.at >= start, _log.c.at < end)


_JOINED = _log.join(_subject, _subject.c.query_log_id == _log.c.id)


def _many_subjects(session, rule: AnomalyRule, rows, context) -> list[Found]:
    """One grouped count per period read this round (every user of it at once)."""
    found = []
    for start, by_user in _by_period(rows, rule.window_minutes, context["local"]).items():
        last = max(r.at for group in by_user.values() for r in group)
        counts = session.execute(
            select(_log.c.user_id, func.count(distinct(_subject.c.subject_hash)),
                   func.count(distinct(_subject.c.query_log_id)), func.min(_log.c.at))
            .select_from(_JOINED)
            .where(*_period_where(by_user, start, rule.window_minutes, last))
            .group_by(_log.c.user_id)
            .having(func.count(distinct(_subject.c.subject_hash)) >= rule.threshold)
        ).all()  # fmt: skip
        for user_id, subjects, queries, first in counts:
            row = max(by_user[user_id], key=lambda r: r.id)
            found.append(Found(f"{rule.id}:{user_id}:{start:%Y%m%d%H%M}", rule, row, first or row.at, row.at,
                               queries, subjects))  # fmt: skip
    return found


def _repeat_subject(session, rule: AnomalyRule, rows, context) -> list[Found]:
    found = []
    for start, by_user in _by_period(rows, rule.window_minutes, context["local"]).items():
        last = max(r.at for group in by_user.values() for r in group)
        repeated = session.execute(
            select(_log.c.user_id, _subject.c.subject_hash, _log.c.case_no, func.count(), func.min(_log.c.at))
            .select_from(_JOINED)
            .where(*_period_where(by_user, start, rule.window_minutes, last))
            .group_by(_log.c.user_id, _subject.c.subject_hash, _log.c.case_no)
            .having(func.count() >= rule.threshold)
        ).all()
        for user_id, subject, case_no, count, first in repeated:
            row = max(by_user[user_id], key=lambda r: r.id)
            case = hashlib.sha256((case_no or "").encode()).hexdigest()[:12]
            key = f"{rule.id}:{user_id}:{start:%Y%m%d%H%M}:{subject[:16]}:{case}"
            found.append(Found(key, rule, row, first, row.at, count, 1))
    return found


def _off_hours(session, rule: AnomalyRule, rows, context) -> list[Found]:
    days = context["days"]
    groups: dict[tuple[int, datetime.date], list] = defaultdict(list)
    for row in rows:
        local = context["local"][row.id]
        if not is_office_time(local, rule.office_start, rule.office_end, days):
            groups[(row.user_id, local.date())].append(row)
    found = []
    for (user_id, day), group in groups.items():
        subjects = {h for r in group for h in (r.subjects or "").split()}
        row = max(group, key=lambda r: r.id)
        found.append(Found(f"{rule.id}:{user_id}:{day:%Y%m%d}", rule, row, min(r.at for r in group),
                           max(r.at for r in group), len(group), len(subjects), additive=True,
                           query_ids={r.id for r in group}))  # fmt: skip
    return found


def _protected_subject(session, rule: AnomalyRule, rows, context) -> list[Found]:
    protected = context["protected"]
    found = []
    for row in rows:
        hits = protected.intersection((row.subjects or "").split())
        if hits:
            found.append(Found(f"{rule.id}:q{row.id}", rule, row, row.at, row.at, 1, len(hits)))
    return found


def _own_household(session, rule: AnomalyRule, rows, context) -> list[Found]:
    """The user's own keyed ID (from the citizen card bound to the account) among the
    query's subjects: themselves, or a household the e-gate answered with them in it."""
    own = context["own"]
    found = []
    for row in rows:
        mine = own.get(row.user_id)
        if mine and mine in (row.subjects or "").split():
            found.append(Found(f"{rule.id}:q{row.id}", rule, row, row.at, row.at, 1, 1))
    return found


EVALUATORS = {
    "many_subjects": _many_subjects,
    "repeat_subject": _repeat_subject,
    "off_hours": _off_hours,
    "protected_subject": _protected_subject,
    "own_household": _own_household,
}


def _context(session, rules, rows) -> dict:
    """What the rules read besides the log, once a round (only what the active kinds need)."""
    kinds = {r.kind for r in rules}
    local = {r.id: to_local(r.at) for r in rows}  # the county's wall clock, once a row
    context: dict = {"days": {}, "protected": set(), "own": {}, "local": local}
    if "off_hours" in kinds:
        local_days = {moment.date() for moment in local.values()}
        context["days"] = dict(
            session.execute(select(OfficeDay.day, OfficeDay.kind).where(OfficeDay.day.in_(sorted(local_days)))).all()
        )
    if "protected_subject" in kinds:
        context["protected"] = set(session.scalars(select(ProtectedSubject.subject_hash)))
    if "own_household" in kinds:
        users = sorted({r.user_id for r in rows})
        context["own"] = dict(
            session.execute(
                select(CardBinding.user_id, CardBinding.subject_hash).where(
                    CardBinding.user_id.in_(users), CardBinding.kind == "citizen",
                    CardBinding.subject_hash.is_not(None),
                )
            ).all()
        )  # fmt: skip
    return context


def _apply(session, found: list[Found], now: datetime.datetime) -> list[AnomalyFlag]:
    """Raise the new flags, grow the open ones (one UPDATE statement for all of them);
    returns the new ones (flushed)."""
    if not found:
        return []
    flags = AnomalyFlag.__table__
    existing = {
        row.key: row
        for row in session.execute(
            select(flags.c.id, flags.c.key, flags.c.resolved_at, flags.c.last_at, flags.c.query_count,
                   flags.c.subject_count).where(flags.c.key.in_(sorted({x.key for x in found})))
        )
    }  # fmt: skip
    new: list[AnomalyFlag] = []
    grown: list[dict] = []
    for item in found:
        if item.key in existing:
            flag = existing[item.key]
            if flag.resolved_at is None and item.last_at >= flag.last_at:
                added = item.additive
                grown.append({
                    "flag_id": flag.id, "last": item.last_at, "query": item.row.id,
                    "queries": flag.query_count + item.query_count if added else item.query_count,
                    "subjects": flag.subject_count + item.subject_count if added else item.subject_count,
                })  # fmt: skip
            continue
        row = item.row
        flag = AnomalyFlag(
            key=item.key, rule_id=item.rule.id, rule_name=item.rule.name, kind=item.rule.kind,
            severity=item.rule.severity, query_log_id=row.id, user_id=row.user_id, username=row.username,
            agency_code=row.agency_code, raised_at=now, first_at=item.first_at, last_at=item.last_at,
            query_count=item.query_count, subject_count=item.subject_count,
        )  # fmt: skip
        session.add(flag)
        existing[item.key] = None
        new.append(flag)
    if grown:
        session.execute(
            update(flags).where(flags.c.id == bindparam("flag_id")).values(
                last_at=bindparam("last"), query_log_id=bindparam("query"), query_count=bindparam("queries"),
                subject_count=bindparam("subjects"),
            ),
            grown,
        )  # fmt: skip
    session.flush()
    return new


def _cursor_at(session) -> int:
    """Where the last round stopped (0 before the first)."""
    return session.scalar(select(AnomalyCursor.last_query_id).where(AnomalyCursor.id == 1)) or 0


def evaluate_round(session, now: datetime.datetime | None = None, batch: int = BATCH) -> dict:
    """Command (the worker's round): apply the active rules to the queries logged since the
    last round (settled ones), raise and audit flags, mail the agencies' reviewers.
    Returns counts: queries read, flags raised. A round with nothing new to read writes
    nothing (one read)."""
    now = now or datetime.datetime.utcnow()
    settle = datetime.timedelta(seconds=current_app.config.get("ANOMALY_SETTLE_SECONDS", 5))
    with transaction(session):
        if not session.scalar(select(_log.c.id).where(_log.c.id > _cursor_at(session), _log.c.at <= now - settle)
                              .limit(1)):  # fmt: skip
            return {"read": 0, "flags": 0}
    with transaction(session):
        cursor = session.scalar(select(AnomalyCursor).where(AnomalyCursor.id == 1).with_for_update())
        if cursor is None:
            cursor = AnomalyCursor(id=1, last_query_id=0)
            session.add(cursor)
            session.flush()
        read = session.execute(
            select(_log.c.id, _log.c.at, _log.c.user_id, _log.c.username, _log.c.agency_code, _log.c.case_no,
                   _log.c.subjects, _log.c.outcome)
            .where(_log.c.id > cursor.last_query_id)
            .order_by(_log.c.id)
            .limit(batch)
        ).all()  # fmt: skip
        settled = []
        for row in read:
            if row.at > now - settle:
                break  # this one and the later ones wait for the next round
            settled.append(row)
        rows = [r for r in settled if r.outcome in READ_OUTCOMES and r.user_id is not None]
        new: list[AnomalyFlag] = []
        if rows:
            rules = list(session.scalars(select(AnomalyRule).where(AnomalyRule.active.is_(True))
                                         .order_by(AnomalyRule.id)))  # fmt: skip
            if rules:
                context = _context(session, rules, rows)
                found = [f for rule in rules for f in EVALUATORS[rule.kind](session, rule, rows, context)]
                new = _apply(session, found, now)
        if settled:
            cursor.last_query_id = settled[-1].id
        cursor.last_run_at = now
        if new:  # the flags' events in one statement
            audit.recording.append(session.connection(), [
                audit.event_values("anomaly.flag_raised", "AnomalyFlag", flag.id, None, "ok",
                                   {"rule": flag.rule_name, "kind": flag.kind, "severity": flag.severity,
                                    "agency": flag.agency_code, "query": flag.query_log_id,
                                    "queries": flag.query_count, "subjects": flag.subject_count}, SYSTEM)
                for flag in new
            ])  # fmt: skip
            _tell_reviewers(session, new)
    return {"read": len(settled), "flags": len(new)}


def _tell_reviewers(session, flags: list[AnomalyFlag]) -> None:
    """One mail per agency with new flags to its reviewers (counts and a link, nothing personal)."""
    link = f"{current_app.config['PUBLIC_BASE_URL'].rstrip('/')}/anomalyflags/"
    by_agency: dict[str, int] = defaultdict(int)
    for flag in flags:
        by_agency[flag.agency_code or ""] += 1
    for agency, count in sorted(by_agency.items()):
        subject = f"【查詢異常】本機關有 {count} 筆新的異常查詢警示 / {count} new query anomaly flags"
        body = (
            f"您好：\n\n異常查詢規則對本機關的查詢提出了 {count} 筆新的警示。請登入平台檢視，並為每一筆填寫結果"
            f"（正當、不當使用、誤報）與說明：\n{link}\n\n"
            f"The anomaly rules raised {count} new flags on your agency's queries. Please review each on the "
            f"platform and record its outcome and a comment:\n{link}\n"
        )
        for person in holders_of(session, RESOLVE_ANOMALIES, agency):
            if person.email:
                outbox.enqueue(session, person.email, subject, body, topic="anomaly_flags")


def run(app, stop) -> None:
    """The `flask worker anomalies` loop: a round every ANOMALY_POLL_SECONDS until ``stop`` is set."""
    from app.extensions import db

    every = float(app.config.get("ANOMALY_POLL_SECONDS", 15))
    while not stop.is_set():
        with app.app_context():
            try:
                counts = evaluate_round(db.session)
                if counts["flags"]:
                    log.info("anomalies: %s", counts)
            except Exception:
                log.exception("anomaly round failed")
            finally:
                db.session.remove()
        stop.wait(every)
