"""Pooled PostgreSQL connections are checked before use without a SELECT 1 each time."""

import time

from sqlalchemy import create_engine, text

from app.lib import liveness
from tests.conftest import PG_ADMIN_URL


def _engine(idle_seconds: float = liveness.IDLE_SECONDS):
    options = liveness.engine_options(PG_ADMIN_URL, {"pool_size": 1, "max_overflow": 0, "pool_pre_ping": True})
    engine = create_engine(PG_ADMIN_URL, **options)
    assert liveness.install(engine, idle_seconds=idle_seconds)
    return engine


def _pid(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()


def _terminate(admin, pid: int) -> None:
    """End a backend and wait until the server has let it go (its goodbye is then on the socket)."""
    with admin.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        deadline = time.monotonic() + 10
        while conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}).scalar():
            assert time.monotonic() < deadline, "the backend did not end"


def _count_pings(engine, monkeypatch) -> list:
    pings = []
    original = type(engine.dialect).do_ping
    monkeypatch.setattr(type(engine.dialect), "do_ping", lambda self, c: pings.append(1) or original(self, c))
    return pings


def test_a_connection_the_server_ended_is_replaced_before_the_next_query_uses_it(monkeypatch):
    engine = _engine()
    pings = _count_pings(engine, monkeypatch)
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        first = _pid(engine)
        _terminate(admin, first)
        second = _pid(engine)
        assert second != first
        assert _pid(engine) == second  # a healthy connection is kept
        assert pings == []  # found without a round trip
    finally:
        engine.dispose()
        admin.dispose()


def test_a_connection_idle_longer_than_the_limit_is_pinged_and_a_busy_one_is_not(monkeypatch):
    engine = _engine(idle_seconds=0.3)
    pings = _count_pings(engine, monkeypatch)
    try:
        pid = _pid(engine)
        _pid(engine)
        assert pings == []
        time.sleep(0.4)
        assert _pid(engine) == pid and pings == [1]
    finally:
        engine.dispose()


def test_other_drivers_keep_the_ordinary_pre_ping(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert liveness.engine_options(url, {"pool_pre_ping": True}) == {"pool_pre_ping": True}
    assert liveness.engine_options(PG_ADMIN_URL, {"pool_pre_ping": True}) == {"pool_pre_ping": False}
    assert not liveness.install(create_engine(url, pool_pre_ping=True))


def test_a_disposed_pool_keeps_the_checks(monkeypatch):
    """A lost database makes the engine dispose of its pool; the new pool checks its connections as the old one did."""
    engine = _engine()
    pings = _count_pings(engine, monkeypatch)
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        _pid(engine)
        engine.dispose()
        first = _pid(engine)
        _terminate(admin, first)
        assert _pid(engine) != first and pings == []
    finally:
        engine.dispose()
        admin.dispose()
