"""Cross-agency notification: categories, cases, attachments, dispatches, timeline."""

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
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import relationship

from app.lib.fieldcrypt import EncryptedText
from app.models.org import Agency, PlatformUser

CATEGORY_KINDS = ("citizen", "agency")  # 民眾申辦 / 機關通報
STAGES = ("registered", "dispatched", "accepted", "dispatch_closed", "completed", "notifier_dispatch_closed",
          "receiver_dispatched")  # fmt: skip
DISPATCH_STATES = ("sent", "received", "assigned", "accepted", "processed", "closed")
CONTROL_TYPES = ("closed", "continuing", "refused")  # 結案 / 續辦 / 駁回
CITIZEN_CHOICE_STAGES = ("accepted", "dispatch_closed", "completed")  # the e-mails a citizen may turn off
# The stages that may e-mail the citizen; each category picks its own (citizen_mail_stages).
# The progress stages are combined: changes queued within CITIZEN_MAIL_WINDOW_MINUTES go as one mail.
CITIZEN_MAIL_STAGES = ("registered", "dispatched", "accepted", "dispatch_closed", "completed")
PROGRESS_STAGES = ("dispatched", "accepted", "dispatch_closed")
DEFAULT_CITIZEN_MAIL_STAGES = "registered,accepted,dispatch_closed,completed"

category_notifier = Table(
    "category_notifying_agency",
    Model.metadata,
    Column("category_id", Integer, ForeignKey("notification_category.id", ondelete="CASCADE"), primary_key=True),
    Column("agency_id", Integer, ForeignKey("agency.id", ondelete="CASCADE"), primary_key=True),
)
category_receiver = Table(
    "category_receiving_agency",
    Model.metadata,
    Column("category_id", Integer, ForeignKey("notification_category.id", ondelete="CASCADE"), primary_key=True),
    Column("agency_id", Integer, ForeignKey("agency.id", ondelete="CASCADE"), primary_key=True),
)


class NotificationCategory(Model):
    """通報類別: main item / sub item, who may notify, who receives by default."""

    __tablename__ = "notification_category"
    __table_args__ = (UniqueConstraint("main_item", "sub_item"),)

    id = Column(Integer, primary_key=True)
    main_item = Column(String(60), nullable=False)
    sub_item = Column(String(60), nullable=False)
    kind = Column(String(10), nullable=False, default="citizen")
    notifying_agencies = relationship(Agency, secondary=category_notifier)
    default_receivers = relationship(Agency, secondary=category_receiver)
    consent_required = Column(Boolean, nullable=False, default=False)
    due_days = Column(Integer, nullable=False, default=7)
    description = Column(Text)
    active = Column(Boolean, nullable=False, default=True)
    templates = relationship("MailTemplate", back_populates="category", cascade="all, delete-orphan")
    # The satisfaction questionnaire its citizens are invited to when a case is complete.
    questionnaire_id = Column(Integer, ForeignKey("questionnaire.id", ondelete="SET NULL"))
    questionnaire = relationship("Questionnaire", back_populates="categories")
    # Online applications from the portal: open or not, which agency is recorded as the
    # notifier of web applications, and who may apply (citizens or businesses).
    web_open = Column(Boolean, nullable=False, default=False)
    web_agency_id = Column(Integer, ForeignKey("agency.id", ondelete="SET NULL"))
    web_agency = relationship(Agency, foreign_keys=[web_agency_id])
    web_applicant = Column(String(10), nullable=False, default="citizen")  # citizen | business
    web_fields = relationship("CategoryField", back_populates="category", cascade="all, delete-orphan",
                          order_by="CategoryField.position")  # fmt: skip
    web_attachments = relationship("CategoryAttachment", back_populates="category", cascade="all, delete-orphan",
                                    order_by="CategoryAttachment.position")  # fmt: skip
    # Which stages e-mail the citizen (of CITIZEN_MAIL_STAGES, comma-separated); the citizen's own
    # choice on the portal (NotificationCase.mail_off) narrows it further.
    citizen_mail_stages = Column(String(100), nullable=False, default=DEFAULT_CITIZEN_MAIL_STAGES,
                                 server_default=DEFAULT_CITIZEN_MAIL_STAGES)  # fmt: skip

    def mails_citizen(self, stage: str) -> bool:
        stages = DEFAULT_CITIZEN_MAIL_STAGES if self.citizen_mail_stages is None else self.citizen_mail_stages
        return stage in stages.split(",")

    def __repr__(self) -> str:
        return f"{self.main_item}－{self.sub_item}"


