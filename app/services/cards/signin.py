"""Sign-in with a certificate card: the challenge signed by the card (or the
certificate a trusted proxy verified), checked by ``app.services.certauth``,
then mapped to an account.

* a bound card opens its account (staff: government cards bound by an Admin
  or by the staff member after a password sign-in);
* a citizen's MOICA card, the first time, opens nothing until the full ID
  number is given: checksum, the card's last 4 digits and the holder's name
  must match; the account is then made (role Citizen) and the card bound with
  the keyed hash of the ID number (never the number itself);
* a MOEACA card maps to its business number (checksummed), an XCA card to its
  organisation: the account (role Business) is made on the first sign-in;
* an account that requires card plus password (its own setting, or a role
  holding REQUIRE_CARD) and every staff card sign-in take the password too.

Every sign-in and every refusal is audited (``login`` / ``login_failed`` with
``method: card``); a refusal leaves nothing half-bound.
"""

from __future__ import annotations

import datetime
import secrets
import unicodedata
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from werkzeug.security import check_password_hash

from app.lib import identifiers
from app.models.cards import CardBinding
from app.models.org import PlatformUser
from app.services import actors, audit, certauth, signin
from app.services.cards import bindings, challenges
from app.services.command import transaction
from app.services.errors import DomainError, InvalidInput, TooManyAttempts
from app.services.query.record import subject_hash
from app.services.roles import REQUIRE_CARD

CITIZEN_ROLE = "Citizen"
BUSINESS_ROLE = "Business"

NOT_BOUND = _l(
    "This certificate card is not bound to any account. Staff: sign in with your password and bind your card "
    "under 'My certificate card', or ask an administrator to bind it."
)
INACTIVE = _l("The account of this certificate card is not active.")
PASSWORD_NEEDED = _l("This account signs in with its certificate card and its password: enter the password too.")
WRONG_PASSWORD = _l("The certificate card was accepted, but the password is wrong.")
CARD_NEEDED = _l(
    "This account must sign in with its certificate card plus its password: use 'Sign in with a certificate card'."
)
BAD_ID = _l("The ID number is not valid (check its letters and digits).")
ID_MISMATCH = _l("The ID number or the name does not match this card; nothing was bound.")
ID_OTHER_CARD_KIND = _l("Only a citizen certificate (MOICA) is registered with an ID number.")
NO_CLIENT_CERT = _l(
    "No verified client certificate came with this request: sign in on the certificate card page "
    "through the address your agency gave for card sign-in."
)
NO_ROLE = _l("The platform has no %(role)s role yet: ask an administrator to run 'flask roles sync'.")


class SignInRefused(DomainError):
    """A card sign-in refused; ``reason`` is the code the audit trail records."""

    status = 401

    def __init__(self, message, reason: str = "refused", **params):
        super().__init__(message, **params)
        self.reason = reason


class CardRequired(DomainError):
    """A password sign-in of an account that must use its card too."""

    status = 403


@dataclass(frozen=True)
class SignedIn:
    user_id: int
    binding_id: int
    kind: str
    created: bool = False  # the account was made by this (first) sign-in


@dataclass(frozen=True)
class NeedsIdNumber:
    """A citizen's first sign-in: the card is verified; give the full ID number with this ticket."""

    ticket: str
    expires: datetime.datetime


def _now() -> datetime.datetime:
    return datetime.datetime.utcnow()


def _card_detail(card) -> dict:
    return {"kind": card.kind, "serial": card.serial, "fingerprint": card.fingerprint[:16]}


def _refused(session, actor, reason: str, message, user_id=None, detail=None, error=SignInRefused, **params):
    """Roll back what was begun, audit the refusal (``login_failed``, method card), return the error to raise."""
    session.rollback()
    with transaction(session):
        audit.record(session, "login_failed", object_type="User", object_id=user_id, outcome="refused",
                     detail={"method": "card", "reason": reason, **(detail or {})}, actor=actor)  # fmt: skip
    exc = error(message, **params)
    exc.reason = reason
    return exc


def _audited(session, actor, exc, user_id=None):
    """certauth's refusal (its reason, message and status: 503 when revocation could not be checked), audited."""
    _refused(session, actor, exc.reason, exc.message, user_id=user_id)
    return exc


