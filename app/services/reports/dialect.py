"""SQL functions the reports need, written for each backend (SQLite and
PostgreSQL) with SQLAlchemy's ``@compiles``: whole seconds between two
timestamps, the Taipei day of a UTC timestamp, the first of a month, and
aggregates that pack every processing time of a group into one value."""

from __future__ import annotations

import numpy as np
from flask import current_app
from sqlalchemy import Date, Integer, and_, case, func, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement


class elapsed_seconds(FunctionElement):
    """Whole seconds from ``start`` to ``end`` (fractions dropped on both
    backends, so SQLite and PostgreSQL agree to the second)."""

    type = Integer()
    name = "elapsed_seconds"
    inherit_cache = True


@compiles(elapsed_seconds)
def _elapsed_sqlite(element, compiler, **kw):
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"(CAST(strftime('%s', {end}) AS INTEGER) - CAST(strftime('%s', {start}) AS INTEGER))"


@compiles(elapsed_seconds, "postgresql")
def _elapsed_postgresql(element, compiler, **kw):
    # floor() of the epoch truncates to the second, like strftime('%s') (float arithmetic: cheaper than numeric)
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"(floor(date_part('epoch', {end})) - floor(date_part('epoch', {start})))"


def overdue(due, done, now):
    """1 when finished after its due time, or unfinished and past it."""
    late = or_(and_(done.isnot(None), done > due), and_(done.is_(None), due < now))
    return case((and_(due.isnot(None), late), 1), else_=0)


class taipei_day(FunctionElement):
    """The Taipei calendar day of a UTC timestamp (UTC+8: Taiwan has kept no
    summer time since 1980)."""

    type = Date()
    name = "taipei_day"
    inherit_cache = True


@compiles(taipei_day)
def _taipei_day_sqlite(element, compiler, **kw):
    return f"date({compiler.process(element.clauses, **kw)}, '+8 hours')"


@compiles(taipei_day, "postgresql")
def _taipei_day_postgresql(element, compiler, **kw):
    return f"CAST({compiler.process(element.clauses, **kw)} + INTERVAL '8 hours' AS DATE)"


class month_start(FunctionElement):
    """The first day of a date's month."""

    type = Date()
    name = "month_start"
    inherit_cache = True


@compiles(month_start)
def _month_start_sqlite(element, compiler, **kw):
    return f"date({compiler.process(element.clauses, **kw)}, 'start of month')"


@compiles(month_start, "postgresql")
def _month_start_postgresql(element, compiler, **kw):
    return f"CAST(date_trunc('month', {compiler.process(element.clauses, **kw)}) AS DATE)"


class packed_seconds(FunctionElement):
    """Aggregate: every non-NULL whole number of seconds as 4 bytes big-endian,
    concatenated. One value for a whole group, however many rows: numpy reads
    it without a Python object per row (SQLite, which cannot build bytes, gives
    the same bytes in hex)."""

    name = "packed_seconds"
    inherit_cache = True


@compiles(packed_seconds)
def _packed_sqlite(element, compiler, **kw):
    value = compiler.process(element.clauses, **kw)
    return f"group_concat(CASE WHEN {value} IS NULL THEN NULL ELSE printf('%08X', ({value}) & 4294967295) END, '')"


@compiles(packed_seconds, "postgresql")
def _packed_postgresql(element, compiler, **kw):
    return f"string_agg(int4send(CAST({compiler.process(element.clauses, **kw)} AS INTEGER)), CAST('' AS BYTEA))"


class concat_packed(FunctionElement):
    """Aggregate: stored ``packed_seconds`` values run together."""

    name = "concat_packed"
    inherit_cache = True


@compiles(concat_packed)
def _concat_sqlite(element, compiler, **kw):
    return f"group_concat({compiler.process(element.clauses, **kw)}, '')"


@compiles(concat_packed, "postgresql")
def _concat_postgresql(element, compiler, **kw):
    return f"string_agg({compiler.process(element.clauses, **kw)}, CAST('' AS BYTEA))"


class agency_list(FunctionElement):
    """Aggregate: the agency ids as ",4,9," (a case's receiving agencies, which
    ``LIKE '%,4,%'`` searches on either backend)."""

    name = "agency_list"
    inherit_cache = True


@compiles(agency_list)
def _agency_list_sqlite(element, compiler, **kw):
    return f"(',' || group_concat({compiler.process(element.clauses, **kw)}, ',') || ',')"


@compiles(agency_list, "postgresql")
def _agency_list_postgresql(element, compiler, **kw):
    value = compiler.process(element.clauses, **kw)
    return f"(',' || string_agg(CAST({value} AS TEXT), ',' ORDER BY {value}) || ',')"


def unpack(value) -> np.ndarray:
    """The seconds of a ``packed_seconds`` value (bytes, or hex from SQLite)."""
    if not value:
        return np.empty(0, dtype=np.int32)
    raw = bytes.fromhex(value) if isinstance(value, str) else value
    return np.frombuffer(raw, dtype=">i4").astype(np.int32)  # in the machine's byte order


def as_int(value) -> int:
    """A sum as an int: PostgreSQL adds the (float) seconds as double precision,
    exact for whole numbers this small; integer sums come as int or Decimal."""
    return int(round(float(value))) if value is not None else 0


def tune(session) -> None:
    """PostgreSQL: room to sort and group a year of rows in memory rather than
    on disk (REPORT_WORK_MEM, this transaction only)."""
    if session.get_bind().dialect.name == "postgresql":
        value = current_app.config.get("REPORT_WORK_MEM", "64MB")
        session.execute(select(func.set_config("work_mem", value, True)))
