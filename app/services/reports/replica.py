"""Where reports, statistics and the weekly log read: the PostgreSQL streaming
replica named by DATABASE_REPLICA_URL, when it answers and is no further behind
the primary than REPLICA_MAX_LAG_SECONDS; else the primary. Either way the
reader learns how fresh the figures are (``Freshness``), and a page says so.

``read(primary, work)`` runs ``work(session)`` on the replica's session, or on
``primary`` (the request's session) when there is no replica, it lags, it does
not answer, or it fails during the read (the work is then run again on the
primary). The replica's state is checked at most every REPLICA_CHECK_SECONDS
per process, and a replica that did not answer is left alone for
REPLICA_RETRY_SECONDS, so a dead replica costs one connection timeout
(REPLICA_CONNECT_TIMEOUT) per process and retry period, never one per page.

Lag: the replica is current when it has replayed the primary's WAL position
read just before (``pg_current_wal_lsn()`` on the primary against
``pg_last_wal_replay_lsn()`` on the replica); otherwise it is as old as the
last transaction it replayed (``pg_last_xact_replay_timestamp()``).
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from flask import current_app
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from app.extensions import platform_bind

log = logging.getLogger(__name__)
T = TypeVar("T")

PRIMARY, REPLICA = "primary", "replica"
# Why the primary answered although a replica is configured.
LAGGING, UNAVAILABLE = "lagging", "unavailable"


@dataclass(frozen=True)
class Freshness:
    """Which database answered, and the moment its figures hold to (UTC)."""

    source: str
    as_of: datetime.datetime
    lag_seconds: float = 0.0
    fallback: str | None = None  # LAGGING or UNAVAILABLE when a replica is configured but the primary answered


@dataclass
class _State:
    checked_at: float = 0.0  # monotonic time of the last check
    usable: bool = False
    lag_seconds: float = 0.0
    fallback: str | None = None
    down_until: float = 0.0


_states: dict[str, _State] = {}
_lock = threading.Lock()


def replica_url(config) -> str:
    """The replica's URL, when one is configured (PostgreSQL only)."""
    url = (config.get("DATABASE_REPLICA_URL") or "").strip()
    return url if url.startswith("postgresql") else ""


def _engine(app, url: str):
    engines = app.extensions.setdefault("platform_replica_engines", {})
    engine = engines.get(url)
    if engine is None:
        timeout = max(1, round(float(app.config.get("REPLICA_CONNECT_TIMEOUT", 2))))
        engine = engines[url] = create_engine(
            url,
            hide_parameters=True,
            pool_pre_ping=True,
            pool_size=int(app.config.get("REPLICA_POOL_SIZE", 5)),
            connect_args={"connect_timeout": timeout},
        )
    return engine


def _session(app, url: str) -> Session:
    """The replica's session of this thread, kept until the app context ends (a page renders
    what it read, lazy loads included, then ``init_app``'s teardown closes it)."""
    sessions = app.extensions.setdefault("platform_replica_sessions", {})
    factory = sessions.get(url)
    if factory is None:
        factory = sessions[url] = scoped_session(sessionmaker(bind=_engine(app, url)))
    return factory()


