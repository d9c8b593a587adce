"""Recording audit events: explicit ones (``record``), every create/update/
delete of a platform object (session hooks), and a row written together with
its event in one statement (``insert_with_event``).

Every change is recorded in the same transaction as the change itself (FAB
screens, FAB APIs, our APIs and commands alike). Events are inserted
unsealed; with ``AUDIT_SEALING = "inline"`` (the SQLite default: one writer
anyway) they are sealed in that same transaction, with ``"background"``
(PostgreSQL, MySQL) by ``app.services.audit.sealer`` in its own process.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import ARRAY, String, Table, bindparam, cast, event, func, insert, inspect, select
from sqlalchemy.orm import Session

from app.models.account_review import AccountReview, AccountReviewItem
from app.models.anomaly import AnomalyCursor, AnomalyFlag
from app.models.audit import AuditArchive, AuditEvent, AuditHead
from app.models.cards import CardBinding, CardChallenge
from app.models.notify import Attachment, CaseEvent, CaseSequence, Dispatch, NotificationCase
from app.models.org import LoginThrottle, SpentToken, UserSession
from app.models.outbox import OutboxMessage
from app.models.queries import ConfigGeneration, QueryLog, QuerySubject
from app.services.actors import SYSTEM, Actor
from app.services.audit.chain import CHAIN_FIELDS, entry_mac, new_nonce, seal

# Bookkeeping columns that change on every login or save; not user actions.
IGNORED_FIELDS = {
    "login_count",
    "last_login",
    "fail_login_count",
    "changed_on",
    "changed_by_fk",
    "created_on",
    "created_by_fk",
    "changed_by",
    "created_by",
    # a data source's health, written by "test connection" (itself audited)
    "last_checked_at",
    "last_ok",
    "last_latency_ms",
    "last_error",
    "changed_at",
}
# Queries and case steps are recorded as explicit events with their outcome.
NOT_AUDITED = (
    AuditEvent,
    AuditHead,
    OutboxMessage,
    QueryLog,
    QuerySubject,
    NotificationCase,
    Dispatch,
    CaseEvent,
    Attachment,
    CaseSequence,
    ConfigGeneration,
    # sign-in bookkeeping: login, logout, locks and revocations are explicit events
    UserSession,
    SpentToken,
    LoginThrottle,
    # certificate cards: challenges are bookkeeping; binding, unbinding and card sign-ins are explicit events
    CardChallenge,
    CardBinding,
    # anomaly flags are raised and resolved as explicit events; the worker's cursor is bookkeeping
    AnomalyFlag,
    AnomalyCursor,
    # archives and account reviews: each step is an explicit event
    AuditArchive,
    AccountReview,
    AccountReviewItem,
)
# FAB's own names for security tables, as auditors read them.
OBJECT_TYPES = {
    "PlatformUser": "User",
    "Permission": "Permission",
    "ViewMenu": "ViewMenu",
    "PermissionView": "PermissionView",
    "Role": "Role",
}


_actor_provider: Callable[[], Actor] = lambda: SYSTEM  # noqa: E731


def set_actor_provider(provider: Callable[[], Actor]) -> None:
    """The web layer tells us who is acting (the services never read requests)."""
    global _actor_provider
    _actor_provider = provider


def current_actor() -> Actor:
    try:
        return _actor_provider()
    except Exception:
        return SYSTEM


def sealing_mode(connection) -> str:
    """``AUDIT_SEALING`` if set, else inline on SQLite and background elsewhere."""
    try:
        configured = current_app.config.get("AUDIT_SEALING")
    except RuntimeError:  # no application (a script): seal at once
        return "inline"
    if configured in ("inline", "background"):
        return configured
    return "inline" if connection.dialect.name == "sqlite" else "background"


def event_values(action, object_type=None, object_id=None, fields=None, outcome="ok", detail=None, actor=None) -> dict:
    """An event's columns (but its time and chain links)."""
    actor = actor or current_actor()
    return {
        "actor_id": actor.user_id,
        "actor": actor.username,
        "agency_code": actor.agency_code,
        "client_ip": actor.client_ip,
        "action": action,
        "object_type": object_type,
        "object_id": None if object_id is None else str(object_id),
        "fields": ",".join(sorted(fields)) if fields else None,
        "outcome": outcome,
        "detail": json.dumps(detail, ensure_ascii=False, sort_keys=True) if detail else None,
    }


def _naive_utc(at: datetime.datetime | None) -> datetime.datetime:
    """The event's time as the column stores it (naive UTC), so the entry seal
    made now matches the value read back."""
    if at is None:
        return datetime.datetime.utcnow()
    if at.tzinfo is not None:
        at = at.astimezone(datetime.UTC).replace(tzinfo=None)
    return at


