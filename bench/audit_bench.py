"""How much does the audit trail cost? Audited writes per second beside the
same writes with the audit hook switched off, in one process, on SQLite and
PostgreSQL; then how fast the sealer links what the writes left pending (on
PostgreSQL, where requests only insert their events) and how fast `flask
audit verify` walks the chain.

    .venv/bin/python bench/audit_bench.py [--n 2000] [--anomaly-only]

Then the anomaly rules (issue 19): audited queries (``run_query`` in process, a SQLite
people source) with every rule off, then on, each batch followed by the anomalies worker's
round over it, timed; the ratio (queries + rounds) / queries is what the rules add to an
audited query. Rounds of 10 queries (a quiet counter: the worker's fixed cost per round
weighs most) and one round over the whole batch (a burst).
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


def _valid_ids(n: int) -> list[str]:
    values = {"A": 10, "B": 11, "C": 12, "D": 13, "E": 14}
    out = []
    for i in range(n):
        letter = "ABCDE"[i % 5]
        body = f"{1 + i % 2}{i:07d}"
        digits = [values[letter] // 10, values[letter] % 10] + [int(c) for c in body]
        total = sum(w * d for w, d in zip((1, 9, 8, 7, 6, 5, 4, 3, 2, 1), digits))
        out.append(f"{letter}{body}{(10 - total % 10) % 10}")
    return out


def anomaly_overhead(label, url, n, tmp):
    """Seconds per audited query with the rules off and on (the worker's rounds included)."""
    import datetime

    from sqlalchemy import update

    from app.extensions import db
    from app.models.anomaly import AnomalyRule
    from app.models.org import Agency
    from app.services import anomaly
    from app.services.actors import ALL_FORMS, Actor
    from app.services.query import run_query
    from app.services.seed.anomaly import seed_anomaly
    from tests import factories

    app = _app(url)
    with app.app_context():
        tax = Agency(code="TAX", name="稅務局", kind="tax", active=True)
        db.session.add(tax)
        db.session.commit()
        src = factories.sqlite_source("BENCH-PEOPLE", factories.people_db(os.path.join(tmp, f"{label}-people.db")))
        factories.people_form("bench.people", src, roles=())
        seed_anomaly(db.session)
        db.session.commit()
        clerks = [Actor(user_id=9000 + i, username=f"bench{i}", agency_id=tax.id, agency_code="TAX",
                        permissions=frozenset({ALL_FORMS})) for i in range(10)]  # fmt: skip
        ids = _valid_ids(max(n, 500))
        later = datetime.datetime.utcnow() + datetime.timedelta(days=1)
        done = [0]

        def queries(k: int) -> float:
            t0 = time.perf_counter()
            for _ in range(k):
                i = done[0]
                run_query(db.session, clerks[i % 10], "bench.people", "1151203-0001", None, "TAX-CHECK",
                          {"id_no": ids[(i * 7) % len(ids)]})  # fmt: skip
                done[0] += 1
            return time.perf_counter() - t0

        def evaluate() -> float:
            t0 = time.perf_counter()
            anomaly.evaluate_round(db.session, now=later)
            return time.perf_counter() - t0

        def active(on: bool) -> None:
            db.session.execute(update(AnomalyRule).values(active=on))
            db.session.commit()

        queries(50)
        evaluate()
        figures = {}
        for rules_on in (False, True, False, True):  # alternating: a load that comes and goes weighs on both
            active(rules_on)
            q = e = 0.0
            for _ in range(n // 10):  # a round every 10 queries
                q += queries(10)
                e += evaluate()
            q_burst = queries(n)
            e_burst = evaluate()
            key = "on" if rules_on else "off"
            prev = figures.get(key)
            cur = (q, e, q_burst, e_burst)
            figures[key] = cur if prev is None else tuple(a + b for a, b in zip(prev, cur))
        q_off, e_off, qb_off, eb_off = figures["off"]
        q_on, e_on, qb_on, eb_on = figures["on"]
        base = q_off / (2 * (n // 10) * 10) * 1000
        print(f"{label:10s} audited query {base:6.2f} ms (rules off)   with rules: query path {q_on / q_off:5.3f}x,"
              f" rounds of 10 add {e_on / q_on * 100:5.1f}% (off: {e_off / q_off * 100:4.1f}%),"
              f" one round per {n} adds {eb_on / qb_on * 100:5.1f}% (off: {eb_off / qb_off * 100:4.1f}%);"
              f" ratio with/without rules {(q_on + e_on) / (q_off + e_off):5.3f} (rounds of 10),"
              f" {(qb_on + eb_on) / (qb_off + eb_off):5.3f} (burst)")  # fmt: skip
        db.session.remove()
        db.engine.dispose()


def _pg(fn, *args):
    name = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        fn("postgresql", make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False), *args)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--anomaly-only", action="store_true", help="Only the anomaly rules' overhead.")
    args = parser.parse_args()
    import logging

    logging.disable(logging.WARNING)
    if not args.anomaly_only:
        with tempfile.TemporaryDirectory() as tmp:
            run("sqlite", f"sqlite:///{tmp}/bench.db", args.n)
        _pg(run, args.n)
    n = min(args.n, 500)
    print(f"anomaly rules over {n} audited queries a batch (10 clerks, distinct people):")
    with tempfile.TemporaryDirectory() as tmp:
        anomaly_overhead("sqlite", f"sqlite:///{tmp}/bench.db", n, tmp)
        _pg(anomaly_overhead, n, tmp)


if __name__ == "__main__":
    main()