WEB_APPLICANTS = ("citizen", "business")
FIELD_TYPES = ("text", "textarea", "date", "number")
ATTACHMENT_TYPES = ("pdf", "jpeg", "png", "tiff")


class CategoryField(Model):
    """A field an online application of the category asks for; ``old_new``: a pair (the old
    value and the new one, as an address change's old and new address)."""

    __tablename__ = "category_field"
    __table_args__ = (UniqueConstraint("category_id", "name"),)

    id = Column(Integer, primary_key=True)
    category_id = Column(Integer, ForeignKey("notification_category.id", ondelete="CASCADE"), nullable=False)
    category = relationship(NotificationCategory, back_populates="web_fields")
    position = Column(Integer, nullable=False, default=1)
    name = Column(String(40), nullable=False)  # the key in the application's content: [a-z][a-z0-9_]*
    label = Column(String(100), nullable=False)
    label_en = Column(String(100))
    type = Column(String(10), nullable=False, default="text")
    old_new = Column(Boolean, nullable=False, default=False)
    required = Column(Boolean, nullable=False, default=True)
    max_length = Column(Integer, nullable=False, default=200)
    help = Column(String(300))

    def __repr__(self) -> str:
        return self.label


class CategoryAttachment(Model):
    """A file an online application of the category accepts: its types, required or not."""

    __tablename__ = "category_attachment"
    __table_args__ = (UniqueConstraint("category_id", "name"),)

    id = Column(Integer, primary_key=True)
    category_id = Column(Integer, ForeignKey("notification_category.id", ondelete="CASCADE"), nullable=False)
    category = relationship(NotificationCategory, back_populates="web_attachments")
    position = Column(Integer, nullable=False, default=1)
    name = Column(String(40), nullable=False)
    label = Column(String(100), nullable=False)
    label_en = Column(String(100))
    types = Column(String(40), nullable=False, default="pdf,jpeg,png")  # of ATTACHMENT_TYPES, comma-separated
    required = Column(Boolean, nullable=False, default=False)

    def __repr__(self) -> str:
        return self.label


class MailTemplate(Model):
    """An e-mail of one stage, editable; placeholders like {case_no} and {agency}."""

    __tablename__ = "mail_template"
    __table_args__ = (UniqueConstraint("category_id", "stage"),)

    id = Column(Integer, primary_key=True)
    category_id = Column(Integer, ForeignKey("notification_category.id", ondelete="CASCADE"), nullable=False)
    category = relationship(NotificationCategory, back_populates="templates")
    stage = Column(String(30), nullable=False)
    subject = Column(String(200), nullable=False)
    body = Column(Text, nullable=False)

    def __repr__(self) -> str:
        return self.stage


class CaseSequence(Model):
    """The day's last case number, locked while a case is registered."""

    __tablename__ = "case_sequence"

    day = Column(Date, primary_key=True)
    value = Column(Integer, nullable=False, default=0)


