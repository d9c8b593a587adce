"""Why a card was refused: a reason code for programs and audit, a message in the user's language."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from app.services.errors import DomainError

MESSAGES = {
    "malformed": _l("This is not a PKCS#7 signature the platform can read."),
    "no_certificate": _l(
        "The signature carries no certificate, so the platform cannot tell whose card made it. "
        "Sign again with the card's signing certificate."
    ),
    "wrong_content": _l("The signature is over other content than the sign-in challenge the platform issued."),
    "bad_signature": _l(
        "The signature does not verify: it was not made with the key of the certificate it carries, "
        "or it was altered on the way."
    ),
    "untrusted": _l("The card's certificate was not issued by a certificate authority the platform trusts."),
    "expired": _l("The card's certificate has expired."),
    "not_yet_valid": _l("The card's certificate is not valid yet."),
    "wrong_usage": _l(
        "This certificate is not for signing in (it is the card's encryption certificate). "
        "Choose the card's signing certificate."
    ),
    "revoked": _l("The card's certificate has been revoked by its certificate authority."),
    "revocation_unknown": _l(
        "Whether the card has been revoked could not be checked: neither the OCSP responder (%(ocsp)s) "
        "nor the certificate revocation list (%(crl)s) answered. Sign-in with a card is refused until one "
        "of them can be reached; please try again later."
    ),
}
# The same reasons about the CA that issued the card (its issuer's authority revocation list).
MESSAGES_CA = {
    "revoked": _l("The certificate authority that issued the card has been revoked."),
    "revocation_unknown": _l(
        "Whether the certificate authority that issued the card has been revoked could not be checked: its "
        "revocation list (%(crl)s) could not be read. Sign-in with a card is refused until it can; please try "
        "again later."
    ),
}
# Reasons that are about the platform's reach, not about the card.
UNAVAILABLE = frozenset({"revocation_unknown"})


class CardRefused(DomainError):
    """A card certificate or its signature was refused; ``reason`` is one of MESSAGES' keys."""

    status = 403

    def __init__(self, reason: str, message=None, **params):
        super().__init__(message if message is not None else MESSAGES[reason], **params)
        self.reason = reason
        if reason in UNAVAILABLE:
            self.status = 503
