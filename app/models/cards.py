"""Sign-in with certificate cards: the card bound to an account, and the
one-time challenges (nonces) a card signs."""

from flask_appbuilder import Model
from sqlalchemy import Column, DateTime, ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import relationship

from app.models.org import PlatformUser

CARD_KINDS = ("citizen", "business", "government", "organisation")


class CardBinding(Model):
    """One card certificate bound to one account (a card opens one account only).

    The card is known by its certificate's SHA-256 fingerprint and by issuer and
    serial; a citizen's by the keyed hash of the full ID number given at the first
    sign-in (never the number itself), a business's by its business number, an
    organisation's or agency's by its OID. The certificate (public) is kept for
    the periodic recheck of sessions signed in with it."""

    __tablename__ = "card_binding"
    __table_args__ = (UniqueConstraint("issuer", "serial", name="uq_card_binding_issuer_serial"),)

    id = Column(Integer, primary_key=True)
    user_id = Column(Integer, ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False, index=True)
    user = relationship(PlatformUser, foreign_keys=[user_id])
    kind = Column(String(20), nullable=False)
    fingerprint = Column(String(64), nullable=False, unique=True)
    issuer = Column(String(500), nullable=False)
    serial = Column(String(64), nullable=False)
    subject_hash = Column(String(64), index=True)  # citizens: keyed hash of the full ID number
    business_no = Column(String(8), index=True)
    org_oid = Column(String(100), index=True)
    not_after = Column(DateTime, nullable=False)
    certificate = Column(LargeBinary, nullable=False)  # DER
    created_at = Column(DateTime, nullable=False)
    created_by = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))


class CardChallenge(Model):
    """A nonce handed to a sign-in page or API client: short-lived and spent once.

    ``key_hash`` is the SHA-256 of the challenge id (the browser's cookie session
    or the API client holds the id itself). After a citizen's card was verified
    on a first sign-in, the same row carries the card (``certificate``) until the
    ID number is given (``state`` = "pending"), once."""

    __tablename__ = "card_challenge"

    id = Column(Integer, primary_key=True)
    key_hash = Column(String(64), nullable=False, unique=True)
    nonce = Column(String(64), nullable=False)
    purpose = Column(String(20), nullable=False)  # signin | bind
    state = Column(String(20), nullable=False)  # open | spent | pending | done
    user_id = Column(Integer, ForeignKey("ab_user.id", ondelete="CASCADE"))  # bind: who binds
    certificate = Column(LargeBinary)
    created_at = Column(DateTime, nullable=False)
    expires_at = Column(DateTime, nullable=False, index=True)