class NotificationCase(Model):
    __tablename__ = "notification_case"
    __table_args__ = (
        Index("ix_notification_case_agency_created", "agency_id", "created_at"),
        # case search (app.services.notify.search): a category over a date range, newest first,
        # and the overdue cases (only open ones can be: a partial index stays small)
        Index("ix_notification_case_category_created", "category_id", "created_at"),
        Index(
            "ix_notification_case_open_due",
            "due_at",
            postgresql_where=text("status = 'open'"),
            sqlite_where=text("status = 'open'"),
        ),
    )

    id = Column(Integer, primary_key=True)
    case_no = Column(String(20), unique=True, nullable=False)
    category_id = Column(Integer, ForeignKey("notification_category.id"), nullable=False)
    category = relationship(NotificationCategory)
    agency_id = Column(Integer, ForeignKey("agency.id"), nullable=False)  # the notifying agency
    agency = relationship(Agency)
    operator_id = Column(Integer, ForeignKey("ab_user.id"))
    operator = relationship(PlatformUser, foreign_keys=[operator_id])
    # The citizen's details are personal data: encrypted at rest; the ID also as a keyed hash.
    citizen_name = Column(EncryptedText)
    citizen_id_no = Column(EncryptedText)
    citizen_id_hash = Column(String(64), index=True)
    # The name found by exact match of its normalised form's keyed hash (case search): never decrypted to search.
    citizen_name_hash = Column(String(64), index=True)
    citizen_email = Column(EncryptedText)
    citizen_phone = Column(EncryptedText)
    citizen_address = Column(EncryptedText)
    content = Column(EncryptedText)
    status = Column(String(12), nullable=False, default="open")  # open | completed
    created_at = Column(DateTime, nullable=False, default=datetime.datetime.utcnow, index=True)
    due_at = Column(DateTime)
    completed_at = Column(DateTime, index=True)  # reports: the cases finished since the summary
    # The stages whose e-mail the citizen turned off on the portal (comma-separated; empty: all).
    mail_off = Column(String(200))
    # How the citizen is told of progress: email, or (without an e-mail address) phone or postal
    # notice, which the timeline records at each stage for the office to make. None: e-mail.
    contact_by = Column(String(10))
    # The category's structured fields as filled in (JSON: name -> value or {"old", "new"}).
    fields = Column(EncryptedText)
    dispatches = relationship("Dispatch", back_populates="case", order_by="Dispatch.id")
    attachments = relationship("Attachment", back_populates="case", order_by="Attachment.id")
    events = relationship("CaseEvent", back_populates="case", order_by="CaseEvent.id")
    signature = relationship("CaseSignature", back_populates="case", uselist=False)

    def __repr__(self) -> str:
        return self.case_no


class Attachment(Model):
    """An uploaded file kept untouched, its sealed SHA-256, and (for consent
    scans) a stamped copy showing agency, time and case number on every page."""

    __tablename__ = "attachment"

    id = Column(Integer, primary_key=True)
    case_id = Column(Integer, ForeignKey("notification_case.id", ondelete="CASCADE"), nullable=False)
    case = relationship(NotificationCase, back_populates="attachments")
    kind = Column(String(10), nullable=False, default="other")  # consent | other
    filename = Column(String(200), nullable=False)
    mime = Column(String(40), nullable=False)
    size = Column(Integer, nullable=False)
    sha256 = Column(String(64), nullable=False)
    seal = Column(String(64), nullable=False)  # HMAC of the SHA-256 by the platform
    original = Column(LargeBinary, nullable=False)
    stamped = Column(LargeBinary)
    uploaded_at = Column(DateTime, nullable=False, default=datetime.datetime.utcnow)
    uploaded_by = Column(String(128))


