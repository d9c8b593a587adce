"""Cards bound to accounts: one card opens one account; an account may hold
several cards (a renewed card, a second card). Binding and unbinding are
audited; a refusal is audited too and leaves nothing half-bound."""

from __future__ import annotations

import datetime
import unicodedata

from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select, update

from app.lib import identifiers
from app.models.cards import CardBinding
from app.models.org import PlatformUser, UserSession
from app.services import audit
from app.services.actors import MANAGE_ACCOUNTS
from app.services.command import refuse, transaction
from app.services.errors import Conflict, Forbidden, InvalidInput, NotFound

NOT_ALLOWED = _l("You may not bind or unbind certificate cards of this account.")
NO_SUCH_USER = _l("No such user.")
NO_SUCH_BINDING = _l("No such card binding.")
ALREADY_BOUND = _l("This certificate card is already bound to another account; nothing was bound.")
ALREADY_YOURS = _l("This certificate card is already bound to this account.")
STAFF_NEEDS_GOVERNMENT = _l(
    "Only a government certificate card (GCA) can be bound to a staff account; nothing was bound."
)
NOT_YOUR_CARD = _l(
    "This card is made out to another name than the account's: only an administrator can bind it; nothing was bound."
)
BAD_BUSINESS_NUMBER = _l("The business number on this business certificate fails its checksum; nothing was bound.")


def _plain(name: str | None) -> str:
    """A name as compared: NFKC, no spaces, no case."""
    return "".join(unicodedata.normalize("NFKC", name or "").split()).casefold()


def _now() -> datetime.datetime:
    return datetime.datetime.utcnow()


def _naive(value: datetime.datetime) -> datetime.datetime:
    return value.astimezone(datetime.UTC).replace(tzinfo=None) if value.tzinfo else value


UNREADABLE = _l("The file is not a certificate (PEM or DER); nothing was bound.")


def certificate_der(data: bytes) -> bytes:
    """An uploaded certificate, PEM or DER, as DER (InvalidInput when it is neither)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
        return x509.load_der_x509_certificate(data).public_bytes(Encoding.DER)
    except ValueError:
        raise InvalidInput(UNREADABLE) from None


def find(session, card) -> CardBinding | None:
    """The binding of this card (by fingerprint, or by issuer and serial)."""
    return session.scalar(
        select(CardBinding).where(
            or_(CardBinding.fingerprint == card.fingerprint,
                (CardBinding.issuer == card.issuer) & (CardBinding.serial == card.serial))
        )
    )  # fmt: skip


def of_user(session, user_id: int) -> list[CardBinding]:
    return list(session.scalars(select(CardBinding).where(CardBinding.user_id == user_id).order_by(CardBinding.id)))


def new_binding(card, user_id: int, by: int | None, subject_hash: str | None = None) -> CardBinding:
    return CardBinding(
        user_id=user_id,
        kind=card.kind,
        fingerprint=card.fingerprint,
        issuer=card.issuer[:500],
        serial=card.serial,
        subject_hash=subject_hash,
        business_no=card.business_no if card.kind == "business" else None,
        org_oid=card.org_oid if card.kind in ("government", "organisation") else None,
        not_after=_naive(card.not_after),
        certificate=card.der,
        created_at=_now(),
        created_by=by,
    )


def _detail(card, via: str) -> dict:
    """What the audit trail keeps of a card: kind, issuer's serial and fingerprint; no name or ID number."""
    return {"via": via, "kind": card.kind, "serial": card.serial, "fingerprint": card.fingerprint[:16]}


def check_business_number(card) -> None:
    if card.kind == "business" and not identifiers.is_business_number(card.business_no or ""):
        raise InvalidInput(BAD_BUSINESS_NUMBER)


def bind(session, actor, user_id: int, card, via: str) -> CardBinding:
    """Bind a verified card to a staff account: an administrator (``via`` "admin",
    a certificate checked by certauth) or the account's own user after a password
    sign-in (``via`` "self", the card proved by signing a challenge).

    Raises Forbidden, NotFound, InvalidInput or Conflict, each audited (``card_bind`` refused)."""
    own = actor.user_id is not None and actor.user_id == user_id
    try:
        if not (own if via == "self" else actor.can(MANAGE_ACCOUNTS)):
            raise Forbidden(NOT_ALLOWED)
        user = session.get(PlatformUser, user_id)
        if user is None:
            raise NotFound(NO_SUCH_USER)
        if card.kind != "government":
            raise InvalidInput(STAFF_NEEDS_GOVERNMENT)
        existing = find(session, card)
        if existing is not None:
            raise Conflict(ALREADY_YOURS if existing.user_id == user_id else ALREADY_BOUND)
        if via == "self" and _plain(card.holder) != _plain(user.get_full_name()):
            raise Forbidden(NOT_YOUR_CARD)
        with transaction(session):
            binding = new_binding(card, user_id, actor.user_id)
            session.add(binding)
            session.flush()
            audit.record(session, "card_bind", object_type="User", object_id=user_id,
                         detail={**_detail(card, via), "binding": binding.id}, actor=actor)  # fmt: skip
        return binding
    except (Forbidden, NotFound, InvalidInput, Conflict) as exc:
        raise refuse(session, exc, actor, "card_bind", object_type="User", object_id=user_id,
                     detail=_detail(card, via)) from None  # fmt: skip


def unbind(session, actor, binding_id: int) -> None:
    """Take a card off its account (an administrator, or the account's own user):
    the sessions signed in with it end at once; audited ``card_unbind``."""
    binding = session.get(CardBinding, binding_id)
    if binding is None:
        raise NotFound(NO_SUCH_BINDING)
    if not (actor.can(MANAGE_ACCOUNTS) or (actor.user_id is not None and actor.user_id == binding.user_id)):
        raise refuse(session, Forbidden(NOT_ALLOWED), actor, "card_unbind", object_type="User",
                     object_id=binding.user_id, detail={"binding": binding_id})  # fmt: skip
    with transaction(session):
        session.execute(
            update(UserSession)
            .where(UserSession.card_binding_id == binding.id, UserSession.ended_at.is_(None))
            .values(ended_at=_now(), end_reason="card_unbound")
        )
        detail = {"binding": binding.id, "kind": binding.kind, "serial": binding.serial,
                  "fingerprint": binding.fingerprint[:16]}  # fmt: skip
        user_id = binding.user_id
        session.delete(binding)
        audit.record(session, "card_unbind", object_type="User", object_id=user_id, detail=detail, actor=actor)
