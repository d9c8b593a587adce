"""The nightly summary's builds: which rows a build holds, and which of its
rows cover a period.

A build holds every dispatch and case with an id up to its last_*_id that was
finished (closed, completed) before its cutoff, the responses up to its
last_response_id submitted before the cutoff, the invitations up to
last_invitation_id sent before it (answers never change once submitted) and
the query-log rows up to last_query_log_id written before it. A report adds
from the live tables exactly the rest: open work (overdue depends on "now"),
work finished since, rows registered since, responses submitted since.
Finished work does not change (closing is the workflow's last state), so the
two parts neither overlap nor miss a row whenever the build ran. The cutoff
lies an hour before the build so that a transaction that stamped its time just
before the build but committed after it is still read live. Whatever rewrites
finished work (a data correction, a deletion) needs a new build: run the
command again.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from sqlalchemy import and_, or_, select

from app.models.reports import QuerySummary, ReportBuild, ReportSummary, SurveySummary
from app.services.command import transaction

SUMMARY_MARGIN = datetime.timedelta(hours=1)


@dataclass(frozen=True)
class Build:
    id: int
    cutoff: datetime.datetime
    last_dispatch_id: int
    last_case_id: int
    last_response_id: int
    last_invitation_id: int = 0
    last_query_log_id: int = 0


def current_build(session) -> Build | None:
    """The newest build, or None before the first."""
    builds = ReportBuild.__table__
    row = (
        session.execute(
            select(
                builds.c.id,
                builds.c.cutoff,
                builds.c.last_dispatch_id,
                builds.c.last_case_id,
                builds.c.last_response_id,
                builds.c.last_invitation_id,
                builds.c.last_query_log_id,
            )
            .order_by(builds.c.id.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )
    return Build(**row) if row else None


def drop_builds(session, ids) -> None:
    """Delete these builds and their summary rows, in a transaction of its own."""
    ids = list(ids)
    with transaction(session):
        if ids:
            for table in (ReportSummary.__table__, SurveySummary.__table__, QuerySummary.__table__):
                session.execute(table.delete().where(table.c.build_id.in_(ids)))
            session.execute(ReportBuild.__table__.delete().where(ReportBuild.__table__.c.id.in_(ids)))


def summary_days(summary, first: datetime.date, last: datetime.date):
    """The rows of the ``summary`` table covering the days first..last: a month
    row for each whole month between them, day rows for the days before and
    after those."""
    start = first if first.day == 1 else (first.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)
    stop = (last + datetime.timedelta(days=1)).replace(day=1)  # the first day after the last whole month
    if last.month == (last + datetime.timedelta(days=1)).month:
        stop = last.replace(day=1)
    span, day = summary.c.span, summary.c.day
    if start >= stop:
        return and_(span == "day", day >= first, day <= last)
    # each arm a plain range of the index (build, kind, span, day)
    arms = [and_(span == "month", day >= start, day < stop)]
    if first < start:
        arms.append(and_(span == "day", day >= first, day < start))
    if stop <= last:
        arms.append(and_(span == "day", day >= stop, day <= last))
    return or_(*arms)
