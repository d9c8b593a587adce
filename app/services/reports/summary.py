"""The nightly summary (``flask report summarise``): finished work counted once.

County scale is a million cases and three million dispatches in two years: too
many to read for every report. The nightly build counts the finished ones once,
per Taipei day and agency, category and clerk, with every processing time in
whole seconds; a report adds up the summary rows of its period and, from the
live tables, only what the summary cannot hold (see app.services.reports.builds).
"""

from __future__ import annotations

import datetime
import time

from sqlalchemy import func, literal, null, select

from app.models.notify import Dispatch, NotificationCase
from app.models.queries import QueryLog
from app.models.reports import QuerySummary, ReportBuild, ReportSummary, SurveySummary
from app.models.survey import Invitation, Response
from app.services.command import transaction
from app.services.reports.builds import SUMMARY_MARGIN, drop_builds
from app.services.reports.dialect import (
    agency_list,
    as_int,
    concat_packed,
    elapsed_seconds,
    month_start,
    overdue,
    packed_seconds,
    taipei_day,
)
from app.services.reports.query_report import summarise_queries
from app.services.reports.survey_summary import summarise_survey

COLUMNS = [
    "build_id",
    "kind",
    "span",
    "day",
    "agency_id",
    "category_id",
    "operator_id",
    "receivers",
    "n",
    "late",
    "seconds",
    "durations",
    "responses",
    "rating_sum",
    "rating_count",
]


def _last_ids(session) -> dict:
    tables = {
        "last_dispatch_id": Dispatch.__table__,
        "last_case_id": NotificationCase.__table__,
        "last_response_id": Response.__table__,
        "last_invitation_id": Invitation.__table__,
        "last_query_log_id": QueryLog.__table__,
    }
    return {name: session.scalar(select(func.coalesce(func.max(table.c.id), 0))) for name, table in tables.items()}


def _summarise_work(session, build_id: int, cutoff: datetime.datetime, last: dict) -> None:
    """The finished dispatches and cases the build holds, per Taipei day."""
    dispatches, cases, responses = Dispatch.__table__, NotificationCase.__table__, Response.__table__
    summary = ReportSummary.__table__
    answered = (
        select(
            responses.c.case_id,
            func.count().label("responses"),
            func.sum(responses.c.rating_sum).label("rating_sum"),
            func.sum(responses.c.rating_count).label("rating_count"),
        )
        .where(responses.c.id <= last["last_response_id"], responses.c.submitted_at < cutoff)
        .group_by(responses.c.case_id)
        .subquery()
    )

    def figures(start, done, due):
        seconds = elapsed_seconds(start, done)
        return [
            func.count(),
            func.sum(overdue(due, done, cutoff)),
            func.sum(seconds),
            packed_seconds(seconds),
            func.coalesce(func.sum(answered.c.responses), 0),
            func.coalesce(func.sum(answered.c.rating_sum), 0),
            func.coalesce(func.sum(answered.c.rating_count), 0),
        ]

    day = taipei_day(dispatches.c.sent_at)
    timing = figures(dispatches.c.sent_at, dispatches.c.closed_at, dispatches.c.due_at)
    per_dispatch = (
        select(literal(build_id), literal("dispatch"), literal("day"), day, dispatches.c.agency_id)
        .add_columns(cases.c.category_id, null(), null(), *timing)
        .select_from(
            dispatches.join(cases, cases.c.id == dispatches.c.case_id).outerjoin(
                answered, answered.c.case_id == dispatches.c.case_id
            )
        )
        .where(dispatches.c.id <= last["last_dispatch_id"], dispatches.c.closed_at < cutoff)
        .group_by(day, dispatches.c.agency_id, cases.c.category_id)
    )
    session.execute(summary.insert().from_select(COLUMNS, per_dispatch))
    receivers = (
        select(dispatches.c.case_id, agency_list(dispatches.c.agency_id).label("receivers"))
        .group_by(dispatches.c.case_id)
        .subquery()
    )
    day = taipei_day(cases.c.created_at)
    keys = [day, cases.c.agency_id, cases.c.category_id, cases.c.operator_id, receivers.c.receivers]
    timing = figures(cases.c.created_at, cases.c.completed_at, cases.c.due_at)
    per_case = (
        select(literal(build_id), literal("case"), literal("day"), *keys, *timing)
        .select_from(
            cases.outerjoin(receivers, receivers.c.case_id == cases.c.id).outerjoin(
                answered, answered.c.case_id == cases.c.id
            )
        )
        .where(cases.c.id <= last["last_case_id"], cases.c.completed_at < cutoff)
        .group_by(*keys)
    )
    session.execute(summary.insert().from_select(COLUMNS, per_case))


