"""Organisation: agencies and the platform's users."""

from flask_appbuilder import Model
from flask_appbuilder.security.sqla.models import User
from flask_babel import lazy_gettext as _l
from sqlalchemy import Boolean, Column, ForeignKey, Integer, String
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

    def get_full_name(self) -> str:
        """Chinese names read family name first, with no space: 林資訊."""
        first, last = self.first_name or "", self.last_name or ""
        if any("\u4e00" <= ch <= "\u9fff" for ch in first + last):
            return f"{last}{first}"
        return f"{first} {last}".strip()
