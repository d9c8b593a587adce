"""The audit trail: one hash-chained row per user action."""

import datetime

from flask_appbuilder import Model
from sqlalchemy import Column, DateTime, Index, Integer, String, Text, text
from sqlalchemy.dialects import mysql


class AuditEvent(Model):
    """Who did what, when, from where, to which object; never personal data values.

    ``hash`` = HMAC-SHA256, under a key kept outside the database, over this
    row's content (its ``nonce`` and ``entry_mac`` included) and
    ``prev_hash``; ``seq`` runs 1, 2, 3... without gaps, so an edited, deleted
    or reordered row breaks the chain at that row. A row is inserted with its
    change, a random ``nonce`` and its ``entry_mac`` (the keyed MAC of its
    content and nonce, proof that the platform wrote it, unique: a copy of a
    row is refused) and linked (given ``seq`` and hashes) by the sealer: until
    then those three are empty.
    """

    __tablename__ = "audit_event"

    id = Column(Integer, primary_key=True)
    seq = Column(Integer, unique=True)
    # To the microsecond on every database (MySQL/MariaDB's DATETIME keeps whole seconds):
    # the entry seal is made over the time as written.
    at = Column(
        DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"),
        nullable=False,
        default=datetime.datetime.utcnow,
        index=True,
    )
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
    nonce = Column(String(32))  # 128 random bits: two events alike never share an entry seal

    # The sealer's work list: rows not yet linked, oldest first.
    __table_args__ = (
        Index("ix_audit_event_unsealed", "id", postgresql_where=text("seq IS NULL"), sqlite_where=text("seq IS NULL")),
        # One row per entry seal: the database refuses a copy of an event (a replay).
        Index("ux_audit_event_entry_mac", "entry_mac", unique=True),
    )


class AuditHead(Model):
    """The chain's tip; its row lock serialises writers across processes."""

    __tablename__ = "audit_head"

    id = Column(Integer, primary_key=True)
    seq = Column(Integer, nullable=False, default=0)
    hash = Column(String(64), nullable=False)