def _summarise_months(session, build_id: int) -> None:
    """The days of each month added up: a long period reads its whole months from these."""
    summary = ReportSummary.__table__
    keys = [
        month_start(summary.c.day),
        summary.c.agency_id,
        summary.c.category_id,
        summary.c.operator_id,
        summary.c.receivers,
    ]
    per_month = (
        select(literal(build_id), summary.c.kind, literal("month"), *keys)
        .add_columns(
            func.sum(summary.c.n),
            func.sum(summary.c.late),
            func.sum(summary.c.seconds),
            concat_packed(summary.c.durations),
            func.sum(summary.c.responses),
            func.sum(summary.c.rating_sum),
            func.sum(summary.c.rating_count),
        )
        .where(summary.c.build_id == build_id, summary.c.span == "day")
        .group_by(summary.c.kind, *keys)
    )
    session.execute(summary.insert().from_select(COLUMNS, per_month))


def _counted(session, build_id: int) -> dict:
    summary, surveys, queries = ReportSummary.__table__, SurveySummary.__table__, QuerySummary.__table__
    per_kind = select(summary.c.kind, func.sum(summary.c.n)).where(
        summary.c.build_id == build_id, summary.c.span == "day"
    )
    counts = dict(session.execute(per_kind.group_by(summary.c.kind)).all())
    responses = session.scalar(
        select(func.sum(surveys.c.n)).where(
            surveys.c.build_id == build_id,
            surveys.c.span == "day",
            surveys.c.kind == "responded",
            surveys.c.question_id.is_(None),
        )
    )
    logged = session.scalar(
        select(func.sum(queries.c.n)).where(queries.c.build_id == build_id, queries.c.span == "day")
    )
    return {
        "dispatches": as_int(counts.get("dispatch")),
        "cases": as_int(counts.get("case")),
        "responses": as_int(responses),
        "queries": as_int(logged),
    }


def summarise(session, cutoff: datetime.datetime | None = None) -> dict:
    """Rebuild the report summary from the live tables (``flask report
    summarise``, nightly); keeps the previous build for reports running
    meanwhile and deletes older ones. The new build commits whole, or not at
    all. Returns what it counted."""
    started = time.perf_counter()
    cutoff = cutoff or datetime.datetime.utcnow() - SUMMARY_MARGIN
    builds = ReportBuild.__table__
    with transaction(session):
        last = _last_ids(session)
        new_build = builds.insert().values(cutoff=cutoff, built_at=datetime.datetime.utcnow(), **last)
        build_id = session.execute(new_build.returning(builds.c.id)).scalar_one()
        _summarise_work(session, build_id, cutoff, last)
        _summarise_months(session, build_id)
        summarise_survey(session, build_id, cutoff, last["last_invitation_id"], last["last_response_id"])
        summarise_queries(session, build_id, cutoff, last["last_query_log_id"])
        seconds = time.perf_counter() - started
        session.execute(builds.update().where(builds.c.id == build_id).values(seconds=seconds))
    # Reports that began before this commit may still read the previous build: keep it.
    older = select(builds.c.id).where(builds.c.id < build_id).order_by(builds.c.id.desc()).offset(1)
    drop_builds(session, session.scalars(older).all())
    return {"build": build_id, "cutoff": cutoff, **_counted(session, build_id), "seconds": seconds}
