"""The SELECT of a form section: built with SQLAlchemy Core, compiled once per
dialect, expanded per call into the driver's own SQL text and arguments.

Nothing is reflected and there is no string SQL: the statement is
``table(target, *column(c))`` with every value a bound parameter. Identifiers
from the form designer are checked first (a bad name is reported before a
missing value). ``like`` and ``prefix`` match the input literally: ``%`` and
``_`` typed by a clerk are escaped, never wildcards. Rows come back as
JSON-friendly values (``plain_value``).
"""

from __future__ import annotations

import datetime
import decimal
import re
import threading
import uuid
import weakref

from flask_babel import lazy_gettext as _l

from app.connectors.base import Filter, SectionSpec, SourceError

# identifiers from the form designer: letters (CJK too), digits, _ $ #
_IDENT = re.compile(r"^[\w$#]+$")


def _ident(name: str, what: str) -> str:
    """``name`` checked as an identifier; ``what``: "column" or "table or view"."""
    name = (name or "").strip()
    if not name or not _IDENT.match(name):
        if what == "column":
            message = _l("invalid column name '%(name)s' in the section settings", name=name[:60])
        else:
            message = _l("invalid table or view name '%(name)s' in the section settings", name=name[:60])
        raise SourceError(message, "config")
    return name


def _split_target(target: str) -> tuple[str | None, str]:
    parts = [p.strip() for p in (target or "").split(".")]
    if not parts or len(parts) > 3:
        raise SourceError(_l("invalid table or view '%(name)s'", name=(target or "")[:80]), "config")
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
        raise SourceError(_l("missing input '%(name)s'", name=flt.param), "config")
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
                raise SourceError(_l("no value for '%(name)s'", name=flt.column), "config")
        elif op in ("like", "prefix"):
            if value is None or value == "":
                raise SourceError(_l("no value for '%(name)s'", name=flt.column), "config")
            value = _escape_like(str(value)) + "%"
            if op == "like":
                value = "%" + value
        elif op == "in":
            if isinstance(value, str):  # "a, b, c" typed in one box
                value = [v.strip() for v in value.split(",")]
            items = value if isinstance(value, (list, tuple, set)) else [value]
            value = [v for v in items if v is not None and v != ""]
            if not value:
                raise SourceError(_l("no value for '%(name)s'", name=flt.column), "config")
        else:
            raise SourceError(_l("unknown operator '%(op)s'", op=op), "config")
        values.append(value)
    return values, tuple(shape)


def _structure(section: SectionSpec) -> tuple:
    return (
        section.target,
        tuple((f.column, f.op or "eq") for f in section.filters),
        tuple(section.columns),
        tuple(section.order_by),
    )


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
    referenced = list(
        dict.fromkeys(
            wanted
            + [_ident(f.column, "column") for f in section.filters]
            + [_ident(c.lstrip("-"), "column") for c in section.order_by]
        )
    )
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
        raise SourceError(_l("unknown SQL dialect '%(dialect)s'", dialect=dialect_name), "config")
    stmt = build_statement(section, params, row_cap)
    return str(stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True}))


def column_name(dialect, name: str) -> str:
    """A result column's name as SQLAlchemy gives it (Oracle's upper-case
    names of case-insensitive columns in lower case)."""
    return dialect.normalize_name(name) if dialect.requires_name_normalize else name


def plain_value(value):
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
