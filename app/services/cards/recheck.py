"""Sessions and tokens signed in with a card are rechecked: at most every
CERT_RECHECK_MINUTES the card's certificate goes through certauth's checks
again (validity, path, revocation by OCSP or CRL); a card no longer good ends
the session (audited ``card_recheck`` refused). Fail closed: a card whose
revocation cannot be checked ends it too."""

from __future__ import annotations

from app.models.cards import CardBinding
from app.services import audit, certauth
from app.services.actors import SYSTEM
from app.services.command import transaction


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


def card_good(session, binding_id, user_id) -> bool:
    """Whether the card a browser session signed in with is still good (``sessions.holds`` asks
    when the last check is CERT_RECHECK_MINUTES old): refused or unbound, the session ends."""
    binding = session.get(CardBinding, binding_id) if binding_id is not None else None
    return _card_still_good(session, binding, user_id)


def token_card_good(session, binding_id, user_id) -> bool:
    """A refresh of an API token signed in with a card (access tokens live no longer than the recheck)."""
    binding = session.get(CardBinding, int(binding_id)) if str(binding_id).isdigit() else None
    if binding is not None and str(binding.user_id) != str(user_id):
        binding = None
    return _card_still_good(session, binding, user_id)
