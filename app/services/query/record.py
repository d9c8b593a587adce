"""The query log: one row per query (run or refused), its audit event, the
stored snapshot's digest and the subjects' keyed hashes (never an ID in clear)."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json

from flask import current_app
from sqlalchemy import insert

from app.extensions import has_pending_changes, platform_bind
from app.lib import metrics
from app.models.queries import QueryLog, QuerySubject
from app.services import audit
from app.services.actors import Actor
from app.services.query.inputs import MAX_CASE_NO, MAX_REASON

_LOG_COLUMNS = tuple(c.key for c in QueryLog.__table__.columns if c.key != "id")
# The outcomes that read someone's data: their subjects get a row in query_subject,
# which "who read my data" reads (a refused or failed query read nothing).
READ_OUTCOMES = ("ok", "partial")
# query_subject rows written by the log row's own statement (PostgreSQL's fast path)
_SUBJECTS = audit.Fanout(QuerySubject.__table__, "query_log_id", "subject_hash", ("at",))


def subject_hash(id_no: str) -> str:
    key = current_app.config["SUBJECT_HASH_KEY"].encode()
    return hmac.digest(key, id_no.upper().encode(), "sha256").hex()


def snapshot_digest(snapshot: dict) -> str:
    return hashlib.sha256(json.dumps(snapshot, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


def _text(value, limit: int) -> str | None:
    return (value if isinstance(value, str) else "")[:limit] or None


def log_values(who: Actor, form, form_code, purpose: dict, params, outcome: str, error: str | None = None) -> dict:
    """The query log row as column values (every column but the id, so the
    INSERT is the same statement each time and its compiled form is reused).
    ``purpose``: case_no, reason, business_item as given."""
    values = dict.fromkeys(_LOG_COLUMNS)
    params = params if isinstance(params, dict) else {}
    values.update(
        at=datetime.datetime.utcnow(),
        user_id=who.user_id,
        username=who.username,
        agency_code=who.agency_code,
        client_ip=who.client_ip,
        form_id=form.id if form else None,
        form_code=(form.code if form else (form_code if isinstance(form_code, str) else ""))[:60],
        form_title=form.title if form else None,
        case_no=_text(purpose.get("case_no"), MAX_CASE_NO),
        reason=_text(purpose.get("reason"), MAX_REASON),
        business_item=_text(purpose.get("business_item"), 40),
        params=json.dumps(params, ensure_ascii=False)[:4000],
        outcome=outcome,
        error=(error or "")[:300] or None,
        row_count=0,
    )
    if form is not None:
        # ID numbers and business numbers: the people and businesses "who read my data" shows it to
        id_inputs = {i.name for i in form.inputs if i.type in ("national_id", "business_number")}
        subjects = sorted({subject_hash(str(v)) for k, v in params.items() if k in id_inputs and v})
        values["subjects"] = "\n".join(subjects) or None
    return values


def add_subjects(values: dict, id_numbers) -> None:
    """Name more data subjects of the entry (ID numbers a source answered with, such as a
    household's members): their keyed hashes join the ones from the inputs."""
    hashes = {subject_hash(str(v)) for v in id_numbers if isinstance(v, str) and v.strip()}
    if hashes:
        hashes.update((values.get("subjects") or "").split())
        values["subjects"] = "\n".join(sorted(hashes))


def subjects_of(values: dict) -> list[str]:
    """The keyed hashes query_subject gets for this entry (none unless it read data)."""
    if values.get("outcome") not in READ_OUTCOMES:
        return []
    return sorted(set((values.get("subjects") or "").split()))


def write_refused(session, who: Actor, values: dict) -> None:
    """The refused query's row and its audit event, in the caller's transaction."""
    entry = QueryLog(**values)
    session.add(entry)
    session.flush()
    _count(values)
    audit.record(
        session,
        "query",
        object_type="QueryLog",
        object_id=entry.id,
        outcome="refused",
        detail={"form": entry.form_code},
        actor=who,
    )


def write_run(session, who: Actor, values: dict, detail: dict) -> int | None:
    """Write a run query's row, its subjects' query_subject rows and its audit event;
    returns the new id.

    PostgreSQL with background sealing and nothing else pending in the
    session: both rows in ONE autocommitted statement (atomic on its own, one
    round trip) and None is never returned. Otherwise the row goes into the
    session's transaction, which the calling command commits.
    """
    table = QueryLog.__table__
    bind = platform_bind(session)
    _count(values)
    subjects = subjects_of(values)
    if audit.can_write_with_event(bind) and not has_pending_changes(session):
        return audit.insert_with_event(
            bind, table, values, "query", object_type="QueryLog", outcome=values["outcome"], detail=detail, actor=who,
            fanout=_SUBJECTS, items=subjects,
        )  # fmt: skip
    # One INSERT with everything, straight through the table: the row is never
    # read back or changed in this request, so it needs no unit of work. The
    # values go as parameters, not .values(): the statement is then the same
    # every time and SQLAlchemy reuses its compiled form.
    new_id = session.execute(insert(table).returning(table.c.id), values).scalar_one()
    if subjects:
        session.execute(
            insert(QuerySubject.__table__),
            [{"query_log_id": new_id, "subject_hash": h, "at": values["at"]} for h in subjects],
        )
    audit.record(
        session,
        "query",
        object_type="QueryLog",
        object_id=new_id,
        outcome=values["outcome"],
        detail=detail,
        actor=who,
    )
    return new_id


def _count(values: dict) -> None:
    """The query in /metrics, by its form's code (a code nobody defined is not a label)."""
    metrics.count_query(values["form_code"] if values.get("form_id") else None, values["outcome"])
