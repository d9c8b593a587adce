"""The commands of the sources' administration.

Each takes the session, the actor and the DataSource (as the screen's form or
the API's schema filled it), checks it, and commits or rolls back whole. The
create, update and delete events are written by the audit session hooks in
the same transaction; the connection test records its own (``source_test``)
with the health it wrote on the source. Messages never hold the secret.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.connectors import Entity, SourceError, connector_for
from app.models.queries import FormSection, QueryForm
from app.models.sources import DataSource
from app.services import audit
from app.services.actors import Actor
from app.services.command import refuse, transaction
from app.services.errors import Conflict, InvalidInput
from app.services.sources.settings import (
    OutsideConfinement,
    check_confinement,
    keep_stored_secret,
    source_config,
    validate_source,
)

IN_USE = _l("This data source is read by query forms (%(forms)s): take it out of their sections before deleting it.")


@dataclass(frozen=True)
class ConnectionTest:
    """What a connection test found: success, latency (ms, on success) and the reason in plain words."""

    ok: bool
    latency_ms: float | None
    message: str


def confined(session, actor: Actor, src: DataSource) -> None:
    """A source outside the operators' confinement is refused, and the attempt
    audited (a security event: who, which source, which rule), nothing saved."""
    try:
        check_confinement(src)
    except OutsideConfinement as exc:
        detail = {"source": src.code, "kind": src.kind, "field": exc.field, "rule": exc.rule}
        raise refuse(session, exc, actor, "source_refused", object_type="DataSource", object_id=src.id,
                     detail=detail) from None  # fmt: skip


def create_source(session, actor: Actor, src: DataSource) -> DataSource:
    with transaction(session):
        validate_source(session, src)
        confined(session, actor, src)
        session.add(src)
        session.flush()
    return src


def update_source(session, actor: Actor, src: DataSource) -> DataSource:
    """An empty secret keeps the stored one (the screen never shows it, the API never returns it)."""
    with transaction(session):
        keep_stored_secret(src)
        validate_source(session, src)
        confined(session, actor, src)
        session.add(src)
        session.flush()
    return src


def delete_source(session, actor: Actor, src: DataSource) -> None:
    """Raises Conflict, deleting nothing, while query forms read from the source
    (their sections would be left reading nothing)."""
    with transaction(session):
        forms = session.scalars(
            select(QueryForm.code).join(FormSection).where(FormSection.source_id == src.id).distinct()
        ).all()
        if forms:
            raise Conflict(IN_USE, forms="、".join(sorted(forms)))
        session.delete(src)
        session.flush()


def test_connection(session, actor: Actor, src: DataSource) -> ConnectionTest:
    """Try the source; record its health on it and in the audit trail, in one
    transaction. A failure records no duration: how long it took would tell a
    closed port (at once) from a silent one (the timeout)."""
    try:
        latency = connector_for(source_config(src)).test()
        ok, ms, message = True, round(latency * 1000, 1), ""
    except SourceError as exc:
        ok, ms, message = False, None, str(exc.message)
    except InvalidInput as exc:
        ok, ms, message = False, None, str(exc)
    except Exception as exc:  # a bug in a connector must not take the screen down
        ok, ms, message = False, None, f"{type(exc).__name__}"
    if src.secret and src.secret in message:
        message = message.replace(src.secret, "***")
    with transaction(session):
        src.last_checked_at = datetime.datetime.utcnow()
        src.last_ok = ok
        src.last_latency_ms = ms
        src.last_error = message[:500] or None
        audit.record(
            session,
            "source_test",
            object_type="DataSource",
            object_id=src.id,
            outcome="ok" if ok else "error",
            detail={"source": src.code},
            actor=actor,
        )
    return ConnectionTest(ok=ok, latency_ms=ms, message=message)


@dataclass(frozen=True)
class SourceDescription:
    """What a source offers, or why it could not say (plain words, never the secret)."""

    ok: bool
    entities: tuple[Entity, ...] = ()
    message: str = ""


def describe_source(src: DataSource) -> SourceDescription:
    """What the source offers the form designer (``Connector.describe``): its
    tables, views, file, resources or transactions and their columns. A read:
    it changes nothing and records nothing."""
    try:
        entities = connector_for(source_config(src)).describe()
    except (SourceError, InvalidInput) as exc:
        message = str(exc.message) if isinstance(exc, SourceError) else str(exc)
        if src.secret and src.secret in message:
            message = message.replace(src.secret, "***")
        return SourceDescription(ok=False, message=message)
    return SourceDescription(ok=True, entities=tuple(entities))
