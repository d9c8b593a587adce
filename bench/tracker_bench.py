"""Who read my data at scale: the tracker's answer for one person with 10,000,000 query-log rows
in PostgreSQL, beside a plain indexed lookup of the same rows, in the same run.

    .venv/bin/python bench/tracker_bench.py [--rows 10000000] [--repeat 300] [--url POSTGRES_ADMIN_URL]

Creates a database of its own on the server of --url (default TEST_POSTGRES_URL), migrates it,
fills query_log and query_subject with generate_series (about 20 queries per person, every tenth
query names a second household member, 2% refused; one "busy" person is named by every 2,000th
query), then times, interleaved so a passing load weighs on all alike:

  service   app.services.portal.accesses.read_accesses: the tracker's read of page 1, as the
            portal and GET /api/v1/me/accesses run it (restricted forms, flags, agency names)
  plain     the same rows by a hand-written SELECT over the same index (the baseline)
  command   list_accesses, the whole command: who the visitor is, the read, the audited page view

for a typical person and for the busy one; prints p50 and p95 of each and the service/plain
ratio, and EXPLAIN (ANALYZE, BUFFERS) of the service's SELECT, checked to read that person's
rows only (an index scan; no sequential scan of the log). Then the old way once (a LIKE over
the log's subjects column). Drops the database at the end. Target: service p50 < 50 ms and
within 2x of plain.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_ADMIN = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
CHUNK = 1_000_000
START = datetime.datetime(2021, 12, 1)
SPAN = datetime.timedelta(days=5 * 365)  # five years of the county's queries (kept 5 years)

# The fill's SQL: row i (its id) names person p1(i); every tenth also p2(i) (a household member),
# every 2,000th (i % 2000 = 7) the busy person :busy. A person's "keyed hash" here is two md5s: 64 hex digits.
_H = "(md5('p' || ({p})::text) || md5('q' || ({p})::text))"
_P1 = "((i * 7919) % :people)"
_P2 = "((i * 7919 + 1) % :people)"
_AT = "(CAST(:start AS timestamp) + (i * :step) * interval '1 microsecond')"
_SUBJECTS = (
    f"{_H.format(p=_P1)} || CASE WHEN i % 10 = 0 THEN E'\\n' || {_H.format(p=_P2)} ELSE '' END"
    f" || CASE WHEN i % 2000 = 7 THEN E'\\n' || {_H.format(p=':busy')} ELSE '' END"
)
FILL_LOG = f"""
INSERT INTO query_log (id, at, user_id, username, agency_code, client_ip, form_id, form_code, form_title, case_no,
                       reason, business_item, subjects, row_count, duration_ms, outcome, snapshot_sha256)
SELECT i, {_AT}, 1000 + i % 400, 'clerk' || (i % 400),
       (ARRAY['TAX', 'SOCIAL', 'LAND', 'HH-EAST', 'MOTOR'])[1 + i % 5], '10.0.' || (i % 250) || '.' || (i % 200),
       1 + i % 5, 'bench.form' || (1 + i % 5),
       (ARRAY['個人戶籍資料', '全戶戶籍資料', '土地標示部＋所有權部', '福利身分', '偵查案件查詢'])[1 + i % 5],
       CASE WHEN i % 3 = 0 THEN NULL ELSE '1151203-' || lpad((i % 10000)::text, 4, '0') END,
       CASE WHEN i % 3 = 0 THEN '依法辦理房屋稅籍查核' ELSE NULL END,
       (ARRAY['TAX-CHECK', 'SOC-AID', 'LAND-REG', 'HH-NOTIFY'])[1 + i % 4],
       {_SUBJECTS}, 1 + i % 7, 20 + i % 80, CASE WHEN i % 50 = 0 THEN 'refused' ELSE 'ok' END,
       md5(i::text) || md5((i + 1)::text)
FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS i
"""
FILL_SUBJECTS = f"""
INSERT INTO query_subject (query_log_id, subject_hash, at)
SELECT i, {_H.format(p=_P1)}, {_AT} FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS i
 WHERE i % 50 <> 0
UNION ALL
SELECT i, {_H.format(p=_P2)}, {_AT} FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS i
 WHERE i % 10 = 0 AND i % 50 <> 0
