"""Query forms (the "virtual database") and the log of every query."""

import datetime

from flask_appbuilder import Model
from flask_appbuilder.security.sqla.models import Role
from sqlalchemy import Boolean, Column, DateTime, Float, ForeignKey, Index, Integer, String, Table, Text, false
from sqlalchemy.orm import relationship

from app.lib.fieldcrypt import EncryptedText
from app.models.org import Agency
from app.models.sources import DataSource

INPUT_TYPES = (
    "text", "national_id", "land_parcel", "land_section", "building_no", "date", "choice", "business_number", "number",
)  # fmt: skip
DISPLAYS = ("table", "fields", "map", "plan")
MASKS = ("", "last4", "first1", "name", "all")
FORMATS = ("", "roc_date", "number", "money", "area", "share", "parcel", "building")

form_agency = Table(
    "query_form_agency",
    Model.metadata,
    Column("form_id", Integer, ForeignKey("query_form.id", ondelete="CASCADE"), primary_key=True),
    Column("agency_id", Integer, ForeignKey("agency.id", ondelete="CASCADE"), primary_key=True),
)
form_role = Table(
    "query_form_role",
    Model.metadata,
    Column("form_id", Integer, ForeignKey("query_form.id", ondelete="CASCADE"), primary_key=True),
    Column("role_id", Integer, ForeignKey("ab_role.id", ondelete="CASCADE"), primary_key=True),
)
form_business_item = Table(
    "query_form_business_item",
    Model.metadata,
    Column("form_id", Integer, ForeignKey("query_form.id", ondelete="CASCADE"), primary_key=True),
    Column("business_item_id", Integer, ForeignKey("business_item.id", ondelete="CASCADE"), primary_key=True),
)
column_agency = Table(
    "section_column_agency",
    Model.metadata,
    Column("column_id", Integer, ForeignKey("section_column.id", ondelete="CASCADE"), primary_key=True),
    Column("agency_id", Integer, ForeignKey("agency.id", ondelete="CASCADE"), primary_key=True),
)


class BusinessItem(Model):
    """業務項目: the duty under which a query is made."""

    __tablename__ = "business_item"

    id = Column(Integer, primary_key=True)
    code = Column(String(40), unique=True, nullable=False)
    name = Column(String(100), nullable=False)
    description = Column(Text)
    active = Column(Boolean, nullable=False, default=True)
    # The agency whose duty it is: only its clerks are offered it. None: county-wide, offered to all.
    agency_id = Column(Integer, ForeignKey("agency.id", ondelete="SET NULL"), index=True)
    agency = relationship(Agency)

    def __repr__(self) -> str:
        return self.name


class QueryForm(Model):
    __tablename__ = "query_form"

    id = Column(Integer, primary_key=True)
    code = Column(String(60), unique=True, nullable=False)
    title = Column(String(100), nullable=False)
    description = Column(Text)
    agency_id = Column(Integer, ForeignKey("agency.id"))  # owner
    agency = relationship(Agency)
    active = Column(Boolean, nullable=False, default=True)
    sort_order = Column(Integer, nullable=False, default=0)
    # Restricted forms (investigations...): the people queried see the entry in "who read my
    # data" only restricted_days after the query. Set by an Admin.
    restricted = Column(Boolean, nullable=False, default=False, server_default=false())
    restricted_days = Column(Integer, nullable=False, default=0, server_default="0")
    granted_agencies = relationship(Agency, secondary=form_agency)
    granted_roles = relationship(Role, secondary=form_role)
    business_items = relationship(BusinessItem, secondary=form_business_item)
    inputs = relationship("FormInput", back_populates="form", cascade="all, delete-orphan",
                          order_by="FormInput.sort_order")  # fmt: skip
    sections = relationship("FormSection", back_populates="form", cascade="all, delete-orphan",
                            order_by="FormSection.sort_order")  # fmt: skip

    def __repr__(self) -> str:
        return self.title


class FormInput(Model):
    __tablename__ = "form_input"

    id = Column(Integer, primary_key=True)
    form_id = Column(Integer, ForeignKey("query_form.id", ondelete="CASCADE"), nullable=False)
    form = relationship(QueryForm, back_populates="inputs")
    name = Column(String(40), nullable=False)
    label = Column(String(100), nullable=False)
    type = Column(String(20), nullable=False, default="text")
    required = Column(Boolean, nullable=False, default=True)
    pattern = Column(String(200))  # extra regular expression for text inputs
    # "value|label" per line, for choice inputs; for land_section inputs the JSON
    # {"source": code, "target": view} of the source's list of sections
    choices = Column(Text)
    max_length = Column(Integer, nullable=False, default=64)
    help_text = Column(String(200))
    sort_order = Column(Integer, nullable=False, default=0)

    def __repr__(self) -> str:
        return self.label