def init_app(app) -> None:
    """Close the replica's sessions as each app context ends."""

    @app.teardown_appcontext
    def _close_replica_sessions(exc=None):
        for factory in app.extensions.get("platform_replica_sessions", {}).values():
            factory.remove()


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def _measure(primary_engine, engine) -> float | None:
    """Seconds the replica is behind the primary (0: current), None when it is no replica.

    The primary's WAL position is read first; a replica that replays up to it within
    REPLICA_CATCHUP_SECONDS is as fresh as that moment. One that does not is as old as
    the last transaction it replayed (infinitely old when it replayed none since it started)."""
    with primary_engine.connect() as conn:
        position = conn.execute(select(text("pg_current_wal_lsn()::text"))).scalar_one()
    read_at = time.monotonic()
    wait = float(current_app.config.get("REPLICA_CATCHUP_SECONDS", 0.2))
    with engine.connect() as conn:
        while True:
            in_recovery, behind_bytes, since_replay = conn.execute(
                text(
                    "SELECT pg_is_in_recovery(), pg_wal_lsn_diff(CAST(:position AS pg_lsn), pg_last_wal_replay_lsn()),"
                    " EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp())"
                ),
                {"position": position},
            ).one()
            if not in_recovery:
                return None
            elapsed = time.monotonic() - read_at
            if behind_bytes is not None and behind_bytes <= 0:
                return elapsed
            if elapsed >= wait:
                return max(elapsed, float(since_replay)) if since_replay is not None else float("inf")
            time.sleep(0.01)


def _state(primary_session, url: str) -> _State:
    cfg = current_app.config
    now = time.monotonic()
    with _lock:
        state = _states.setdefault(url, _State())
        if now < state.down_until or now - state.checked_at < float(cfg.get("REPLICA_CHECK_SECONDS", 2)):
            return state
        state.checked_at = now  # one thread checks; the others use the last verdict meanwhile
    try:
        lag = _measure(platform_bind(primary_session), _engine(current_app, url))
    except DBAPIError as exc:
        _mark_down(url, exc)
        return _states[url]
    with _lock:
        if lag is None:
            log.warning("reports: DATABASE_REPLICA_URL is not a replica (not in recovery); reading the primary")
            state.usable, state.fallback, state.lag_seconds = False, UNAVAILABLE, 0.0
        else:
            state.lag_seconds = lag
            state.usable = lag <= float(cfg.get("REPLICA_MAX_LAG_SECONDS", 300))
            state.fallback = None if state.usable else LAGGING
            if not state.usable:
                log.warning("reports: the replica is %.0f s behind; reading the primary", lag)
    return state


def _mark_down(url: str, exc: Exception) -> None:
    log.warning("reports: the replica did not answer (%s); reading the primary", type(exc).__name__)
    with _lock:
        state = _states.setdefault(url, _State())
        state.usable, state.fallback = False, UNAVAILABLE
        state.down_until = time.monotonic() + float(current_app.config.get("REPLICA_RETRY_SECONDS", 10))
        state.checked_at = 0.0


def check(primary_engine) -> tuple[str, float | None]:
    """The replica's state for /health/ready, measured now: ("ok", lag), ("lagging", lag),
    ("down", None), or ("not configured", None)."""
    url = replica_url(current_app.config)
    if not url:
        return "not configured", None
    try:
        lag = _measure(primary_engine, _engine(current_app, url))
    except DBAPIError as exc:
        log.warning("health: the replica did not answer (%s)", type(exc).__name__)
        return "down", None
    if lag is None:
        return "down", None
    return ("ok" if lag <= float(current_app.config.get("REPLICA_MAX_LAG_SECONDS", 300)) else "lagging"), lag


def forget() -> None:
    """Drop what this process knows of the replicas (tests; a changed setting)."""
    with _lock:
        _states.clear()


def read(primary_session, work: Callable[[Session], T]) -> tuple[T, Freshness]:
    """``work(session)`` on the replica when it is usable, else on ``primary_session``;
    the result and how fresh it is. A replica that fails during the read is marked
    down and the work is done again on the primary."""
    url = replica_url(current_app.config)
    fallback = None
    if url:
        state = _state(primary_session, url)
        if state.usable:
            as_of = _utcnow() - datetime.timedelta(seconds=state.lag_seconds)
            session = _session(current_app, url)
            try:
                return work(session), Freshness(REPLICA, as_of, state.lag_seconds)
            except DBAPIError as exc:
                session.rollback()
                _mark_down(url, exc)
        fallback = _states[url].fallback or UNAVAILABLE
    return work(primary_session), Freshness(PRIMARY, _utcnow(), 0.0, fallback)
