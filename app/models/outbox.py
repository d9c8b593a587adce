"""The mail outbox: messages written in the transaction that causes them."""

import datetime

from flask_appbuilder import Model
from sqlalchemy import Column, DateTime, Index, Integer, String

from app.lib.fieldcrypt import EncryptedText

QUEUED, SENDING, SENT, FAILED = "queued", "sending", "sent", "failed"
# Carried by another message of the same coalescing key (merged_into): its change went out in that one.
MERGED = "merged"
# Lower goes first: a citizen waiting for a receipt before staff notices
# (which the agencies also see in their work lists at once).
CITIZEN, NORMAL = 1, 5


class OutboxMessage(Model):
    __tablename__ = "outbox_message"

    id = Column(Integer, primary_key=True)
    created_at = Column(DateTime, nullable=False, default=datetime.datetime.utcnow)
    recipient = Column(String(320), nullable=False)
    subject = Column(String(255), nullable=False)
    body = Column(EncryptedText, nullable=False)  # may name the citizen
    # What caused it (e.g. "case:1151126-0001"), for the admin screen.
    topic = Column(String(120))
    status = Column(String(10), nullable=False, default=QUEUED, index=True)
    attempts = Column(Integer, nullable=False, default=0)
    next_attempt_at = Column(DateTime, nullable=False, default=datetime.datetime.utcnow, index=True)
    claimed_at = Column(DateTime)
    sent_at = Column(DateTime)
    last_error = Column(String(500))
    message_id = Column(String(200), unique=True)
    priority = Column(Integer, nullable=False, default=NORMAL, server_default=str(NORMAL))
    # Coalescing (e.g. "citizen:1151126-0001"): messages of one key still queued when one of them
    # is claimed go out as that one. ``part``: this message's line in a combined mail;
    # ``digest_subject``/``digest_body``: the combined mail's text, its lines at outbox.CHANGES.
    coalesce_key = Column(String(120))
    part = Column(EncryptedText)
    digest_subject = Column(String(255))
    digest_body = Column(EncryptedText)
    merged_into = Column(Integer)  # the message that carried this one (status "merged")

    __table_args__ = (
        Index("ix_outbox_message_due", "status", "priority", "next_attempt_at"),
        Index("ix_outbox_message_coalesce", "coalesce_key", "status"),
    )
