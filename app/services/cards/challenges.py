"""One-time challenges: the nonce a card signs to sign in (or to bind a card).

A challenge is short-lived (CERT_CHALLENGE_SECONDS) and spent once: the
browser's cookie session (or the API client) holds its random id, the
database the SHA-256 of the id and the nonce. Spending is one conditional
UPDATE, so two requests racing with the same challenge cannot both win."""

from __future__ import annotations

import datetime
import hashlib
import secrets

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, select, update

from app.models.cards import CardChallenge
from app.services.command import transaction

UNKNOWN = _l("This sign-in challenge is unknown: reload the page (or ask for a new challenge) and sign again.")
REPLAYED = _l("This sign-in challenge was already used: reload the page (or ask for a new challenge) and sign again.")
EXPIRED = _l("This sign-in challenge has expired: reload the page (or ask for a new challenge) and sign again.")


class ChallengeRefused(Exception):
    """The challenge cannot be used; ``reason`` is a code, ``message`` says why in the user's language."""

    def __init__(self, reason: str, message):
        super().__init__(reason)
        self.reason = reason
        self.message = message


def _now() -> datetime.datetime:
    return datetime.datetime.utcnow()


def key_hash(challenge_id: str) -> str:
    return hashlib.sha256((challenge_id or "").encode()).hexdigest()


def lifetime() -> datetime.timedelta:
    return datetime.timedelta(seconds=float(current_app.config["CERT_CHALLENGE_SECONDS"]))


def issue(session, purpose: str = "signin", user_id: int | None = None) -> tuple[str, str, datetime.datetime]:
    """A new challenge: (its id, for the caller only; the nonce to sign; when it expires)."""
    challenge_id, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = _now()
    expires = now + lifetime()
    with transaction(session):
        # Challenges a day past their expiry are of no use to anyone.
        session.execute(delete(CardChallenge).where(CardChallenge.expires_at < now - datetime.timedelta(days=1)))
        session.add(
            CardChallenge(
                key_hash=key_hash(challenge_id), nonce=nonce, purpose=purpose, state="open", user_id=user_id,
                created_at=now, expires_at=expires,
            )
        )  # fmt: skip
    return challenge_id, nonce, expires


def spend(session, challenge_id: str | None, purpose: str = "signin", user_id: int | None = None) -> str:
    """Spend the challenge (once) and return its nonce; ChallengeRefused when it is
    unknown (or of another purpose or user), already spent, or expired."""
    if not isinstance(challenge_id, str) or not challenge_id or len(challenge_id) > 200:
        raise ChallengeRefused("unknown_challenge", UNKNOWN)
    digest = key_hash(challenge_id)
    with transaction(session):
        row = session.execute(
            select(CardChallenge.id, CardChallenge.nonce, CardChallenge.purpose, CardChallenge.user_id,
                   CardChallenge.expires_at).where(CardChallenge.key_hash == digest)
        ).first()  # fmt: skip
        if row is None or row.purpose != purpose or (purpose == "bind" and row.user_id != user_id):
            raise ChallengeRefused("unknown_challenge", UNKNOWN)
        spent = session.execute(
            update(CardChallenge)
            .where(CardChallenge.id == row.id, CardChallenge.state == "open")
            .values(state="spent")
            .execution_options(synchronize_session=False)
        ).rowcount
    if spent != 1:
        raise ChallengeRefused("replayed_challenge", REPLAYED)
    if row.expires_at <= _now():
        raise ChallengeRefused("expired_challenge", EXPIRED)
    return row.nonce


def hold_pending(session, certificate: bytes) -> tuple[str, datetime.datetime]:
    """A citizen's card verified on a first sign-in, waiting for the full ID number:
    a new one-time ticket (its id for the cookie or the client) holding the certificate."""
    ticket, now = secrets.token_urlsafe(32), _now()
    expires = now + datetime.timedelta(seconds=float(current_app.config["CERT_REGISTRATION_SECONDS"]))
    with transaction(session):
        session.add(
            CardChallenge(
                key_hash=key_hash(ticket), nonce="-", purpose="register", state="pending", certificate=certificate,
                created_at=now, expires_at=expires,
            )
        )  # fmt: skip
    return ticket, expires


def take_pending(session, ticket: str | None) -> bytes:
    """The certificate of a pending first sign-in, once (ChallengeRefused otherwise)."""
    if not isinstance(ticket, str) or not ticket or len(ticket) > 200:
        raise ChallengeRefused("unknown_challenge", UNKNOWN)
    digest = key_hash(ticket)
    with transaction(session):
        row = session.execute(
            select(CardChallenge.id, CardChallenge.certificate, CardChallenge.expires_at).where(
                CardChallenge.key_hash == digest, CardChallenge.purpose == "register"
            )
        ).first()
        if row is None:
            raise ChallengeRefused("unknown_challenge", UNKNOWN)
        taken = session.execute(
            update(CardChallenge)
            .where(CardChallenge.id == row.id, CardChallenge.state == "pending")
            .values(state="done")
            .execution_options(synchronize_session=False)
        ).rowcount
    if taken != 1:
        raise ChallengeRefused("replayed_challenge", REPLAYED)
    if row.expires_at <= _now():
        raise ChallengeRefused("expired_challenge", EXPIRED)
    return bytes(row.certificate)