class CaseSignature(Model):
    """The applicant's PKCS#7 signature over an online application's canonical content,
    kept with the case in place of the scanned consent form. The content (personal data)
    is encrypted at rest; its SHA-256 is sealed as the attachments' are."""

    __tablename__ = "case_signature"

    id = Column(Integer, primary_key=True)
    case_id = Column(Integer, ForeignKey("notification_case.id", ondelete="CASCADE"), nullable=False, unique=True)
    case = relationship(NotificationCase, back_populates="signature")
    content = Column(EncryptedText, nullable=False)  # the canonical JSON that was signed
    content_sha256 = Column(String(64), nullable=False)
    seal = Column(String(64), nullable=False)
    pkcs7 = Column(LargeBinary, nullable=False)  # DER CMS SignedData
    signer_kind = Column(String(20), nullable=False)  # citizen | business | organisation
    signer_serial = Column(String(64), nullable=False)
    signer_issuer = Column(String(500), nullable=False)
    signer_fingerprint = Column(String(64), nullable=False)
    signed_at = Column(DateTime)  # the signing time the signature carries (UTC)
    verified_at = Column(DateTime, nullable=False)
    verified_by = Column(String(20))  # how revocation was checked then: ocsp | ocsp-cache | crl


class Dispatch(Model):
    """One receiving agency's copy of a case, with its own workflow."""

    __tablename__ = "dispatch"
    __table_args__ = (
        UniqueConstraint("case_id", "agency_id"),
        # work lists (one agency, newest first) and reports (by date range)
        Index("ix_dispatch_agency_sent", "agency_id", "sent_at"),
        Index("ix_dispatch_sent_at", "sent_at"),
        Index("ix_dispatch_handler_sent", "handler_id", "sent_at"),
        # The work lists read only open dispatches, newest first: partial indexes keep
        # them one index range however many closed dispatches pile up.
        Index(
            "ix_dispatch_handler_open",
            "handler_id",
            "sent_at",
            postgresql_where=text("state IN ('assigned', 'accepted')"),
            sqlite_where=text("state IN ('assigned', 'accepted')"),
        ),
        Index(
            "ix_dispatch_agency_incoming",
            "agency_id",
            "sent_at",
            postgresql_where=text("state IN ('sent', 'received', 'processed')"),
            sqlite_where=text("state IN ('sent', 'received', 'processed')"),
        ),
    )

    id = Column(Integer, primary_key=True)
    case_id = Column(Integer, ForeignKey("notification_case.id", ondelete="CASCADE"), nullable=False)
    case = relationship(NotificationCase, back_populates="dispatches")
    agency_id = Column(Integer, ForeignKey("agency.id"), nullable=False, index=True)
    agency = relationship(Agency)
    state = Column(String(12), nullable=False, default="sent", index=True)
    sent_at = Column(DateTime, nullable=False, default=datetime.datetime.utcnow)
    sent_by = Column(String(128))
    received_at = Column(DateTime)
    received_by = Column(String(128))
    supervisor_id = Column(Integer, ForeignKey("ab_user.id"))
    supervisor = relationship(PlatformUser, foreign_keys=[supervisor_id])
    handler_id = Column(Integer, ForeignKey("ab_user.id"))
    handler = relationship(PlatformUser, foreign_keys=[handler_id])
    assigned_at = Column(DateTime)
    accepted_at = Column(DateTime)
    processed_at = Column(DateTime)
    closed_at = Column(DateTime, index=True)  # reports: the dispatches finished since the summary
    returned_at = Column(DateTime)
    result = Column(Text)
    result_public = Column(Boolean, nullable=False, default=False)  # the agency shows its result to the applicant
    control_type = Column(String(12))
    notes = Column(Text)
    return_reason = Column(Text)
    due_at = Column(DateTime)
    version = Column(Integer, nullable=False, default=1)

    __mapper_args__ = {"version_id_col": version}


class CaseEvent(Model):
    """The case timeline: who, which agency, what, when."""

    __tablename__ = "case_event"

    id = Column(Integer, primary_key=True)
    case_id = Column(Integer, ForeignKey("notification_case.id", ondelete="CASCADE"), nullable=False, index=True)
    case = relationship(NotificationCase, back_populates="events")
    dispatch_id = Column(Integer, ForeignKey("dispatch.id", ondelete="CASCADE"))
    at = Column(DateTime, nullable=False, default=datetime.datetime.utcnow)
    username = Column(String(128))
    agency_code = Column(String(20))
    action = Column(String(20), nullable=False)
    note = Column(Text)
