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


class AuditArchive(Model):
    """One month of the audit trail and the query log, archived to a signed,
    compressed file (``app.services.audit.archive``) and then removed.

    The file and its signed line in the checkpoint file are the evidence; this
    row is the platform's index of them (what was archived, where, and when
    the rows left the database)."""

    __tablename__ = "audit_archive"

    id = Column(Integer, primary_key=True)
    month = Column(String(7), nullable=False, unique=True)  # YYYY-MM
    file_name = Column(String(200), nullable=False)
    file_sha256 = Column(String(64), nullable=False)
    first_seq = Column(Integer, nullable=False)  # the chain's events in the file: first_seq..last_seq
    last_seq = Column(Integer, nullable=False)  # first_seq - 1 when the month holds no event
    last_hash = Column(String(64), nullable=False)  # the link the chain continues from
    events = Column(Integer, nullable=False, default=0)
    query_logs = Column(Integer, nullable=False, default=0)
    query_subjects = Column(Integer, nullable=False, default=0)
    created_at = Column(DateTime, nullable=False, default=datetime.datetime.utcnow)
    removed_at = Column(DateTime)  # when the archived rows were removed from the database
