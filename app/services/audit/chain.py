"""The keyed hash chain: each event's canonical form, its entry seal and its
link, sealing committed events into the chain, and verifying it.

Every MAC here is an HMAC-SHA256 under ``AUDIT_CHAIN_KEY``, a secret kept
outside the database: whoever can write the database but not read the
instance's secrets can neither recompute a link after editing a row nor make
a row the sealer will accept.

An event is inserted unsealed (no ``seq``, no links) with the change it
records, so both commit or roll back together, with a random ``nonce`` and
with its **entry seal** (``entry_mac``: the MAC of its content and nonce),
made by the process that wrote it. Sealing links committed events into the
chain in the order it finds them, each row's ``hash`` the MAC of the previous
link and its content, ``seq``, nonce and entry seal included; a pending row
whose entry seal does not match was not written by the platform and is never
linked. The entry seal stays after linking and is unique (an index), so a
copy of an event, pending or linked, with its seal (a replay) is refused by
the database; should the index be gone, the sealer refuses a row whose seal
is already in the chain or earlier in its batch. Sealers serialise on the
``audit_head`` row: its UPDATE takes a row lock on PostgreSQL/MariaDB and the
write lock on SQLite, so two sealers can never fork the chain.

Verifying only reads: it walks the chain from the first row, compares it with
the head and with the signed checkpoints kept outside the database
(``checkpoints``), names any event present twice (replayed), and reports
pending rows that are forged or waited longer than the grace period. Sealing
is the sealer's job alone. Events linked before migration 0016 have no nonce
(and no entry seal): their links are as they were.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import bindparam, func, insert, select, text, update

from app.models.audit import AuditEvent, AuditHead

GENESIS = "0" * 64
CHAIN_FIELDS = (
    "seq",
    "at",
    "actor_id",
    "actor",
    "agency_code",
    "client_ip",
    "action",
    "object_type",
    "object_id",
    "fields",
    "outcome",
    "detail",
)
# The entry seal of an event whose object id the database assigns in the
# statement that writes it (a query's log row and its event in one INSERT):
# made over the content without the object id, which the chain link binds.
_ENTRY = b"entry|"
_ENTRY_ID_LATER = b"entry-object-id-later|"
_LISTED = 10  # row ids named in a report line


def canonical(values: dict) -> str:
    """The chained fields of an event as one JSON array (times to the microsecond),
    its nonce last (events written since migration 0016 have one)."""
    out = []
    for name in CHAIN_FIELDS:
        v = values.get(name)
        if isinstance(v, datetime.datetime):
            v = v.isoformat(timespec="microseconds")
        out.append(v)
    if values.get("nonce") is not None:
        out.append(values["nonce"])
    return json.dumps(out, ensure_ascii=False, separators=(",", ":"))


def new_nonce() -> str:
    """An event's nonce: 128 random bits, so no two events share an entry seal."""
    return secrets.token_hex(16)


_bases: dict[bytes, hmac.HMAC] = {}


def chain_key() -> bytes:
    """``AUDIT_CHAIN_KEY`` of the running application."""
    try:
        key = current_app.config["AUDIT_CHAIN_KEY"]
    except RuntimeError:  # no application: nothing can be sealed or verified
        raise RuntimeError("the audit chain needs the application's AUDIT_CHAIN_KEY (run inside the app)") from None
    if not key:
        raise RuntimeError("AUDIT_CHAIN_KEY is empty")
    return key.encode()


def _mac(key: bytes, message: bytes) -> str:
    base = _bases.get(key)
    if base is None:
        base = _bases[key] = hmac.new(key, digestmod=hashlib.sha256)
    h = base.copy()
    h.update(message)
    return h.hexdigest()


def digest(prev_hash: str, values: dict, key: bytes | None = None) -> str:
    """The link of a row: MAC of the previous link and the row's canonical form
    (and, for an event with a nonce, its entry seal: the link binds the seal the
    sealer's duplicate check and the unique index rest on)."""
    message = prev_hash + "|" + canonical(values)
    if values.get("nonce") is not None:
        message += "|" + (values.get("entry_mac") or "")
    return _mac(key or chain_key(), message.encode())


def entry_mac(values: dict, key: bytes | None = None, object_id_later: bool = False) -> str:
    """The entry seal of an unsealed event (its content without ``seq``)."""
    content = {**values, "seq": None}
    prefix = _ENTRY
    if object_id_later:
        content["object_id"], prefix = None, _ENTRY_ID_LATER
    return _mac(key or chain_key(), prefix + canonical(content).encode())