def append(connection, events: Iterable[dict]) -> None:
    """Insert the events unsealed in the connection's transaction; seal them
    now when sealing is inline (else the sealer process links them)."""
    rows = []
    for ev in events:
        values = {name: ev.get(name) for name in CHAIN_FIELDS if name != "seq"}
        values["at"] = _naive_utc(ev.get("at"))
        values["outcome"] = ev.get("outcome") or "ok"
        values["nonce"] = new_nonce()  # two events alike still get two entry seals
        values["entry_mac"] = entry_mac(values)  # proof the platform wrote it (the sealer checks)
        rows.append(values)
    if not rows:
        return
    # One row (the usual case) as a plain execute, not an executemany batch.
    connection.execute(insert(AuditEvent.__table__), rows[0] if len(rows) == 1 else rows)
    if sealing_mode(connection) == "inline":
        seal(connection)


def record(
    session: Session,
    action: str,
    *,
    object_type=None,
    object_id=None,
    fields=None,
    outcome="ok",
    detail=None,
    actor: Actor | None = None,
) -> None:
    """Append one event in the session's transaction (the calling command commits).

    ``detail`` must hold no personal data values: keys, counts, codes only.
    """
    session.flush()
    append(session.connection(), [event_values(action, object_type, object_id, fields, outcome, detail, actor)])


# --- a row and its event in one statement -----------------------------------


def can_write_with_event(bind) -> bool:
    """Whether ``insert_with_event`` applies: PostgreSQL with background sealing."""
    return bind.dialect.name == "postgresql" and sealing_mode(bind) == "background"


@dataclass(frozen=True)
class Fanout:
    """Rows of ``table`` that point at the row ``insert_with_event`` writes, in the same
    statement: one per item of the list given as ``items`` (into ``item_column``), with
    ``parent_column`` the new row's id and each of ``copied`` taken from the new row."""

    table: Table
    parent_column: str
    item_column: str
    copied: tuple[str, ...] = ()


def _with_event_statement(table, fanout: Fanout | None = None):
    """``WITH new_row AS (INSERT INTO <table> ... RETURNING id) INSERT INTO
    audit_event (...) SELECT ..., new_row.id FROM new_row RETURNING object_id``,
    with every value a bound parameter. With a ``fanout``, a second data-modifying
    CTE inserts its rows from ``unnest(:fan_items)`` (none when the list is empty)."""
    ev = AuditEvent.__table__
    copied = fanout.copied if fanout is not None else ()
    row = (
        insert(table)
        .values({c.key: bindparam(f"row_{c.key}", type_=c.type) for c in table.columns if c.key != "id"})
        .returning(table.c.id, *(table.c[name] for name in copied))
        .cte("new_row")
    )
    stmt = event_insert_from(row, row.c.id).returning(ev.c.object_id)
    if fanout is not None:
        child = fanout.table
        items = func.unnest(bindparam("fan_items", type_=ARRAY(child.c[fanout.item_column].type)))
        fan = (
            insert(child)
            .from_select(
                [fanout.parent_column, fanout.item_column, *copied],
                select(row.c.id, items, *(row.c[name] for name in copied)).select_from(row),
            )
            .cte("fan_out")
        )
        stmt = stmt.add_cte(fan)
    return stmt


_with_event_sql_cache: dict[tuple, tuple[str, dict[str, Callable]]] = {}


def _with_event_sql(table, dialect, fanout: Fanout | None = None) -> tuple[str, dict[str, Callable]]:
    """The statement compiled once (public ``compile()``) to the driver's SQL
    text, with the bind processors of its typed parameters (an encrypted
    column's Fernet step). Executing the text skips SQLAlchemy's per-call
    cache-key walk over the two dozen parameters."""
    key = (table.name, dialect.name, fanout)
    found = _with_event_sql_cache.get(key)
    if found is None:
        compiled = _with_event_statement(table, fanout).compile(dialect=dialect)
        if compiled.positional:  # psycopg compiles %(name)s; a positional driver would need ordering
            raise RuntimeError("insert_with_event needs a driver with named parameters")
        processors = {}
        for name, bind in compiled.binds.items():
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                processors[name] = process
        found = _with_event_sql_cache[key] = (compiled.string, processors)
    return found


def execute_autocommitted(bind, sql: str, params: dict) -> int:
    """Execute driver SQL on a pooled connection in autocommit and return the
    first column of its one row. Through a SQLAlchemy Connection
    (``exec_driver_sql``): a driver error, a failed connect included, is
    raised as SQLAlchemy's after the engine's ``handle_error`` listeners saw
    it, and a lost connection leaves the pool, as for any statement."""
    with bind.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        return int(conn.exec_driver_sql(sql, params).scalar_one())


