"""The transaction of a command: one place that commits or rolls back.

A command (one business operation) runs its work inside ``transaction`` and
so commits it whole, its audit events and outbox mail included, or rolls it
back whole. Views and APIs never commit. A refused operation that must still
leave a trace (a refused query, a refused download) records the refusal in a
transaction of its own through ``refuse`` and raises the domain error::

    with transaction(session):
        ...
    raise refuse(session, exc, actor, "query", object_type="QueryForm", object_id=code)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from app.services.errors import DomainError


def _begun(session) -> bool:
    """Whether the block left anything to commit: a transaction begun or
    objects to flush. A request's scoped session that was never opened, or a
    session the block did not touch (its writes went through one
    autocommitted statement), has nothing, and committing it would still cost
    a session and a pool round."""
    registry = getattr(session, "registry", None)
    if registry is not None:  # a scoped session: the request's own, if it was opened
        if not registry.has():
            return False
        session = registry()
    return session.in_transaction() or bool(session.new or session.dirty or session.deleted)


@contextmanager
def transaction(session) -> Iterator:
    """Commit what the block did, or roll all of it back and re-raise."""
    try:
        yield session
        if _begun(session):
            session.commit()
    except BaseException:
        session.rollback()
        raise


def command(fn: Callable) -> Callable:
    """Decorate a command ``fn(session, actor, ...)``: it runs in one transaction."""

    @functools.wraps(fn)
    def run(session, *args, **kwargs):
        with transaction(session):
            return fn(session, *args, **kwargs)

    return run


def refuse(
    session,
    error: DomainError,
    actor,
    action: str,
    *,
    object_type: str | None = None,
    object_id=None,
    detail: dict | None = None,
) -> DomainError:
    """Roll back what was begun, record the refusal (audited, committed), return ``error`` to raise."""
    from app.services import audit

    session.rollback()
    with transaction(session):
        audit.record(
            session,
            action,
            object_type=object_type,
            object_id=object_id,
            outcome="refused",
            detail={"reason": str(error.message), **(detail or {})},
            actor=actor,
        )
    return error


def save_record(session, item) -> None:
    """Command: add or change one configuration record from a generic screen
    or API (a notification category, a mail template, a transfer item...).
    The screen validated it first (its ``validator``); the automatic CRUD
    audit event is written by the same flush, so both commit or neither."""
    with transaction(session):
        session.add(item)


def remove_records(session, items) -> None:
    """Command: delete configuration records from a generic screen or API,
    all or none, each with its automatic audit event."""
    with transaction(session):
        for item in items:
            session.delete(item)