def entry_ok(values: dict, mac: str | None, key: bytes) -> bool:
    """Whether ``mac`` is the entry seal of this content and nonce (made by a process
    holding the key). An event without a nonce is not one the platform writes."""
    if not mac or not values.get("nonce"):
        return False
    if hmac.compare_digest(entry_mac(values, key), mac):
        return True
    return hmac.compare_digest(entry_mac(values, key, object_id_later=True), mac)


def _lock_tip(connection) -> tuple[int, str]:
    """Take the chain lock (UPDATE of the head row) and read the tip under it."""
    head_t = AuditHead.__table__
    lock = update(head_t).where(head_t.c.id == 1).values(seq=head_t.c.seq)
    tip = None
    if connection.dialect.update_returning:
        tip = connection.execute(lock.returning(head_t.c.seq, head_t.c.hash)).first()
    elif connection.execute(lock).rowcount:
        tip = connection.execute(select(head_t.c.seq, head_t.c.hash).where(head_t.c.id == 1)).first()
    if tip is None:  # a database migrated without the genesis row
        connection.execute(insert(head_t).values(id=1, seq=0, hash=GENESIS))
        tip = (0, GENESIS)
    return tip


def _pending_query(columns, refused: Iterable[int] | None):
    t = AuditEvent.__table__
    query = select(*columns).where(t.c.seq.is_(None))
    if refused:
        query = query.where(t.c.id.not_in(sorted(refused)))
    return query


def seal(connection, limit: int = 5000, refused: set[int] | None = None, replayed: set[int] | None = None) -> int:
    """Link the unsealed events into the chain, oldest first; returns how many.

    Runs in the caller's transaction. The UPDATE of the chain head takes its
    row lock (the write lock on SQLite) before the tip is read, so two sealers
    never fork the chain; the unsealed rows are read after the lock, so a
    sealer that waited sees the rows the previous one sealed. A row whose
    entry seal does not match is left out (and its id added to ``refused``,
    which later rounds skip); so is a row whose entry seal is already in the
    chain or on an earlier row of the batch, a replayed copy (its id added to
    ``refused`` and to ``replayed``).
    """
    return _seal(connection, limit, refused, replayed)[0]


def _already_chained(connection, macs: list[str]) -> set[str]:
    """Which of these entry seals a linked event already carries."""
    t = AuditEvent.__table__
    found: set[str] = set()
    for start in range(0, len(macs), 500):
        chunk = macs[start : start + 500]
        found.update(
            connection.execute(select(t.c.entry_mac).where(t.c.entry_mac.in_(chunk), t.c.seq.is_not(None))).scalars()
        )
    return found


def _seal(connection, limit: int, refused: set[int] | None, replayed: set[int] | None = None) -> tuple[int, int]:
    """(rows linked, rows read)."""
    t = AuditEvent.__table__
    key = chain_key()
    seq, prev = _lock_tip(connection)
    cols = [t.c.id, t.c.entry_mac, t.c.nonce, *(t.c[name] for name in CHAIN_FIELDS if name != "seq")]
    rows = connection.execute(_pending_query(cols, refused).order_by(t.c.id).limit(limit)).mappings().all()
    read = len(rows)
    genuine = []
    for row in rows:
        if entry_ok(row, row["entry_mac"], key):
            genuine.append(row)
        elif refused is not None:
            refused.add(row["id"])
    # A replay: the entry seal of a linked event, or of an earlier row of this batch.
    seen = _already_chained(connection, [row["entry_mac"] for row in genuine])
    links = []
    for row in genuine:
        if row["entry_mac"] in seen:
            for ids in (refused, replayed):
                if ids is not None:
                    ids.add(row["id"])
            continue
        seen.add(row["entry_mac"])
        values = dict(row)
        seq += 1
        values["seq"] = seq
        h = digest(prev, values, key)
        links.append({"row_id": row["id"], "seq": seq, "prev_hash": prev, "hash": h})
        prev = h
    if not links:
        return 0, read
    if connection.dialect.name == "postgresql":
        # The batch and the new tip in one statement: the rows' links as arrays
        # (one parameter each) instead of one UPDATE per row.
        batch = {
            "ids": [link["row_id"] for link in links],
            "seqs": [link["seq"] for link in links],
            "prevs": [link["prev_hash"] for link in links],
            "hashes": [link["hash"] for link in links],
            "tip_seq": seq,
            "tip_hash": prev,
        }
        if connection.execute(_LINK_BATCH_PG, batch).rowcount != 1:
            # a row read under the lock was not linked: keep nothing of the round
            raise RuntimeError("audit sealing: the batch did not link every row read")
        return len(links), read
    connection.execute(
        update(t)
        .where(t.c.id == bindparam("row_id"))
        .values(seq=bindparam("seq"), prev_hash=bindparam("prev_hash"), hash=bindparam("hash")),
        links,
    )
    head_t = AuditHead.__table__
    connection.execute(update(head_t).where(head_t.c.id == 1).values(seq=seq, hash=prev))
    return len(links), read


