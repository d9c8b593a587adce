"""The quarterly account review: each agency's supervisor confirms, changes or
disables each staff account and its roles; the review is exported and signed."""

import datetime

from flask_appbuilder import Model
from sqlalchemy import Column, DateTime, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import relationship

from app.models.org import Agency


class AccountReview(Model):
    """One agency's review of one quarter (``period``: 2026Q4)."""

    __tablename__ = "account_review"
    __table_args__ = (UniqueConstraint("agency_id", "period", name="ux_account_review_agency_period"),)

    id = Column(Integer, primary_key=True)
    agency_id = Column(Integer, ForeignKey("agency.id"), nullable=False, index=True)
    agency = relationship(Agency)
    period = Column(String(6), nullable=False)  # YYYYQn
    due_on = Column(DateTime, nullable=False)  # the end of the quarter: overdue after it
    opened_at = Column(DateTime, nullable=False, default=datetime.datetime.utcnow)
    completed_at = Column(DateTime)
    completed_by = Column(Integer)  # the supervisor's user id
    export_sha256 = Column(String(64))  # SHA-256 of the exported workbook
    export_data = Column(LargeBinary)  # the workbook as signed, handed out as it is
    signature = Column(Text)  # the signed line (JSON) over the export's digest
    overdue_reported_at = Column(DateTime)  # when the auditors were told it is overdue
    items = relationship("AccountReviewItem", back_populates="review", cascade="all, delete-orphan",
                         order_by="AccountReviewItem.id")  # fmt: skip


class AccountReviewItem(Model):
    """One staff account in a review: the supervisor's decision and the roles before and after."""

    __tablename__ = "account_review_item"
    __table_args__ = (UniqueConstraint("review_id", "user_id", name="ux_account_review_item_user"),)

    id = Column(Integer, primary_key=True)
    review_id = Column(Integer, ForeignKey("account_review.id", ondelete="CASCADE"), nullable=False)
    review = relationship(AccountReview, back_populates="items")
    user_id = Column(Integer, nullable=False, index=True)
    username = Column(String(128), nullable=False)
    roles_before = Column(String(400))  # comma-separated role names when the review opened
    roles_after = Column(String(400))
    role_changes = Column(Text)  # role changes since the last review (JSON list of audit facts)
    last_login = Column(DateTime)
    decision = Column(String(10))  # confirm | change | disable; empty until decided
    decided_at = Column(DateTime)
    decided_by = Column(Integer)
