"""Pooled PostgreSQL connections are checked before use without a SELECT 1 each time."""

import time

from sqlalchemy import create_engine, text

from app.connectors import liveness
from tests.conftest import PG_ADMIN_URL


def _engine(**kw):
    engine = create_engine(PG_ADMIN_URL, pool_size=1, max_overflow=0, pool_pre_ping=True, **kw)
    assert liveness.install(engine)
    return engine


def _pid(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()


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
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        time.sleep(0.2)  # the server's goodbye reaches the idle pooled socket
        second = _pid(engine)
        assert second != first
        assert _pid(engine) == second  # a healthy connection is kept
        assert pings == []  # found without a round trip
    finally:
        engine.dispose()
        admin.dispose()


def test_a_connection_idle_longer_than_the_limit_is_pinged_and_a_busy_one_is_not(monkeypatch):
    engine = create_engine(PG_ADMIN_URL, pool_size=1, max_overflow=0, pool_pre_ping=True)
    assert liveness.install(engine, idle_seconds=0.3)
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
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}", pool_pre_ping=True)
    assert not liveness.install(engine)
    assert engine.pool._pre_ping