# The entry seal stays once the row is linked: its unique index refuses a copy.
_LINK_BATCH_PG = text(
    "WITH linked AS ("
    " UPDATE audit_event AS e SET seq = v.seq, prev_hash = v.prev_hash, hash = v.hash"
    " FROM unnest(CAST(:ids AS integer[]), CAST(:seqs AS integer[]), CAST(:prevs AS varchar[]),"
    " CAST(:hashes AS varchar[])) AS v(id, seq, prev_hash, hash)"
    " WHERE e.id = v.id RETURNING e.id)"
    " UPDATE audit_head SET seq = :tip_seq, hash = :tip_hash"
    " WHERE id = 1 AND (SELECT count(*) FROM linked) = cardinality(CAST(:ids AS integer[]))"
)


def seal_all(engine, limit: int = 5000, refused: set[int] | None = None, replayed: set[int] | None = None) -> int:
    """Seal everything pending, a batch per transaction; returns how many were linked.
    ``refused``/``replayed``: as for ``seal``."""
    total = 0
    while True:
        with engine.begin() as conn:
            linked, read = _seal(conn, limit, refused, replayed)
        total += linked
        # A batch short of the limit took every event committed when it held
        # the chain lock (no second, empty round).
        if read < limit or (not linked and refused is None):
            return total


def pending(connection) -> int:
    """Events committed but not yet linked into the chain."""
    t = AuditEvent.__table__
    return connection.execute(select(func.count()).select_from(t).where(t.c.seq.is_(None))).scalar_one()


def any_pending(connection, refused: Iterable[int] | None = None) -> bool:
    """Whether an event waits for sealing (one index probe, no lock); ``refused`` ids do not count."""
    t = AuditEvent.__table__
    return connection.execute(_pending_query([t.c.id], refused).limit(1)).first() is not None


# --- verifying ----------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement of the chain at a moment: its head and length."""

    seq: int
    hash: str
    count: int
    at: str
    line: int = 0
    kind: str = "checkpoint"  # or "archive": the chain's rows up to ``seq`` were archived and may be gone


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    bad_seq: int | None = None
    bad_id: int | None = None
    reason: str | None = None
    problems: list[str] = field(default_factory=list)
    pending: int = 0  # unsealed events within the grace period (not a fault)
    checkpoints: int = 0  # signed checkpoints the chain was compared with
    head: tuple[int, str] | None = None


@dataclass
class _Walk:
    checked: int
    last_seq: int
    last_hash: str
    bad_seq: int | None = None
    bad_id: int | None = None
    reason: str | None = None


def walk(connection, key: bytes, start_seq: int = 0, start_hash: str = GENESIS, stop_seq: int | None = None,
         expect: dict[int, Checkpoint] | None = None) -> _Walk:  # fmt: skip
    """Recompute the links after ``start_seq`` (whose link is ``start_hash``) up to
    ``stop_seq``; stop at the first broken row. ``expect``: signed links by seq."""
    t = AuditEvent.__table__
    cols = [t.c.id, t.c.prev_hash, t.c.hash, t.c.nonce, t.c.entry_mac, *(t.c[name] for name in CHAIN_FIELDS)]
    prev, expected, checked = start_hash, start_seq + 1, 0
    statement = select(*cols).where(t.c.seq > start_seq)
    if stop_seq is not None:
        statement = statement.where(t.c.seq <= stop_seq)
    statement = statement.order_by(t.c.seq)
    expect = expect or {}
    # The server-side cursor is closed on every way out, an early "broken" answer included.
    # Per statement: execution_options on a Connection would change it for its later statements.
    with connection.execute(statement.execution_options(yield_per=2000)) as result:
        for row in result.mappings():
            values = dict(row)
            seq = values["seq"]
            if seq != expected:
                reason = f"row seq {expected} is missing (next row is seq {seq})"
                return _Walk(checked, expected - 1, prev, expected, values["id"], reason)
            if values["prev_hash"] != prev:
                reason = "previous-hash link does not match the row before"
                return _Walk(checked, seq - 1, prev, seq, values["id"], reason)
            if not hmac.compare_digest(digest(prev, values, key), values["hash"] or ""):
                reason = "content does not match its keyed hash (row edited, or its links recomputed without the key)"
                return _Walk(checked, seq - 1, prev, seq, values["id"], reason)
            signed = expect.get(seq)
            if signed is not None and signed.hash != values["hash"]:
                reason = (
                    f"its link differs from the signed checkpoint of {signed.at} (line {signed.line}):"
                    " the chain was rewritten after it"
                )
                return _Walk(checked, seq - 1, prev, seq, values["id"], reason)
            prev = values["hash"]
            expected += 1
            checked += 1
    return _Walk(checked, expected - 1, prev)


