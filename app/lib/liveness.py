"""Checking a pooled PostgreSQL connection before use without a round trip.

``pool_pre_ping`` sends ``SELECT 1`` on every checkout: one extra round trip
for every query a clerk runs (and one more for the platform database's log
write). For psycopg connections this replaces it with:

- a zero-cost look at the socket: an idle connection has nothing to read, so
  a readable socket means the server has sent something unasked, which is
  how PostgreSQL ends a session (restart, ``pg_terminate_backend``, idle
  timeout: a FATAL message, then EOF); the connection is replaced;
- the real ping as before when the connection has lain unused for more than
  ``idle_seconds`` (a network path that died silently sends nothing).

A connection found dead is replaced before the caller sees it (SQLAlchemy's
``InvalidatePoolError`` in a checkout listener: like a failed pre-ping, it
also retires the pool's older connections, which the same restart ended).

Two steps, both public SQLAlchemy: ``engine_options`` turns ``pool_pre_ping``
off in the options an engine is created with when the URL is psycopg's (the
checkout listener does its work), and ``install`` adds the listeners to the
engine created with them. Other drivers keep ``pool_pre_ping``. Platform
plumbing: used from ``create_app`` for the platform database and by the SQL
sources; it imports nothing of the app.
"""

from __future__ import annotations

import select
import time

IDLE_SECONDS = 5.0


def is_psycopg(engine) -> bool:
    return engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg"


def handles(url) -> bool:
    """Whether ``install`` replaces the pre-ping for engines of this URL (psycopg)."""
    from sqlalchemy.engine import make_url

    url = make_url(url)
    return url.get_backend_name() == "postgresql" and url.get_driver_name() == "psycopg"


def engine_options(url, options: dict | None = None) -> dict:
    """``options`` for ``create_engine(url, **options)``, with ``pool_pre_ping``
    off where ``install`` will check connections instead (psycopg)."""
    options = dict(options or {})
    if handles(url):
        options["pool_pre_ping"] = False
    return options


def install(engine, idle_seconds: float = IDLE_SECONDS) -> bool:
    """Check a psycopg engine's connections on checkout (create it with
    ``engine_options``); False (the engine unchanged) for other drivers."""
    from sqlalchemy import event
    from sqlalchemy import exc as sa_exc

    if not is_psycopg(engine):
        return False
    dialect = engine.dialect

    def _checkin(_dbapi_connection, record):
        if record is not None:
            record.info["last_checkin"] = time.monotonic()

    def _checkout(dbapi_connection, record, _proxy):
        last = record.info.get("last_checkin")
        if last is None:  # fresh from connect(): nothing to check
            return
        if dbapi_connection.closed or _unexpected_input(dbapi_connection):
            raise sa_exc.InvalidatePoolError("the server ended this connection")
        if time.monotonic() - last > idle_seconds:
            try:
                alive = dialect.do_ping(dbapi_connection)
            except Exception as exc:
                raise sa_exc.InvalidatePoolError("ping failed") from exc
            if not alive:
                raise sa_exc.InvalidatePoolError("ping failed")

    # Pool events listened for on the engine stay with its pool when dispose() recreates it.
    event.listen(engine, "checkin", _checkin)
    event.listen(engine, "checkout", _checkout)
    return True


def _unexpected_input(dbapi_connection) -> bool:
    try:
        fd = dbapi_connection.pgconn.socket
    except Exception:  # no socket: the connection is broken
        return True
    if fd < 0:
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI)
    try:
        return bool(poller.poll(0))  # POLLIN, POLLHUP or POLLERR: not an idle, healthy session
    except OSError:
        return True
