"""The report summary: finished work counted once by ``flask report summarise``
(nightly), so a management report over two years reads thousands of summary
rows instead of millions of dispatches and cases. See app/services/reports.py
for which rows a build holds and how the reports add the rest from the live
tables."""

import datetime

from flask_appbuilder import Model
from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
)


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


class ReportBuild(Model):
    """One run of ``flask report summarise``. Its rows hold every dispatch and
    case with an id up to ``last_*_id`` that was finished before ``cutoff``,
    the survey invitations up to ``last_invitation_id`` sent before it, and the
    survey responses up to ``last_response_id`` submitted before it, and the
    query-log rows up to ``last_query_log_id`` written before it."""

    __tablename__ = "report_build"

    id = Column(Integer, primary_key=True)
    cutoff = Column(DateTime, nullable=False)  # UTC
    last_dispatch_id = Column(Integer, nullable=False, default=0)
    last_case_id = Column(Integer, nullable=False, default=0)
    last_response_id = Column(Integer, nullable=False, default=0)
    last_invitation_id = Column(Integer, nullable=False, default=0)
    last_query_log_id = Column(Integer, nullable=False, default=0)
    built_at = Column(DateTime, nullable=False, default=_utcnow)
    seconds = Column(Float)  # how long the build took


class ReportSummary(Model):
    """Finished dispatches (kind ``dispatch``) or cases (kind ``case``) of one
    Taipei day, or of one calendar month (span ``month``: its days added up,
    for the whole months of a long period), and of one combination of agency,
    category and clerk."""

    __tablename__ = "report_summary"
    __table_args__ = (Index("ix_report_summary_build_kind_span_day", "build_id", "kind", "span", "day"),)

    id = Column(Integer, primary_key=True)
    build_id = Column(Integer, nullable=False)  # ReportBuild.id; old builds are deleted with their rows
    kind = Column(String(10), nullable=False)  # dispatch | case
    span = Column(String(5), nullable=False)  # day | month
    day = Column(Date, nullable=False)  # the Taipei day the dispatch was sent or the case registered (month: the 1st)
    agency_id = Column(Integer)  # dispatch: the receiving agency; case: the notifying agency
    category_id = Column(Integer)
    operator_id = Column(Integer)  # case: the counter clerk who registered it
    receivers = Column(Text)  # case: its receiving agencies as ",4,9," (the reports' agency filter)
    n = Column(Integer, nullable=False)  # finished dispatches or cases
    late = Column(Integer, nullable=False)  # of them finished after their due time
    seconds = Column(BigInteger, nullable=False)  # their processing times added up
    # Every processing time in whole seconds, 4 bytes big-endian each (the exact
    # median and 90th percentile need them all); on SQLite the same bytes in hex.
    durations = Column(LargeBinary().with_variant(Text(), "sqlite"))
    # Survey responses to these cases (for dispatches: to each one's case).
    responses = Column(Integer, nullable=False, default=0)
    rating_sum = Column(BigInteger, nullable=False, default=0)
    rating_count = Column(BigInteger, nullable=False, default=0)


class SurveySummary(Model):
    """The answers to one questionnaire version counted once, per Taipei day of
    the invitation (or calendar month, span ``month``) and per category,
    notifying agency and set of receiving agencies (the statistics' filters):

    * kind ``invited``: ``n`` invitations sent;
    * kind ``responded``: ``n`` responses (``question_id`` empty), or ``n``
      respondents who answered ``question_id``;
    * kind ``answer``: ``n`` answers of ``question_id`` that ticked
      ``choice_id`` or gave ``rating`` (free text stays in the live tables).
    """

    __tablename__ = "survey_summary"
    __table_args__ = (
        Index("ix_survey_summary_build_questionnaire_span_day", "build_id", "questionnaire_id", "span", "day"),
    )

    id = Column(Integer, primary_key=True)
    build_id = Column(Integer, nullable=False)  # ReportBuild.id, deleted with it
    questionnaire_id = Column(Integer, nullable=False)
    span = Column(String(5), nullable=False)  # day | month
    day = Column(Date, nullable=False)  # the Taipei day the invitation was sent (month: the 1st)
    category_id = Column(Integer)
    agency_id = Column(Integer)  # the notifying agency
    receivers = Column(Text)  # the case's receiving agencies as ",4,9,"
    kind = Column(String(10), nullable=False)  # invited | responded | answer
    question_id = Column(Integer)
    choice_id = Column(Integer)
    rating = Column(SmallInteger)
    n = Column(Integer, nullable=False)


class QuerySummary(Model):
    """The query log counted once, per Taipei day (or calendar month, span
    ``month``) and agency, form and business item: the figures of the query
    statistics, and the users who queried as their ids packed like
    ``ReportSummary.durations`` (0 for a query without an account), so that a
    period counts each user once however many days it spans."""

    __tablename__ = "query_summary"
    __table_args__ = (Index("ix_query_summary_build_span_day", "build_id", "span", "day"),)

    id = Column(Integer, primary_key=True)
    build_id = Column(Integer, nullable=False)  # ReportBuild.id, deleted with it
    span = Column(String(5), nullable=False)  # day | month
    day = Column(Date, nullable=False)
    agency_code = Column(String(20))
    form_code = Column(String(60))
    business_item = Column(String(40))
    n = Column(Integer, nullable=False)
    ok = Column(Integer, nullable=False)
    partial = Column(Integer, nullable=False)
    refused = Column(Integer, nullable=False)
    errors = Column(Integer, nullable=False)
    rows = Column(BigInteger, nullable=False)
    ms = Column(Float, nullable=False)  # the durations added up
    timed = Column(Integer, nullable=False)  # how many had a duration
    users = Column(LargeBinary().with_variant(Text(), "sqlite"))
