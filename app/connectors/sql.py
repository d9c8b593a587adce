"""SQL sources: Oracle, SQL Server, PostgreSQL, MySQL/MariaDB and SQLite.

One code path for every dialect: the statement is built with SQLAlchemy Core
from the section (``table(target, *column(c))``, nothing reflected), every
value travels as a bound parameter, and there is no string SQL anywhere.
SQLAlchemy compiles it once per section and dialect; each call expands it for
its values (``construct_expanded_state``) and runs the text straight on a
pooled driver cursor (``driver_statement``, ``app.lib.drivercursor``), on
every dialect and for every operator.

Source settings (``SourceConfig``)::

    host, port, database   database name; Oracle: service name; SQLite: file path
    account, secret        the login (the secret is never put in a message)
    timeout                seconds: connect timeout, statement timeout, pool wait
    row_cap, pool_size     rows returned at most; connections kept open at most
    options.dialect        postgresql | mysql (MariaDB too) | sqlite | oracle | mssql
    options.odbc_driver    SQL Server only (default "ODBC Driver 18 for SQL Server")
    options.odbc           SQL Server only: extra ODBC keywords, for example
                           {"TrustServerCertificate": "yes", "Encrypt": "yes"}
    options.pool_recycle   seconds after which an idle connection is reopened (1800)

Section: ``target`` is a table or view ("schema.view" allowed), ``columns``
the columns to return (none: all), ``filters`` map inputs to columns with the
operators eq, ne, lt, le, gt, ge, like (contains), prefix (starts with) and in.
``like`` and ``prefix`` match the input literally: ``%`` and ``_`` typed by a
clerk are escaped, never wildcards.

Statement timeout per dialect: PostgreSQL ``-c statement_timeout`` in the
connection options; MariaDB ``max_statement_time`` / MySQL
``max_execution_time`` set per session when the connection opens (as a bound
parameter) plus a socket read timeout as a backstop; SQLite a progress handler
that aborts once the deadline has passed; Oracle ``call_timeout`` on the
connection; SQL Server the login ``timeout`` and the connection's query
``timeout``.

Values come back as JSON-friendly types: dates and times as ISO 8601 strings,
decimals as int (when whole) or float, bytes as hex.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import importlib
import logging
import math
import os
import re
import sqlite3
import threading
import time
import uuid
import weakref

from flask_babel import lazy_gettext as _l
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from app.connectors.base import (
    Connector,
    Entity,
    Field,
    Filter,
    Result,
    SectionSpec,
    SettingsSchema,
    SourceConfig,
    SourceError,
    port,
    register,
    text,
)
from app.lib.drivercursor import driver_cursor

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
NEEDS_DIALECT = _l("SQL sources need options.dialect: postgresql, mysql, sqlite, oracle or mssql.")
# Schemas of the server itself, not of the agency's data (describe leaves them out).
SYSTEM_SCHEMAS = {"information_schema", "pg_catalog", "pg_toast", "mysql", "performance_schema", "sys"}


class SqlOptions(Schema):
    class Meta:
        unknown = RAISE

    dialect = fields.String(
        required=True,
        validate=validate.OneOf(tuple(DIALECTS), error=NEEDS_DIALECT),
        error_messages={"required": NEEDS_DIALECT},
    )
    odbc_driver = text(200)
    odbc = fields.Dict(keys=text(100), values=text(500), validate=validate.Length(max=50))
    pool_recycle = fields.Integer(strict=True, validate=validate.Range(min=1, max=86_400))


class SqlSettings(SettingsSchema):
    host = text(255)
    port = port()
    database = text(500)
    account = text(100)
    options = fields.Nested(SqlOptions, required=True, error_messages={"required": NEEDS_DIALECT})

    @validates_schema
    def host_and_database(self, data, **kwargs):
        if data["options"]["dialect"] != "sqlite" and not data.get("host"):
            raise ValidationError(_l("SQL sources need a host."), "host")
        if not data.get("database"):
            raise ValidationError(_l("SQL sources need a database (or service name, or SQLite file)."), "database")


# identifiers from the form designer: letters (CJK too), digits, _ $ #
_IDENT = re.compile(r"^[\w$#]+$")


def _ident(name: str, what: str) -> str:
    name = (name or "").strip()
    if not name or not _IDENT.match(name):
        raise SourceError(f"invalid {what} name '{name[:60]}' in the section settings", "config")
    return name


def _split_target(target: str) -> tuple[str | None, str]:
    parts = [p.strip() for p in (target or "").split(".")]
    if not parts or len(parts) > 3:
        raise SourceError(f"invalid table or view '{(target or '')[:80]}'", "config")
    for p in parts:
        _ident(p, "table or view")
    if len(parts) == 1:
        return None, parts[0]
    return ".".join(parts[:-1]), parts[-1]


def _escape_like(value: str) -> str:
    return value.replace("/", "//").replace("%", "/%").replace("_", "/_")


def _filter_value(flt: Filter, params: dict):
    if flt.param is None:
        return flt.value
    if flt.param not in params:
        raise SourceError(f"missing input '{flt.param}'", "config")
    return params[flt.param]


def _bind_values(section: SectionSpec, params: dict, value_of) -> tuple[list, tuple]:
    """Per filter, the value to bind (checked, and made a LIKE pattern or a
    list for ``in``); and the statement's shape (which filters are IS NULL)."""
    values, shape = [], []
    for flt in section.filters:
        value = value_of(flt, params)
        op = flt.op or "eq"
        if op in ("eq", "ne"):
            shape.append(value is None)
        elif op in ("lt", "le", "gt", "ge"):
            if value is None:
                raise SourceError(f"no value for '{flt.column}'", "config")
        elif op in ("like", "prefix"):
            if value is None or value == "":
                raise SourceError(f"no value for '{flt.column}'", "config")
            value = _escape_like(str(value)) + "%"
            if op == "like":
                value = "%" + value
        elif op == "in":
            if isinstance(value, str):  # "a, b, c" typed in one box
                value = [v.strip() for v in value.split(",")]
            items = value if isinstance(value, (list, tuple, set)) else [value]
            value = [v for v in items if v is not None and v != ""]
            if not value:
                raise SourceError(f"no value for '{flt.column}'", "config")
        else:
            raise SourceError(f"unknown operator '{op}'", "config")
        values.append(value)
    return values, tuple(shape)


