"""Sessions and tokens signed in with a card are rechecked: at most every
CERT_RECHECK_MINUTES the card's certificate goes through certauth's checks
again (validity, path, revocation by OCSP or CRL); a card no longer good ends
the session (audited ``card_recheck`` refused). Fail closed: a card whose
revocation cannot be checked ends it too."""

from __future__ import annotations

import datetime

from flask import current_app
from sqlalchemy import select, update

from app.models.cards import CardBinding
from app.models.org import UserSession
from app.services import audit, certauth
from app.services.actors import SYSTEM
from app.services.command import transaction
from app.services.sessions import session_hash


def _now() -> datetime.datetime:
    return datetime.datetime.utcnow()


def interval() -> datetime.timedelta:
    return datetime.timedelta(minutes=float(current_app.config["CERT_RECHECK_MINUTES"]))


def _card_still_good(session, binding: CardBinding | None, user_id) -> bool:
    if binding is None:  # unbound meanwhile
        return False
    try:
        certauth.check_certificate(bytes(binding.certificate))
    except certauth.CardRefused as exc:
        with transaction(session):
            audit.record(session, "card_recheck", object_type="User", object_id=user_id, outcome="refused",
                         detail={"reason": exc.reason, "binding": binding.id, "serial": binding.serial},
                         actor=SYSTEM)  # fmt: skip
        return False
    return True


def session_holds(session, sid: str | None) -> bool:
    """Whether a browser session (already found to hold) may go on: one signed in with a
    card is rechecked when its last check is older than CERT_RECHECK_MINUTES."""
    if not sid:
        return True
    row = session.execute(
        select(UserSession.id, UserSession.user_id, UserSession.card_binding_id, UserSession.card_checked_at,
               UserSession.ended_at).where(UserSession.sid_hash == session_hash(sid))
    ).first()  # fmt: skip
    if row is None or row.card_checked_at is None:
        return True  # a password session
    now = _now()
    if now - row.card_checked_at < interval():
        return True
    if session.new or session.dirty or session.deleted:
        return True  # a view has begun its own work: the next request rechecks
    binding = session.get(CardBinding, row.card_binding_id) if row.card_binding_id else None
    good = _card_still_good(session, binding, row.user_id)
    with transaction(session):
        values = {"card_checked_at": now} if good else {"ended_at": now, "end_reason": "card_refused"}
        session.execute(update(UserSession).where(UserSession.id == row.id).values(**values))
    return good


def token_card_good(session, binding_id, user_id) -> bool:
    """A refresh of an API token signed in with a card (access tokens live no longer than the recheck)."""
    binding = session.get(CardBinding, int(binding_id)) if str(binding_id).isdigit() else None
    if binding is not None and str(binding.user_id) != str(user_id):
        binding = None
    return _card_still_good(session, binding, user_id)
