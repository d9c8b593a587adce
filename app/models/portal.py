"""The citizens' and businesses' portal: "I don't recognise this" flags on the
query log entries a person sees in "who read my data"."""

import datetime

from flask_appbuilder import Model
from sqlalchemy import Column, DateTime, ForeignKey, Integer, String, UniqueConstraint
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
