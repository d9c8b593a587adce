"""The tallies of the dispatches and cases the filters select, per group: the
nightly summary's rows of the period plus the live rows it does not hold
(open work, work finished or registered since the build, responses since)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, exists, func, or_, select

from app.models.notify import Dispatch, NotificationCase
from app.models.reports import ReportSummary
from app.models.survey import Response
from app.services.reports.builds import Build, summary_days
from app.services.reports.dialect import as_int, concat_packed, unpack
from app.services.reports.filters import Filters
from app.services.reports.tally import Tally, Timing, live_tallies


def case_where(cases, filters: Filters) -> list:
    """Cases registered in the period, of the category, notified by the agency or dispatched to it."""
    start, end = filters.bounds()
    where = [cases.c.created_at >= start, cases.c.created_at < end]
    if filters.category_id:
        where.append(cases.c.category_id == filters.category_id)
    if filters.agency_id:
        dispatches = Dispatch.__table__
        dispatched = exists().where(
            and_(dispatches.c.case_id == cases.c.id, dispatches.c.agency_id == filters.agency_id)
        )
        where.append(or_(cases.c.agency_id == filters.agency_id, dispatched))
    return where


@dataclass
class Source:
    """Where the live rows of one kind come from and how they are timed."""

    kind: str  # dispatch | case
    table: object
    source: object  # the table, or the join it is read from
    columns: dict  # group key name -> column
    where: list
    timing: Timing
    case_id: object  # the column holding the case id (for the survey responses)
    last_id: int  # the build holds the rows up to this id


def _source(kind: str, keys: list[str], filters: Filters, now, build: Build | None) -> Source:
    dispatches, cases = Dispatch.__table__, NotificationCase.__table__
    if kind == "dispatch":
        columns = {"agency_id": dispatches.c.agency_id, "category_id": cases.c.category_id}
        joined = filters.category_id or "category_id" in keys
        start, end = filters.bounds()
        where = [dispatches.c.sent_at >= start, dispatches.c.sent_at < end]
        if filters.agency_id:
            where.append(dispatches.c.agency_id == filters.agency_id)
        if filters.category_id:
            where.append(cases.c.category_id == filters.category_id)
        return Source(
            kind,
            dispatches,
            dispatches.join(cases, cases.c.id == dispatches.c.case_id) if joined else dispatches,
            columns,
            where,
            Timing(dispatches.c.sent_at, dispatches.c.closed_at, dispatches.c.due_at, now),
            dispatches.c.case_id,
            build.last_dispatch_id if build else 0,
        )
    columns = {"agency_id": cases.c.agency_id, "category_id": cases.c.category_id, "operator_id": cases.c.operator_id}
    return Source(
        kind,
        cases,
        cases,
        columns,
        case_where(cases, filters),
        Timing(cases.c.created_at, cases.c.completed_at, cases.c.due_at, now),
        cases.c.id,
        build.last_case_id if build else 0,
    )


def _summarised(session, kind: str, keys: list[str], filters: Filters, build: Build, stats: bool) -> dict:
    """The build's tallies of the period per group."""
    summary = ReportSummary.__table__
    where = [summary.c.build_id == build.id, summary.c.kind == kind]
    where.append(summary_days(summary, filters.date_from, filters.date_to))
    if filters.category_id:
        where.append(summary.c.category_id == filters.category_id)
    if filters.agency_id and kind == "dispatch":
        where.append(summary.c.agency_id == filters.agency_id)
    elif filters.agency_id:  # the notifying agency or a receiving one
        receiving = summary.c.receivers.contains(f",{filters.agency_id},")
        where.append(or_(summary.c.agency_id == filters.agency_id, receiving))
    key_columns = [summary.c[key] for key in keys]
    figures = [
        func.sum(summary.c.n).label("n"),
        func.sum(summary.c.late).label("late"),
        func.sum(summary.c.seconds).label("seconds"),
        func.sum(summary.c.responses).label("responses"),
        func.sum(summary.c.rating_sum).label("rating_sum"),
        func.sum(summary.c.rating_count).label("rating_count"),
    ]
    if stats:
        figures.append(concat_packed(summary.c.durations).label("durations"))
    out: dict[tuple, Tally] = {}
    stmt = select(*key_columns, *figures).where(*where).group_by(*key_columns)
    for row in session.execute(stmt).mappings():
        n = as_int(row["n"])
        tally = Tally(
            n=n,
            done=n,
            late=as_int(row["late"]),
            seconds=as_int(row["seconds"]),
            responses=as_int(row["responses"]),
            rating_sum=as_int(row["rating_sum"]),
            rating_count=as_int(row["rating_count"]),
        )
        if stats:
            tally.chunks.append(unpack(row["durations"]))
        out[tuple(row[key] for key in keys)] = tally
    return out


def _responses(session, live: Source, keys: list[str], extra: list) -> dict[tuple, Tally]:
    """The survey responses of the live source's cases, per group."""
    responses = Response.__table__
    key_columns = [live.columns[key].label(key) for key in keys]
    stmt = (
        select(
            *key_columns,
            func.count(responses.c.id).label("responses"),
            func.sum(responses.c.rating_sum).label("rating_sum"),
            func.sum(responses.c.rating_count).label("rating_count"),
        )
        .select_from(live.source.join(responses, responses.c.case_id == live.case_id))
        .where(*live.where, *extra)
        .group_by(*(live.columns[key] for key in keys))
    )
    return {
        tuple(row[key] for key in keys): Tally(
            responses=as_int(row["responses"]),
            rating_sum=as_int(row["rating_sum"]),
            rating_count=as_int(row["rating_count"]),
        )
        for row in session.execute(stmt).mappings()
    }


def tallies(
    session, kind: str, keys: list[str], filters: Filters, now, build: Build | None, stats: bool = True
) -> dict[tuple, Tally]:
    """Per value of ``keys`` the tallies of the dispatches (``kind`` dispatch:
    sent in the period) or cases (``case``: registered in it) the filters
    select: the summary's rows plus the live rows it does not hold. ``stats``
    False: the satisfaction only."""
    live = _source(kind, keys, filters, now, build)
    out: dict[tuple, Tally] = {}

    def take(parts: dict[tuple, Tally]) -> None:
        for key, tally in parts.items():
            out.setdefault(key, Tally()).add(tally)

    if build:
        take(_summarised(session, kind, keys, filters, build, stats))
        done, responses = live.timing.done, Response.__table__
        unsummarised = [or_(live.table.c.id > live.last_id, done.is_(None), done >= build.cutoff)]
        summarised = and_(live.table.c.id <= live.last_id, done < build.cutoff)
        since = or_(responses.c.id > build.last_response_id, responses.c.submitted_at >= build.cutoff)
        # the live rows' responses, and the summarised rows' responses that came in since the build
        answered = [unsummarised, [summarised, since]]
    else:
        unsummarised, answered = [], [[]]
    if stats:
        key_columns = [live.columns[key] for key in keys]
        take(live_tallies(session, live.source, key_columns, [*live.where, *unsummarised], live.timing))
    for extra in answered:
        take(_responses(session, live, keys, extra))
    return out
