"""The audit trail: recording events in a SHA-256 hash chain, and verifying it.

Every create/update/delete of a platform object is recorded by a session hook
(so FAB screens, FAB APIs, our APIs and commands are all covered), in the same
transaction as the change. Explicit events (login, logout...) use ``record``.

An event is inserted unsealed (no ``seq``, no hashes) with the change, so the
change and its record commit or roll back together. Sealing links committed
events into the chain in the order it finds them: with
``AUDIT_SEALING = "inline"`` (the SQLite default: one writer anyway) in the
same transaction; with ``"background"`` (PostgreSQL, MySQL) a thread per
process seals a few milliseconds after the commit, so concurrent requests do
not queue on the chain's lock. Sealers serialise on the ``audit_head`` row:
its UPDATE takes a row lock on PostgreSQL/MariaDB and the write lock on
SQLite, so two sealers can never fork the chain. ``flask audit verify``
seals what is pending before it checks.
"""

from __future__ import annotations

import atexit
import datetime
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import String, bindparam, cast, event, func, insert, inspect, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from app.lib.drivercursor import DriverError, driver_cursor
from app.models.audit import AuditEvent, AuditHead
from app.models.notify import Attachment, CaseEvent, CaseSequence, Dispatch, NotificationCase
from app.models.outbox import OutboxMessage
from app.models.queries import ConfigGeneration, QueryLog
from app.services.actors import SYSTEM, Actor

log = logging.getLogger(__name__)
GENESIS = "0" * 64
CHAIN_FIELDS = (
    "seq", "at", "actor_id", "actor", "agency_code", "client_ip", "action",
    "object_type", "object_id", "fields", "outcome", "detail",
)  # fmt: skip

# Bookkeeping columns that change on every login or save; not user actions.
IGNORED_FIELDS = {
    "login_count", "last_login", "fail_login_count", "changed_on", "changed_by_fk",
    "created_on", "created_by_fk", "changed_by", "created_by",
    # a data source's health, written by "test connection" (itself audited)
    "last_checked_at", "last_ok", "last_latency_ms", "last_error", "changed_at",
}  # fmt: skip
# Queries and case steps are recorded as explicit events with their outcome.
NOT_AUDITED = (AuditEvent, AuditHead, OutboxMessage, QueryLog, NotificationCase, Dispatch, CaseEvent, Attachment,
               CaseSequence, ConfigGeneration)  # fmt: skip
# FAB's own names for security tables, as auditors read them.
OBJECT_TYPES = {
    "PlatformUser": "User", "Permission": "Permission", "ViewMenu": "ViewMenu",
    "PermissionView": "PermissionView", "Role": "Role",
}  # fmt: skip


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


# --- the chain -----------------------------------------------------------


def _canonical(values: dict) -> str:
    out = []
    for name in CHAIN_FIELDS:
        v = values.get(name)
        if isinstance(v, datetime.datetime):
            v = v.isoformat(timespec="microseconds")
        out.append(v)
    return json.dumps(out, ensure_ascii=False, separators=(",", ":"))


def digest(prev_hash: str, values: dict) -> str:
    return hashlib.sha256((prev_hash + "|" + _canonical(values)).encode()).hexdigest()


def _append(connection, events: Iterable[dict], session: Session | None = None) -> None:
    """Insert the events unsealed; seal them now (inline) or leave them to the sealer."""
    rows = []
    for ev in events:
        values = {name: ev.get(name) for name in CHAIN_FIELDS if name != "seq"}
        values["at"] = ev.get("at") or datetime.datetime.utcnow()
        values["outcome"] = ev.get("outcome") or "ok"
        rows.append(values)
    if not rows:
        return
    # One row (the usual case) as a plain execute, not an executemany batch.
    connection.execute(insert(AuditEvent.__table__), rows[0] if len(rows) == 1 else rows)
    if session is None or sealing_mode(connection) == "inline":
        seal(connection)
    else:
        session.info["audit_pending"] = True


def _with_event_statement(table):
    """``WITH new_row AS (INSERT INTO <table> ... RETURNING id) INSERT INTO
    audit_event (...) SELECT ..., new_row.id FROM new_row RETURNING object_id``,
    with every value a bound parameter (built and compiled once: ``_with_event_sql``)."""
    ev = AuditEvent.__table__
    row = (
        insert(table)
        .values({c.key: bindparam(f"row_{c.key}", type_=c.type) for c in table.columns if c.key != "id"})
        .returning(table.c.id)
        .cte("new_row")
    )
    names = [name for name in CHAIN_FIELDS if name != "seq"]
    columns = [
        cast(row.c.id, String) if name == "object_id" else bindparam(f"ev_{name}", type_=ev.c[name].type)
        for name in names
    ]
    return insert(ev).from_select(names, select(*columns).select_from(row)).returning(ev.c.object_id)


