"""How much does the audit trail cost? Audited writes per second beside the
same writes with the audit hook switched off, in one process, on SQLite and
PostgreSQL; then how fast the sealer links what the writes left pending (on
PostgreSQL, where requests only insert their events) and how fast `flask
audit verify` walks the chain.

    .venv/bin/python bench/audit_bench.py [--n 2000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

PG_ADMIN = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _app(url):
    from flask_migrate import upgrade

    from app import create_app
    from config import TestConfig

    class Cfg(TestConfig):
        SQLALCHEMY_DATABASE_URI = url

    app = create_app(Cfg)
    with app.app_context():
        upgrade()
    return app


def _writes(app, n, audited: bool) -> float:
    from app.extensions import db
    from app.models.org import Agency
    from app.services import audit

    with app.app_context():
        if not audited:
            audit.remove_session_hooks(db.session)
        try:
            tag = uuid.uuid4().hex[:6].upper()
            t0 = time.perf_counter()
            for i in range(n):
                db.session.add(Agency(code=f"B{tag}{i}", name=f"bench {tag} {i}", kind="other", active=True))
                db.session.commit()
            return n / (time.perf_counter() - t0)
        finally:
            if not audited:
                audit.install_session_hooks(db.session)


def _seal(app) -> tuple[int, float]:
    from app.extensions import db
    from app.services.audit import seal_all

    with app.app_context():
        t0 = time.perf_counter()
        n = seal_all(db.engine)
        return n, n / max(time.perf_counter() - t0, 1e-9)


def _verify(app) -> tuple[int, float]:
    from app.extensions import db
    from app.services.audit import verify

    with app.app_context(), db.engine.connect() as conn:
        t0 = time.perf_counter()
        result = verify(conn)
        assert result.ok, result.reason
        return result.checked, result.checked / (time.perf_counter() - t0)


def run(label, url, n):
    app = _app(url)
    _writes(app, 50, True)  # warm up
    base = _writes(app, n, audited=False)
    audited = _writes(app, n, audited=True)
    sealed, seal_rate = _seal(app)
    rows, rate = _verify(app)
    print(f"{label:10s} plain inserts {base:8.0f}/s   audited {audited:8.0f}/s   ratio {audited / base:5.2f}"
          f"   sealed {sealed} pending at {seal_rate:,.0f} rows/s   verify {rows} rows at {rate:,.0f} rows/s")  # fmt: skip
    from app.extensions import db

    with app.app_context():
        db.engine.dispose()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    import logging

    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        run("sqlite", f"sqlite:///{tmp}/bench.db", args.n)
    name = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        run("postgresql", make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False), args.n)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
