"""SQL sources: Oracle, SQL Server, PostgreSQL, MySQL/MariaDB and SQLite.

One code path for every dialect: the statement is built with SQLAlchemy Core
from the section (``table(target, *column(c))``, nothing reflected), every
value travels as a bound parameter, and there is no string SQL anywhere.
SQLAlchemy compiles it once per section and dialect; each call expands it for
its values (``construct_expanded_state``) and runs the text straight on a
pooled driver cursor (``driver_statement``, ``app.lib.drivercursor``), on
every dialect and for every operator.

The kind is this package: ``statement`` builds and compiles the SELECT,
``engine`` holds each source's pool and timeouts, ``errors`` turns a driver's
error into plain words; this module is the connector (settings, test, fetch,
describe).

Source settings (``SqlSettings``, in ``SourceConfig.settings``)::

    host, port, database   database name; Oracle: service name; SQLite: file path
    account                the login (with ``SourceConfig.secret``, never put in a message)
    options.dialect        postgresql | mysql (MariaDB too) | sqlite | oracle | mssql
    options.odbc_driver    SQL Server only (default "ODBC Driver 18 for SQL Server")
    options.odbc           SQL Server only: extra ODBC keywords, for example
                           {"TrustServerCertificate": "yes", "Encrypt": "yes"}
    options.pool_recycle   seconds after which an idle connection is reopened (1800)

and of every kind's: ``timeout`` (seconds: connect timeout, statement
timeout, pool wait), ``row_cap`` and ``pool_size`` (rows returned at most;
connections kept open at most).

Section: ``target`` is a table or view ("schema.view" allowed), ``columns``
the columns to return (none: all), ``filters`` map inputs to columns with the
operators eq, ne, lt, le, gt, ge, like (contains), prefix (starts with) and in.
``like`` and ``prefix`` match the input literally: ``%`` and ``_`` typed by a
clerk are escaped, never wildcards.

Statement timeouts per dialect: see ``engine``. Values come back as JSON-friendly types: dates and times as ISO 8601 strings,
decimals as int (when whole) or float, bytes as hex.
"""

from __future__ import annotations

import time

from flask_babel import lazy_gettext as _l
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from app.connectors.base import (
    Connector,
    Entity,
    Field,
    Result,
    SectionSpec,
    SettingsSchema,
    SourceConfig,
    SourceError,
    port,
    refusal,
    register,
    text,
)
from app.connectors.sql import engine as engines
from app.connectors.sql import errors
from app.connectors.sql.engine import DIALECTS, SourceEngine
from app.connectors.sql.statement import (  # noqa: F401  (the statement's public names, re-exported)
    build_statement,
    column_name,
    compile_statement,
    driver_statement,
    plain_value,
    prepare,
    statement_and_params,
)
from app.lib import confinement
from app.lib.drivercursor import driver_cursor

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
    pool_recycle = fields.Integer(strict=True, validate=validate.Range(min=1, max=86_400), load_default=1800)


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


@register("sql")
class SqlConnector(Connector):
    """A pooled SQLAlchemy engine per source; see the module docstring."""

    label = _l("Database (SQL)")
    order = 10
    settings_schema = SqlSettings

    @classmethod
    def confine(cls, source: SourceConfig) -> None:
        engines.confine(source, cls.settings_of(source))

    @classmethod
    def confine_target(cls, source: SourceConfig, target: str) -> None:
        """A table in another database of the server (MySQL/MariaDB ``db.table``, SQL Server
        ``db.schema.table``) is refused: a source reads its own database only."""
        settings = cls.settings_of(source)
        confinement.check_target(settings["options"]["dialect"], settings.get("database"), target)

    def __init__(self, source: SourceConfig):
        super().__init__(source)
        self.dialect = self.options["dialect"]
        self.pool = SourceEngine(source, self.settings)

    @property
    def where(self):
        """The server or file in messages (``lazy_gettext``)."""
        return self.pool.where

    def engine(self):
        return self.pool.engine()

    def close(self) -> None:
        self.pool.close()

    def error(self, exc: Exception, connecting: bool) -> SourceError:
        """A plain message: never the secret, the SQL parameters or the driver's text."""
        return errors.translate(
            exc,
            source=self.source,
            dialect=self.dialect,
            where=self.where,
            odbc_driver=self.pool.odbc_driver,
            connecting=connecting,
        )

    def _connection(self):
        try:
            return self.engine().connect()
        except Exception as exc:
            raise self.error(exc, connecting=True) from None

    def test(self) -> float:
        from sqlalchemy import literal, select

        started = time.perf_counter()
        conn = self._connection()
        try:
            with conn:
                conn.execute(select(literal(1))).all()
        except Exception as exc:
            raise self.error(exc, connecting=False) from None
        return time.perf_counter() - started

    def fetch(self, section: SectionSpec, params: dict) -> Result:
        try:
            confinement.check_target(self.dialect, self.settings.get("database"), section.target)
        except confinement.Refused as exc:
            raise refusal(exc, self.source) from None
        prepared = prepare(section, params, self.source.row_cap, self.filter_value)
        try:
            engine = self.engine()
        except Exception as exc:
            raise self.error(exc, connecting=True) from None
        sql, args = driver_statement(prepared, engine.dialect)
        checked_out = False
        try:
            with driver_cursor(engine) as cursor, self.pool.deadline(cursor.connection):
                checked_out = True
                cursor.execute(sql, args)
                columns = list(section.columns) or [column_name(engine.dialect, d[0]) for d in cursor.description]
                rows = [dict(zip(columns, (plain_value(v) for v in row), strict=False)) for row in cursor.fetchall()]
        except Exception as exc:
            raise self.error(exc, connecting=not checked_out) from None
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
            raise self.error(exc, connecting=True) from None
        try:
            with conn:
                inspector = inspect(conn)
                schemas: list[str | None] = [None]
                if self.dialect == "postgresql":
                    default = inspector.default_schema_name
                    schemas += [
                        s
                        for s in inspector.get_schema_names()
                        if s != default and s not in SYSTEM_SCHEMAS and not s.startswith("pg_")
                    ]
                entities = []
                for schema in schemas:
                    prefix = f"{schema}." if schema else ""
                    for kind, names in (
                        ("table", inspector.get_table_names(schema=schema)),
                        ("view", inspector.get_view_names(schema=schema)),
                    ):
                        for name in sorted(names):
                            columns = inspector.get_columns(name, schema=schema)
                            entities.append(
                                Entity(
                                    target=prefix + name,
                                    kind=kind,
                                    columns=tuple(
                                        Field(c["name"], self._type_name(c["type"], engine.dialect)) for c in columns
                                    ),
                                )
                            )
        except Exception as exc:
            raise self.error(exc, connecting=False) from None
        return entities

    @staticmethod
    def _type_name(type_, dialect) -> str:
        try:
            return type_.compile(dialect=dialect)
        except Exception:  # a type SQLAlchemy reflects but cannot render
            return type(type_).__name__
