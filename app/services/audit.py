"""The audit trail: recording events in a SHA-256 hash chain, and verifying it.

Every create/update/delete of a platform object is recorded by a session hook
(so FAB screens, FAB APIs, our APIs and commands are all covered), in the same
transaction as the change. Explicit events (login, logout...) use ``record``.

Writers serialise on the ``audit_head`` row: its UPDATE takes a row lock on
PostgreSQL/MariaDB and the write lock on SQLite, so two transactions can never
fork the chain.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import event, insert, inspect, select, update
from sqlalchemy.orm import Session

from app.models.audit import AuditEvent, AuditHead
from app.models.notify import Attachment, CaseEvent, CaseSequence, Dispatch, NotificationCase
from app.models.outbox import OutboxMessage
from app.models.queries import ConfigGeneration, QueryLog

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


@dataclass(frozen=True)
class Actor:
    id: int | None
    name: str
    agency_code: str | None = None
    client_ip: str | None = None


SYSTEM = Actor(id=None, name="system")
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


def actor_for_user(user, client_ip: str | None = None) -> Actor:
    agency = getattr(user, "agency", None)
    return Actor(
        id=user.id,
        name=user.username,
        agency_code=agency.code if agency is not None else None,
        client_ip=client_ip,
    )


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


def _append(connection, events: Iterable[dict]) -> None:
    events = list(events)
    if not events:
        return
    head_t = AuditHead.__table__
    # Take the lock first, then read the tip: one UPDATE ... RETURNING where
    # the database has it, else a fresh SELECT (which sees the previous
    # writer's commit under READ COMMITTED).
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
    rows = []
    for ev in events:
        seq += 1
        values = {name: ev.get(name) for name in CHAIN_FIELDS}
        values["seq"] = seq
        values["at"] = ev.get("at") or datetime.datetime.utcnow()
        values["outcome"] = ev.get("outcome") or "ok"
        h = digest(prev, values)
        rows.append({**values, "prev_hash": prev, "hash": h})
        prev = h
    connection.execute(insert(AuditEvent.__table__), rows)
    connection.execute(update(head_t).where(head_t.c.id == 1).values(seq=seq, hash=prev))


def _event(action, object_type=None, object_id=None, fields=None, outcome="ok",
           detail=None, actor: Actor | None = None) -> dict:  # fmt: skip
    actor = actor or current_actor()
    return {
        "actor_id": actor.id,
        "actor": actor.name,
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
        _append(session.connection(), events)


def install_session_hooks(session) -> None:
    if not event.contains(session, "after_flush", _after_flush):
        event.listen(session, "after_flush", _after_flush)


# --- verification ----------------------------------------------------------


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    bad_seq: int | None = None
    bad_id: int | None = None
    reason: str | None = None


def verify(connection) -> VerifyResult:
    """Recompute the chain from the first row; report the first broken row."""
    t = AuditEvent.__table__
    cols = [t.c.id, t.c.prev_hash, t.c.hash, *(t.c[name] for name in CHAIN_FIELDS)]
    prev = GENESIS
    expected = 1
    checked = 0
    result = connection.execution_options(yield_per=2000).execute(select(*cols).order_by(t.c.seq))
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
