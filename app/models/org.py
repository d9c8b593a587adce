"""Organisation: agencies and the platform's users."""

from flask_appbuilder import Model
from flask_appbuilder.security.sqla.models import User
from flask_babel import lazy_gettext as _l
from sqlalchemy import Boolean, Column, DateTime, ForeignKey, Integer, String, false, text
from sqlalchemy.orm import relationship

AGENCY_KINDS = {
    "household": _l("Household office"),
    "land": _l("Land office"),
    "tax": _l("Tax bureau"),
    "social": _l("Social affairs"),
    "fire": _l("Fire department"),
    "labour": _l("Labour bureau"),
    "motor": _l("Motor vehicle office"),
    "township": _l("Township office"),
    "county": _l("County government"),
    "other": _l("Other"),
}


class Agency(Model):
    __tablename__ = "agency"

    id = Column(Integer, primary_key=True)
    code = Column(String(20), unique=True, nullable=False)
    name = Column(String(100), unique=True, nullable=False)
    kind = Column(String(20), nullable=False, default="other")
    email = Column(String(320))
    active = Column(Boolean, nullable=False, default=True)

    def __repr__(self) -> str:
        return self.name

    @property
    def kind_label(self) -> str:
        return str(AGENCY_KINDS.get(self.kind, self.kind))


class PlatformUser(User):
    """FAB's user with the agency they work for, their title and phone."""

    __tablename__ = "ab_user"

    agency_id = Column(Integer, ForeignKey("agency.id"), nullable=True)
    agency = relationship(Agency, foreign_keys=[agency_id])
    title = Column(String(64))
    phone = Column(String(32))
    # Bumped when the password changes, the account is deactivated or loses a
    # role: every session and token made under an older value is refused.
    credential_epoch = Column(Integer, nullable=False, default=0, server_default=text("0"))
    # This account signs in with its bound certificate card plus its password
    # (its roles may require it too: app.services.cardsignin).
    card_required = Column(Boolean, nullable=False, default=False, server_default=false())
    # When the account was warned that it will be disabled for lack of use
    # (app.services.account_review); a sign-in after it cancels the warning.
    dormant_warned_at = Column(DateTime)

    def get_full_name(self) -> str:
        """Chinese names read family name first, with no space: 林資訊."""
        first, last = self.first_name or "", self.last_name or ""
        if any("\u4e00" <= ch <= "\u9fff" for ch in first + last):
            return f"{last}{first}"
        return f"{first} {last}".strip()


class UserSession(Model):
    """A signed-in browser: the cookie holds a random id, the server its SHA-256
    and whether it still holds (logout, idle time, absolute lifetime, epoch)."""

    __tablename__ = "user_session"

    id = Column(Integer, primary_key=True)
    sid_hash = Column(String(64), nullable=False, unique=True)
    user_id = Column(Integer, ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False, index=True)
    epoch = Column(Integer, nullable=False)
    created_at = Column(DateTime, nullable=False)
    last_seen_at = Column(DateTime, nullable=False)
    ended_at = Column(DateTime)
    end_reason = Column(String(20))
    # Signed in with a certificate card: the card, rechecked every CERT_RECHECK_MINUTES.
    card_binding_id = Column(Integer, ForeignKey("card_binding.id", ondelete="SET NULL"), index=True)
    card_checked_at = Column(DateTime)


class SpentToken(Model):
    """A refresh token that was used (rotated): presented again, it is refused."""

    __tablename__ = "spent_token"

    jti = Column(String(64), primary_key=True)
    user_id = Column(Integer, ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False, index=True)
    expires_at = Column(DateTime, nullable=False, index=True)


class LoginThrottle(Model):
    """Failed sign-ins per account name or client address (keyed digests, never
    what was typed), when no Redis is configured for them."""

    __tablename__ = "login_throttle"

    key = Column(String(80), primary_key=True)
    failures = Column(Integer, nullable=False, default=0)
    last_failure_at = Column(DateTime, nullable=False)
    locked_until = Column(DateTime)