def can_write_with_event(bind) -> bool:
    """Whether ``insert_with_event`` applies: PostgreSQL with background sealing."""
    return bind.dialect.name == "postgresql" and sealing_mode(bind) == "background"


def insert_with_event(bind, table, values: dict, action: str, *, object_type=None, outcome="ok",
                      detail=None, actor: Actor | None = None) -> int:  # fmt: skip
    """Insert one row of ``table`` and the audit event about it (its new id as
    ``object_id``) in ONE autocommitted statement; returns the row's id.

    One statement is atomic on its own: both rows commit, or neither does,
    in a single round trip (no BEGIN, no COMMIT). It does not pass through a
    session, so the sealer is woken here. PostgreSQL only (a data-modifying
    CTE); see ``can_write_with_event``. ``detail``: no personal data values.
    """
    event_values = _event(action, object_type, None, None, outcome, detail, actor)
    params = {f"row_{k}": v for k, v in values.items()}
    params.update({f"ev_{k}": v for k, v in event_values.items() if k != "object_id"})
    params["ev_at"] = values.get("at") or datetime.datetime.utcnow()
    sql, processors = _with_event_sql(table, bind.dialect)
    for name, process in processors.items():
        params[name] = process(params[name])
    new_id = _execute_autocommitted(bind, sql, params)
    Sealer.wake(current_app._get_current_object())
    return new_id


def _execute_autocommitted(bind, sql: str, params: dict) -> int:
    """Execute driver SQL in autocommit on a pooled connection and return the
    first column of its one row (``drivercursor``: no SQLAlchemy Connection
    around one statement). A driver error, a failed connect included, is
    raised as SQLAlchemy's, after the engine's ``handle_error`` listeners
    have seen it, as through a Connection (no statement, no parameters in it).
    """
    try:
        with driver_cursor(bind, autocommit=True) as cursor:
            cursor.execute(sql, params)
            return int(cursor.fetchone()[0])
    except DriverError as exc:
        Connection._handle_dbapi_exception_noconnection(exc.orig, bind.dialect, bind, is_disconnect=exc.disconnect)


_with_event_sql_cache: dict[tuple[str, str], tuple[str, dict[str, Callable]]] = {}


def _with_event_sql(table, dialect) -> tuple[str, dict[str, Callable]]:
    """The statement compiled once to the driver's SQL text, with the bind
    processors of its typed parameters (an encrypted column's Fernet step).
    Executing the text skips SQLAlchemy's per-call cache-key walk over the
    two dozen parameters, which cost more than the round trip itself."""
    key = (table.name, dialect.name)
    found = _with_event_sql_cache.get(key)
    if found is None:
        compiled = _with_event_statement(table).compile(dialect=dialect)
        if compiled.positional:  # psycopg compiles %(name)s; a positional driver would need ordering
            raise RuntimeError("insert_with_event needs a driver with named parameters")
        processors = {}
        for name, bind in compiled.binds.items():
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                processors[name] = process
        found = _with_event_sql_cache[key] = (compiled.string, processors)
    return found


def sealing_mode(connection) -> str:
    """``AUDIT_SEALING`` if set, else inline on SQLite and background elsewhere."""
    try:
        configured = current_app.config.get("AUDIT_SEALING")
    except RuntimeError:  # no application (a script): seal at once
        return "inline"
    if configured in ("inline", "background"):
        return configured
    return "inline" if connection.dialect.name == "sqlite" else "background"


