"""Sign-in with certificate cards (citizen MOICA, business MOEACA, government
GCA, organisation XCA): one-time challenges (``challenges``), cards bound to
accounts (``bindings``), the sign-in and its mapping to accounts (``signin``),
and the periodic recheck of card sessions (``recheck``). The certificate and
signature checks themselves are ``app.services.certauth``."""

from app.services.cards import bindings, challenges, recheck
from app.services.cards.challenges import ChallengeRefused
from app.services.cards.signin import (
    BUSINESS_ROLE,
    CARD_NEEDED,
    CITIZEN_ROLE,
    REQUIRE_CARD,
    CardRequired,
    NeedsIdNumber,
    SignedIn,
    SignInRefused,
    check,
    register,
    requires_card,
    sign_in,
    sign_in_card,
    sign_in_certificate,
    verify,
)

__all__ = [
    "BUSINESS_ROLE", "CARD_NEEDED", "CITIZEN_ROLE", "REQUIRE_CARD", "CardRequired", "ChallengeRefused",
    "NeedsIdNumber", "SignInRefused", "SignedIn", "bindings", "challenges", "check", "recheck", "register",
    "requires_card", "sign_in", "sign_in_card", "sign_in_certificate", "verify",
]  # fmt: skip
