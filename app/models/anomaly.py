"""Accountability of the query log: anomaly rules an Admin configures, the county's
office calendar, the protected list (keyed hashes), the flags the rules raise and
their outcomes, and the supervisors' signed weekly reviews."""

import datetime

from flask_appbuilder import Model
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)

from app.lib.fieldcrypt import EncryptedText

RULE_KINDS = ("many_subjects", "off_hours", "repeat_subject", "protected_subject", "own_household")
SEVERITIES = ("low", "medium", "high")
OUTCOMES = ("justified", "misconduct", "false_alarm")
DAY_KINDS = ("holiday", "workday")  # a day off, or a make-up workday (補行上班) on a weekend


class AnomalyRule(Model):
    """One rule over the query log, with its thresholds and the severity of its flags.
    ``threshold``: distinct subjects (many_subjects) or repeats of one subject under one
    case number (repeat_subject); ``window_minutes``: the period counted (60 an hour, 1440
    a day, in local time); ``office_start``/``office_end``: "HH:MM" (off_hours)."""

    __tablename__ = "anomaly_rule"

    id = Column(Integer, primary_key=True)
    code = Column(String(40), unique=True, nullable=False)
    name = Column(String(100), nullable=False)
    kind = Column(String(20), nullable=False)
    severity = Column(String(10), nullable=False, default="medium")
    threshold = Column(Integer)
    window_minutes = Column(Integer)
    office_start = Column(String(5))
    office_end = Column(String(5))
    active = Column(Boolean, nullable=False, default=True)
    description = Column(Text)

    def __repr__(self) -> str:
        return self.name


class OfficeDay(Model):
    """The county's office calendar (辦公日曆表): a holiday, or a weekend make-up workday."""

    __tablename__ = "office_day"

    id = Column(Integer, primary_key=True)
    day = Column(Date, unique=True, nullable=False)
    kind = Column(String(10), nullable=False, default="holiday")
    name = Column(String(100), nullable=False)

    def __repr__(self) -> str:
        return f"{self.day} {self.name}"


class ProtectedSubject(Model):
    """A person or business whose every query is flagged, kept as the keyed hash the
    query log uses (the number itself is never stored)."""

    __tablename__ = "protected_subject"

    id = Column(Integer, primary_key=True)
    subject_hash = Column(String(64), unique=True, nullable=False)
    label = Column(String(100), nullable=False)  # why protected, never a name or number
    added_at = Column(DateTime, nullable=False, default=datetime.datetime.utcnow)

    def __repr__(self) -> str:
        return self.label


class AnomalyFlag(Model):
    """What a rule found: one flag per rule and ``key`` (a user's hour or day, or one
    query), with counts only (no personal data), resolved with an outcome and a comment."""

    __tablename__ = "anomaly_flag"
    __table_args__ = (Index("ix_anomaly_flag_open", "agency_code", "resolved_at"),)

    id = Column(Integer, primary_key=True)
    key = Column(String(200), unique=True, nullable=False)
    rule_id = Column(Integer, ForeignKey("anomaly_rule.id", ondelete="SET NULL"))
    rule_name = Column(String(100), nullable=False)
    kind = Column(String(20), nullable=False)
    severity = Column(String(10), nullable=False)
    query_log_id = Column(Integer)  # the query that raised it (no foreign key: retention archives old log rows)
    user_id = Column(Integer, index=True)
    username = Column(String(128))
    agency_code = Column(String(20))
    raised_at = Column(DateTime, nullable=False)
    first_at = Column(DateTime, nullable=False)  # the queries it covers, from..to
    last_at = Column(DateTime, nullable=False)
    query_count = Column(Integer, nullable=False, default=1)
    subject_count = Column(Integer, nullable=False, default=0)
    outcome = Column(String(20))
    comment = Column(EncryptedText)
    resolved_at = Column(DateTime)
    resolved_by = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    resolved_by_name = Column(String(128))


class AnomalyCursor(Model):
    """How far the anomaly worker has read the query log (one row)."""

    __tablename__ = "anomaly_cursor"

    id = Column(Integer, primary_key=True)
    last_query_id = Column(Integer, nullable=False, default=0)
    last_run_at = Column(DateTime)


class WeeklyReview(Model):
    """A supervisor's signed review of the agency's weekly query log: the PDF as reviewed, its
    SHA-256, and either the card's PKCS#7 signature over the digest's statement
    (``app.services.anomaly.reviews.statement``) or the password re-entry recorded. Prepared
    (the PDF kept) when the supervisor opens the week; signed once."""

    __tablename__ = "weekly_review"
    __table_args__ = (UniqueConstraint("agency_code", "week_start", name="uq_weekly_review_agency_week"),)

    id = Column(Integer, primary_key=True)
    agency_code = Column(String(20), nullable=False)
    week_start = Column(Date, nullable=False)  # the Monday
    pdf = Column(LargeBinary)  # the weekly query log as reviewed (no ID numbers in it)
    pdf_sha256 = Column(String(64), nullable=False)
    prepared_at = Column(DateTime)
    method = Column(String(10))  # card | password, once signed
    signature = Column(LargeBinary)  # DER PKCS#7 over the statement (card)
    signer_fingerprint = Column(String(64))
    comment = Column(Text)
    signed_by = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    signed_by_name = Column(String(128))
    signed_at = Column(DateTime)


class WeeklyReviewOverdue(Model):
    """The auditors were told by e-mail that an agency's weekly review is overdue: one row per
    agency and week, so each is told once (the unique pair stops a second worker too)."""

    __tablename__ = "weekly_review_overdue"
    __table_args__ = (UniqueConstraint("agency_code", "week_start", name="uq_weekly_review_overdue_agency_week"),)

    id = Column(Integer, primary_key=True)
    agency_code = Column(String(20), nullable=False)
    week_start = Column(Date, nullable=False)  # the Monday
    reported_at = Column(DateTime, nullable=False)
    recipients = Column(Integer, nullable=False, default=0)
