"""Confidential file transfer: staff certificates, transfer items, cases.

The platform only ever holds ciphertext: payloads and results are CMS
EnvelopedData files made by the kit on the agency PC; their bytes live on disk
(TRANSFER_DIR) and the rows keep the path, size and SHA-256.
"""

import datetime

from flask_appbuilder import Model
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import relationship

from app.models.org import Agency, PlatformUser

CERT_STATUSES = ("valid", "revoked", "expired", "withdrawn")
TRANSFER_STATES = ("registered", "uploaded", "received", "processed", "result_received")
CHANNELS = ("web", "api", "ftp")


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


class StaffCertificate(Model):
    """A staff member's X.509 certificate, checked when uploaded."""

    __tablename__ = "staff_certificate"

    id = Column(Integer, primary_key=True)
    user_id = Column(Integer, ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False, index=True)
    user = relationship(PlatformUser, foreign_keys=[user_id])
    der = Column(LargeBinary, nullable=False)
    serial = Column(String(80), nullable=False)
    issuer = Column(String(500), nullable=False)
    subject = Column(String(500), nullable=False)
    not_before = Column(DateTime, nullable=False)
    not_after = Column(DateTime, nullable=False)
    fingerprint = Column(String(64), nullable=False, unique=True)  # SHA-256, hex
    usage = Column(String(100), nullable=False)  # "sign,encrypt"
    status = Column(String(12), nullable=False, default="valid")
    status_reason = Column(String(300))
    uploaded_at = Column(DateTime, nullable=False, default=_utcnow)
    checked_at = Column(DateTime, nullable=False, default=_utcnow)

    def __repr__(self) -> str:
        return f"{self.subject} ({self.serial})"

    @property
    def can_encrypt(self) -> bool:
        return "encrypt" in (self.usage or "").split(",")

    @property
    def can_sign(self) -> bool:
        return "sign" in (self.usage or "").split(",")


class TransferItem(Model):
    """資料傳遞項目: what one agency regularly sends to another."""

    __tablename__ = "transfer_item"
    __table_args__ = (UniqueConstraint("sending_agency_id", "receiving_agency_id", "description"),)

    id = Column(Integer, primary_key=True)
    sending_agency_id = Column(Integer, ForeignKey("agency.id"), nullable=False)
    sending_agency = relationship(Agency, foreign_keys=[sending_agency_id])
    receiving_agency_id = Column(Integer, ForeignKey("agency.id"), nullable=False)
    receiving_agency = relationship(Agency, foreign_keys=[receiving_agency_id])
    description = Column(String(200), nullable=False)
    ftp_allowed = Column(Boolean, nullable=False, default=False)
    active = Column(Boolean, nullable=False, default=True)

    def __repr__(self) -> str:
        return f"{self.sending_agency} → {self.receiving_agency}：{self.description}"


class TransferCase(Model):
    """One transfer: registered -> uploaded -> received -> processed -> result_received."""

    __tablename__ = "transfer_case"
    __table_args__ = (
        Index("ix_transfer_case_sending", "sending_agency_id", "state"),
        Index("ix_transfer_case_receiving", "receiving_agency_id", "state"),
    )

    id = Column(Integer, primary_key=True)
    item_id = Column(Integer, ForeignKey("transfer_item.id"), nullable=False)
    item = relationship(TransferItem)
    upload_no = Column(String(40), nullable=False, unique=True)
    source = Column(String(200), nullable=False)
    record_count = Column(Integer, nullable=False)
    remarks = Column(Text)
    sending_agency_id = Column(Integer, ForeignKey("agency.id"), nullable=False)
    sending_agency = relationship(Agency, foreign_keys=[sending_agency_id])
    receiving_agency_id = Column(Integer, ForeignKey("agency.id"), nullable=False)
    receiving_agency = relationship(Agency, foreign_keys=[receiving_agency_id])
    sender_id = Column(Integer, ForeignKey("ab_user.id"), nullable=False)
    sender = relationship(PlatformUser, foreign_keys=[sender_id])
    sender_cert_id = Column(Integer, ForeignKey("staff_certificate.id"), nullable=False)
    sender_cert = relationship(StaffCertificate, foreign_keys=[sender_cert_id])
    state = Column(String(20), nullable=False, default="registered", index=True)
    version = Column(Integer, nullable=False, default=1)

    payload_channel = Column(String(8))
    payload_path = Column(String(500))
    payload_sha256 = Column(String(64))
    payload_size = Column(BigInteger)
    receiver_id = Column(Integer, ForeignKey("ab_user.id"))
    receiver = relationship(PlatformUser, foreign_keys=[receiver_id])
    notes = Column(Text)
    result_channel = Column(String(8))
    result_path = Column(String(500))
    result_sha256 = Column(String(64))
    result_size = Column(BigInteger)

    registered_at = Column(DateTime, nullable=False, default=_utcnow)
    uploaded_at = Column(DateTime)
    received_at = Column(DateTime)
    processed_at = Column(DateTime)
    result_received_at = Column(DateTime)

    recipients = relationship("TransferRecipient", back_populates="case", cascade="all, delete-orphan",
                              order_by="TransferRecipient.id")  # fmt: skip
    events = relationship("TransferEvent", back_populates="case", cascade="all, delete-orphan",
                          order_by="TransferEvent.id")  # fmt: skip

    __mapper_args__ = {"version_id_col": version}

    def __repr__(self) -> str:
        return self.upload_no


class TransferRecipient(Model):
    """A receiving staff member and the certificate the payload is enveloped for."""

    __tablename__ = "transfer_recipient"
    __table_args__ = (UniqueConstraint("case_id", "certificate_id"),)

    id = Column(Integer, primary_key=True)
    case_id = Column(Integer, ForeignKey("transfer_case.id", ondelete="CASCADE"), nullable=False)
    case = relationship(TransferCase, back_populates="recipients")
    user_id = Column(Integer, ForeignKey("ab_user.id"), nullable=False)
    user = relationship(PlatformUser)
    certificate_id = Column(Integer, ForeignKey("staff_certificate.id"), nullable=False)
    certificate = relationship(StaffCertificate)


class TransferEvent(Model):
    """The case's timeline as both agencies see it."""

    __tablename__ = "transfer_event"

    id = Column(Integer, primary_key=True)
    case_id = Column(Integer, ForeignKey("transfer_case.id", ondelete="CASCADE"), nullable=False, index=True)
    case = relationship(TransferCase, back_populates="events")
    at = Column(DateTime, nullable=False, default=_utcnow)
    actor_id = Column(Integer, ForeignKey("ab_user.id"))
    actor = relationship(PlatformUser)
    agency_id = Column(Integer, ForeignKey("agency.id"))
    agency = relationship(Agency)
    action = Column(String(30), nullable=False)
    note = Column(Text)
