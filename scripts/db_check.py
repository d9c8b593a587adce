"""`flask db check` on throwaway databases: the migrations build exactly what the models describe.

Migrates an empty SQLite file, an empty PostgreSQL database (created on
TEST_POSTGRES_URL's server, dropped after) and an empty MariaDB/MySQL database
(on TEST_MARIADB_URL's server; "off" skips it) with `flask db upgrade`, then
runs `flask db check` on each; exits non-zero with Alembic's output if any
finds a difference. Run by ./test.sh.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
MARIADB_ADMIN_URL = os.environ.get("TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/")


def flask(url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FLASK_APP": "run.py", "DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "flask", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )


def check(label: str, url: str) -> bool:
    for step in (("db", "upgrade"), ("db", "check")):
        done = flask(url, *step)
        if done.returncode != 0:
            print(f"{label}: flask {' '.join(step)} failed\n{done.stdout}{done.stderr}", file=sys.stderr)
            return False
    print(f"{label}: the migrated schema matches the models")
    return True


def main() -> int:
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        ok &= check("sqlite", f"sqlite:///{tmp}/check.db")
    name = f"db_check_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        ok &= check("postgresql", make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False))
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    if MARIADB_ADMIN_URL != "off":
        admin = create_engine(MARIADB_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
        try:
            url = make_url(MARIADB_ADMIN_URL).set(database=name, query={"charset": "utf8mb4"})
            ok &= check("mariadb", url.render_as_string(hide_password=False))
        finally:
            with admin.connect() as conn:
                conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
            admin.dispose()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