def verify(
    connection,
    checkpoints: Iterable[Checkpoint] = (),
    grace: float | None = None,
    now: datetime.datetime | None = None,
    key: bytes | None = None,
) -> VerifyResult:
    """Recompute the keyed chain from the first row and compare it with its head
    and the signed ``checkpoints``; name events present twice (replayed); report
    pending rows that are forged or that waited longer than ``grace`` seconds.
    Reads only."""
    key = key or chain_key()
    checkpoints = list(checkpoints)
    if grace is None:
        grace = float(current_app.config.get("AUDIT_SEAL_GRACE_SECONDS", 300))
    expect = {cp.seq: cp for cp in checkpoints}
    problems: list[str] = []
    start_seq, start_hash = archived_start(connection, checkpoints, problems)
    w = walk(connection, key, start_seq, start_hash, expect=expect)
    result = VerifyResult(False, w.checked, checkpoints=len(checkpoints))
    if w.reason is not None:
        result.bad_seq, result.bad_id, result.reason = w.bad_seq, w.bad_id, w.reason
        problems.append(f"seq {w.bad_seq}" + (f" (id {w.bad_id})" if w.bad_id else "") + f": {w.reason}")
    else:
        head = connection.execute(select(AuditHead.__table__.c.seq, AuditHead.__table__.c.hash)).first()
        result.head = (w.last_seq, w.last_hash)
        if head is not None and head.seq != w.last_seq:
            result.bad_seq = w.last_seq + 1
            result.reason = f"chain head says seq {head.seq}; rows after seq {w.last_seq} are missing"
        elif head is not None and head.hash != w.last_hash:
            result.bad_seq = w.last_seq
            result.reason = f"chain head does not match row seq {w.last_seq} (head replaced)"
        if result.reason:
            problems.append(result.reason)
        latest = max(checkpoints, key=lambda cp: cp.seq, default=None)
        if latest is not None and latest.seq > w.last_seq:
            reason = (
                f"the chain ends at seq {w.last_seq} but the signed checkpoint of {latest.at} (line {latest.line})"
                f" saw it reach seq {latest.seq}: rows were cut off"
            )
            if result.reason is None:
                result.bad_seq, result.reason = w.last_seq + 1, reason
            problems.append(reason)
    copies = _repeats(connection, problems)
    result.pending = _check_unsealed(connection, key, grace, now, problems, copies)
    result.ok = not problems
    result.problems = problems
    if result.reason is None and problems:
        result.reason = problems[0]
    return result


def archived_start(connection, checkpoints: Iterable[Checkpoint], problems: list[str]) -> tuple[int, str]:
    """Where the chain in the database begins: at seq 1 from the genesis link,
    or after the rows archived and removed (``app.services.audit.archive``),
    from the link their signed ``archive`` line holds. Rows missing from the
    start without such a line are a problem."""
    t = AuditEvent.__table__
    first = connection.scalar(select(func.min(t.c.seq)))
    archives = sorted((cp for cp in checkpoints if cp.kind == "archive"), key=lambda cp: cp.seq)
    if first is None:
        return (archives[-1].seq, archives[-1].hash) if archives else (0, GENESIS)
    if first == 1:
        return 0, GENESIS
    for cp in archives:
        if cp.seq == first - 1:
            return cp.seq, cp.hash
    problems.append(
        f"rows before seq {first} are missing and no signed archive line says they were archived"
        " (see `flask audit verify --archive`)"
    )
    return first - 1, connection.scalar(select(t.c.prev_hash).where(t.c.seq == first)) or GENESIS


