"""Management reports and work lists at county scale on PostgreSQL.

Generates, in a scratch database it creates and drops, 1,000,000 notification
cases over two years with their dispatches (three receiving agencies each;
cases of the last 30 days partly still open, older ones closed),
survey invitations, responses and answers, 1,000,000 query-log rows and
transfer cases (INSERT ... SELECT generate_series: a minute or two), builds the
report summary (``flask report summarise``, timed), then times

  * each report (by receiving agency, by category, by counter clerk, query
    statistics, transfers, survey statistics) over one month, one year and
    the whole two years: target < 1 s;
  * the first page of each notification work list (the service call, and the
    whole rendered page): target p50 < 50 ms.

    .venv/bin/python bench/report_bench.py [--cases 1000000] [--runs 5] [--keep]
    .venv/bin/python bench/report_bench.py --reuse NAME [--summarise]   # re-time a kept database
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.query_bench import _drop, _pg_db  # noqa: E402

START = datetime.datetime(2024, 12, 1, 1, 0)  # UTC; two years of cases from here
SPAN_DAYS = 730


def _app(url: str):
    from app import create_app
    from config import Config

    scratch = Path(tempfile.mkdtemp(prefix="report-bench-"))

    class BenchConfig(Config):
        SQLALCHEMY_DATABASE_URI = url
        DEMO_SOURCES_DIR = str(scratch / "sources")
        DEMO_PKI_DIR = str(scratch / "pki")
        TRANSFER_CA_BUNDLE = str(scratch / "pki" / "ca-bundle.pem")
        TRANSFER_CRL_FILES = f"{scratch / 'pki' / 'root.crl'},{scratch / 'pki' / 'intermediate.crl'}"
        TRANSFER_DIR = str(scratch / "transfer")
        TRANSFER_FTP_ROOT = str(scratch / "ftp")
        RATELIMIT_ENABLED = False
        AUTH_RATE_LIMITED = False
        WTF_CSRF_ENABLED = False
        PERMISSION_CACHE_SECONDS = 60

    return create_app(BenchConfig)


# Each statement is run with the bound parameters below; nothing is formatted into SQL.
GENERATE = [
    (
        "clerks",
        """
        INSERT INTO ab_user (id, first_name, last_name, username, password, active, email, agency_id, created_on,
                             changed_on, login_count, fail_login_count)
        SELECT nextval('ab_user_id_seq'), '員' || g, '臨櫃', 'bench.clerk' || g, 'x', true, 'bench.clerk' || g || '@bench.invalid',
               (SELECT id FROM agency WHERE code = CASE WHEN g % 2 = 0 THEN 'HH-EAST' ELSE 'HH-WEST' END),
               now(), now(), 0, 0
        FROM generate_series(1, 40) AS g""",
    ),
    (
        "cases",
        """
        INSERT INTO notification_case (case_no, category_id, agency_id, operator_id, status, created_at, due_at,
                                       completed_at)
        SELECT 'B' || lpad(g::text, 8, '0'), c.id, u.agency_id, u.id,
               CASE WHEN g % 10 = 0 AND g::bigint * 730 > CAST(:n AS bigint) * 700 THEN 'open' ELSE 'completed' END,
               :start + ((g::bigint * :span) / :n) * interval '1 second',
               :start + ((g::bigint * :span) / :n) * interval '1 second' + c.due_days * interval '1 day',
               CASE WHEN g % 10 = 0 AND g::bigint * 730 > CAST(:n AS bigint) * 700 THEN NULL
                    ELSE :start + ((g::bigint * :span) / :n) * interval '1 second'
                         + ((g::bigint * 7919) % 1200 + 5) * interval '15 minutes' END
        FROM generate_series(1, :n) AS g
        JOIN (SELECT id, due_days, row_number() OVER (ORDER BY id) - 1 AS k,
                     count(*) OVER () AS m FROM notification_category) c ON c.k = g % c.m
        JOIN (SELECT id, agency_id, row_number() OVER (ORDER BY id) - 1 AS k, count(*) OVER () AS m
              FROM ab_user WHERE username LIKE 'bench.clerk%') u ON u.k = (g / 7) % u.m""",
    ),
    (
        "dispatches",
        """
        INSERT INTO dispatch (case_id, agency_id, state, sent_at, sent_by, received_at, assigned_at, accepted_at,
                              processed_at, closed_at, due_at, handler_id, version)
        SELECT c.id, r.agency_id, s.state, c.created_at, 'bench', c.created_at + interval '1 hour',
               c.created_at + interval '2 hours', c.created_at + interval '3 hours', c.completed_at,
               CASE WHEN s.state = 'closed' THEN c.completed_at - ((c.id + r.agency_id) % 5) * interval '1 hour' END,
               c.due_at, CASE WHEN s.state IN ('assigned', 'accepted', 'processed') THEN h.id END, 1
        FROM notification_case c
        JOIN category_receiving_agency r ON r.category_id = c.category_id
        LEFT JOIN (SELECT agency_id, min(id) AS id FROM ab_user WHERE username LIKE 'handler.%'
                   GROUP BY agency_id) h ON h.agency_id = r.agency_id
        CROSS JOIN LATERAL (SELECT CASE WHEN c.status = 'completed' THEN 'closed'
                                        ELSE (ARRAY['sent', 'received', 'assigned', 'accepted', 'processed'])
                                             [1 + (c.id + r.agency_id) % 5] END AS state) s
        WHERE c.case_no LIKE 'B%'""",
    ),
    (
        "invitations",
        """
        INSERT INTO survey_invitation (token_hash, questionnaire_id, case_id, category_id, agency_id, created_at,
                                       expires_at, used_at)
        SELECT md5(c.id::text) || md5(c.case_no), q.id, c.id, c.category_id, c.agency_id, c.completed_at,
               c.completed_at + interval '30 days',
               CASE WHEN c.id % 10 < 3 THEN c.completed_at + interval '2 days' END
        FROM notification_case c
        JOIN notification_category cat ON cat.id = c.category_id AND cat.questionnaire_id IS NOT NULL
        JOIN questionnaire q ON q.id = cat.questionnaire_id
        WHERE c.status = 'completed' AND c.case_no LIKE 'B%'""",
    ),
    (
        "responses",
        """
        INSERT INTO survey_response (invitation_id, questionnaire_id, case_id, submitted_at, rating_sum,
                                     rating_count)
        SELECT i.id, i.questionnaire_id, i.case_id, i.used_at, 1 + i.id % 5 + 1 + (i.id / 5) % 5, 2
        FROM survey_invitation i WHERE i.used_at IS NOT NULL""",
    ),
    (
        "answers",
        """
        INSERT INTO survey_answer (response_id, question_id, choice_id, rating)
        SELECT r.id, q.id,
               CASE WHEN q.type IN ('single', 'multiple') THEN
                    (SELECT ch.id FROM survey_choice ch WHERE ch.question_id = q.id
                     ORDER BY ch.sort_order OFFSET r.id % 3 LIMIT 1) END,
               CASE WHEN q.type = 'rating' AND q.sort_order = 1 THEN 1 + r.id % 5
                    WHEN q.type = 'rating' THEN 1 + (r.id / 5) % 5 END
        FROM survey_response r JOIN survey_question q ON q.questionnaire_id = r.questionnaire_id
        WHERE q.type <> 'text'""",
    ),
    (
        "query log",
        """
        INSERT INTO query_log (at, user_id, username, agency_code, form_id, form_code, form_title, case_no, reason,
                               business_item, row_count, duration_ms, outcome)
        SELECT :start + ((g::bigint * :span) / :q) * interval '1 second', u.id, u.username, a.code, f.id, f.code, f.title,
               'Q' || g, '業務查核', b.code, g % 7, 20 + g % 180,
               (ARRAY['ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'partial', 'refused', 'source_error'])[1 + g % 10]
        FROM generate_series(1, :q) AS g
        JOIN (SELECT id, code, row_number() OVER (ORDER BY id) - 1 AS k, count(*) OVER () AS m
              FROM agency) a ON a.k = g % a.m
        JOIN (SELECT id, code, title, row_number() OVER (ORDER BY id) - 1 AS k, count(*) OVER () AS m
              FROM query_form) f ON f.k = (g / 11) % f.m
        JOIN (SELECT code, row_number() OVER (ORDER BY id) - 1 AS k, count(*) OVER () AS m
              FROM business_item) b ON b.k = (g / 13) % b.m
        JOIN (SELECT id, username, row_number() OVER (ORDER BY id) - 1 AS k, count(*) OVER () AS m
              FROM ab_user) u ON u.k = (g / 17) % u.m""",
    ),
    (
        "transfers",
        """
        INSERT INTO transfer_case (item_id, upload_no, source, record_count, sending_agency_id, receiving_agency_id,
                                   sender_id, sender_cert_id, state, version, registered_at, uploaded_at,
                                   processed_at)
        SELECT i.id, 'BU' || g, '社會處系統', 100 + g % 900, i.sending_agency_id, i.receiving_agency_id,
               s.user_id, s.id, CASE WHEN g % 4 = 0 THEN 'uploaded' ELSE 'processed' END, 1,
               :start + ((g::bigint * :span) / :t) * interval '1 second',
               :start + ((g::bigint * :span) / :t) * interval '1 second' + interval '1 hour',
               CASE WHEN g % 4 <> 0 THEN :start + ((g::bigint * :span) / :t) * interval '1 second'
                                         + (g % 72) * interval '1 hour' END
        FROM generate_series(1, :t) AS g
        CROSS JOIN (SELECT * FROM transfer_item ORDER BY id LIMIT 1) i
        CROSS JOIN (SELECT id, user_id FROM staff_certificate ORDER BY id LIMIT 1) s""",
    ),
]


def prepare(app, seed: bool = True) -> None:
    """Migrate the scratch database to head and (``seed``: a new one) sync the roles and seed the demo world."""
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
        if not seed:
            return
        runner = app.test_cli_runner()
        for cmd in (["roles", "sync"], ["seed", "demo"]):
            result = runner.invoke(args=cmd)
            if result.exit_code:
                raise SystemExit(f"{' '.join(cmd)} failed: {result.output}")


def fill(app, statements, params: dict) -> None:
    """Run the (name, SQL) statements, each in its own transaction with the ``params`` it binds,
    printing the rows each wrote; then VACUUM ANALYZE."""
    from sqlalchemy import text

    from app.extensions import db

    with app.app_context():
        for name, sql in statements:
            t0 = time.perf_counter()
            with db.engine.begin() as conn:
                conn.execute(text("SET LOCAL synchronous_commit = off"))
                stmt = text(sql)
                rows = conn.execute(stmt, {k: v for k, v in params.items() if k in stmt._bindparams}).rowcount
            print(f"  {name:12s} {rows:>10,} rows in {time.perf_counter() - t0:6.1f} s", flush=True)
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            t0 = time.perf_counter()
            conn.execute(text("VACUUM ANALYZE"))
            print(f"  vacuum analyze           in {time.perf_counter() - t0:6.1f} s", flush=True)


def generate(app, cases: int) -> None:
    params = {"start": START, "span": SPAN_DAYS * 86400, "n": cases, "q": cases, "t": max(1000, cases // 100)}
    fill(app, GENERATE, params)


def summarise(app) -> None:
    """The nightly ``flask report summarise``, timed: the reports read it."""
    with app.app_context():
        t0 = time.perf_counter()
        result = app.test_cli_runner().invoke(args=["report", "summarise"])
        if result.exit_code:
            raise SystemExit(f"report summarise failed: {result.output}")
        print(f"  {result.output.strip()} (whole command {time.perf_counter() - t0:.1f} s)", flush=True)


def samples(fn, runs: int) -> list[float]:
    """``fn`` timed ``runs`` times after one call that warms the caches: milliseconds, fastest first."""
    fn()
    taken = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        taken.append((time.perf_counter() - t0) * 1000)
    return sorted(taken)


def _time(fn, runs: int) -> tuple[float, float]:
    taken = samples(fn, runs)
    return statistics.median(taken), taken[-1]


def time_reports(app, runs: int) -> None:
    from sqlalchemy import select

    from app.extensions import db
    from app.models.survey import Questionnaire
    from app.services import reports

    end = (START + datetime.timedelta(days=SPAN_DAYS - 1)).date()
    ranges = [
        ("one month", end.replace(day=1), end),
        ("one quarter", end - datetime.timedelta(days=89), end),
        ("one year", end - datetime.timedelta(days=364), end),
        ("two years", START.date(), end),
    ]
    with app.app_context():
        q = db.session.scalar(select(Questionnaire.id).where(Questionnaire.is_current.is_(True)))
        print(f"\nreports (median / worst of {runs} runs, ms; target < 1000)")
        print(f"  {'report':24s}" + "".join(f"{label:>20s}" for label, _, _ in ranges))
        jobs = [(str(reports.REPORT_TITLES[k]), lambda f, k=k: reports.run(db.session, k, f)) for k in reports.REPORTS]
        jobs.append(("survey statistics", lambda f: reports.survey_statistics(db.session, q, f)))
        for label, job in jobs:
            cells = []
            for _, start, stop in ranges:
                f = reports.Filters(start, stop)
                median, worst = _time(lambda job=job, f=f: (job(f), db.session.rollback()), runs)
                cells.append(f"{median:8.0f} / {worst:6.0f}")
            print(f"  {label:24s}" + "".join(f"{c:>20s}" for c in cells), flush=True)
        size = reports.by_agency(db.session, reports.Filters(START.date(), end))
        print(f"  (two years: {size.total['n']:,} dispatches)")


def time_worklists(app, runs: int) -> None:
    from app.extensions import db
    from app.models.org import PlatformUser
    from app.services import actors, notify

    boxes = [("notifier", "cases"), ("supervisor.land", "incoming"), ("handler.land", "work")]
    print(f"\nwork lists, first page of 200 (median / worst of {runs} runs, ms; target p50 < 50)")
    with app.app_context():
        for username, box in boxes:
            user = db.session.query(PlatformUser).filter_by(username=username).one()
            who = actors.for_user(user, session=db.session)
            n = len(notify.worklist(db.session, who, box))
            median, worst = _time(
                lambda who=who, box=box: (notify.worklist(db.session, who, box), db.session.expire_all()), runs * 4
            )
            print(f"  {box:9s} service call ({n} rows)        {median:7.1f} / {worst:7.1f}")
    client = app.test_client()
    for username, box in boxes:
        client.get("/logout/")
        client.post("/login/", data={"username": username, "password": os.environ.get("DEMO_PASSWORD", "Demo-2026")})
        median, worst = _time(lambda box=box: client.get(f"/notify/?tab={box}"), runs * 2)
        print(f"  {box:9s} whole page as {username:16s} {median:7.1f} / {worst:7.1f}", flush=True)
    median, worst = _time(lambda: client.get("/users/userinfo/"), runs * 2)
    print(f"  (for scale: the profile page, no list        {median:7.1f} / {worst:7.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database (prints its name)")
    parser.add_argument("--reuse", metavar="NAME", help="time an existing scratch database (made with --keep)")
    parser.add_argument("--summarise", action="store_true", help="with --reuse: rebuild the report summary first")
    args = parser.parse_args()
    import logging

    logging.disable(logging.WARNING)
    if args.reuse:
        from sqlalchemy.engine import make_url

        from bench.query_bench import PG_ADMIN

        app = _app(make_url(PG_ADMIN).set(database=args.reuse).render_as_string(hide_password=False))
        prepare(app, seed=False)
        if args.summarise:
            summarise(app)
        time_reports(app, args.runs)
        time_worklists(app, args.runs)
        return
    name = f"bench_reports_{uuid.uuid4().hex[:8]}"
    url = _pg_db(name).render_as_string(hide_password=False)
    try:
        app = _app(url)
        prepare(app)
        print(f"PostgreSQL scratch database {name}: generating {args.cases:,} cases", flush=True)
        t0 = time.perf_counter()
        generate(app, args.cases)
        print(f"  generated in {time.perf_counter() - t0:.0f} s")
        summarise(app)
        time_reports(app, args.runs)
        time_worklists(app, args.runs)
    finally:
        if args.keep:
            print(f"kept {name}")
        else:
            _drop(name)


if __name__ == "__main__":
    main()