def event_insert_from(source, object_id):
    """``INSERT INTO audit_event (...) SELECT ... FROM source``: one event per row of ``source``
    (a data-modifying CTE), its object id the column ``object_id`` of that row, every other
    value a bound parameter ``ev_<name>`` (``event_params`` gives them). For statements that
    write a row and its event at once (PostgreSQL with background sealing)."""
    ev = AuditEvent.__table__
    names = [*(name for name in CHAIN_FIELDS if name != "seq"), "nonce", "entry_mac"]
    columns = [
        cast(object_id, String) if name == "object_id" else bindparam(f"ev_{name}", type_=ev.c[name].type)
        for name in names
    ]
    return insert(ev).from_select(names, select(*columns).select_from(source))


def event_params(action, *, at=None, object_type=None, outcome="ok", detail=None, actor: Actor | None = None) -> dict:
    """The ``ev_<name>`` parameters of ``event_insert_from``: the event's values and its entry seal,
    made without the object id (the database assigns it in the statement; the sealer's link binds it)."""
    ev = event_values(action, object_type, None, None, outcome, detail, actor)
    ev["at"] = _naive_utc(at)
    ev["nonce"] = new_nonce()
    params = {f"ev_{k}": v for k, v in ev.items() if k != "object_id"}
    params["ev_entry_mac"] = entry_mac(ev, object_id_later=True)
    return params


def insert_with_event(
    bind,
    table,
    values: dict,
    action: str,
    *,
    object_type=None,
    outcome="ok",
    detail=None,
    actor: Actor | None = None,
    fanout: Fanout | None = None,
    items: list | None = None,
) -> int:
    """Insert one row of ``table`` and the audit event about it (its new id as
    ``object_id``) in ONE autocommitted statement; returns the row's id.

    One statement is atomic on its own: both rows commit, or neither does,
    in a single round trip (no BEGIN, no COMMIT). The event is left for the
    sealer. PostgreSQL only (a data-modifying CTE); see
    ``can_write_with_event``. ``detail``: no personal data values.
    ``fanout``: rows of another table pointing at the new row, one per
    item of ``items``, written by the same statement.
    """
    params = {f"row_{k}": v for k, v in values.items()}
    # The row's id is the event's object id, assigned by the database in this
    # statement: the entry seal leaves it out (the sealer's link binds it).
    params.update(event_params(action, at=values.get("at"), object_type=object_type, outcome=outcome,
                               detail=detail, actor=actor))  # fmt: skip
    if fanout is not None:
        params["fan_items"] = list(items or ())
    sql, processors = _with_event_sql(table, bind.dialect, fanout)
    for name, process in processors.items():
        params[name] = process(params[name])
    return execute_autocommitted(bind, sql, params)


# --- automatic CRUD events -----------------------------------------------


def _changed_fields(obj) -> list[str]:
    state = inspect(obj)
    names = []
    for attr in state.mapper.attrs:
        key = attr.key
        if key in IGNORED_FIELDS:
            continue
        if state.attrs[key].history.has_changes():
            names.append(key)
    return names


def _pk(obj) -> str | None:
    # In after_flush new objects have their keys but no identity yet.
    ident = inspect(obj).mapper.primary_key_from_instance(obj)
    if not ident or all(v is None for v in ident):
        return None
    return ",".join(str(v) for v in ident)


def after_flush(session: Session, flush_context) -> None:
    """Record every create, update (with the changed fields) and delete just flushed."""
    events = []
    for obj, action in (
        *((o, "create") for o in session.new),
        *((o, "update") for o in session.dirty),
        *((o, "delete") for o in session.deleted),
    ):
        if isinstance(obj, NOT_AUDITED):
            continue
        if action == "update" and not session.is_modified(obj, include_collections=True):
            continue
        fields = [] if action == "delete" else _changed_fields(obj)
        if action == "update" and not fields:
            continue
        name = type(obj).__name__
        events.append(event_values(action, OBJECT_TYPES.get(name, name), _pk(obj), fields))
    if events:
        append(session.connection(), events)


def install_session_hooks(session) -> None:
    if not event.contains(session, "after_flush", after_flush):
        event.listen(session, "after_flush", after_flush)


def remove_session_hooks(session) -> None:
    """Stop recording CRUD events on ``session`` (the audit bench's baseline)."""
    if event.contains(session, "after_flush", after_flush):
        event.remove(session, "after_flush", after_flush)