def seal(connection, limit: int = 5000) -> int:
    """Link the unsealed events into the chain, oldest first; returns how many.

    Runs in the caller's transaction. The UPDATE of the chain head takes its
    row lock (the write lock on SQLite) before the tip is read, so two sealers
    never fork the chain; the unsealed rows are read after the lock, so a
    sealer that waited sees the rows the previous one sealed.
    """
    head_t = AuditHead.__table__
    t = AuditEvent.__table__
    lock = update(head_t).where(head_t.c.id == 1).values(seq=head_t.c.seq)
    tip = None
    if connection.dialect.update_returning:
        tip = connection.execute(lock.returning(head_t.c.seq, head_t.c.hash)).first()
    elif connection.execute(lock).rowcount:
        tip = connection.execute(select(head_t.c.seq, head_t.c.hash).where(head_t.c.id == 1)).first()
    if tip is None:  # a database migrated without the genesis row
        connection.execute(insert(head_t).values(id=1, seq=0, hash=GENESIS))
        tip = (0, GENESIS)
    seq, prev = tip
    cols = [t.c.id, *(t.c[name] for name in CHAIN_FIELDS if name != "seq")]
    pending = connection.execute(select(*cols).where(t.c.seq.is_(None)).order_by(t.c.id).limit(limit)).mappings()
    links = []
    for row in pending:
        seq += 1
        values = {**row, "seq": seq}
        h = digest(prev, values)
        links.append({"row_id": row["id"], "seq": seq, "prev_hash": prev, "hash": h})
        prev = h
    if not links:
        return 0
    if connection.dialect.name == "postgresql":
        # The batch and the new tip in one statement: the rows' links as arrays
        # (one parameter each) instead of one UPDATE per row.
        moved = connection.execute(_LINK_BATCH_PG, {
            "ids": [link["row_id"] for link in links], "seqs": [link["seq"] for link in links],
            "prevs": [link["prev_hash"] for link in links], "hashes": [link["hash"] for link in links],
            "tip_seq": seq, "tip_hash": prev,
        }).rowcount  # fmt: skip
        if moved != 1:  # a row read under the lock was not linked: keep nothing of the round
            raise RuntimeError("audit sealing: the batch did not link every row read")
        return len(links)
    connection.execute(
        update(t)
        .where(t.c.id == bindparam("row_id"))
        .values(seq=bindparam("seq"), prev_hash=bindparam("prev_hash"), hash=bindparam("hash")),
        links,
    )
    connection.execute(update(head_t).where(head_t.c.id == 1).values(seq=seq, hash=prev))
    return len(links)


_LINK_BATCH_PG = text(
    "WITH linked AS ("
    " UPDATE audit_event AS e SET seq = v.seq, prev_hash = v.prev_hash, hash = v.hash"
    " FROM unnest(CAST(:ids AS integer[]), CAST(:seqs AS integer[]), CAST(:prevs AS varchar[]),"
    " CAST(:hashes AS varchar[])) AS v(id, seq, prev_hash, hash)"
    " WHERE e.id = v.id RETURNING e.id)"
    " UPDATE audit_head SET seq = :tip_seq, hash = :tip_hash"
    " WHERE id = 1 AND (SELECT count(*) FROM linked) = cardinality(CAST(:ids AS integer[]))"
)


def seal_all(engine, limit: int = 5000) -> int:
    """Seal everything pending, a batch per transaction (the sealer and commands)."""
    total = 0
    while True:
        with engine.begin() as conn:
            n = seal(conn, limit)
        total += n
        # A batch short of the limit took every event committed when it held
        # the chain lock (no second, empty round); later commits wake a sealer.
        if n < limit:
            return total


def _event(action, object_type=None, object_id=None, fields=None, outcome="ok",
           detail=None, actor: Actor | None = None) -> dict:  # fmt: skip
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


def record(session: Session, action: str, *, object_type=None, object_id=None, fields=None,
           outcome="ok", detail=None, actor: Actor | None = None) -> None:  # fmt: skip
    """Append one event in the session's transaction (the caller commits).

    ``detail`` must hold no personal data values: keys, counts, codes only.
    """
    session.flush()
    _append(
        session.connection(),
        [_event(action, object_type, object_id, fields, outcome, detail, actor)],
        session,
    )


# --- automatic CRUD events -----------------------------------------------


def _changed_fields(obj, deleted: bool = False) -> list[str]:
    state = inspect(obj)
    names = []
    for attr in state.mapper.attrs:
        key = attr.key
        if key in IGNORED_FIELDS:
            continue
        hist = state.attrs[key].history
        if hist.has_changes():
            names.append(key)
    return names


def _pk(obj) -> str | None:
    # In after_flush new objects have their keys but no identity yet.
    ident = inspect(obj).mapper.primary_key_from_instance(obj)
    if not ident or all(v is None for v in ident):
        return None
    return ",".join(str(v) for v in ident)


def _after_flush(session: Session, flush_context) -> None:
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
        events.append(_event(action, OBJECT_TYPES.get(name, name), _pk(obj), fields))
    if events:
        _append(session.connection(), events, session)


