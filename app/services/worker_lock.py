"""One worker of a kind at a time, across hosts, for work that has no row to lock
before it starts (a round that asks a payment gateway, then writes).

``exclusive(engine, name)`` holds a PostgreSQL session-level advisory lock on a
connection of its own for the length of the ``with`` block and yields whether it
got it; another holder makes it yield False at once (the round is skipped, never
waited for). The lock goes with the connection, so a worker that dies frees it.
On SQLite (one host) it always yields True.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import func, select


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``name``."""
    return int.from_bytes(hashlib.sha256(f"platform-worker:{name}".encode()).digest()[:8], "big", signed=True)


@contextmanager
def exclusive(engine, name: str) -> Iterator[bool]:
    if engine.dialect.name != "postgresql":
        yield True
        return
    key = lock_key(name)
    with engine.connect() as conn:
        got = bool(conn.execute(select(func.pg_try_advisory_lock(key))).scalar())
        conn.commit()
        try:
            yield got
        finally:
            if got:
                conn.execute(select(func.pg_advisory_unlock(key)))
                conn.commit()