def verify(session, actor, challenge_id, signature: bytes, purpose: str = "signin", user_id: int | None = None):
    """Spend the challenge and verify the card's signature over its nonce: the Card, or SignInRefused (audited)."""
    try:
        nonce = challenges.spend(session, challenge_id, purpose, user_id)
    except challenges.ChallengeRefused as exc:
        raise _refused(session, actor, exc.reason, exc.message, user_id=user_id) from None
    if not signature:
        raise _refused(session, actor, "no_signature", certauth_message("no_signature"), user_id=user_id)
    try:
        return certauth.verify_signature(signature, nonce.encode())
    except certauth.CardRefused as exc:
        raise _audited(session, actor, exc, user_id) from None


def certauth_message(reason: str):
    return {"no_signature": _l("No signature was sent: sign the challenge with your card first.")}[reason]


def check(session, actor, certificate: bytes, user_id: int | None = None):
    """A certificate without a signature (verified by a trusted proxy, or registered by an
    administrator): certauth's checks; the Card, or SignInRefused (audited)."""
    try:
        return certauth.check_certificate(certificate)
    except certauth.CardRefused as exc:
        raise _audited(session, actor, exc, user_id) from None


def requires_card(session, user) -> bool:
    """Whether the account signs in only with card plus password (its own setting or one of its roles')."""
    if getattr(user, "card_required", False):
        return True
    role_ids = {r.id for r in user.roles or []}
    for group in getattr(user, "groups", None) or []:
        role_ids |= {r.id for r in group.roles or []}
    return REQUIRE_CARD in actors.capabilities_of(session, role_ids)


def sign_in(session, actor, challenge_id, signature: bytes, password: str | None = None,
            id_number: str | None = None, name: str | None = None, via: str = "signature"):  # fmt: skip
    """The sign-in with a signed challenge: SignedIn, or NeedsIdNumber (a citizen's
    first sign-in without the ID number), or SignInRefused (audited)."""
    card = verify(session, actor, challenge_id, signature)
    return sign_in_card(session, actor, card, password=password, id_number=id_number, name=name, via=via)


def sign_in_certificate(session, actor, certificate: bytes | None, password: str | None = None,
                        id_number: str | None = None, name: str | None = None):  # fmt: skip
    """The sign-in with a client certificate a trusted proxy verified (mTLS); ``None``: none came
    (no proxy, an untrusted sender, or the proxy verified none)."""
    if not certificate:
        raise _refused(session, actor, "no_client_certificate", NO_CLIENT_CERT, detail={"via": "mtls"})
    card = check(session, actor, certificate)
    return sign_in_card(session, actor, card, password=password, id_number=id_number, name=name, via="mtls")


def register(session, actor, ticket: str | None, id_number, name, via: str = "signature"):
    """The second step of a citizen's first sign-in: the pending card and the full ID number."""
    try:
        certificate = challenges.take_pending(session, ticket)
    except challenges.ChallengeRefused as exc:
        raise _refused(session, actor, exc.reason, exc.message) from None
    card = check(session, actor, certificate)
    return sign_in_card(session, actor, card, id_number=id_number or "", name=name or "", via=via)


def sign_in_card(session, actor, card, password=None, id_number=None, name=None, via="signature"):
    """Map a verified card to its account and sign it in (see the module's rules)."""
    created = False
    binding = bindings.find(session, card)
    if binding is None:
        if card.kind == "citizen":
            if id_number is None:
                ticket, expires = challenges.hold_pending(session, card.der)
                return NeedsIdNumber(ticket, expires)
            binding, created = _register_citizen(session, actor, card, id_number, name, via)
        elif card.kind in ("business", "organisation"):
            binding, created = _register_entity(session, actor, card, via)
        else:
            raise _refused(session, actor, "not_bound", NOT_BOUND, detail=_card_detail(card))
    elif id_number is not None and card.kind != "citizen":
        raise _refused(session, actor, "not_citizen", ID_OTHER_CARD_KIND, detail=_card_detail(card),
                       error=InvalidInput)  # fmt: skip
    user = session.get(PlatformUser, binding.user_id)
    detail = {**_card_detail(card), "via": via, "binding": binding.id}
    if user is None or not user.active:
        raise _refused(session, actor, "inactive_user", INACTIVE, user_id=binding.user_id, detail=detail)
    if binding.kind == "government" or requires_card(session, user):
        _check_password(session, actor, user, password, detail)
    with transaction(session):
        user.login_count = (user.login_count or 0) + 1
        user.fail_login_count = 0
        user.last_login = datetime.datetime.now()
        audit.record(session, "login", object_type="User", object_id=user.id, detail={"method": "card", **detail},
                     actor=actors.for_user(user, actor.client_ip, session=session))  # fmt: skip
    return SignedIn(user.id, binding.id, binding.kind, created)