def _structure(section: SectionSpec) -> tuple:
    return (section.target, tuple((f.column, f.op or "eq") for f in section.filters), tuple(section.columns),
            tuple(section.order_by))  # fmt: skip


# Built statements by structure, row cap and shape, with their filters'
# bind parameters (values come at execution): a section's SELECT is built
# and its cache key computed once per process, not on every query.
_templates: dict[tuple, tuple] = {}
_checked: set[tuple] = set()
_templates_lock = threading.Lock()


def _check_names(section: SectionSpec) -> None:
    """Identifiers first (a bad name is reported before a missing value, as ever)."""
    key = _structure(section)
    if key in _checked:
        return
    _split_target(section.target)
    for name in (*section.columns, *(f.column for f in section.filters), *(c.lstrip("-") for c in section.order_by)):
        _ident(name, "column")
    with _templates_lock:
        if len(_checked) > 1000:
            _checked.clear()
        _checked.add(key)


def _template(section: SectionSpec, row_cap: int, shape: tuple):
    key = (_structure(section), int(row_cap), shape)
    hit = _templates.get(key)
    if hit is not None:
        return hit
    from sqlalchemy import String, and_, bindparam, column, literal_column, select, table
    from sqlalchemy.types import NullType

    schema, name = _split_target(section.target)
    wanted = [_ident(c, "column") for c in section.columns]
    referenced = list(dict.fromkeys(wanted + [_ident(f.column, "column") for f in section.filters]
                                    + [_ident(c.lstrip("-"), "column") for c in section.order_by]))  # fmt: skip
    tbl = table(name, *[column(c) for c in referenced], schema=schema)
    stmt = select(*[tbl.c[c] for c in wanted]) if wanted else select(literal_column("*"))
    stmt = stmt.select_from(tbl)

    clauses, binds = [], []
    nulls = iter(shape)
    for flt in section.filters:
        col = tbl.c[flt.column]
        op = flt.op or "eq"

        def bind(type_=None, expanding=False, _c=flt.column):
            b = bindparam(_c, type_=type_ if type_ is not None else NullType(), unique=True, expanding=expanding)
            binds.append(b)
            return b

        if op in ("eq", "ne"):
            if next(nulls):
                clauses.append(col.is_(None) if op == "eq" else col.is_not(None))
                binds.append(None)
            else:
                clauses.append(col == bind() if op == "eq" else col != bind())
        elif op in ("lt", "le", "gt", "ge"):
            clauses.append(getattr(col, f"__{op}__")(bind()))
        elif op in ("like", "prefix"):
            clauses.append(col.like(bind(String()), escape="/"))
        else:  # in (the operators were checked with the values)
            clauses.append(col.in_(bind(expanding=True)))
    if clauses:
        stmt = stmt.where(and_(*clauses))
    for c in section.order_by:
        stmt = stmt.order_by(tbl.c[c[1:]].desc() if c.startswith("-") else tbl.c[c])
    # The third part holds the statement compiled for each source's dialect
    # (driver_statement): per dialect object, since the same kind of server
    # may quote differently (MySQL with ANSI_QUOTES), as each engine compiles.
    hit = (stmt.limit(int(row_cap) + 1), tuple(binds), weakref.WeakKeyDictionary())
    with _templates_lock:
        if len(_templates) > 1000:
            _templates.clear()
        _templates[key] = hit
    return hit