class FormSection(Model):
    """One read from one source; a form with several is a composed view."""

    __tablename__ = "form_section"

    id = Column(Integer, primary_key=True)
    form_id = Column(Integer, ForeignKey("query_form.id", ondelete="CASCADE"), nullable=False)
    form = relationship(QueryForm, back_populates="sections")
    title = Column(String(100), nullable=False)
    source_id = Column(Integer, ForeignKey("data_source.id"), nullable=False)
    source = relationship(DataSource)
    target = Column(String(200), nullable=False)  # view/table, file key, endpoint, e-gate code
    order_by = Column(String(200))  # comma-separated source columns
    display = Column(String(10), nullable=False, default="table")
    options = Column(Text)  # JSON, kind-specific
    sort_order = Column(Integer, nullable=False, default=0)
    filters = relationship("SectionFilter", back_populates="section", cascade="all, delete-orphan",
                           order_by="SectionFilter.id")  # fmt: skip
    columns = relationship("SectionColumn", back_populates="section", cascade="all, delete-orphan",
                           order_by="SectionColumn.sort_order")  # fmt: skip

    def __repr__(self) -> str:
        return self.title


class SectionFilter(Model):
    """``column <op> input`` (or a constant when no input is named)."""

    __tablename__ = "section_filter"

    id = Column(Integer, primary_key=True)
    section_id = Column(Integer, ForeignKey("form_section.id", ondelete="CASCADE"), nullable=False)
    section = relationship(FormSection, back_populates="filters")
    column = Column(String(100), nullable=False)
    op = Column(String(10), nullable=False, default="eq")
    input_name = Column(String(40))
    constant = Column(String(200))

    def __repr__(self) -> str:
        return f"{self.column} {self.op} {self.input_name or self.constant}"


class SectionColumn(Model):
    """An output column: label, mask, format, and (optionally) which agencies may see it."""

    __tablename__ = "section_column"

    id = Column(Integer, primary_key=True)
    section_id = Column(Integer, ForeignKey("form_section.id", ondelete="CASCADE"), nullable=False)
    section = relationship(FormSection, back_populates="columns")
    column = Column(String(100), nullable=False)
    label = Column(String(100), nullable=False)
    mask = Column(String(10), nullable=False, default="")
    format = Column(String(10), nullable=False, default="")
    sort_order = Column(Integer, nullable=False, default=0)
    # Field-level authorisation: empty = every granted agency sees it.
    agencies = relationship(Agency, secondary=column_agency)

    def __repr__(self) -> str:
        return self.label


class QueryLog(Model):
    """Every query, refused ones included: who, why, what, and the result as shown."""

    __tablename__ = "query_log"
    # the anomaly rules count one user's queries of an hour or a day (app.services.anomaly)
    __table_args__ = (Index("ix_query_log_user_at", "user_id", "at"),)

    id = Column(Integer, primary_key=True)
    at = Column(DateTime, nullable=False, default=datetime.datetime.utcnow, index=True)
    user_id = Column(Integer, index=True)
    username = Column(String(128))
    agency_code = Column(String(20), index=True)
    client_ip = Column(String(45))
    form_id = Column(Integer, index=True)
    form_code = Column(String(60), index=True)
    form_title = Column(String(100))
    case_no = Column(String(60), index=True)
    reason = Column(String(200))
    business_item = Column(String(40))
    params = Column(EncryptedText)  # JSON of the inputs as typed (encrypted: they hold IDs)
    subjects = Column(Text)  # keyed hashes (HMAC-SHA256) of the data subjects' IDs, one per line
    row_count = Column(Integer, nullable=False, default=0)
    duration_ms = Column(Float)
    outcome = Column(String(20), nullable=False, index=True)  # ok | partial | refused | source_error
    error = Column(String(300))
    snapshot = Column(EncryptedText)  # JSON of the sections exactly as shown
    snapshot_sha256 = Column(String(64))
    verification_code = Column(String(24), unique=True)
    valid_until = Column(DateTime)


class QuerySubject(Model):
    """One data subject of a query that read data (outcome ok or partial): "who read my data"
    reads one person's rows through the (subject_hash, at) index, newest first, never a scan
    of the log. Written in the same statement or transaction as its query log row."""

    __tablename__ = "query_subject"
    __table_args__ = (Index("ix_query_subject_subject_at", "subject_hash", "at", "query_log_id"),)

    query_log_id = Column(Integer, ForeignKey("query_log.id", ondelete="CASCADE"), primary_key=True)
    subject_hash = Column(String(64), primary_key=True)  # as in QueryLog.subjects
    at = Column(DateTime, nullable=False)  # the query's time (QueryLog.at), for the order


class ConfigGeneration(Model):
    """Bumped in the same transaction as any change to forms or sources, so
    every process knows when its cached form plans are stale."""

    __tablename__ = "config_generation"

    id = Column(Integer, primary_key=True)
    value = Column(Integer, nullable=False, default=0)
