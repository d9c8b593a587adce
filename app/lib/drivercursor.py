"""A cursor on a pooled driver connection, without a SQLAlchemy Connection.

For the few hot statements whose driver SQL is compiled once (the query log
write, a source's SELECT): a SQLAlchemy Connection around one statement costs
more than the round trip. The pool is still SQLAlchemy's, so its checkout
checks, connect listeners and connection settings apply as ever. Imports
nothing of the app (the connectors run without it).
"""

from __future__ import annotations

import contextlib


class DriverError(Exception):
    """A driver error (``orig``), and whether it meant the connection was lost."""

    def __init__(self, orig: BaseException, disconnect: bool):
        super().__init__(f"{type(orig).__name__}")
        self.orig = orig
        self.disconnect = disconnect


@contextlib.contextmanager
def driver_cursor(engine, autocommit: bool = False):
    """Yield a driver cursor on a connection checked out of ``engine``'s pool.

    A driver error, a failed checkout included, is raised as ``DriverError``;
    one that means the connection was lost invalidates it and disposes of the
    pool it came from (the same restart or network fault ended the pool's
    other connections: the engine opens fresh ones), the documented reaction
    to a lost database. The cursor is closed and the connection returned, out
    of autocommit.
    """
    dialect = engine.dialect
    dbapi_error = dialect.loaded_dbapi.Error
    pool = engine.pool
    try:
        fairy = engine.raw_connection()
    except dbapi_error as exc:
        raise DriverError(exc, dialect.is_disconnect(exc, None, None)) from exc
    driver = fairy.driver_connection
    cursor = None
    try:
        if autocommit:
            driver.autocommit = True
        cursor = fairy.cursor()
        yield cursor
    except dbapi_error as exc:
        disconnect = dialect.is_disconnect(exc, driver, cursor)
        if disconnect:
            fairy.invalidate(exc)
            if engine.pool is pool:  # not yet replaced by another thread's disposal
                engine.dispose()
        raise DriverError(exc, disconnect) from exc
    finally:
        try:
            if cursor is not None:
                cursor.close()
            if autocommit and fairy.is_valid:
                driver.autocommit = False
        except dbapi_error as exc:  # never hand an autocommitting or broken connection back
            fairy.invalidate(exc)
        fairy.close()
