"""The citizens' and businesses' portal: "I don't recognise this" flags on the
query log entries a person sees in "who read my data"."""

import datetime

from flask_appbuilder import Model
from sqlalchemy import Column, DateTime, ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import relationship

from app.lib.fieldcrypt import EncryptedText
from app.models.org import PlatformUser
from app.models.queries import QueryLog


class AccessFlag(Model):
    """A person does not recognise a query of their data: a review for the querying
    agency's Auditor, answered within ACCESS_FLAG_ANSWER_DAYS; the answer is shown to
    the person. One flag per person and query log entry."""

    __tablename__ = "access_flag"
    __table_args__ = (UniqueConstraint("query_log_id", "user_id", name="uq_access_flag_log_user"),)

    id = Column(Integer, primary_key=True)
    query_log_id = Column(Integer, ForeignKey("query_log.id", ondelete="CASCADE"), nullable=False)
    query_log = relationship(QueryLog)
    user_id = Column(Integer, ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False, index=True)
    user = relationship(PlatformUser, foreign_keys=[user_id])
    agency_code = Column(String(20), nullable=False, index=True)  # the querying agency
    note = Column(EncryptedText)  # the person's words
    created_at = Column(DateTime, nullable=False, default=datetime.datetime.utcnow)
    due_at = Column(DateTime, nullable=False)
    answer = Column(EncryptedText)
    answered_at = Column(DateTime)
    answered_by = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))


class ApplicationDraft(Model):
    """An online application filled in on the portal, waiting for the card's signature:
    what the person typed (encrypted: it holds their ID number and addresses) and the
    files, for CERT_CHALLENGE-like minutes. Spent (deleted) when the case is registered."""

    __tablename__ = "application_draft"

    id = Column(Integer, primary_key=True)
    user_id = Column(Integer, ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False, index=True)
    category_id = Column(Integer, ForeignKey("notification_category.id", ondelete="CASCADE"), nullable=False)
    body = Column(EncryptedText, nullable=False)  # JSON: fields, contact, id number, time
    created_at = Column(DateTime, nullable=False, default=datetime.datetime.utcnow)
    expires_at = Column(DateTime, nullable=False, index=True)
    files = relationship("ApplicationDraftFile", cascade="all, delete-orphan", order_by="ApplicationDraftFile.id")


class ApplicationDraftFile(Model):
    __tablename__ = "application_draft_file"

    id = Column(Integer, primary_key=True)
    draft_id = Column(Integer, ForeignKey("application_draft.id", ondelete="CASCADE"), nullable=False, index=True)
    slot = Column(String(40), nullable=False)
    filename = Column(String(200), nullable=False)
    data = Column(LargeBinary, nullable=False)
