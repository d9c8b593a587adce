"""The hash chain: each event's canonical form and digest, sealing committed
events into the chain, and verifying it from the first row.

An event is inserted unsealed (no ``seq``, no hashes) with the change it
records, so both commit or roll back together. Sealing links committed events
into the chain in the order it finds them. Sealers serialise on the
``audit_head`` row: its UPDATE takes a row lock on PostgreSQL/MariaDB and the
write lock on SQLite, so two sealers can never fork the chain.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass

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


def canonical(values: dict) -> str:
    """The chained fields of an event as one JSON array (times to the microsecond)."""
    out = []
    for name in CHAIN_FIELDS:
        v = values.get(name)
        if isinstance(v, datetime.datetime):
            v = v.isoformat(timespec="microseconds")
        out.append(v)
    return json.dumps(out, ensure_ascii=False, separators=(",", ":"))


def digest(prev_hash: str, values: dict) -> str:
    return hashlib.sha256((prev_hash + "|" + canonical(values)).encode()).hexdigest()


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


def seal(connection, limit: int = 5000) -> int:
    """Link the unsealed events into the chain, oldest first; returns how many.

    Runs in the caller's transaction. The UPDATE of the chain head takes its
    row lock (the write lock on SQLite) before the tip is read, so two sealers
    never fork the chain; the unsealed rows are read after the lock, so a
    sealer that waited sees the rows the previous one sealed.
    """
    t = AuditEvent.__table__
    seq, prev = _lock_tip(connection)
    cols = [t.c.id, *(t.c[name] for name in CHAIN_FIELDS if name != "seq")]
    pending_rows = connection.execute(select(*cols).where(t.c.seq.is_(None)).order_by(t.c.id).limit(limit)).mappings()
    links = []
    for row in pending_rows:
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
        return len(links)
    connection.execute(
        update(t)
        .where(t.c.id == bindparam("row_id"))
        .values(seq=bindparam("seq"), prev_hash=bindparam("prev_hash"), hash=bindparam("hash")),
        links,
    )
    head_t = AuditHead.__table__
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
    """Seal everything pending, a batch per transaction; returns how many."""
    total = 0
    while True:
        with engine.begin() as conn:
            n = seal(conn, limit)
        total += n
        # A batch short of the limit took every event committed when it held
        # the chain lock (no second, empty round).
        if n < limit:
            return total


def pending(connection) -> int:
    """Events committed but not yet linked into the chain."""
    t = AuditEvent.__table__
    return connection.execute(select(func.count()).select_from(t).where(t.c.seq.is_(None))).scalar_one()


def any_pending(connection) -> bool:
    """Whether an event waits for sealing (one index probe, no lock)."""
    t = AuditEvent.__table__
    return connection.execute(select(t.c.id).where(t.c.seq.is_(None)).limit(1)).first() is not None


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    bad_seq: int | None = None
    bad_id: int | None = None
    reason: str | None = None


def verify(connection) -> VerifyResult:
    """Recompute the sealed chain from the first row; report the first broken row."""
    t = AuditEvent.__table__
    cols = [t.c.id, t.c.prev_hash, t.c.hash, *(t.c[name] for name in CHAIN_FIELDS)]
    prev = GENESIS
    expected = 1
    checked = 0
    statement = select(*cols).where(t.c.seq.is_not(None)).order_by(t.c.seq)
    # The server-side cursor is closed on every way out, an early "broken" answer included.
    with connection.execution_options(yield_per=2000).execute(statement) as result:
        for row in result.mappings():
            values = dict(row)
            if values["seq"] != expected:
                reason = f"row seq {expected} is missing (next row is seq {values['seq']})"
                return VerifyResult(False, checked, expected, values["id"], reason)
            if values["prev_hash"] != prev:
                return VerifyResult(
                    False, checked, values["seq"], values["id"], "previous-hash link does not match the row before"
                )
            if digest(prev, values) != values["hash"]:
                return VerifyResult(
                    False, checked, values["seq"], values["id"], "content does not match its hash (row edited)"
                )
            prev = values["hash"]
            expected += 1
            checked += 1
    head = connection.execute(select(AuditHead.__table__.c.seq, AuditHead.__table__.c.hash)).first()
    last_seq = expected - 1
    if head is not None and (head.seq != last_seq or head.hash != prev):
        reason = f"chain head says seq {head.seq}; rows after seq {last_seq} are missing"
        return VerifyResult(False, checked, last_seq + 1, None, reason)
    return VerifyResult(True, checked)
