"""The audit trail: one hash-chained row per user action."""

import datetime

from flask_appbuilder import Model
from sqlalchemy import Column, DateTime, Index, Integer, String, Text, text


class AuditEvent(Model):
    """Who did what, when, from where, to which object; never personal data values.

    ``hash`` = HMAC-SHA256, under a key kept outside the database, over this
    row's content and ``prev_hash``; ``seq`` runs 1, 2, 3... without gaps, so
    an edited, deleted or reordered row breaks the chain at that row. A row is
    inserted with its change and its ``entry_mac`` (the keyed MAC of its
    content, proof that the platform wrote it) and linked (given ``seq`` and
    hashes, its ``entry_mac`` dropped) by the sealer: until then those three
    are empty.
    """

    __tablename__ = "audit_event"

    id = Column(Integer, primary_key=True)
    seq = Column(Integer, unique=True)
    at = Column(DateTime, nullable=False, default=datetime.datetime.utcnow, index=True)
    actor_id = Column(Integer, index=True)
    actor = Column(String(128))
    agency_code = Column(String(20), index=True)
    client_ip = Column(String(45))
    action = Column(String(40), nullable=False, index=True)
    object_type = Column(String(60), index=True)
    object_id = Column(String(64))
    fields = Column(Text)  # comma-separated names of changed fields
    outcome = Column(String(20), nullable=False, default="ok")
    detail = Column(Text)  # JSON, no personal data
    prev_hash = Column(String(64))
    hash = Column(String(64))
    entry_mac = Column(String(64))

    # The sealer's work list: rows not yet linked, oldest first.
    __table_args__ = (
        Index("ix_audit_event_unsealed", "id", postgresql_where=text("seq IS NULL"), sqlite_where=text("seq IS NULL")),
    )


class AuditHead(Model):
    """The chain's tip; its row lock serialises writers across processes."""

    __tablename__ = "audit_head"

    id = Column(Integer, primary_key=True)
    seq = Column(Integer, nullable=False, default=0)
    hash = Column(String(64), nullable=False)
