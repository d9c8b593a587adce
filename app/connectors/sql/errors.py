"""A SQL driver's error in plain words: never the secret, the SQL, its
parameters or the driver's own text (which may quote a value).

The messages are translatable (``lazy_gettext``, said in the reader's
language where they are shown) and name at most the server and its port.

Drivers say the same thing in many ways; the words and SQLSTATE/vendor codes
below are matched on the lower-cased exception text and code.
"""

from __future__ import annotations

import logging

from flask_babel import lazy_gettext as _l

from app.connectors.base import SourceError

log = logging.getLogger(__name__)

_UNREACHABLE_WORDS = {
    "name": (
        "could not translate host name",
        "name or service not known",
        "nodename nor servname",
        "getaddrinfo",
        "unknown mysql server host",
        "temporary failure in name resolution",
        "no address associated",
    ),
    "refused": (
        "connection refused",
        "actively refused",
        "errno 111",
        "[errno 61]",
        "(111)",
        "dpy-6005",
        "can't connect to mysql server",
        "can't connect to server",
    ),
    "network": (
        "no route to host",
        "network is unreachable",
        "host is unreachable",
        "server closed the connection",
        "connection reset",
        "lost connection",
        "broken pipe",
        "server has gone away",
        "communication link failure",
        "tcp provider",
        "dpi-1080",
        "dpy-4011",
    ),
}
_TIMEOUT_WORDS = (
    "statement timeout",
    "canceling statement due to",
    "max_statement_time",
    "max_execution_time",
    "maximum statement execution time",
    "timed out",
    "timeout expired",
    "query timeout",
    "interrupted",
    "dpi-1067",
    "dpy-4024",
    "ora-03156",
    "call timeout",
)
_TIMEOUT_CODES = ("57014", "1969", "3024", "hyt00", "hyt01", "dpi-1067", "dpy-4024")
_AUTH_WORDS = (
    "password authentication failed",
    "authentication failed",
    "access denied",
    "ora-01017",
    "login failed",
    "no password supplied",
    'role "',
    "not permitted to log in",
)
_AUTH_CODES = ("28000", "28p01", "18456", "1045", "1044", "ora-01017", "dpy-4001")
_MISSING_WORDS = (
    "does not exist",
    "doesn't exist",
    "no such table",
    "no such column",
    "unknown column",
    "ora-00942",
    "ora-00904",
    "invalid object name",
    "invalid column name",
)
_MISSING_CODES = ("42s02", "42p01", "42703", "42s22", "1146", "1054")
# The server ended the session: restart, shutdown, pg_terminate_backend (PostgreSQL class 57P).
_ENDED_WORDS = ("terminating connection", "server closed the connection unexpectedly")
_ENDED_CODES = ("57p01", "57p02", "57p03")
_DENIED_WORDS = ("permission denied", "command denied", "ora-01031", "insufficient privileges")
_DENIED_CODES = ("42501", "1142", "1143")


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


def _unreachable_kind(text: str, low_code: str) -> str:
    for kind, words in _UNREACHABLE_WORDS.items():
        if any(w in text for w in words):
            return kind
    if any(w in text for w in _TIMEOUT_WORDS) or low_code in _TIMEOUT_CODES:
        return "timeout"
    if any(w in text for w in _ENDED_WORDS) or low_code in _ENDED_CODES:
        return "ended"
    return f"other {low_code}".strip()


def translate(exc: Exception, *, source, dialect: str, where, odbc_driver: str, connecting: bool) -> SourceError:
    """The SourceError for ``exc`` raised while ``connecting`` (or running a statement) on ``source``
    (``where``: the server or file in the reader's language, as messages name it)."""
    from sqlalchemy import exc as sa_exc

    if isinstance(exc, SourceError):
        return exc
    t = source.timeout
    seconds = f"{t:g}"
    if isinstance(exc, sa_exc.TimeoutError):  # waiting for a free pooled connection
        return SourceError(
            _l("all %(count)s connections to %(where)s are busy", count=source.pool_size, where=where), "timeout"
        )
    orig = getattr(exc, "orig", None) or exc
    text = f"{type(orig).__name__} {orig}".lower()
    code = _code_of(orig)
    low_code = code.lower()
    log.info("SQL source %s failed: %s %s", source.name, type(orig).__name__, code)
    if isinstance(exc, sa_exc.NoSuchModuleError):
        return SourceError(_l("SQLAlchemy has no dialect for %(where)s", where=where), "driver")
    if dialect == "mssql" and ("can't open lib" in text or "im002" in text or low_code == "im002"):
        return SourceError(
            _l(
                "the ODBC driver '%(driver)s' is not installed (Microsoft's msodbcsql18 package), "
                "or set options.odbc_driver to an installed one",
                driver=odbc_driver,
            ),
            "driver",
        )
    if dialect == "sqlite" and "unable to open database file" in text:
        return SourceError(_l("cannot open %(where)s", where=where), "not_found")
    if dialect == "sqlite" and "interrupted" in text:
        return SourceError(_l("the query took longer than %(seconds)s s and was cancelled", seconds=seconds), "timeout")
    if any(w in text for w in _AUTH_WORDS) or low_code in _AUTH_CODES:
        return SourceError(_l("%(where)s refused the account or password", where=where), "refused")
    if any(w in text for w in _DENIED_WORDS) or low_code in _DENIED_CODES:
        return SourceError(_l("the account may not read this table or view at %(where)s", where=where), "refused")
    if "database" in text and ("does not exist" in text or "unknown database" in text or low_code == "1049"):
        return SourceError(_l("the database is not found at %(where)s", where=where), "config")
    if connecting:
        # Refused, timed out, unreachable, a host name without an address, a
        # peer that is no database: one message, so a connection test does not
        # tell open ports from closed ones. The kind of failure goes to the log.
        server = source.settings.get("host") or source.settings.get("database")
        port = source.settings.get("port")
        server = f"{server}:{port}" if port else server
        log.info("SQL source %s: %s %s could not be reached (%s)", source.name, dialect, server,
                 _unreachable_kind(text, low_code))  # fmt: skip
        return SourceError(
            _l("cannot reach %(where)s, or it did not answer within %(seconds)s s", where=where, seconds=seconds),
            "unreachable",
        )
    if any(w in text for w in _ENDED_WORDS) or low_code in _ENDED_CODES:
        return SourceError(
            _l("%(where)s ended the connection (a restart or an administrator); try again", where=where), "unreachable"
        )
    if any(w in text for w in _TIMEOUT_WORDS) or low_code in _TIMEOUT_CODES:
        return SourceError(_l("the query took longer than %(seconds)s s and was cancelled", seconds=seconds), "timeout")
    if any(w in text for w in _UNREACHABLE_WORDS["network"]):
        return SourceError(_l("cannot reach %(where)s: the network connection failed", where=where), "unreachable")
    if any(w in text for w in _MISSING_WORDS) or low_code in _MISSING_CODES:
        return SourceError(
            _l("the table, view or a column of this section is not found at %(where)s", where=where), "config"
        )
    if low_code.startswith("22") or "invalid input syntax" in text:
        return SourceError(_l("an input value does not fit the column's type at the source"), "config")
    if code:
        return SourceError(_l("%(where)s reported an error (%(code)s)", where=where, code=code), "bad_response")
    return SourceError(_l("%(where)s reported an error", where=where), "bad_response")
