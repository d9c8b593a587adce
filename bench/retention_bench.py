"""How long does removing an archived month take? On PostgreSQL, with the query
log partitioned by month (migration 0023), a month of query-log rows (and their
query_subject rows) is removed by dropping its partitions
(``app.services.audit.partitions.drop_month``, what ``archive.remove_month``
does); the baseline, in the same run, is a DELETE of the same number of rows of
another month (what removal costs without partitions).

    .venv/bin/python bench/retention_bench.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000, help="query-log rows in each month")
    args = parser.parse_args()
    name = f"bench_retention_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        app = _app(make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False))
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
