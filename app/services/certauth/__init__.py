"""Certificate cards: checking a card's PKCS#7 sign-in signature and its certificate
(path to the configured roots, validity, key usage, revocation by OCSP with the CRL
as fallback), and what the card says of its holder. See docs/certificates.md."""

from app.services.certauth.card import ISSUER_KINDS, KINDS, Card, directory_attributes, issuer_kind
from app.services.certauth.checks import Settings, check_certificate, verify_signature
from app.services.certauth.refusals import MESSAGES, CardRefused
from app.services.certauth.revocation import clear_cache

REASONS = tuple(MESSAGES)

__all__ = [
    "ISSUER_KINDS",
    "KINDS",
    "MESSAGES",
    "REASONS",
    "Card",
    "CardRefused",
    "Settings",
    "check_certificate",
    "clear_cache",
    "directory_attributes",
    "issuer_kind",
    "verify_signature",
]
