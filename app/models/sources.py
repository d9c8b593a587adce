"""Data sources: where another agency's system is, and how to reach it."""

import datetime

from flask_appbuilder import Model
from sqlalchemy import Boolean, Column, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import relationship

from app.lib.fieldcrypt import EncryptedText
from app.models.org import Agency


class DataSource(Model):
    __tablename__ = "data_source"

    id = Column(Integer, primary_key=True)
    code = Column(String(40), unique=True, nullable=False)
    name = Column(String(100), nullable=False)
    kind = Column(String(20), nullable=False)  # a kind of app.connectors (their registry checks it)
    agency_id = Column(Integer, ForeignKey("agency.id"))  # whose system it is
    agency = relationship(Agency)
    host = Column(String(255))
    port = Column(Integer)
    database = Column(String(255))  # database, service name or SQLite path
    path = Column(String(500))  # text file
    url = Column(String(500))  # web service / e-gate base URL
    account = Column(String(100))
    secret = Column(EncryptedText)  # Fernet-encrypted at rest, never shown
    timeout = Column(Float, nullable=False, default=5.0)
    row_cap = Column(Integer, nullable=False, default=500)
    pool_size = Column(Integer, nullable=False, default=5)
    options = Column(Text)  # JSON: kind-specific settings (dialect, encoding, layout...)
    enabled = Column(Boolean, nullable=False, default=True)
    last_checked_at = Column(DateTime)
    last_ok = Column(Boolean)
    last_latency_ms = Column(Float)
    last_error = Column(String(500))
    changed_at = Column(DateTime, default=datetime.datetime.utcnow, onupdate=datetime.datetime.utcnow)

    def __repr__(self) -> str:
        return self.name