def _check_password(session, actor, user, password, detail) -> None:
    """Card plus password: the password under the same failure limits as the password sign-in."""
    keys = [signin.account_key(user.username, user.id), signin.address_key(actor.client_ip)]
    if not password:
        raise _refused(session, actor, "password_needed", PASSWORD_NEEDED, user_id=user.id, detail=detail)
    try:
        signin.check(session, keys, actor, user.id)
    except TooManyAttempts:
        session.rollback()
        raise
    if user.password and check_password_hash(user.password, password):
        signin.clear(session, keys[:1])
        return
    signin.note_failure(session, keys, actor, user.id)
    with transaction(session):
        user.fail_login_count = (user.fail_login_count or 0) + 1
    raise _refused(session, actor, "wrong_password", WRONG_PASSWORD, user_id=user.id, detail=detail)


def _normal_name(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text or "").split()).casefold()


def _register_citizen(session, actor, card, id_number, name, via):
    """The first sign-in of a citizen card: the full ID number (checksum, the card's last 4
    digits) and the holder's name must match; the account is the one of that ID number
    (a renewed card) or a new one."""
    detail = {**_card_detail(card), "via": via, "first": True}
    id_number = (id_number or "").strip().upper() if isinstance(id_number, str) else ""
    if not identifiers.is_person_id(id_number):
        raise _refused(session, actor, "bad_id_number", BAD_ID, detail=detail, error=InvalidInput)
    if id_number[-4:] != (card.id_last4 or "") or _normal_name(name) != _normal_name(card.holder):
        raise _refused(session, actor, "id_mismatch", ID_MISMATCH, detail=detail, error=InvalidInput)
    digest = subject_hash(id_number)
    with transaction(session):
        owner = session.scalar(
            select(CardBinding.user_id).where(CardBinding.subject_hash == digest, CardBinding.kind == "citizen")
        )
        created = owner is None
        if created:
            owner = _new_account(session, actor, f"citizen-{digest[:12]}", card.holder, CITIZEN_ROLE)
        binding = bindings.new_binding(card, owner, None, subject_hash=digest)
        session.add(binding)
        session.flush()
        audit.record(session, "card_bind", object_type="User", object_id=owner,
                     detail={**detail, "binding": binding.id, "account_created": created}, actor=actor)  # fmt: skip
    return binding, created


def _register_entity(session, actor, card, via):
    """The first sign-in of a business (MOEACA, by its business number) or organisation
    (XCA, by its OID) card: the account of that number (a renewed card) or a new one."""
    detail = {**_card_detail(card), "via": via, "first": True}
    if card.kind == "business":
        if not identifiers.is_business_number(card.business_no or ""):
            raise _refused(session, actor, "bad_business_number", bindings.BAD_BUSINESS_NUMBER, detail=detail)
        column, value, username = CardBinding.business_no, card.business_no, f"biz-{card.business_no}"
    else:
        if not card.org_oid:
            raise _refused(session, actor, "no_organisation", NOT_BOUND, detail=detail)
        column, value, username = CardBinding.org_oid, card.org_oid, f"org-{card.org_oid}"[:64]
    with transaction(session):
        owner = session.scalar(select(CardBinding.user_id).where(column == value, CardBinding.kind == card.kind))
        created = owner is None
        if created:
            owner = _new_account(session, actor, username, card.holder, BUSINESS_ROLE)
        binding = bindings.new_binding(card, owner, None)
        session.add(binding)
        session.flush()
        audit.record(session, "card_bind", object_type="User", object_id=owner,
                     detail={**detail, "binding": binding.id, "account_created": created}, actor=actor)  # fmt: skip
    return binding, created


def _new_account(session, actor, username: str, holder: str, role_name: str) -> int:
    """A card holder's own account (in the caller's transaction): no agency, no back office,
    and a password nobody knows (it signs in with its card only)."""
    from flask_appbuilder.security.sqla.models import Role

    from app.services.accounts import hash_password

    role = session.scalar(select(Role).where(Role.name == role_name))
    if role is None:
        raise InvalidInput(NO_ROLE, role=role_name)
    user = PlatformUser(
        username=username, first_name=(holder or username)[:64], last_name="", email=f"{username}@card.invalid",
        active=True, roles=[role], password=hash_password(secrets.token_urlsafe(32)), card_required=False,
    )  # fmt: skip
    session.add(user)
    session.flush()  # audited as created by the session's hook; the card_bind event says by whom
    return user.id