def prepare(section: SectionSpec, params: dict, row_cap: int, value_of=None) -> tuple:
    """Names checked, then values (a bad name is reported before a missing
    value, as ever): the cached template, its filter binds (None for an IS
    NULL test), its compiled forms per driver, and the filters' values."""
    _check_names(section)
    values, shape = _bind_values(section, params, value_of or _filter_value)
    stmt, binds, compiled_for = _template(section, row_cap, shape)
    return stmt, binds, compiled_for, values


def statement_and_params(section: SectionSpec, params: dict, row_cap: int, value_of=None) -> tuple:
    """The section's (cached) SELECT and the parameters to execute it with."""
    return _core(prepare(section, params, row_cap, value_of))


def _core(prepared: tuple) -> tuple:
    stmt, binds, _, values = prepared
    return stmt, {b.key: v for b, v in zip(binds, values, strict=True) if b is not None}


def driver_statement(prepared: tuple, dialect) -> tuple:
    """A prepared SELECT (``prepare``) as the driver's own SQL text and
    arguments, for every dialect and operator.

    The template is compiled once per dialect object (``compile``); each call
    only expands it for its values (``construct_expanded_state``: an ``in``
    list's items, a row cap Oracle or SQL Server write into the text) and
    applies the dialect's bind processors. Executing that text straight on the
    driver skips SQLAlchemy's per-call statement and result machinery, which
    costs more than the round trip on a small lookup. Positional drivers
    (SQL Server's qmark) get the arguments in the order of the text."""
    stmt, binds, compiled_for, values = prepared
    compiled = compiled_for.get(dialect)
    if compiled is None:
        compiled = compiled_for[dialect] = stmt.compile(dialect=dialect)
    state = compiled.construct_expanded_state({b.key: v for b, v in zip(binds, values, strict=True) if b is not None})
    args = state.parameters
    for name, process in state.processors.items():
        if name in args:
            args[name] = process(args[name])
    return state.statement, (state.positional_parameters if compiled.positional else args)


def build_statement(section: SectionSpec, params: dict, row_cap: int, value_of=None):
    """The Core SELECT for a section: columns, filters as bound parameters,
    order, and a LIMIT one above the row cap (to detect truncation)."""
    stmt, values = statement_and_params(section, params, row_cap, value_of)
    return stmt.params(values) if values else stmt


def compile_statement(dialect_name: str, section: SectionSpec, params: dict, row_cap: int = 500) -> str:
    """The SQL a section gives on a dialect, compiled without any server (for
    tests and for the form designer's preview). Parameters stay placeholders."""
    if dialect_name == "oracle":
        from sqlalchemy.dialects.oracle import oracledb as mod

        dialect = mod.dialect()
    elif dialect_name == "mssql":
        from sqlalchemy.dialects.mssql import pyodbc as mod

        dialect = mod.dialect(paramstyle="qmark")
    elif dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import psycopg as mod

        dialect = mod.dialect()
    elif dialect_name == "mysql":
        from sqlalchemy.dialects.mysql import pymysql as mod

        dialect = mod.dialect()
    elif dialect_name == "sqlite":
        from sqlalchemy.dialects.sqlite import pysqlite as mod

        dialect = mod.dialect()
    else:
        raise SourceError(f"unknown SQL dialect '{dialect_name}'", "config")
    stmt = build_statement(section, params, row_cap)
    return str(stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True}))


