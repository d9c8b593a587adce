"""How long does removing an archived month take? On PostgreSQL, with the query
log partitioned by month (migration 0023), a month of query-log rows (and their
query_subject rows) is removed by dropping its partitions
(``app.services.audit.partitions.drop_month``, what ``archive.remove_month``
does); the baseline, in the same run, is a DELETE of the same number of rows of
another month (what removal costs without partitions).

    .venv/bin/python bench/retention_bench.py [--rows 1000000]

How much memory does archiving a month take? ``--archive`` fills one month with
``--rows`` query-log rows (200,000 by default), as many subjects and a thousand
sealed audit events, then archives it (``archive.archive_month``) and checks the
file offline (``archive.verify_files``, what ``flask audit verify --archive``
does), each in a child process of its own; each child reports its peak resident
memory (``ru_maxrss``) before and after, and the peak of Python's allocations
during the step (``tracemalloc``).

    .venv/bin/python bench/retention_bench.py --archive [--rows 200000]

Measured on this machine (PostgreSQL, 2 shared cores), 200,000 query-log rows,
a 16.4 MB archive file; the process holds about 270 MB before the step:

    step     held the body in memory        streamed (now)
             Python peak   RSS peak          Python peak   RSS peak
    archive  33.5 MB       306 MB            2.7 MB        275 MB
    verify   879.7 MB      2,197 MB          2.0 MB        271 MB

Before, ``archive_month`` read the compressed body back and joined it to the
manifest in memory (twice the file), and ``verify_files`` decompressed the whole
body and parsed every row into one list; both now go through the file in pieces
(1 MiB) and the rows in batches (2,000 read from the database at a time), so what
they hold does not grow with the month: with 50,000 rows (a 4.2 MB file) the
streamed peaks are the same 2.7 MB and 2.0 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

PG_ADMIN = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
FILL = text(
    "INSERT INTO query_log (at, user_id, username, agency_code, form_code, case_no, reason, outcome, row_count,"
    " subjects, verification_code)"
    " SELECT CAST(:start AS timestamp) + (i * interval '2 seconds'), 1 + i % 50, 'clerk', 'TAX', 'F' || (i % 20),"
    " 'C' || i, '稅務查核', 'ok', 1, md5(i::text), left(md5('v' || i::text || :start), 24)"
    " FROM generate_series(1, :n) AS i"
)
SUBJECTS = text(
    "INSERT INTO query_subject (query_log_id, subject_hash, at)"
    " SELECT id, md5(id::text) || md5(id::text), at FROM query_log WHERE at >= :start AND at < :end"
)


ARCHIVE_MONTH = "2021-01"
PARAMS = text(
    "UPDATE query_log SET params = md5(id::text) || md5((id + 1)::text) || md5((id + 2)::text)"
    " || md5((id + 3)::text) WHERE at >= :start AND at < :end"
)


def _app(url, migrate: bool = True, **settings):
    from flask_migrate import upgrade

    from app import create_app
    from config import TestConfig

    class Cfg(TestConfig):
        SQLALCHEMY_DATABASE_URI = url

    for key, value in settings.items():
        setattr(Cfg, key, value)
    app = create_app(Cfg)
    if migrate:
        with app.app_context():
            upgrade()
    return app


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def _child(step: str, url: str, folder: str) -> None:
    """One step in this (fresh) process; prints its figures as one JSON line."""
    app = _app(url, migrate=False, AUDIT_ARCHIVE_DIR=str(Path(folder) / "archive"),
               AUDIT_CHECKPOINT_FILE=str(Path(folder) / "checkpoints.jsonl"))  # fmt: skip
    from app.extensions import db
    from app.services.actors import OPERATOR
    from app.services.audit import archive, checkpoints
    from app.services.audit.chain import chain_key

    with app.app_context():
        path = Path(folder) / "archive" / f"audit-archive-{ARCHIVE_MONTH}.arc"
        if step == "verify":
            public, key = checkpoints.signing_key(app.config["AUDIT_SIGNING_KEY"]).public_key(), chain_key()
        db.session.execute(text("SELECT 1"))  # the connection pool and the dialect are set up before measuring
        db.session.rollback()
        before = _max_rss_mb()
        tracemalloc.start()
        began = time.perf_counter()
        if step == "archive":
            made = archive.archive_month(db.session, OPERATOR, ARCHIVE_MONTH)
            rows = made.manifest["query_logs"]
        else:
            checked = archive.verify_files([path], public, key)
            assert checked.ok, checked.problems
            rows = checked.files[0].manifest["query_logs"]
        took = time.perf_counter() - began
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        print(json.dumps({"step": step, "rows": rows, "rss_before_mb": round(before, 1),
                          "rss_peak_mb": round(_max_rss_mb(), 1), "traced_peak_mb": round(peak, 1),
                          "seconds": round(took, 1), "file_mb": round(path.stat().st_size / 2**20, 1)}))  # fmt: skip
        db.engine.dispose()


def archive_memory(url: str, rows: int) -> None:
    """Fill a month, then archive it and verify the file, each step in a child process."""
    import datetime

    app = _app(url)
    from app.extensions import db
    from app.services import audit
    from app.services.actors import OPERATOR
    from app.services.audit.recording import append, event_values

    start, end = f"{ARCHIVE_MONTH}-01", "2021-02-01"
    began = time.perf_counter()
    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(FILL, {"start": start, "n": rows})
            conn.execute(SUBJECTS, {"start": start, "end": end})
            conn.execute(PARAMS, {"start": start, "end": end})
            first = datetime.datetime(2021, 1, 1)
            events = []
            for i in range(1000):
                ev = event_values("query", object_type="QueryLog", object_id=i + 1, actor=OPERATOR)
                ev["at"] = first + datetime.timedelta(minutes=40 * i)
                events.append(ev)
            append(conn, events)
        audit.seal_all(db.engine)
        db.engine.dispose()
    print(f"filled {ARCHIVE_MONTH}: {rows:,} query-log rows, as many subjects, 1,000 events"
          f" in {time.perf_counter() - began:.1f} s")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="retention-bench-") as folder:
        for step in ("archive", "verify"):
            done = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--child", step, "--url", url, "--dir", folder],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{step} of {figures['rows']:,} query-log rows ({figures['file_mb']} MB file):"
                  f" peak RSS {figures['rss_peak_mb']} MB (the process before: {figures['rss_before_mb']} MB),"
                  f" Python allocations peak {figures['traced_peak_mb']} MB, {figures['seconds']} s"
                  " (under tracemalloc)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=None,
                        help="query-log rows in each month (1,000,000; with --archive 200,000)")  # fmt: skip
    parser.add_argument("--archive", action="store_true", help="measure archiving's memory instead")
    parser.add_argument("--child", choices=("archive", "verify"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.url, args.dir)
        return
    args.rows = args.rows or (200_000 if args.archive else 1_000_000)
    name = f"bench_retention_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
        if args.archive:
            archive_memory(url, args.rows)
            return
        app = _app(url)
        from app.extensions import db
        from app.services.audit import partitions

        months = {"deleted": ("2021-01-01", "2021-02-01"), "dropped": ("2021-02-01", "2021-03-01")}
        with app.app_context(), db.engine.begin() as conn:
            for month in ("2021-01", "2021-02"):
                for table in partitions.TABLES:
                    partitions.create_month(conn, table, month)
        with app.app_context():
            for label, (start, end) in months.items():
                began = time.perf_counter()
                with db.engine.begin() as conn:
                    conn.execute(FILL, {"start": start, "n": args.rows})
                    conn.execute(SUBJECTS, {"start": start, "end": end})
                # A month past the retention was vacuumed by autovacuum long ago.
                with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.exec_driver_sql("VACUUM ANALYZE query_log")
                    conn.exec_driver_sql("VACUUM ANALYZE query_subject")
                print(f"filled {label} month {start[:7]}: {args.rows:,} query-log rows and as many subjects"
                      f" in {time.perf_counter() - began:.1f} s")  # fmt: skip
            start, end = months["deleted"]
            began = time.perf_counter()
            with db.engine.begin() as conn:
                subjects = conn.execute(
                    text("DELETE FROM query_subject WHERE at >= :s AND at < :e"), {"s": start, "e": end}
                ).rowcount
                logs = conn.execute(
                    text("DELETE FROM query_log WHERE at >= :s AND at < :e"), {"s": start, "e": end}
                ).rowcount
            deleted = time.perf_counter() - began
            began = time.perf_counter()
            with db.engine.begin() as conn:
                dropped_subjects = partitions.drop_month(conn, "query_subject", "2021-02")
                dropped_logs = partitions.drop_month(conn, "query_log", "2021-02")
            dropped = time.perf_counter() - began
            db.engine.dispose()
        print(f"DELETE of {logs:,} query-log and {subjects:,} subject rows (baseline): {deleted:.2f} s")
        print(f"partition drop of {dropped_logs:,} query-log and {dropped_subjects:,} subject rows: {dropped:.3f} s")
        print(f"ratio: the drop takes {dropped / deleted:.4f} of the DELETE's time ({deleted / dropped:.0f}x faster)")
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
