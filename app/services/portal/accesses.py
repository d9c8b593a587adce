"""Who read my data: the query log entries whose data subject is the visitor,
newest first, as the person may see them (agency, form, business item, whether a
case number or reason was given; never the official nor the other subjects), and
the "I don't recognise this" flags the querying agency's Auditor answers."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import DateTime, Integer, String, bindparam, func, or_, select, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from app.lib.rocdate import format_roc
from app.lib.ttlcache import TTLCache
from app.models.org import Agency
from app.models.portal import AccessFlag
from app.models.queries import QueryForm, QueryLog, QuerySubject
from app.services import audit, outbox
from app.services.actors import Actor
from app.services.command import refuse, transaction
from app.services.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.services.portal.person import REVIEW_FLAGS, person_of
from app.services.query.record import READ_OUTCOMES
from app.services.roles import holders_of

NO_ENTRY = _l("No such entry in the record of who read your data.")
NO_FLAG = _l("No such flag for your agency.")
MAX_NOTE = 500
MAX_ENTRIES = 500  # the Auditor's list of flags
PAGE_SIZE = 50  # who read my data, a page at a time
MAX_PAGE = 10_000


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
class AccessPage:
    """A page of who read my data; ``next_page`` None on the last."""

    entries: list[AccessEntry]
    page: int
    next_page: int | None


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


class days_before(FunctionElement):
    """``moment`` less ``days`` days, in the database (a column's number of days)."""

    type = DateTime()
    name = "days_before"
    inherit_cache = True


@compiles(days_before)
def _days_before_sqlite(element, compiler, **kw):
    moment, days = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"datetime({moment}, '-' || {days} || ' days')"


@compiles(days_before, "postgresql")
def _days_before_postgresql(element, compiler, **kw):
    moment, days = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"(CAST({moment} AS TIMESTAMP) - {days} * INTERVAL '1 day')"


@compiles(days_before, "mysql")
@compiles(days_before, "mariadb")
def _days_before_mysql(element, compiler, **kw):
    moment, days = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"DATE_SUB({moment}, INTERVAL {days} DAY)"


# Core columns (not ORM attributes): the tracker's statement skips the ORM's compile and load steps.
# Two tables joined, the rest uncorrelated subqueries PostgreSQL hashes once per statement: planning
# five tables' join orders cost more than reading a page (bench/tracker_bench.py).
_log, _subject, _form = QueryLog.__table__, QuerySubject.__table__, QueryForm.__table__
_agency, _flag = Agency.__table__, AccessFlag.__table__
_COLUMNS = (
    _log.c.id, _log.c.at, _log.c.agency_code, _log.c.form_title, _log.c.business_item,
    _log.c.case_no.is_not(None).label("case_no_given"), _log.c.reason.is_not(None).label("reason_given"),
)  # fmt: skip
_agency_names = TTLCache(max_entries=100)
AGENCY_NAMES_TTL = 60.0  # seconds: a renamed agency shows its new name within a minute


def _entries():
    """One subject's rows through the query_subject index (subject, time): only that person's rows
    are read, never the log's other entries; the columns the person may see, and whether the
    person flagged each. A query that read data, and a restricted form's only once its delay (in
    days) has passed: rows of the unrestricted forms pass on the hashed list alone. Parameters:
    subject, user_id, now."""
    restricted = select(_form.c.id).where(_form.c.restricted == true())
    withheld = (
        select(_form.c.id)
        .where(
            _form.c.id == _log.c.form_id,
            _form.c.restricted == true(),
            _log.c.at > days_before(bindparam("now", type_=DateTime()), _form.c.restricted_days),
        )
        .exists()
    )
    flagged = select(_flag.c.query_log_id).where(_flag.c.user_id == bindparam("user_id", type_=Integer()))
    return (
        select(*_COLUMNS, _log.c.id.in_(flagged).label("flagged"))
        .select_from(_subject)
        .join(_log, _log.c.id == _subject.c.query_log_id)
        .where(
            _subject.c.subject_hash == bindparam("subject", type_=String()),
            or_(*(_log.c.outcome == outcome for outcome in READ_OUTCOMES)),  # no expanding IN: see _run
            or_(_log.c.form_id.is_(None), _log.c.form_id.not_in(restricted), ~withheld),
        )
    )


def _names(session, codes: set[str]) -> dict[str, str]:
    """The agencies' names by code (kept a minute; read again when a code is new)."""
    key = session.get_bind().url

    def load():
        return dict(session.execute(select(_agency.c.code, _agency.c.name)).all())

    names = _agency_names.get(key, AGENCY_NAMES_TTL, load)
    if not codes <= names.keys():
        _agency_names.forget(key)
        names = _agency_names.get(key, AGENCY_NAMES_TTL, load)
    return names


def _entries_of(session, rows, user_id: int) -> list[AccessEntry]:
    """The rows as entries, with the agencies' names and, for the flagged ones, the flag
    (a second statement only when the person flagged something on the page)."""
    names = _names(session, {r.agency_code for r in rows if r.agency_code})
    flags = {}
    ids = [r.id for r in rows if r.flagged]
    if ids:
        found = session.execute(
            select(_flag.c.query_log_id, _flag.c.created_at, _flag.c.due_at, _flag.c.answer, _flag.c.answered_at).where(
                _flag.c.user_id == user_id, _flag.c.query_log_id.in_(ids)
            )
        ).all()
        flags = {f.query_log_id: f for f in found}
    entries = []
    for row in rows:
        flag = flags.get(row.id)
        entries.append(
            AccessEntry(
                id=row.id,
                at=row.at,
                agency_code=row.agency_code,
                agency_name=names.get(row.agency_code),
                form_title=row.form_title,
                business_item=row.business_item,
                case_no_given=bool(row.case_no_given),
                reason_given=bool(row.reason_given),
                flagged_at=flag.created_at if flag else None,
                answer_due=flag.due_at if flag else None,
                answer=flag.answer if flag else None,
                answered_at=flag.answered_at if flag else None,
            )
        )
    return entries


def page_of(raw) -> int:
    """The page asked for (1 when not given). Raises InvalidInput for anything but 1..MAX_PAGE."""
    if raw is None or raw == "":
        return 1
    text = str(raw)
    if not text.isdigit() or len(text) > 6 or not 1 <= int(text) <= MAX_PAGE:
        raise InvalidInput(_l("The page must be a number from 1 to %(n)s."), n=MAX_PAGE)
    return int(text)


# Built once: each call only binds its values (no statement to build, no cache key to compute).
_PAGE = (
    _entries()
    .order_by(_subject.c.at.desc(), _subject.c.query_log_id.desc())
    .limit(PAGE_SIZE + 1)
    .offset(bindparam("skip", type_=Integer()))
)
_ONE = _entries().where(_subject.c.query_log_id == bindparam("log_id", type_=Integer()))


_compiled: dict[tuple[int, str], object] = {}


def _run(session, stmt, values: dict) -> list:
    """Execute one of the statements above. On PostgreSQL as driver SQL compiled once (public
    ``compile()``, as ``audit.insert_with_event`` does): each call skips SQLAlchemy's cache-key walk
    and execution set-up, a good part of the answer's time (their parameters need no processing)."""
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        return conn.execute(stmt, values).all()
    key = (id(stmt), conn.dialect.name)
    compiled = _compiled.get(key)
    if compiled is None:
        compiled = _compiled[key] = stmt.compile(dialect=conn.dialect)
    return conn.exec_driver_sql(compiled.string, compiled.construct_params(values)).all()


def tracker_query(subject: str, user_id: int, page: int = 1, now: datetime.datetime | None = None):
    """The SELECT of one page of one subject's entries, newest first (one row more than a page, to
    tell whether older ones follow), and its parameters. Public for bench/tracker_bench.py's EXPLAIN."""
    now = now or datetime.datetime.utcnow()
    return _PAGE, {"subject": subject, "user_id": user_id, "now": now, "skip": (page - 1) * PAGE_SIZE}


def read_accesses(session, subject: str, user_id: int, page: int = 1, now: datetime.datetime | None = None):
    """One page of one subject's entries, newest first, and whether older ones follow (the
    tracker's read, without the page view's audit event: ``list_accesses`` is the command)."""
    rows = _run(session, *tracker_query(subject, user_id, page, now))
    return _entries_of(session, rows[:PAGE_SIZE], user_id), len(rows) > PAGE_SIZE


def list_accesses(session, actor: Actor, page: int = 1) -> AccessPage:
    """Command: who read my data, newest first, a page at a time (the page view audited).
    Raises Forbidden, InvalidInput (page)."""
    page = page_of(page)
    person = person_of(session, actor)
    entries, more = (
        ([], False) if person.subject is None else read_accesses(session, person.subject, actor.user_id, page)
    )
    with transaction(session):
        audit.record(session, "portal.accesses_viewed", detail={"entries": len(entries), "page": page}, actor=actor)
    return AccessPage(entries=entries, page=page, next_page=page + 1 if more else None)


def _find(session, actor: Actor, log_id) -> AccessEntry:
    person = person_of(session, actor)
    found = None
    if person.subject is not None and isinstance(log_id, int) and 0 < log_id < 2**63:
        params = {"subject": person.subject, "user_id": actor.user_id, "now": datetime.datetime.utcnow()}
        found = _run(session, _ONE, {**params, "log_id": log_id})
    if not found:
        ref = log_id if isinstance(log_id, int) and 0 < log_id < 2**63 else None
        raise refuse(session, NotFound(NO_ENTRY), actor, "portal.access_refused", object_type="QueryLog",
                     object_id=ref)  # fmt: skip
    return _entries_of(session, found[:1], actor.user_id)[0]


def get_access(session, actor: Actor, log_id: int) -> AccessEntry:
    """Command: one entry of who read my data (audited). Raises NotFound (audited), Forbidden."""
    entry = _find(session, actor, log_id)
    with transaction(session):
        audit.record(session, "portal.access_viewed", object_type="QueryLog", object_id=entry.id, actor=actor)
    return entry


def flag_access(session, actor: Actor, log_id: int, note: str | None) -> AccessEntry:
    """Command: "I don't recognise this": a review for the querying agency's Auditor, due within
    ACCESS_FLAG_ANSWER_DAYS. Raises NotFound (audited), Conflict (flagged already), InvalidInput."""
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        raise InvalidInput(_l("Say it in at most %(n)s characters."), n=MAX_NOTE)
    entry = _find(session, actor, log_id)
    if entry.flagged_at is not None:
        raise refuse(session, Conflict(_l("You have flagged this entry already.")), actor, "portal.access_flag",
                     object_type="QueryLog", object_id=entry.id)  # fmt: skip
    now = datetime.datetime.utcnow()
    with transaction(session):
        flag = AccessFlag(
            query_log_id=entry.id,
            user_id=actor.user_id,
            agency_code=entry.agency_code or "",
            note=note or None,
            created_at=now,
            due_at=now + datetime.timedelta(days=current_app.config["ACCESS_FLAG_ANSWER_DAYS"]),
        )
        session.add(flag)
        session.flush()
        told = _tell_auditors(session, flag)
        audit.record(session, "portal.access_flag", object_type="AccessFlag", object_id=flag.id,
                     detail={"query": entry.id, "agency": entry.agency_code, "auditors_mailed": told},
                     actor=actor)  # fmt: skip
    entry.flagged_at, entry.answer_due = flag.created_at, flag.due_at
    return entry


def _tell_auditors(session, flag: AccessFlag) -> int:
    """Queue the notice to the querying agency's Auditors in the flag's transaction (no
    personal data in it: they read the record on the platform); returns how many."""
    link = f"{current_app.config['PUBLIC_BASE_URL'].rstrip('/')}/accessflags/"
    due = format_roc(flag.due_at.date(), "long")
    subject = "【資料查詢紀錄】民眾表示不認得一筆本機關的查詢 / A person does not recognise one of your queries"
    body = (
        "稽核人員您好：\n\n"
        f"一位民眾在「誰查詢了我的資料」中，表示不認得本機關的一筆查詢（提出編號 {flag.id}）。"
        f"請於 {due} 前登入平台檢視完整紀錄並回覆，回覆將顯示給該民眾：\n{link}\n\n"
        f"A person flagged one of your agency's queries of their data as not recognised (flag {flag.id}) in "
        f'"who read my data". Please read the full record on the platform and answer by '
        f"{flag.due_at:%Y-%m-%d}; the person reads your answer:\n{link}\n"
    )
    told = 0
    for person in holders_of(session, REVIEW_FLAGS, flag.agency_code):
        if person.email:
            outbox.enqueue(session, person.email, subject, body, topic=f"access_flag:{flag.id}")
            told += 1
    return told


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


def open_flag_count(session, actor: Actor) -> int | None:
    """How many flags on one's agency's queries wait for an answer (the staff home page's work
    list; no personal data); None for anyone who does not answer flags."""
    if not actor.can(REVIEW_FLAGS) or not actor.agency_code:
        return None
    return session.scalar(
        select(func.count())
        .select_from(AccessFlag)
        .where(AccessFlag.agency_code == actor.agency_code, AccessFlag.answered_at.is_(None))
    )


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