def _column_name(dialect, name: str) -> str:
    """A result column's name as SQLAlchemy gives it (Oracle's upper-case
    names of case-insensitive columns in lower case)."""
    return dialect.normalize_name(name) if dialect.requires_name_normalize else name


def _plain(value):
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, decimal.Decimal):
        if value.is_finite() and value == value.to_integral_value():
            return int(value)
        return float(value)
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    return str(value)


# --- errors -------------------------------------------------------------------

_UNREACHABLE_WORDS = {
    "name": ("could not translate host name", "name or service not known", "nodename nor servname",
             "getaddrinfo", "unknown mysql server host", "temporary failure in name resolution",
             "no address associated"),
    "refused": ("connection refused", "actively refused", "errno 111", "[errno 61]", "(111)", "dpy-6005",
                "can't connect to mysql server", "can't connect to server"),
    "network": ("no route to host", "network is unreachable", "host is unreachable", "server closed the connection",
                "connection reset", "lost connection", "broken pipe", "server has gone away",
                "communication link failure", "tcp provider", "dpi-1080", "dpy-4011"),
}  # fmt: skip
_TIMEOUT_WORDS = ("statement timeout", "canceling statement due to", "max_statement_time", "max_execution_time",
                  "maximum statement execution time", "timed out", "timeout expired", "query timeout",
                  "interrupted", "dpi-1067", "dpy-4024", "ora-03156", "call timeout")  # fmt: skip
_TIMEOUT_CODES = ("57014", "1969", "3024", "hyt00", "hyt01", "dpi-1067", "dpy-4024")
_AUTH_WORDS = ("password authentication failed", "authentication failed", "access denied", "ora-01017",
               "login failed", "no password supplied", "role \"", "not permitted to log in")  # fmt: skip
_AUTH_CODES = ("28000", "28p01", "18456", "1045", "1044", "ora-01017", "dpy-4001")
_MISSING_WORDS = ("does not exist", "doesn't exist", "no such table", "no such column", "unknown column",
                  "ora-00942", "ora-00904", "invalid object name", "invalid column name")  # fmt: skip
_MISSING_CODES = ("42s02", "42p01", "42703", "42s22", "1146", "1054")


def _code_of(orig) -> str:
    for attr in ("sqlstate", "pgcode"):
        code = getattr(orig, attr, None)
        if code:
            return str(code)
    args = getattr(orig, "args", ())
    if args:
        first = args[0]
        full = getattr(first, "full_code", None)  # oracledb error object
        if full:
            return str(full)
        if isinstance(first, (int, str)) and len(str(first)) <= 8:
            return str(first)
    return ""