UNION ALL
SELECT i, {_H.format(p=":busy")}, {_AT} FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS i
 WHERE i % 2000 = 7
"""
# the baseline: the same rows and columns through the same index, written by hand
PLAIN = """
SELECT q.id, q.at, q.agency_code, q.form_title, q.business_item, q.case_no IS NOT NULL, q.reason IS NOT NULL
  FROM query_subject s JOIN query_log q ON q.id = s.query_log_id
 WHERE s.subject_hash = %(subject)s
 ORDER BY s.at DESC, s.query_log_id DESC
 LIMIT 51
"""


def person_hash(p: int) -> str:
    return hashlib.md5(f"p{p}".encode()).hexdigest() + hashlib.md5(f"q{p}".encode()).hexdigest()


def _admin(url: str):
    from sqlalchemy import create_engine

    return create_engine(url, isolation_level="AUTOCOMMIT")


def _create_database(url: str, name: str) -> str:
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    admin = _admin(url)
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def _drop_database(url: str, name: str) -> None:
    from sqlalchemy import text

    admin = _admin(url)
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _say(message: str, since: float | None = None) -> None:
    took = f" ({time.perf_counter() - since:.1f} s)" if since is not None else ""
    print(f"  {message}{took}", flush=True)


def _prepare(app) -> dict:
    """Roles, five agencies, five forms (the fifth restricted: 30 days), one citizen with a card."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models.cards import CardBinding
    from app.models.org import Agency
    from app.models.queries import QueryForm

    runner = app.test_cli_runner()
    result = runner.invoke(args=["roles", "sync"])
    assert result.exit_code == 0, result.output
    names = {
        "TAX": "地方稅務局",
        "SOCIAL": "社會處",
        "LAND": "地政事務所",
        "HH-EAST": "東區戶政事務所",
        "MOTOR": "監理站",
    }
    for code, name in names.items():
        db.session.add(Agency(code=code, name=name, kind="other"))
    for n, title in enumerate(["個人戶籍資料", "全戶戶籍資料", "土地標示部＋所有權部", "福利身分", "偵查案件查詢"], 1):
        db.session.add(QueryForm(id=n, code=f"bench.form{n}", title=title, restricted=n == 5,
                                 restricted_days=30 if n == 5 else 0))  # fmt: skip
    db.session.commit()
    sm = app.appbuilder.sm
    user = sm.add_user("bench.citizen", "小明", "王", "bench.citizen@example.tw", [sm.find_role("Citizen")], "x" * 20)
    now = datetime.datetime.utcnow()
    binding = CardBinding(user_id=user.id, kind="citizen", fingerprint=uuid.uuid4().hex, issuer="bench", serial="1",
                          subject_hash=None, not_after=now + datetime.timedelta(days=365), certificate=b"bench",
                          created_at=now)  # fmt: skip
    db.session.add(binding)
    db.session.commit()
    binding_id = db.session.scalar(select(CardBinding.id).where(CardBinding.user_id == user.id))
    db.session.remove()
    return {"user_id": user.id, "binding_id": binding_id}


def _fill(engine, rows: int, people: int) -> None:
    """query_log and query_subject by generate_series, their secondary indexes built afterwards."""
    from sqlalchemy import text

    with engine.connect() as conn:
        conn.execute(text("SET synchronous_commit = off"))
        # the rows are consistent by construction: no per-row foreign-key trigger while filling
        conn.execute(text("SET session_replication_role = replica"))
        found = conn.execute(
            text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('query_log', 'query_subject') "
                "AND indexname NOT IN (SELECT conname FROM pg_constraint)"
            )
        ).all()
        for name, _definition in found:
            conn.execute(text(f'DROP INDEX "{name}"'))
        conn.commit()
        step = SPAN // datetime.timedelta(microseconds=1) // rows
        params = {"people": people, "busy": people, "start": START, "step": step}
        started = time.perf_counter()
        for lo in range(1, rows + 1, CHUNK):
            hi = min(rows, lo + CHUNK - 1)
            t = time.perf_counter()
            conn.execute(text(FILL_LOG), {**params, "lo": lo, "hi": hi})
            conn.execute(text(FILL_SUBJECTS), {**params, "lo": lo, "hi": hi})
            conn.commit()
            _say(f"rows {lo:,}..{hi:,}", t)
        _say(f"filled {rows:,} query-log rows", started)
        conn.execute(text("SELECT setval(pg_get_serial_sequence('query_log', 'id'), :n)"), {"n": rows})
        conn.execute(text("SET maintenance_work_mem = '1GB'"))
        t = time.perf_counter()
        for _name, definition in found:
            conn.execute(text(definition))
            conn.commit()
        _say(f"rebuilt {len(found)} indexes", t)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        t = time.perf_counter()
        conn.execute(text("VACUUM (ANALYZE) query_log"))
        conn.execute(text("VACUUM (ANALYZE) query_subject"))
        _say("vacuumed and analysed", t)