def _repeats(connection, problems: list[str]) -> dict[int, str]:
    """Events present more than once (one entry seal on several rows: replayed
    copies). Name in ``problems`` each copy linked into the chain; return the
    unsealed copies, each with the event it copies (the linked one, else the
    first written)."""
    t = AuditEvent.__table__
    repeated = select(t.c.entry_mac).where(t.c.entry_mac.is_not(None)).group_by(t.c.entry_mac)
    repeated = repeated.having(func.count() > 1)
    groups: dict[str, list] = {}
    for row in connection.execute(select(t.c.id, t.c.seq, t.c.entry_mac).where(t.c.entry_mac.in_(repeated))):
        groups.setdefault(row.entry_mac, []).append(row)
    linked: list[tuple[int, str]] = []
    unsealed: dict[int, str] = {}
    for rows in groups.values():
        rows.sort(key=lambda r: (r.seq is None, r.seq or 0, r.id))
        first = rows[0]
        for row in rows[1:]:
            if row.seq is not None:
                linked.append((row.seq, f"seq {row.seq} (id {row.id}) repeats seq {first.seq} (id {first.id})"))
            else:
                unsealed[row.id] = f"seq {first.seq}" if first.seq is not None else f"id {first.id}"
    # Events linked before migration 0016 have no nonce nor seal: a copy the sealer
    # linked then repeats another's content to the microsecond.
    content = [t.c[name] for name in CHAIN_FIELDS if name != "seq"]
    alike = select(func.min(t.c.seq), func.max(t.c.seq), func.count()).where(t.c.nonce.is_(None), t.c.seq.is_not(None))
    for first_seq, last_seq, count in connection.execute(alike.group_by(*content).having(func.count() > 1)):
        rows_alike = f", {count} rows alike" if count > 2 else ""
        linked.append((last_seq, f"seq {last_seq} repeats seq {first_seq} (the same content{rows_alike})"))
    if linked:
        linked.sort()
        more = f" and {len(linked) - _LISTED} more" if len(linked) > _LISTED else ""
        problems.append(
            f"{len(linked)} events are in the chain twice (replayed copies linked by the sealer): "
            + "; ".join(text for _seq, text in linked[:_LISTED])
            + more
        )
    return unsealed


def _check_unsealed(connection, key: bytes, grace: float, now, problems: list[str], copies: dict[int, str]) -> int:
    """Report forged, replayed (``copies``: id -> the event it copies) and overdue
    pending rows; return how many wait within the grace period."""
    t = AuditEvent.__table__
    now = now or datetime.datetime.utcnow()
    oldest_allowed = now - datetime.timedelta(seconds=grace)
    cols = [t.c.id, t.c.entry_mac, t.c.nonce, *(t.c[name] for name in CHAIN_FIELDS if name != "seq")]
    forged, replayed, overdue, waiting = [], [], [], 0
    oldest = None
    with connection.execution_options(yield_per=2000).execute(_pending_query(cols, None).order_by(t.c.id)) as rows:
        for row in rows.mappings():
            if not entry_ok(row, row["entry_mac"], key):
                forged.append(row["id"])
            elif row["id"] in copies:
                replayed.append(row["id"])
            elif row["at"] < oldest_allowed:
                overdue.append(row["id"])
                oldest = row["at"] if oldest is None else min(oldest, row["at"])
            else:
                waiting += 1
    if forged:
        problems.append(
            f"{len(forged)} unsealed events not written by the platform (their entry seal does not match): "
            + _ids(forged)
        )
    if replayed:
        named = ", ".join(f"id {i} (a copy of {copies[i]})" for i in replayed[:_LISTED])
        more = f" and {len(replayed) - _LISTED} more" if len(replayed) > _LISTED else ""
        problems.append(
            f"{len(replayed)} unsealed events are replayed copies of an event already written"
            f" (the same entry seal; never to be linked): {named}{more}"
        )
    if overdue:
        problems.append(
            f"{len(overdue)} unsealed events waited longer than {grace:g} s for the sealer"
            f" (the oldest since {oldest:%Y-%m-%d %H:%M:%S} UTC; is `flask worker sealer` running?): " + _ids(overdue)
        )
    return waiting


def _ids(ids: list[int]) -> str:
    named = ", ".join(f"id {i}" for i in ids[:_LISTED])
    return named + (f" and {len(ids) - _LISTED} more" if len(ids) > _LISTED else "")