def install_session_hooks(session) -> None:
    if not event.contains(session, "after_flush", _after_flush):
        event.listen(session, "after_flush", _after_flush)
        event.listen(session, "after_commit", _after_commit)
        event.listen(session, "after_soft_rollback", lambda s, _tx: s.info.pop("audit_pending", None))


# --- the background sealer -------------------------------------------------


def _after_commit(session) -> None:
    if session.info.pop("audit_pending", False):
        Sealer.wake(current_app._get_current_object())


class Sealer(threading.Thread):
    """Seals this process's (and everyone's) committed events shortly after
    they commit, so requests never wait for the chain lock.

    One per application per process, started by the first commit that left
    events unsealed. Every sealer seals every pending row, so a process that
    dies leaves nothing behind that the next seal (any process, or
    ``flask audit seal``/``verify``) does not pick up.
    """

    _running: dict[int, Sealer] = {}
    _lock = threading.Lock()

    def __init__(self, app):
        super().__init__(name="audit-sealer", daemon=True)
        self.app = app
        self.gather = float(app.config.get("AUDIT_SEAL_GATHER_SECONDS", 0.25))
        self.pending = threading.Event()
        self.stopping = threading.Event()

    @classmethod
    def wake(cls, app) -> None:
        with cls._lock:
            sealer = cls._running.get(id(app))
            if sealer is None:
                sealer = cls._running[id(app)] = cls(app)
                sealer.start()
                atexit.register(sealer.stop)
        sealer.pending.set()

    @classmethod
    def stop_for(cls, app) -> None:
        """Stop this application's sealer, sealing what it has left (before its
        database goes away: a test's teardown, a shutdown hook)."""
        with cls._lock:
            sealer = cls._running.pop(id(app), None)
        if sealer is not None:
            sealer.stop()
            sealer.join(timeout=10)

    def run(self) -> None:
        from app.extensions import db

        while not self.stopping.is_set():
            self.pending.wait()
            # Seal what the next moment's commits add in the same batch.
            self.stopping.wait(self.gather)
            self.pending.clear()
            self.seal_now(db)

    def seal_now(self, db) -> None:
        with self.app.app_context():
            try:
                seal_all(db.engine)
            except Exception as exc:  # a lock timeout, a restart: the next round retries
                log.warning("audit sealing round failed: %s", type(exc).__name__)

    def stop(self) -> None:
        """End the thread; at exit, seal what this process committed since its last round."""
        from app.extensions import db

        left = self.pending.is_set()
        self.stopping.set()
        self.pending.set()
        if left:
            self.seal_now(db)


# --- verification ----------------------------------------------------------


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    bad_seq: int | None = None
    bad_id: int | None = None
    reason: str | None = None


def pending(connection) -> int:
    """Events committed but not yet linked into the chain."""
    t = AuditEvent.__table__
    return connection.execute(select(func.count()).select_from(t).where(t.c.seq.is_(None))).scalar_one()


def verify(connection) -> VerifyResult:
    """Recompute the sealed chain from the first row; report the first broken row."""
    t = AuditEvent.__table__
    cols = [t.c.id, t.c.prev_hash, t.c.hash, *(t.c[name] for name in CHAIN_FIELDS)]
    prev = GENESIS
    expected = 1
    checked = 0
    result = connection.execution_options(yield_per=2000).execute(
        select(*cols).where(t.c.seq.is_not(None)).order_by(t.c.seq)
    )
    for row in result.mappings():
        values = dict(row)
        if values["seq"] != expected:
            return VerifyResult(False, checked, expected, values["id"],
                                f"row seq {expected} is missing (next row is seq {values['seq']})")  # fmt: skip
        if values["prev_hash"] != prev:
            return VerifyResult(False, checked, values["seq"], values["id"],
                                "previous-hash link does not match the row before")  # fmt: skip
        if digest(prev, values) != values["hash"]:
            return VerifyResult(False, checked, values["seq"], values["id"],
                                "content does not match its hash (row edited)")  # fmt: skip
        prev = values["hash"]
        expected += 1
        checked += 1
    head = connection.execute(select(AuditHead.__table__.c.seq, AuditHead.__table__.c.hash)).first()
    last_seq = expected - 1
    if head is not None and (head.seq != last_seq or head.hash != prev):
        return VerifyResult(False, checked, last_seq + 1, None,
                            f"chain head says seq {head.seq}; rows after seq {last_seq} are missing")  # fmt: skip
    return VerifyResult(True, checked)