@register("sql")
class SqlConnector(Connector):
    """A pooled SQLAlchemy engine per source; see the module docstring."""

    label = _l("Database (SQL)")
    order = 10
    settings_schema = SqlSettings

    def __init__(self, source: SourceConfig):
        super().__init__(source)
        self.dialect = (source.options or {}).get("dialect", "")
        if self.dialect not in DIALECTS:
            raise SourceError(
                f"unknown SQL dialect '{self.dialect}' (use postgresql, mysql, sqlite, oracle or mssql)", "config"
            )
        self._engine = None
        self._lock = threading.Lock()

    # -- engine ------------------------------------------------------------------

    @property
    def where(self) -> str:
        s = self.source
        if self.dialect == "sqlite":
            return f"SQLite file {s.database}"
        port = s.port or DIALECTS[self.dialect][3]
        return f"{DIALECTS[self.dialect][4]} at {s.host}:{port}"

    def _import_driver(self):
        _, module, install, _, label = DIALECTS[self.dialect]
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            log.warning("SQL driver %s cannot be imported: %s", module, type(exc).__name__)
            raise SourceError(f"the {label} driver '{module}' is not installed ({install})", "driver") from None
        except OSError:  # a shared library the driver needs is missing (pyodbc without unixodbc)
            raise SourceError(f"the {label} driver '{module}' cannot load ({install})", "driver") from None

    def url(self):
        from sqlalchemy import URL

        s, opts = self.source, self.source.options or {}
        drivername = DIALECTS[self.dialect][0]
        if self.dialect == "sqlite":
            if not s.database:
                raise SourceError("no SQLite file is set", "config")
            path = os.path.abspath(s.database)
            return URL.create("sqlite", database=f"file:{path}", query={"mode": "ro", "uri": "true"})
        if not s.host:
            raise SourceError("no host is set", "config")
        query: dict = {}
        database = s.database
        if self.dialect == "oracle":
            query["service_name"] = s.database or ""
            database = None
        elif self.dialect == "mysql":
            query["charset"] = "utf8mb4"
        elif self.dialect == "mssql":
            query["driver"] = opts.get("odbc_driver") or DEFAULT_ODBC_DRIVER
            for key, value in (opts.get("odbc") or {}).items():
                query[str(key)] = str(value)
        return URL.create(drivername, username=s.account or None, password=s.secret or None, host=s.host,
                          port=s.port or None, database=database or None, query=query)  # fmt: skip

    def _connect_args(self) -> dict:
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

    def _on_connect(self, dbapi_connection, _record):
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
            self._import_driver()
            if self.dialect == "sqlite" and not os.path.isfile(self.source.database or ""):
                raise SourceError(f"file not found: {self.source.database}", "not_found")
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
                "pool_recycle": int((s.options or {}).get("pool_recycle", 1800)),
                "hide_parameters": True,
                "connect_args": self._connect_args(),
                **extra,
            }
            engine = create_engine(url, **liveness.engine_options(url, options))
            liveness.install(engine)  # psycopg: no SELECT 1 before every fetch
            event.listen(engine, "connect", self._on_connect)
            self._engine = engine
            return engine

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    # -- errors ------------------------------------------------------------------

    def _error(self, exc: Exception, connecting: bool) -> SourceError:
        """A plain message: never the secret, the SQL parameters or the driver's text."""
        from sqlalchemy import exc as sa_exc

        if isinstance(exc, SourceError):
            return exc
        t = self.source.timeout
        if isinstance(exc, sa_exc.TimeoutError):  # waiting for a free pooled connection
            return SourceError(f"all {self.source.pool_size} connections to {self.where} are busy", "timeout")
        orig = getattr(exc, "orig", None) or exc
        text = f"{type(orig).__name__} {orig}".lower()
        code = _code_of(orig)
        low_code = code.lower()
        log.info("SQL source %s failed: %s %s", self.source.name, type(orig).__name__, code)
        if isinstance(exc, sa_exc.NoSuchModuleError):
            return SourceError(f"SQLAlchemy has no dialect for {self.where}", "driver")
        if self.dialect == "mssql" and ("can't open lib" in text or "im002" in text or low_code == "im002"):
            driver = (self.source.options or {}).get("odbc_driver") or DEFAULT_ODBC_DRIVER
            return SourceError(f"the ODBC driver '{driver}' is not installed (Microsoft's msodbcsql18 package), "
                               "or set options.odbc_driver to an installed one", "driver")  # fmt: skip
        if self.dialect == "sqlite" and "unable to open database file" in text:
            return SourceError(f"cannot open {self.where}", "not_found")
        if self.dialect == "sqlite" and "interrupted" in text:
            return SourceError(f"the query took longer than {t:g} s and was cancelled", "timeout")
        if any(w in text for w in _AUTH_WORDS) or low_code in _AUTH_CODES:
            return SourceError(f"{self.where} refused the account or password", "refused")
        if any(w in text for w in ("permission denied", "command denied", "ora-01031", "insufficient privileges")) or (
            low_code in ("42501", "1142", "1143")
        ):
            return SourceError(f"the account may not read this table or view at {self.where}", "refused")
        if any(w in text for w in _UNREACHABLE_WORDS["name"]):
            return SourceError(f"cannot reach {self.where}: host name not found", "unreachable")
        if any(w in text for w in _UNREACHABLE_WORDS["refused"]):
            return SourceError(f"cannot reach {self.where}: connection refused", "unreachable")
        if any(w in text for w in _TIMEOUT_WORDS) or low_code in _TIMEOUT_CODES:
            if connecting:
                return SourceError(f"cannot reach {self.where}: no answer within {t:g} s", "unreachable")
            return SourceError(f"the query took longer than {t:g} s and was cancelled", "timeout")
        if any(w in text for w in _UNREACHABLE_WORDS["network"]):
            return SourceError(f"cannot reach {self.where}: the network connection failed", "unreachable")
        if "database" in text and ("does not exist" in text or "unknown database" in text or low_code == "1049"):
            return SourceError(f"the database is not found at {self.where}", "config")
        if any(w in text for w in _MISSING_WORDS) or low_code in _MISSING_CODES:
            return SourceError(f"the table, view or a column of this section is not found at {self.where}", "config")
        if low_code.startswith("22") or "invalid input syntax" in text:
            return SourceError("an input value does not fit the column's type at the source", "config")
        if connecting:
            return SourceError(f"cannot connect to {self.where}" + (f" (error {code})" if code else ""), "unreachable")
        return SourceError(f"{self.where} reported an error" + (f" ({code})" if code else ""), "bad_response")

    # -- the contract ------------------------------------------------------------

    def _connection(self):
        try:
            return self.engine().connect()
        except Exception as exc:
            raise self._error(exc, connecting=True) from None

    def test(self) -> float:
        from sqlalchemy import literal, select

        started = time.perf_counter()
        conn = self._connection()
        try:
            with conn:
                conn.execute(select(literal(1))).all()
        except Exception as exc:
            raise self._error(exc, connecting=False) from None
        return time.perf_counter() - started

    def fetch(self, section: SectionSpec, params: dict) -> Result:
        prepared = prepare(section, params, self.source.row_cap, self.filter_value)
        try:
            engine = self.engine()
        except Exception as exc:
            raise self._error(exc, connecting=True) from None
        sql, args = driver_statement(prepared, engine.dialect)
        checked_out = False
        try:
            with driver_cursor(engine) as cursor, self._deadline(cursor.connection):
                checked_out = True
                cursor.execute(sql, args)
                columns = list(section.columns) or [_column_name(engine.dialect, d[0]) for d in cursor.description]
                rows = [dict(zip(columns, (_plain(v) for v in row), strict=False)) for row in cursor.fetchall()]
        except Exception as exc:
            raise self._error(exc, connecting=not checked_out) from None
        cap = self.source.row_cap
        return Result(columns=columns, rows=rows[:cap], truncated=len(rows) > cap)

    def describe(self) -> list[Entity]:
        """The tables and views the account can see, with their columns and
        types (SQLAlchemy ``inspect``): the default schema's by name, on
        PostgreSQL also the other schemas' as "schema.name"."""
        from sqlalchemy import inspect

        try:
            engine = self.engine()
            conn = engine.connect()
        except Exception as exc:
            raise self._error(exc, connecting=True) from None
        try:
            with conn:
                inspector = inspect(conn)
                schemas: list[str | None] = [None]
                if self.dialect == "postgresql":
                    default = inspector.default_schema_name
                    schemas += [s for s in inspector.get_schema_names()
                                if s != default and s not in SYSTEM_SCHEMAS and not s.startswith("pg_")]  # fmt: skip
                entities = []
                for schema in schemas:
                    prefix = f"{schema}." if schema else ""
                    for kind, names in (("table", inspector.get_table_names(schema=schema)),
                                        ("view", inspector.get_view_names(schema=schema))):  # fmt: skip
                        for name in sorted(names):
                            columns = inspector.get_columns(name, schema=schema)
                            entities.append(Entity(target=prefix + name, kind=kind, columns=tuple(
                                Field(c["name"], self._type_name(c["type"], engine.dialect)) for c in columns)))  # fmt: skip
        except Exception as exc:
            raise self._error(exc, connecting=False) from None
        return entities

    @staticmethod
    def _type_name(type_, dialect) -> str:
        try:
            return type_.compile(dialect=dialect)
        except Exception:  # a type SQLAlchemy reflects but cannot render
            return type(type_).__name__

    @contextlib.contextmanager
    def _deadline(self, raw):
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