def _explain(app, subject: str, user_id: int) -> tuple[str, dict]:
    """EXPLAIN (ANALYZE, BUFFERS) of the service's own SELECT; the plan and what it read."""
    from app.extensions import db
    from app.services.portal.accesses import tracker_query

    with app.app_context():
        stmt, values = tracker_query(subject, user_id)
        expanded = stmt.compile(dialect=db.engine.dialect).construct_expanded_state(values)
        db.session.remove()
        with db.engine.connect() as conn:
            sql = "EXPLAIN (ANALYZE, BUFFERS, FORMAT {}) " + expanded.statement
            plan = "\n".join(r[0] for r in conn.exec_driver_sql(sql.format("TEXT"), expanded.parameters))
            tree = conn.exec_driver_sql(sql.format("JSON"), expanded.parameters).scalar_one()
    tree = tree if isinstance(tree, list) else json.loads(tree)
    scans = {"seq": [], "subject_index": None}

    def walk(node):
        if node.get("Node Type") == "Seq Scan":
            scans["seq"].append(node.get("Relation Name"))
        if node.get("Relation Name") == "query_subject" and "Index" in node.get("Node Type", ""):
            scans["subject_index"] = (node["Node Type"], node.get("Index Name"), node.get("Actual Rows"))
        for child in node.get("Plans", []):
            walk(child)

    walk(tree[0]["Plan"])
    return plan, scans


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _measure(app, who: dict, subject: str, repeat: int) -> dict:
    from sqlalchemy import update

    from app.extensions import db
    from app.models.cards import CardBinding
    from app.services.actors import Actor
    from app.services.portal.accesses import list_accesses, read_accesses
    from app.services.roles import PORTAL

    actor = Actor(user_id=who["user_id"], username="bench.citizen", permissions=frozenset({PORTAL}))
    with app.app_context():  # the citizen's card names this person
        db.session.execute(update(CardBinding).where(CardBinding.id == who["binding_id"]).values(subject_hash=subject))
        db.session.commit()
        db.session.remove()
    times = {"service": [], "plain": [], "command": []}
    counts = {}

    def service():
        entries, _more = read_accesses(db.session, subject, who["user_id"])
        db.session.rollback()
        return len(entries)

    def plain():
        with db.engine.connect() as conn:
            found = conn.exec_driver_sql(PLAIN, {"subject": subject}).all()
            conn.rollback()
        return min(len(found), 50)

    def command():
        return len(list_accesses(db.session, actor).entries)

    runs = {"service": service, "plain": plain, "command": command}
    with app.app_context():
        for name, fn in runs.items():  # warm: plans cached, pages in memory
            for _ in range(5):
                counts[name] = fn()
        order = list(runs)
        for _ in range(repeat):
            random.shuffle(order)
            for name in order:
                t = time.perf_counter()
                fn = runs[name]
                fn()
                times[name].append((time.perf_counter() - t) * 1000)
        db.session.remove()
    assert counts["service"] == counts["plain"] == counts["command"], counts
    return {
        name: {"p50": statistics.median(v), "p95": _percentile(v, 0.95), "rows": counts[name]}
        for name, v in times.items()
    }


