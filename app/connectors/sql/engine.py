"""One pooled SQLAlchemy engine per SQL source: the driver, the URL, the
timeouts per dialect, the connection checks.

Statement timeout per dialect: PostgreSQL ``-c statement_timeout`` in the
connection options; MariaDB ``max_statement_time`` / MySQL
``max_execution_time`` set per session when the connection opens (as a bound
parameter) plus a socket read timeout as a backstop; SQLite a progress handler
that aborts once the deadline has passed (``deadline``); Oracle
``call_timeout`` on the connection; SQL Server the login ``timeout`` and the
connection's query ``timeout``. PostgreSQL connections are checked on
checkout without a round trip (``app.lib.liveness``), the others by
``pool_pre_ping``.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import math
import os
import sqlite3
import threading
import time

from flask_babel import lazy_gettext as _l

from app.connectors.base import SourceConfig, SourceError, refusal
from app.lib.confinement import Refused

log = logging.getLogger(__name__)

DIALECTS = {
    # dialect: (SQLAlchemy driver name, DBAPI module, what to install, default port, label)
    "postgresql": ("postgresql+psycopg", "psycopg", "pip install 'psycopg[binary]'", 5432, "PostgreSQL"),
    "mysql": ("mysql+pymysql", "pymysql", "pip install pymysql", 3306, "MySQL/MariaDB"),
    "sqlite": ("sqlite", "sqlite3", "a Python built with sqlite3", None, "SQLite"),
    "oracle": ("oracle+oracledb", "oracledb", "pip install oracledb", 1521, "Oracle"),
    "mssql": ("mssql+pyodbc", "pyodbc", "apt-get install unixodbc + pip install pyodbc", 1433, "SQL Server"),
}
DEFAULT_ODBC_DRIVER = "ODBC Driver 18 for SQL Server"


def confine(source: SourceConfig, settings: dict) -> list[str]:
    """Raise ``confinement.Refused`` for an SQLite file outside the folders
    allowed, or the platform's own database; the addresses judged (to connect
    to). ``settings``: the source's, as the kind's schema loaded them."""
    limits = source.confinement
    if limits is None:
        return []
    database = settings.get("database")
    if settings["options"]["dialect"] == "sqlite":
        if database:
            limits.check_file(database, "database")
        return []
    return limits.check_server(settings["options"]["dialect"], settings.get("host"), settings.get("port"), database)


class SourceEngine:
    """The engine (connection pool) of one SQL source, created on first use.
    ``settings``: the source's own, as the kind's schema loaded them."""

    def __init__(self, source: SourceConfig, settings: dict):
        self.source = source
        self.settings = settings
        self.options = settings["options"]
        self.dialect = self.options["dialect"]
        self._engine = None
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self._engine is not None

    @property
    def odbc_driver(self) -> str:
        return self.options.get("odbc_driver") or DEFAULT_ODBC_DRIVER

    @property
    def where(self):
        """The server (or SQLite file) in messages, in the reader's language (``lazy_gettext``)."""
        s = self.settings
        if self.dialect == "sqlite":
            return _l("SQLite file %(file)s", file=s.get("database"))
        port = s.get("port") or DIALECTS[self.dialect][3]
        return _l("%(server)s at %(host)s:%(port)s", server=DIALECTS[self.dialect][4], host=s.get("host"), port=port)

    def import_driver(self):
        _, module, install, _, label = DIALECTS[self.dialect]
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            log.warning("SQL driver %s cannot be imported: %s", module, type(exc).__name__)
            message = _l(
                "the %(label)s driver '%(module)s' is not installed (%(install)s)",
                label=label,
                module=module,
                install=install,
            )
            raise SourceError(message, "driver") from None
        except OSError:  # a shared library the driver needs is missing (pyodbc without unixodbc)
            message = _l(
                "the %(label)s driver '%(module)s' cannot load (%(install)s)",
                label=label,
                module=module,
                install=install,
            )
            raise SourceError(message, "driver") from None

    def url(self):
        from sqlalchemy import URL

        s = self.settings
        drivername = DIALECTS[self.dialect][0]
        if self.dialect == "sqlite":
            path = self.sqlite_file()
            return URL.create("sqlite", database=f"file:{path}", query={"mode": "ro", "uri": "true"})
        if not s.get("host"):
            raise SourceError(_l("no host is set"), "config")
        query: dict = {}
        database = s.get("database")
        if self.dialect == "oracle":
            query["service_name"] = database or ""
            database = None
        elif self.dialect == "mysql":
            query["charset"] = "utf8mb4"
        elif self.dialect == "mssql":
            query["driver"] = self.odbc_driver
            for key, value in (self.options.get("odbc") or {}).items():
                query[str(key)] = str(value)
        return URL.create(
            drivername,
            username=s.get("account") or None,
            password=self.source.secret or None,
            host=s["host"],
            port=s.get("port") or None,
            database=database or None,
            query=query,
        )

    def sqlite_file(self) -> str:
        """The SQLite file to open: resolved and inside the confinement."""
        database, limits = self.settings.get("database"), self.source.confinement
        if not database:
            raise SourceError(_l("no SQLite file is set"), "config")
        if limits is None:
            return os.path.abspath(database)
        try:
            return limits.check_file(database, "database")
        except Refused as exc:
            raise refusal(exc, self.source) from None

    def checked_addresses(self) -> list[str]:
        try:
            return confine(self.source, self.settings)
        except Refused as exc:
            raise refusal(exc, self.source) from None

    def before_connect(self, _dialect, _record, _cargs, cparams) -> None:
        """Every new connection: the server checked again (its name may have a
        new address since) and, where it had to be judged, reached at the
        address judged and no other."""
        addresses = self.checked_addresses()
        if addresses and self.dialect == "postgresql":
            cparams["hostaddr"] = addresses[0]
        elif addresses and self.dialect == "mysql":
            cparams["host"] = addresses[0]

    def connect_args(self) -> dict:
        t = max(float(self.source.timeout), 0.1)
        whole = max(1, math.ceil(t))
        if self.dialect == "postgresql":
            return {"connect_timeout": max(2, whole), "options": f"-c statement_timeout={int(t * 1000)}"}
        if self.dialect == "mysql":
            return {"connect_timeout": whole, "read_timeout": whole + 2, "write_timeout": whole + 2}
        if self.dialect == "sqlite":
            return {"timeout": t}
        if self.dialect == "oracle":
            return {"tcp_connect_timeout": t}
        if self.dialect == "mssql":
            return {"timeout": whole}
        return {}

    def on_connect(self, dbapi_connection, _record):
        t = max(float(self.source.timeout), 0.1)
        if self.dialect == "mysql":
            info = ""
            try:
                info = dbapi_connection.get_server_info() or ""
            except Exception:
                pass
            cur = dbapi_connection.cursor()
            try:
                if "mariadb" in info.lower():
                    cur.execute("SET SESSION max_statement_time = %s", (t,))
                else:
                    cur.execute("SET SESSION max_execution_time = %s", (int(t * 1000),))
            finally:
                cur.close()
        elif self.dialect == "oracle":
            dbapi_connection.call_timeout = int(t * 1000)
        elif self.dialect == "mssql":
            dbapi_connection.timeout = max(1, math.ceil(t))

    def engine(self):
        with self._lock:
            if self._engine is not None:
                return self._engine
            self.import_driver()
            if self.dialect == "sqlite" and not os.path.isfile(self.sqlite_file()):
                raise SourceError(_l("file not found: %(path)s", path=self.settings.get("database")), "not_found")
            self.checked_addresses()
            from sqlalchemy import create_engine, event

            from app.lib import liveness

            s = self.source
            extra = {}
            if self.dialect == "postgresql":
                # A fetch is one SELECT: as its own transaction it needs no
                # BEGIN and no ROLLBACK round trip around it.
                extra["isolation_level"] = "AUTOCOMMIT"
            url = self.url()
            options = {
                "pool_size": max(1, int(s.pool_size)),
                "max_overflow": 0,
                "pool_timeout": max(float(s.timeout), 0.1),
                "pool_pre_ping": True,
                "pool_recycle": self.options["pool_recycle"],
                "hide_parameters": True,
                "connect_args": self.connect_args(),
                **extra,
            }
            engine = create_engine(url, **liveness.engine_options(url, options))
            liveness.install(engine)  # psycopg: no SELECT 1 before every fetch
            event.listen(engine, "connect", self.on_connect)
            if self.source.confinement is not None and self.dialect != "sqlite":
                event.listen(engine, "do_connect", self.before_connect)
            self._engine = engine
            return engine

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    @contextlib.contextmanager
    def deadline(self, raw):
        """SQLite has no statement timeout: a progress handler on the driver's
        connection ``raw`` aborts the statement once the deadline has passed
        (sqlite3 raises "interrupted")."""
        if self.dialect != "sqlite":
            yield
            return
        deadline = time.monotonic() + max(float(self.source.timeout), 0.1)
        raw.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)
        try:
            yield
        finally:
            try:
                raw.set_progress_handler(None, 0)
            except sqlite3.ProgrammingError:  # the connection was closed meanwhile
                pass