def _like_scan(app, subject: str) -> float | None:
    """The old way once: a LIKE over the log's subjects (None when it ran past 120 s)."""
    from sqlalchemy import text

    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        conn.execute(text("SET statement_timeout = '120s'"))
        t = time.perf_counter()
        try:
            conn.execute(
                text("SELECT id FROM query_log WHERE subjects LIKE :p AND outcome IN ('ok', 'partial') "
                     "ORDER BY at DESC, id DESC LIMIT 51"),
                {"p": f"%{subject}%"},
            ).all()  # fmt: skip
        except Exception:  # the timeout
            return None
        return (time.perf_counter() - t) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--people", type=int, default=0, help="distinct people (default: rows / 20)")
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--url", default=PG_ADMIN, help="a PostgreSQL server's admin URL (a database is created)")
    parser.add_argument("--no-like", action="store_true", help="skip the one LIKE scan of the old way")
    parser.add_argument("--keep", action="store_true", help="keep the database (to --reuse it); default: drop it")
    parser.add_argument("--reuse", default="", help="a database an earlier --keep run filled (no fill)")
    args = parser.parse_args()
    people = args.people or max(100, args.rows // 20)
    name = args.reuse or f"tracker_bench_{uuid.uuid4().hex[:8]}"
    if args.reuse:
        from sqlalchemy.engine import make_url

        url = make_url(args.url).set(database=name).render_as_string(hide_password=False)
    else:
        url = _create_database(args.url, name)
    print(f"tracker bench: {args.rows:,} query-log rows, {people:,} people, database {name}", flush=True)
    try:
        os.environ["DATABASE_URL"] = url
        from flask_migrate import upgrade

        from app import create_app
        from app.extensions import db

        app = create_app()
        with app.app_context():
            if args.reuse:
                from sqlalchemy import select

                from app.models.cards import CardBinding

                binding = db.session.execute(select(CardBinding.id, CardBinding.user_id)).one()
                who = {"user_id": binding.user_id, "binding_id": binding.id}
                db.session.remove()
            else:
                upgrade()
                who = _prepare(app)
                t = time.perf_counter()
                _fill(db.engine, args.rows, people)
                _say("fill total", t)
        typical, busy = person_hash(42), person_hash(people)
        results = {}
        for label, subject in (("typical person", typical), ("busy person", busy)):
            plan, scans = _explain(app, subject, who["user_id"])
            results[label] = _measure(app, who, subject, args.repeat)
            print(f"\n== {label}: EXPLAIN (ANALYZE, BUFFERS) of the service's SELECT ==\n{plan}")
            index = scans["subject_index"]
            big = [t for t in scans["seq"] if t in ("query_log", "query_subject")]  # query_form: five rows
            only_theirs = index is not None and index[1] == "ix_query_subject_subject_at" and not big
            print(f"-> query_subject read by {index[0] if index else 'NO INDEX'} on "
                  f"{index[1] if index else '-'}: {index[2] if index else '?'} rows; sequential scans: "
                  f"{scans['seq'] or 'none'}; only this person's rows read: {'yes' if only_theirs else 'NO'}")  # fmt: skip
        print(f"\n== {args.rows:,} rows, {args.repeat} runs each, interleaved (ms) ==")
        print(f"{'':16} {'':8} {'rows':>5} {'p50':>8} {'p95':>8}")
        ok = True
        for label, figures in results.items():
            for kind in ("service", "plain", "command"):
                f = figures[kind]
                print(f"{label:16} {kind:8} {f['rows']:>5} {f['p50']:8.2f} {f['p95']:8.2f}")
            ratio = figures["service"]["p50"] / figures["plain"]["p50"]
            meets = figures["service"]["p50"] < 50 and ratio <= 2
            ok &= meets
            print(f"{label:16} service/plain p50 ratio {ratio:.2f}x, p95 ratio "
                  f"{figures['service']['p95'] / figures['plain']['p95']:.2f}x -> "
                  f"{'meets' if meets else 'MISSES'} the target (p50 < 50 ms, within 2x)")  # fmt: skip
        if not args.no_like:
            like = _like_scan(app, typical)
            print(f"\nthe old way once (LIKE over query_log.subjects): "
                  f"{'more than 120 s' if like is None else f'{like:,.0f} ms'}")  # fmt: skip
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        return 0 if ok else 1
    finally:
        if args.keep:
            print(f"kept {name}: --reuse {name} (drop it with DROP DATABASE)")
        else:
            _drop_database(args.url, name)
            print(f"dropped {name}")


if __name__ == "__main__":
    sys.exit(main())
