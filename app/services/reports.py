"""Management reports: case counts, processing times (mean, median, 90th
percentile), overdue counts and satisfaction, by receiving agency, by category
and by counter clerk; query statistics; transfer counts; the weekly query log.

County scale is a million cases and three million dispatches in two years: too
many to read for every report. ``flask report summarise`` (nightly) counts the
finished ones once into the summary, per Taipei day and agency, category and
clerk, with every processing time in whole seconds; a report adds up the
summary rows of its period and, from the live tables, only what the summary
cannot hold (open work, whose overdue state depends on "now", and whatever
changed since). The database returns each group's processing times as one
packed value; numpy finds the median and 90th percentile exactly, the same way
on SQLite and PostgreSQL.

Dates: the forms use ROC dates (115/11/01); a range covers whole days in
Taipei time; timestamps are stored in UTC.
"""

from __future__ import annotations

import datetime
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from flask_babel import lazy_gettext as _l
from sqlalchemy import Date, Integer, and_, case, exists, func, literal, literal_column, null, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from app.lib.rocdate import TAIPEI, format_roc, parse_roc, utc_midnight
from app.models.notify import Dispatch, NotificationCase, NotificationCategory
from app.models.org import Agency, PlatformUser
from app.models.queries import BusinessItem, QueryForm, QueryLog
from app.models.reports import QuerySummary, ReportBuild, ReportSummary, SurveySummary
from app.models.survey import Invitation, Response
from app.models.transfer import TransferCase
from app.services.errors import InvalidInput

DEFAULT_DAYS = 30
MAX_DAYS = 366 * 10

# --- filters -------------------------------------------------------------------------


def taipei_today() -> datetime.date:
    return datetime.datetime.now(TAIPEI).date()


def _utc(day: datetime.date) -> datetime.datetime:
    """Midnight of a Taipei day, as the naive UTC the tables store."""
    return utc_midnight(day)


@dataclass(frozen=True)
class Filters:
    date_from: datetime.date
    date_to: datetime.date
    agency_id: int | None = None
    category_id: int | None = None

    def bounds(self) -> tuple[datetime.datetime, datetime.datetime]:
        """[start, end) in UTC covering whole Taipei days."""
        return _utc(self.date_from), _utc(self.date_to + datetime.timedelta(days=1))

    @property
    def period(self) -> str:
        return f"{format_roc(self.date_from)}–{format_roc(self.date_to)}"

    def args(self) -> dict:
        """The filters as form values (for links and exports)."""
        out = {"from": format_roc(self.date_from), "to": format_roc(self.date_to)}
        if self.agency_id:
            out["agency"] = str(self.agency_id)
        if self.category_id:
            out["category"] = str(self.category_id)
        return out


def parse_day(text: str, which) -> datetime.date:
    try:
        return parse_roc(text)
    except ValueError:
        try:
            return datetime.date.fromisoformat(text)
        except ValueError:
            raise InvalidInput(_l("The %(which)s date is not a date like 115/11/01."), which=which) from None


def _id(value) -> int | None:
    text = str(value or "").strip()
    if not text:
        return None
    if not text.isdigit() or len(text) > 9:
        raise InvalidInput(_l("Choose an agency and a category from the lists."))
    return int(text)


def parse_filters(args: Mapping, today: datetime.date | None = None) -> Filters:
    """Filters from a form (``from``, ``to`` as ROC dates; ``agency``, ``category`` ids).

    Blank dates mean the last 30 days. Raises InvalidInput for a date that is
    not one, or a range that ends before it begins.
    """
    today = today or taipei_today()
    text_from = str(args.get("from") or "").strip()
    text_to = str(args.get("to") or "").strip()
    date_to = parse_day(text_to, _l("end")) if text_to else today
    date_from = parse_day(text_from, _l("start")) if text_from else date_to - datetime.timedelta(days=DEFAULT_DAYS - 1)
    if date_to < date_from:
        raise InvalidInput(_l("The date range ends (%(to)s) before it begins (%(from)s)."),
                           to=format_roc(date_to), **{"from": format_roc(date_from)})  # fmt: skip
    if (date_to - date_from).days > MAX_DAYS:
        raise InvalidInput(_l("Choose a date range of at most ten years."))
    return Filters(date_from, date_to, _id(args.get("agency")), _id(args.get("category")))


# --- SQL building blocks -----------------------------------------------------------------


class elapsed_seconds(FunctionElement):
    """Whole seconds from ``start`` to ``end`` (fractions dropped on both
    backends, so SQLite and PostgreSQL agree to the second)."""

    type = Integer()
    name = "elapsed_seconds"
    inherit_cache = True


@compiles(elapsed_seconds)
def _elapsed_sqlite(element, compiler, **kw):
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"(CAST(strftime('%s', {end}) AS INTEGER) - CAST(strftime('%s', {start}) AS INTEGER))"


@compiles(elapsed_seconds, "postgresql")
def _elapsed_postgresql(element, compiler, **kw):
    # floor() of the epoch truncates to the second, like strftime('%s') (float arithmetic: cheaper than numeric)
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"(floor(date_part('epoch', {end})) - floor(date_part('epoch', {start})))"


def overdue(due, done, now):
    """1 when finished after its due time, or unfinished and past it."""
    return case((and_(due.isnot(None), or_(and_(done.isnot(None), done > due), and_(done.is_(None), due < now))), 1),
                else_=0)  # fmt: skip


class taipei_day(FunctionElement):
    """The Taipei calendar day of a UTC timestamp (UTC+8: Taiwan has kept no
    summer time since 1980)."""

    type = Date()
    name = "taipei_day"
    inherit_cache = True


@compiles(taipei_day)
def _taipei_day_sqlite(element, compiler, **kw):
    return f"date({compiler.process(element.clauses, **kw)}, '+8 hours')"


@compiles(taipei_day, "postgresql")
def _taipei_day_postgresql(element, compiler, **kw):
    return f"CAST({compiler.process(element.clauses, **kw)} + INTERVAL '8 hours' AS DATE)"


class month_start(FunctionElement):
    """The first day of a date's month."""

    type = Date()
    name = "month_start"
    inherit_cache = True


@compiles(month_start)
def _month_start_sqlite(element, compiler, **kw):
    return f"date({compiler.process(element.clauses, **kw)}, 'start of month')"


@compiles(month_start, "postgresql")
def _month_start_postgresql(element, compiler, **kw):
    return f"CAST(date_trunc('month', {compiler.process(element.clauses, **kw)}) AS DATE)"


class packed_seconds(FunctionElement):
    """Aggregate: every non-NULL whole number of seconds as 4 bytes big-endian,
    concatenated. One value for a whole group, however many rows: numpy reads
    it without a Python object per row (SQLite, which cannot build bytes, gives
    the same bytes in hex)."""

    name = "packed_seconds"
    inherit_cache = True


@compiles(packed_seconds)
def _packed_sqlite(element, compiler, **kw):
    x = compiler.process(element.clauses, **kw)
    return f"group_concat(CASE WHEN {x} IS NULL THEN NULL ELSE printf('%08X', ({x}) & 4294967295) END, '')"


@compiles(packed_seconds, "postgresql")
def _packed_postgresql(element, compiler, **kw):
    return f"string_agg(int4send(CAST({compiler.process(element.clauses, **kw)} AS INTEGER)), CAST('' AS BYTEA))"


class concat_packed(FunctionElement):
    """Aggregate: stored ``packed_seconds`` values run together."""

    name = "concat_packed"
    inherit_cache = True


@compiles(concat_packed)
def _concat_sqlite(element, compiler, **kw):
    return f"group_concat({compiler.process(element.clauses, **kw)}, '')"


@compiles(concat_packed, "postgresql")
def _concat_postgresql(element, compiler, **kw):
    return f"string_agg({compiler.process(element.clauses, **kw)}, CAST('' AS BYTEA))"


class agency_list(FunctionElement):
    """Aggregate: the agency ids as ",4,9," (a case's receiving agencies, which
    ``LIKE '%,4,%'`` searches on either backend)."""

    name = "agency_list"
    inherit_cache = True


@compiles(agency_list)
def _agency_list_sqlite(element, compiler, **kw):
    return f"(',' || group_concat({compiler.process(element.clauses, **kw)}, ',') || ',')"


@compiles(agency_list, "postgresql")
def _agency_list_postgresql(element, compiler, **kw):
    x = compiler.process(element.clauses, **kw)
    return f"(',' || string_agg(CAST({x} AS TEXT), ',' ORDER BY {x}) || ',')"


def _unpack(value) -> np.ndarray:
    """The seconds of a ``packed_seconds`` value (bytes, or hex from SQLite)."""
    if not value:
        return np.empty(0, dtype=np.int32)
    raw = bytes.fromhex(value) if isinstance(value, str) else value
    return np.frombuffer(raw, dtype=">i4").astype(np.int32)  # in the machine's byte order


def tune(session) -> None:
    """PostgreSQL: room to sort and group a year of rows in memory rather than
    on disk (REPORT_WORK_MEM, this transaction only)."""
    from flask import current_app

    if session.get_bind().dialect.name == "postgresql":
        value = current_app.config.get("REPORT_WORK_MEM", "64MB")
        session.execute(select(func.set_config("work_mem", value, True)))


# --- figures of a group ----------------------------------------------------------------------


@dataclass
class Tally:
    """What adds up across days and groups: counts, sums and every processing
    time (the percentiles need them all to stay exact)."""

    n: int = 0
    done: int = 0
    seconds: int = 0
    late: int = 0
    responses: int = 0
    rating_sum: int = 0
    rating_count: int = 0
    sums: dict = field(default_factory=dict)
    chunks: list = field(default_factory=list)  # numpy arrays of whole seconds

    def add(self, other: Tally) -> Tally:
        self.n += other.n
        self.done += other.done
        self.seconds += other.seconds
        self.late += other.late
        self.responses += other.responses
        self.rating_sum += other.rating_sum
        self.rating_count += other.rating_count
        for k, v in other.sums.items():
            self.sums[k] = self.sums.get(k, 0) + v
        self.chunks.extend(other.chunks)
        return self

    def figures(self) -> dict:
        """n, done, mean, median, p90 (days), late and the extra sums."""
        out = {"n": self.n, "done": self.done, "late": self.late, **self.sums}
        out["mean"] = self.seconds / self.done / 86400 if self.done else None
        out["median"], out["p90"] = percentiles(self.chunks, (0.5, 0.9))
        return out

    @property
    def satisfaction(self) -> tuple[int, int, int]:
        return self.responses, self.rating_sum, self.rating_count


def _int(value) -> int:
    """A sum as an int: PostgreSQL adds the (float) seconds as double precision,
    exact for whole numbers this small; integer sums come as int or Decimal."""
    return int(round(float(value))) if value is not None else 0


def percentiles(chunks: list, ps: tuple[float, ...]) -> list[float | None]:
    """Days at each fraction ``p`` of the seconds in ``chunks``, interpolated
    as PostgreSQL's ``percentile_cont`` does: between the values at sorted
    positions floor(p·(m−1)) and the next one. A partial sort finds them in
    linear time."""
    values = np.concatenate(chunks) if chunks else np.empty(0, dtype=np.int32)
    m = len(values)
    if not m:
        return [None for _ in ps]
    spots = [(p * (m - 1), math.floor(p * (m - 1))) for p in ps]
    part = np.partition(values, sorted({k for _, lo in spots for k in (lo, min(lo + 1, m - 1))}))
    out = []
    for pos, lo in spots:
        first, second = int(part[lo]) / 86400.0, int(part[min(lo + 1, m - 1)]) / 86400.0
        out.append(first + (pos - lo) * (second - first))
    return out


def _live_tallies(session, source, keys: list, where: list, start, done, due=None, now=None,
                  sums: Mapping | None = None) -> dict[tuple, Tally]:  # fmt: skip
    """Per value of ``keys``: rows, finished rows (``done`` set), their seconds
    from ``start`` to ``done`` (total and each), overdue rows, and ``sums``."""
    sec = elapsed_seconds(start, done)
    sums = dict(sums or {})
    if due is not None:
        sums["_late"] = overdue(due, done, now)
    stmt = (select(*keys, func.count(), func.count(done), func.sum(sec), packed_seconds(sec),
                   *(func.sum(expr) for expr in sums.values()))
            .select_from(source).where(*where).group_by(*keys))  # fmt: skip
    out = {}
    k = len(keys)
    for row in session.execute(stmt):
        t = Tally(n=row[k], done=row[k + 1], seconds=_int(row[k + 2]), chunks=[_unpack(row[k + 3])])
        t.sums = {name: _int(v) for name, v in zip(sums, row[k + 4 :], strict=True)}
        t.late = t.sums.pop("_late", 0)
        out[tuple(row[:k])] = t
    return out


# --- the summary: finished work counted once, nightly ------------------------------------------
#
# A build holds every dispatch and case with an id up to its last_*_id that was
# finished (closed, completed) before its cutoff, and the responses up to its
# last_response_id submitted before the cutoff (the survey statistics' summary,
# app/services/survey.py, also the invitations up to last_invitation_id sent
# before it: answers never change once submitted). A report adds from the live
# tables exactly the rest: open work (overdue depends on "now"), work finished
# since, rows registered since, responses submitted since. Finished work does
# not change (closing is the workflow's last state), so the two parts neither
# overlap nor miss a row whenever the build ran. The cutoff lies an hour before
# the build so that a transaction that stamped its time just before the build
# but committed after it is still read live. Whatever rewrites finished work (a
# data correction, a deletion) needs a new build: run the command again.

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
    b = ReportBuild.__table__
    row = session.execute(select(b.c.id, b.c.cutoff, b.c.last_dispatch_id, b.c.last_case_id, b.c.last_response_id,
                                 b.c.last_invitation_id, b.c.last_query_log_id).order_by(b.c.id.desc()).limit(1)).first()  # fmt: skip
    return Build(*row) if row else None


def summarise(session, cutoff: datetime.datetime | None = None) -> dict:
    """Rebuild the report summary from the live tables (``flask report
    summarise``, nightly); keeps the previous build for reports running
    meanwhile and deletes older ones. Commits. Returns what it counted."""
    t0 = time.perf_counter()
    cutoff = cutoff or datetime.datetime.utcnow() - SUMMARY_MARGIN
    d, c, r, i = Dispatch.__table__, NotificationCase.__table__, Response.__table__, Invitation.__table__
    b, s = ReportBuild.__table__, ReportSummary.__table__
    last = {name: session.scalar(select(func.coalesce(func.max(t.c.id), 0)))
            for name, t in (("last_dispatch_id", d), ("last_case_id", c), ("last_response_id", r),
                            ("last_invitation_id", i), ("last_query_log_id", QueryLog.__table__))}  # fmt: skip
    build_id = session.execute(b.insert().values(cutoff=cutoff, built_at=datetime.datetime.utcnow(), **last)
                               .returning(b.c.id)).scalar_one()  # fmt: skip
    answered = (select(r.c.case_id, func.count().label("responses"), func.sum(r.c.rating_sum).label("rating_sum"),
                       func.sum(r.c.rating_count).label("rating_count"))
                .where(r.c.id <= last["last_response_id"], r.c.submitted_at < cutoff)
                .group_by(r.c.case_id).subquery())  # fmt: skip
    columns = ["build_id", "kind", "span", "day", "agency_id", "category_id", "operator_id", "receivers", "n", "late",
               "seconds", "durations", "responses", "rating_sum", "rating_count"]  # fmt: skip

    def figures(start, done, due):
        sec = elapsed_seconds(start, done)
        return [func.count(), func.sum(overdue(due, done, cutoff)), func.sum(sec), packed_seconds(sec),
                func.coalesce(func.sum(answered.c.responses), 0), func.coalesce(func.sum(answered.c.rating_sum), 0),
                func.coalesce(func.sum(answered.c.rating_count), 0)]  # fmt: skip

    day = taipei_day(d.c.sent_at)
    session.execute(s.insert().from_select(columns, select(
        literal(build_id), literal("dispatch"), literal("day"), day, d.c.agency_id, c.c.category_id, null(), null(),
        *figures(d.c.sent_at, d.c.closed_at, d.c.due_at))
        .select_from(d.join(c, c.c.id == d.c.case_id).outerjoin(answered, answered.c.case_id == d.c.case_id))
        .where(d.c.id <= last["last_dispatch_id"], d.c.closed_at < cutoff)
        .group_by(day, d.c.agency_id, c.c.category_id)))  # fmt: skip
    receivers = select(d.c.case_id, agency_list(d.c.agency_id).label("receivers")).group_by(d.c.case_id).subquery()
    day = taipei_day(c.c.created_at)
    session.execute(s.insert().from_select(columns, select(
        literal(build_id), literal("case"), literal("day"), day, c.c.agency_id, c.c.category_id, c.c.operator_id,
        receivers.c.receivers, *figures(c.c.created_at, c.c.completed_at, c.c.due_at))
        .select_from(c.outerjoin(receivers, receivers.c.case_id == c.c.id)
                     .outerjoin(answered, answered.c.case_id == c.c.id))
        .where(c.c.id <= last["last_case_id"], c.c.completed_at < cutoff)
        .group_by(day, c.c.agency_id, c.c.category_id, c.c.operator_id, receivers.c.receivers)))  # fmt: skip
    # The days of each month added up: a long period reads its whole months from these.
    month = month_start(s.c.day)
    keys = [s.c.kind, month, s.c.agency_id, s.c.category_id, s.c.operator_id, s.c.receivers]
    session.execute(s.insert().from_select(columns, select(
        literal(build_id), s.c.kind, literal("month"), *keys[1:], func.sum(s.c.n), func.sum(s.c.late),
        func.sum(s.c.seconds), concat_packed(s.c.durations), func.sum(s.c.responses), func.sum(s.c.rating_sum),
        func.sum(s.c.rating_count))
        .where(s.c.build_id == build_id, s.c.span == "day").group_by(*keys)))  # fmt: skip
    from app.services import survey

    survey.summarise(session, build_id, cutoff, last["last_invitation_id"], last["last_response_id"])
    _summarise_queries(session, build_id, cutoff, last["last_query_log_id"])
    seconds = time.perf_counter() - t0
    session.execute(b.update().where(b.c.id == build_id).values(seconds=seconds))
    session.commit()
    # Reports that began before this commit may still read the previous build: keep it.
    stale = session.scalars(select(b.c.id).where(b.c.id < build_id).order_by(b.c.id.desc()).offset(1)).all()
    drop_builds(session, stale)
    counts = dict(session.execute(select(s.c.kind, func.sum(s.c.n)).where(s.c.build_id == build_id, s.c.span == "day")
                                  .group_by(s.c.kind)).all())  # fmt: skip
    ss, qs = SurveySummary.__table__, QuerySummary.__table__
    responses = session.scalar(select(func.sum(ss.c.n)).where(ss.c.build_id == build_id, ss.c.span == "day",
                                                              ss.c.kind == "responded", ss.c.question_id.is_(None)))  # fmt: skip
    queries = session.scalar(select(func.sum(qs.c.n)).where(qs.c.build_id == build_id, qs.c.span == "day"))
    return {"build": build_id, "cutoff": cutoff, "dispatches": _int(counts.get("dispatch")),
            "cases": _int(counts.get("case")), "responses": _int(responses), "queries": _int(queries),
            "seconds": seconds}  # fmt: skip


def drop_builds(session, ids) -> None:
    """Delete these builds and their summary rows. Commits."""
    ids = list(ids)
    if ids:
        for t in (ReportSummary.__table__, SurveySummary.__table__, QuerySummary.__table__):
            session.execute(t.delete().where(t.c.build_id.in_(ids)))
        session.execute(ReportBuild.__table__.delete().where(ReportBuild.__table__.c.id.in_(ids)))
    session.commit()


def summary_days(s, first: datetime.date, last: datetime.date):
    """The summary rows covering the days first..last: a month row for each whole
    month between them, day rows for the days before and after those."""
    start = first if first.day == 1 else (first.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)
    stop = (last + datetime.timedelta(days=1)).replace(day=1)  # the first day after the last whole month
    if last.month == (last + datetime.timedelta(days=1)).month:
        stop = last.replace(day=1)
    if start >= stop:
        return and_(s.c.span == "day", s.c.day >= first, s.c.day <= last)
    # each arm a plain range of the index (build, kind, span, day)
    arms = [and_(s.c.span == "month", s.c.day >= start, s.c.day < stop)]
    if first < start:
        arms.append(and_(s.c.span == "day", s.c.day >= first, s.c.day < start))
    if stop <= last:
        arms.append(and_(s.c.span == "day", s.c.day >= stop, s.c.day <= last))
    return or_(*arms)


def _tallies(session, kind: str, keys: list[str], filters: Filters, now, build: Build | None,
             stats: bool = True) -> dict[tuple, Tally]:  # fmt: skip
    """Per value of ``keys`` the tallies of the dispatches (``kind`` dispatch:
    sent in the period) or cases (``case``: registered in it) the filters
    select: the summary's rows plus the live rows it does not hold. ``stats``
    False: the satisfaction only."""
    d, c, r, s = Dispatch.__table__, NotificationCase.__table__, Response.__table__, ReportSummary.__table__
    out: dict[tuple, Tally] = {}

    def take(parts: dict[tuple, Tally]) -> None:
        for key, t in parts.items():
            out.setdefault(key, Tally()).add(t)

    if kind == "dispatch":
        item, start, done, due, case_id = d, d.c.sent_at, d.c.closed_at, d.c.due_at, d.c.case_id
        cols = {"agency_id": d.c.agency_id, "category_id": c.c.category_id}
        joined = filters.category_id or "category_id" in keys
        source = d.join(c, c.c.id == d.c.case_id) if joined else d
        lo, hi = filters.bounds()
        where = [d.c.sent_at >= lo, d.c.sent_at < hi]
        if filters.agency_id:
            where.append(d.c.agency_id == filters.agency_id)
        if filters.category_id:
            where.append(c.c.category_id == filters.category_id)
        last_id = build.last_dispatch_id if build else 0
    else:
        item, start, done, due, case_id = c, c.c.created_at, c.c.completed_at, c.c.due_at, c.c.id
        cols = {"agency_id": c.c.agency_id, "category_id": c.c.category_id, "operator_id": c.c.operator_id}
        source, where = c, _case_where(c, filters)
        last_id = build.last_case_id if build else 0
    kcols = [cols[k] for k in keys]

    if build:
        swhere = [s.c.build_id == build.id, s.c.kind == kind, summary_days(s, filters.date_from, filters.date_to)]
        if filters.category_id:
            swhere.append(s.c.category_id == filters.category_id)
        if filters.agency_id and kind == "dispatch":
            swhere.append(s.c.agency_id == filters.agency_id)
        elif filters.agency_id:  # the notifying agency or a receiving one
            swhere.append(or_(s.c.agency_id == filters.agency_id, s.c.receivers.contains(f",{filters.agency_id},")))
        skeys = [s.c[k] for k in keys]
        figures = [func.sum(s.c.n), func.sum(s.c.late), func.sum(s.c.seconds), func.sum(s.c.responses),
                   func.sum(s.c.rating_sum), func.sum(s.c.rating_count)]  # fmt: skip
        if stats:
            figures.append(concat_packed(s.c.durations))
        k = len(keys)
        for row in session.execute(select(*skeys, *figures).where(*swhere).group_by(*skeys)):
            n = _int(row[k])
            t = Tally(n=n, done=n, late=_int(row[k + 1]), seconds=_int(row[k + 2]), responses=_int(row[k + 3]),
                      rating_sum=_int(row[k + 4]), rating_count=_int(row[k + 5]))  # fmt: skip
            if stats:
                t.chunks.append(_unpack(row[k + 6]))
            take({tuple(row[:k]): t})
        live = [or_(item.c.id > last_id, done.is_(None), done >= build.cutoff)]
        summarised = and_(item.c.id <= last_id, done < build.cutoff)
        since = or_(r.c.id > build.last_response_id, r.c.submitted_at >= build.cutoff)
        # the live rows' responses, and the summarised rows' responses that came in since the build
        answered = [[*live], [summarised, since]]
    else:
        live, answered = [], [[]]
    if stats:
        take(_live_tallies(session, source, kcols, [*where, *live], start, done, due, now))
    for extra in answered:
        stmt = (select(*kcols, func.count(r.c.id), func.sum(r.c.rating_sum), func.sum(r.c.rating_count))
                .select_from(source.join(r, r.c.case_id == case_id)).where(*where, *extra).group_by(*kcols))  # fmt: skip
        for row in session.execute(stmt):
            k = len(kcols)
            take({tuple(row[:k]): Tally(responses=_int(row[k]), rating_sum=_int(row[k + 1]),
                                        rating_count=_int(row[k + 2]))})  # fmt: skip
    return out


def _rollup(tallies: dict[tuple, Tally], level) -> dict:
    """The tallies added up per ``level(key)``."""
    out: dict = {}
    for key, t in tallies.items():
        out.setdefault(level(key), Tally()).add(t)
    return out


# --- reports -------------------------------------------------------------------------------


@dataclass
class Column:
    key: str
    label: object
    kind: str = "text"  # text | int | days | pct | rating | ms


@dataclass
class Report:
    key: str
    title: object
    filters: Filters
    columns: list[Column]
    rows: list[dict]
    total: dict | None
    label_key: str  # the column naming each row (chart labels)
    series: list[tuple[str, object]]  # (column key, label) drawn in the chart
    note: object | None = None
    scope: list[tuple[object, str]] = field(default_factory=list)  # (label, value) lines under the title

    @property
    def empty(self) -> bool:
        return not self.rows or not (self.total or {}).get("n")


CASE_COLUMNS = [
    Column("n", _l("Cases"), "int"),
    Column("done", _l("Closed"), "int"),
    Column("open", _l("Not closed"), "int"),
    Column("mean", _l("Mean days"), "days"),
    Column("median", _l("Median days"), "days"),
    Column("p90", _l("90th percentile days"), "days"),
    Column("late", _l("Overdue"), "int"),
    Column("late_pct", _l("Overdue %"), "pct"),
    Column("responses", _l("Survey responses"), "int"),
    Column("satisfaction", _l("Satisfaction (1-5)"), "rating"),
]
CASE_SERIES = [("n", _l("Cases")), ("late", _l("Overdue"))]


def _finish(row: dict, sat: dict | None = None) -> dict:
    n = int(row.get("n") or 0)
    done = int(row.get("done") or 0)
    row["n"], row["done"], row["open"] = n, done, n - done
    row["late"] = int(row.get("late") or 0)
    row["late_pct"] = round(100.0 * row["late"] / n, 1) if n else None
    for k in ("mean", "median", "p90"):
        row[k] = round(float(row[k]), 2) if row.get(k) is not None else None
    responses, rating_sum, rating_count = sat or (0, 0, 0)
    row["responses"] = int(responses or 0)
    row["satisfaction"] = round(float(rating_sum) / float(rating_count), 2) if rating_count else None
    return row


def _case_where(c, filters: Filters) -> list:
    start, end = filters.bounds()
    where = [c.c.created_at >= start, c.c.created_at < end]
    if filters.category_id:
        where.append(c.c.category_id == filters.category_id)
    if filters.agency_id:
        d = Dispatch.__table__
        where.append(or_(c.c.agency_id == filters.agency_id,
                         exists().where(and_(d.c.case_id == c.c.id, d.c.agency_id == filters.agency_id))))  # fmt: skip
    return where


def _scope(session, filters: Filters, agency_note=None) -> list:
    out = [(_l("Period"), filters.period)]
    if filters.agency_id:
        agency = session.get(Agency, filters.agency_id)
        out.append((agency_note or _l("Agency"), agency.name if agency else "?"))
    if filters.category_id:
        cat = session.get(NotificationCategory, filters.category_id)
        out.append((_l("Category"), str(cat) if cat else "?"))
    return out


def by_agency(session, filters: Filters, now: datetime.datetime | None = None, live: bool = False) -> Report:
    """Dispatches registered in the period, per receiving agency and overall.
    ``live``: from the live tables alone, as if there were no summary."""
    now = now or datetime.datetime.utcnow()
    build = None if live else current_build(session)
    groups = _tallies(session, "dispatch", ["agency_id"], filters, now, build)
    overall = _tallies(session, "case", [], filters, now, build, stats=False).get((), Tally())
    names = {a.id: a for a in session.scalars(select(Agency).where(Agency.id.in_([k[0] for k in groups])))}
    rows = []
    for (agency_id,), t in groups.items():
        agency = names.get(agency_id)
        g = {"agency_id": agency_id, **t.figures()}
        g["label"] = agency.name if agency else str(agency_id)
        g["code"] = agency.code if agency else ""
        rows.append(_finish(g, t.satisfaction))
    rows.sort(key=lambda row: (-row["n"], row["label"]))
    total = _finish(_rollup(groups, lambda key: ()).get((), Tally()).figures(), overall.satisfaction)
    total["label"] = str(_l("All receiving agencies"))
    return Report("agencies", _l("Performance by receiving agency"), filters,
                  [Column("label", _l("Receiving agency")), *CASE_COLUMNS], rows, total, "label", CASE_SERIES,
                  note=_l("Each dispatch counts once for its receiving agency; processing time runs from dispatch to "
                          "closing. Satisfaction: mean of the rating answers of the cases the agency took part in."),
                  scope=_scope(session, filters, _l("Receiving agency")))  # fmt: skip


CASE_NOTE = _l("A case counts once; processing time runs from registration until every receiving agency has closed it. "
               "Satisfaction: mean of the rating answers to the case's questionnaire.")  # fmt: skip


def by_category(session, filters: Filters, now: datetime.datetime | None = None, live: bool = False) -> Report:
    """Cases registered in the period, per main item and sub item, with main-item subtotals and the overall figures.
    ``live``: from the live tables alone, as if there were no summary."""
    now = now or datetime.datetime.utcnow()
    per_sub = _tallies(session, "case", ["category_id"], filters, now, None if live else current_build(session))
    cats = {x.id: x for x in session.scalars(select(NotificationCategory)
                                             .where(NotificationCategory.id.in_([k[0] for k in per_sub])))}  # fmt: skip
    per_main = _rollup({k: t for k, t in per_sub.items() if k[0] in cats}, lambda key: cats[key[0]].main_item)
    rows = []
    for main in sorted(per_main):
        subs = sorted(k[0] for k in per_sub if k[0] in cats and cats[k[0]].main_item == main)
        for category_id in subs:  # sub items in the order they were set up
            t = per_sub[(category_id,)]
            g = {"category_id": category_id, **t.figures()}
            g.update(main_item=main, sub_item=cats[category_id].sub_item, level="item",
                     label=f"{main}－{cats[category_id].sub_item}")  # fmt: skip
            rows.append(_finish(g, t.satisfaction))
        t = per_main[main]
        m = t.figures()
        m.update(main_item=main, sub_item=str(_l("Subtotal")), level="subtotal", label=f"{main}（{_l('Subtotal')}）")
        rows.append(_finish(m, t.satisfaction))
    everything = _rollup(per_sub, lambda key: ()).get((), Tally())
    total = _finish(everything.figures(), everything.satisfaction)
    total.update(main_item=str(_l("All categories")), sub_item="", label=str(_l("All categories")))
    return Report("categories", _l("Performance by category"), filters,
                  [Column("main_item", _l("Main item")), Column("sub_item", _l("Sub item")), *CASE_COLUMNS],
                  rows, total, "label", CASE_SERIES, note=CASE_NOTE,
                  scope=_scope(session, filters, _l("Agency (notifying or receiving)")))  # fmt: skip


def by_clerk(session, filters: Filters, now: datetime.datetime | None = None, live: bool = False) -> Report:
    """Cases registered in the period, per counter clerk (the notifier who registered them).
    ``live``: from the live tables alone, as if there were no summary."""
    now = now or datetime.datetime.utcnow()
    groups = _tallies(session, "case", ["operator_id", "agency_id"], filters, now,
                      None if live else current_build(session))  # fmt: skip
    users = {u.id: u for u in session.scalars(select(PlatformUser)
                                              .where(PlatformUser.id.in_([k[0] for k in groups if k[0]])))}  # fmt: skip
    agencies = {a.id: a for a in session.scalars(select(Agency).where(Agency.id.in_([k[1] for k in groups])))}
    rows = []
    for (operator_id, agency_id), t in groups.items():
        user, agency = users.get(operator_id), agencies.get(agency_id)
        g = {"operator_id": operator_id, "agency_id": agency_id, **t.figures()}
        g.update(username=user.username if user else "—", name=user.get_full_name() if user else "",
                 agency=agency.name if agency else "")  # fmt: skip
        g["label"] = f"{g['name'] or g['username']}（{g['agency']}）"
        rows.append(_finish(g, t.satisfaction))
    rows.sort(key=lambda row: (row["agency"], -row["n"], row["username"]))
    everything = _rollup(groups, lambda key: ()).get((), Tally())
    total = _finish(everything.figures(), everything.satisfaction)
    total.update(username=str(_l("All clerks")), name="", agency="", label=str(_l("All clerks")))
    return Report("clerks", _l("Performance by counter clerk"), filters,
                  [Column("agency", _l("Notifying agency")), Column("username", _l("Account")),
                   Column("name", _l("Clerk")), *CASE_COLUMNS],
                  rows, total, "label", CASE_SERIES, note=CASE_NOTE,
                  scope=_scope(session, filters, _l("Agency (notifying or receiving)")))  # fmt: skip


QUERY_COLUMNS = [
    Column("n", _l("Queries"), "int"),
    Column("ok", _l("Answered"), "int"),
    Column("partial", _l("Partly answered"), "int"),
    Column("refused", _l("Refused"), "int"),
    Column("errors", _l("Source errors"), "int"),
    Column("users", _l("Users"), "int"),
    Column("rows", _l("Records returned"), "int"),
    Column("mean_ms", _l("Mean time (ms)"), "ms"),
]


QUERY_FIGURES = ("n", "ok", "partial", "refused", "errors", "rows", "ms", "timed")


def _query_figures(q) -> dict:
    """The query statistics' figures over query-log rows, by QUERY_FIGURES name."""
    return {"n": func.count(), "ok": func.sum(case((q.c.outcome == "ok", 1), else_=0)),
            "partial": func.sum(case((q.c.outcome == "partial", 1), else_=0)),
            "refused": func.sum(case((q.c.outcome == "refused", 1), else_=0)),
            "errors": func.sum(case((q.c.outcome == "source_error", 1), else_=0)),
            "rows": func.coalesce(func.sum(q.c.row_count), 0), "ms": func.coalesce(func.sum(q.c.duration_ms), 0),
            "timed": func.count(q.c.duration_ms)}  # fmt: skip


def _summarise_queries(session, build_id: int, cutoff: datetime.datetime, last_id: int) -> None:
    """The query-log rows up to ``last_id`` written before ``cutoff`` (a row is
    never changed in what the statistics count) into query_summary, per Taipei
    day and per month, with each group's users packed. Does not commit."""
    q, qs = QueryLog.__table__, QuerySummary.__table__
    keys = [q.c.agency_code, q.c.form_code, q.c.business_item]
    figures = _query_figures(q)
    # per day, group and user first: each group's users once
    pairs = (select(taipei_day(q.c.at).label("day"), *keys, func.coalesce(q.c.user_id, literal_column("0")).label("user_id"),
                    *(expr.label(name) for name, expr in figures.items()))
             .where(q.c.id <= last_id, q.c.at < cutoff)
             .group_by(taipei_day(q.c.at), *keys, func.coalesce(q.c.user_id, literal_column("0"))).subquery())  # fmt: skip
    pkeys = [pairs.c.day, pairs.c.agency_code, pairs.c.form_code, pairs.c.business_item]
    columns = ["build_id", "span", "day", "agency_code", "form_code", "business_item", *QUERY_FIGURES, "users"]
    session.execute(qs.insert().from_select(columns, select(
        literal(build_id), literal("day"), *pkeys, *(func.sum(pairs.c[name]) for name in QUERY_FIGURES),
        packed_seconds(pairs.c.user_id)).group_by(*pkeys)))  # fmt: skip
    mkeys = [month_start(qs.c.day), qs.c.agency_code, qs.c.form_code, qs.c.business_item]
    session.execute(qs.insert().from_select(columns, select(
        literal(build_id), literal("month"), *mkeys, *(func.sum(qs.c[name]) for name in QUERY_FIGURES),
        concat_packed(qs.c.users)).where(qs.c.build_id == build_id, qs.c.span == "day").group_by(*mkeys)))  # fmt: skip


def queries(session, filters: Filters, now=None, live: bool = False) -> Report:
    """Queries in the period per agency, form and business item: the nightly
    summary's rows plus the query-log rows written since. ``live``: from the
    query log alone, as if there were no summary."""
    q = QueryLog.__table__
    start, end = filters.bounds()
    where = [q.c.at >= start, q.c.at < end]
    agency = session.get(Agency, filters.agency_id) if filters.agency_id else None
    code = agency.code if agency else ""
    if filters.agency_id:
        where.append(q.c.agency_code == code)
    period = list(where)
    tune(session)
    sums: dict[tuple, dict] = {}
    # per group: the user ids (0: no account), repeats allowed: packed arrays
    # from the summary, and the ids the live rows add
    packed: dict[tuple, list] = {}
    live_ids: dict[tuple, list] = {}

    def take(key: tuple, figures) -> None:
        g = sums.setdefault(key, dict.fromkeys(QUERY_FIGURES, 0))
        for name, value in zip(QUERY_FIGURES, figures, strict=True):
            g[name] += value or 0

    build = None if live else current_build(session)
    if build:
        qs = QuerySummary.__table__
        swhere = [qs.c.build_id == build.id, summary_days(qs, filters.date_from, filters.date_to)]
        if filters.agency_id:
            swhere.append(qs.c.agency_code == code)
        skeys = [qs.c.agency_code, qs.c.form_code, qs.c.business_item]
        for row in session.execute(select(*skeys, *(func.sum(qs.c[name]) for name in QUERY_FIGURES),
                                          concat_packed(qs.c.users)).where(*swhere).group_by(*skeys)):  # fmt: skip
            take(tuple(row[:3]), row[3:-1])
            packed.setdefault(tuple(row[:3]), []).append(_unpack(row[-1]))
        where.append(or_(q.c.id > build.last_query_log_id, q.c.at >= build.cutoff))
    # what the summary does not hold, per group and user (a group's users are its rows)
    keys = [q.c.agency_code, q.c.form_code, q.c.business_item]
    figures = _query_figures(q)
    user = func.coalesce(q.c.user_id, literal_column("0"))
    for row in session.execute(select(*keys, user, *figures.values()).where(*where).group_by(*keys, user)):
        take(tuple(row[:3]), row[4:])
        live_ids.setdefault(tuple(row[:3]), []).append(row[3])
    groups, everyone = [], []
    for key, g in sums.items():
        ids = np.unique(np.concatenate([*packed.get(key, []), np.asarray(live_ids.get(key, []), dtype=np.int32)]))
        everyone.append(ids)
        groups.append({"agency_code": key[0], "form_code": key[1], "business_item": key[2], **g, "users": ids.size})
    total = {name: sum(g[name] for g in groups) for name in QUERY_FIGURES}
    total["users"] = np.unique(np.concatenate(everyone)).size if everyone else 0
    for g in (*groups, total):
        ms, timed = g.pop("ms"), g.pop("timed")
        g["mean_ms"] = float(ms) / int(timed) if timed else None
    codes = {g["agency_code"] for g in groups}
    agencies = {a.code: a.name for a in session.scalars(select(Agency).where(Agency.code.in_(codes)))}
    form_codes = {g["form_code"] for g in groups}
    forms = {f.code: f.title for f in session.scalars(select(QueryForm).where(QueryForm.code.in_(form_codes)))}
    if form_codes - set(forms):  # forms deleted since: the title the log kept
        forms.update(session.execute(select(q.c.form_code, func.max(q.c.form_title))
                                     .where(*period, q.c.form_code.in_(form_codes - set(forms)))
                                     .group_by(q.c.form_code)).all())  # fmt: skip
    items = {b.code: b.name for b in session.scalars(select(BusinessItem).where(BusinessItem.code.in_(
        {g["business_item"] for g in groups if g["business_item"]})))}  # fmt: skip

    def tidy(row):
        for k in ("n", "ok", "partial", "refused", "errors", "users", "rows"):
            row[k] = int(row.get(k) or 0)
        row["mean_ms"] = round(float(row["mean_ms"]), 1) if row.get("mean_ms") is not None else None
        return row

    rows = []
    for g in groups:
        g["agency"] = agencies.get(g["agency_code"], g["agency_code"] or "—")
        g["form"] = forms.get(g["form_code"]) or g["form_code"] or "—"
        g["item"] = items.get(g["business_item"], g["business_item"] or "—")
        g["label"] = f"{g['agency']}／{g['form']}"
        rows.append(tidy(g))
    rows.sort(key=lambda row: (row["agency"], -row["n"], row["form"], row["item"]))
    total = tidy(total)
    total.update(agency=str(_l("All agencies")), form="", item="", label=str(_l("All agencies")))
    return Report("queries", _l("Query statistics"), filters,
                  [Column("agency", _l("Agency")), Column("form", _l("Form")), Column("item", _l("Business item")),
                   *QUERY_COLUMNS],
                  rows, total, "label", [("n", _l("Queries")), ("refused", _l("Refused"))],
                  note=_l("From the query log: every query, refused ones included."),
                  scope=_scope(session, Filters(filters.date_from, filters.date_to, filters.agency_id)))  # fmt: skip


TRANSFER_STATES = ("registered", "uploaded", "received", "processed", "result_received")


def transfers(session, filters: Filters, now=None) -> Report:
    """Transfer cases registered in the period per sending and receiving agency."""
    t = TransferCase.__table__
    start, end = filters.bounds()
    where = [t.c.registered_at >= start, t.c.registered_at < end]
    if filters.agency_id:
        where.append(or_(t.c.sending_agency_id == filters.agency_id, t.c.receiving_agency_id == filters.agency_id))
    sums = {"records": func.coalesce(t.c.record_count, 0),
            **{f"st_{s}": case((t.c.state == s, 1), else_=0) for s in TRANSFER_STATES}}  # fmt: skip
    # A few thousand a year: read live, never summarised.
    tallies = _live_tallies(session, t, [t.c.sending_agency_id, t.c.receiving_agency_id], where, t.c.registered_at,
                            t.c.processed_at, sums=sums)  # fmt: skip
    groups = [{"sender": k[0], "receiver": k[1], **tally.figures()} for k, tally in tallies.items()]
    ids = {g["sender"] for g in groups} | {g["receiver"] for g in groups}
    names = {a.id: a.name for a in session.scalars(select(Agency).where(Agency.id.in_(ids)))}

    def tidy(row):
        row["n"] = int(row.get("n") or 0)
        row["done"] = int(row.get("done") or 0)
        for k in sums:
            row[k] = int(row.get(k) or 0)
        for k in ("mean", "median", "p90"):
            row[k] = round(float(row[k]), 2) if row.get(k) is not None else None
        return row

    rows = []
    for g in groups:
        g.update(sending=names.get(g["sender"], ""), receiving=names.get(g["receiver"], ""))
        g["label"] = f"{g['sending']} → {g['receiving']}"
        rows.append(tidy(g))
    rows.sort(key=lambda row: (-row["n"], row["label"]))
    total = tidy(_rollup(tallies, lambda key: ()).get((), Tally()).figures())
    total.update(sending=str(_l("All agencies")), receiving="", label=str(_l("All agencies")))
    state_labels = {"registered": _l("Registered"), "uploaded": _l("Uploaded"), "received": _l("Received"),
                    "processed": _l("Processed"), "result_received": _l("Result received")}  # fmt: skip
    return Report("transfers", _l("Transfer counts"), filters,
                  [Column("sending", _l("Sending agency")), Column("receiving", _l("Receiving agency")),
                   Column("n", _l("Transfers"), "int"), Column("records", _l("Records"), "int"),
                   *(Column(f"st_{s}", state_labels[s], "int") for s in TRANSFER_STATES),
                   Column("mean", _l("Mean days to processed"), "days"),
                   Column("median", _l("Median days"), "days"), Column("p90", _l("90th percentile days"), "days")],
                  rows, total, "label", [("n", _l("Transfers")), ("st_processed", _l("Processed"))],
                  note=_l("Transfer cases registered in the period; days from registration until the receiving "
                          "agency recorded it as processed."),
                  scope=_scope(session, Filters(filters.date_from, filters.date_to, filters.agency_id),
                               _l("Agency (sending or receiving)")))  # fmt: skip


REPORTS = {
    "agencies": by_agency,
    "categories": by_category,
    "clerks": by_clerk,
    "queries": queries,
    "transfers": transfers,
}
REPORT_TITLES = {
    "agencies": _l("By receiving agency"),
    "categories": _l("By category"),
    "clerks": _l("By counter clerk"),
    "queries": _l("Query statistics"),
    "transfers": _l("Transfers"),
}


def run(session, key: str, filters: Filters, now=None) -> Report:
    """One report by key. Raises InvalidInput for an unknown one."""
    fn = REPORTS.get(key)
    if fn is None:
        raise InvalidInput(_l("No such report."))
    tune(session)
    return fn(session, filters, now=now)


def agencies(session) -> list[Agency]:
    return list(session.scalars(select(Agency).where(Agency.active.is_(True)).order_by(Agency.kind, Agency.code)))


# --- the weekly query log for supervisors ------------------------------------------------------


def week_of(day: datetime.date) -> tuple[datetime.date, datetime.date]:
    """Monday and Sunday of the week holding ``day``."""
    monday = day - datetime.timedelta(days=day.weekday())
    return monday, monday + datetime.timedelta(days=6)


def last_week(today: datetime.date | None = None) -> tuple[datetime.date, datetime.date]:
    return week_of((today or taipei_today()) - datetime.timedelta(days=7))


@dataclass
class WeeklySection:
    agency: Agency
    users: list[dict]  # username, name, n, refused
    entries: list[dict]  # at, username, name, form, case_no, reason, business_item, outcome, rows

    @property
    def total(self) -> int:
        return sum(u["n"] for u in self.users)


def weekly_query_log(session, monday: datetime.date, agency_code: str | None = None,
                     limit: int | None = 20000) -> list[WeeklySection]:  # fmt: skip
    """Per agency (one, or every active one), the week's queries by user with
    their purpose: case number, reason, business item. Never the parameters or
    the data subjects (they hold ID numbers). Raises InvalidInput for an unknown agency."""
    if agency_code:
        chosen = session.scalars(select(Agency).where(Agency.code == agency_code)).all()
        if not chosen:
            raise InvalidInput(_l("No agency has the code %(code)s."), code=agency_code[:20])
    else:
        chosen = agencies(session)
    start, end = _utc(monday), _utc(monday + datetime.timedelta(days=7))
    q, u, b = QueryLog.__table__, PlatformUser.__table__, BusinessItem.__table__
    sections = []
    for agency in chosen:
        where = [q.c.agency_code == agency.code, q.c.at >= start, q.c.at < end]
        users = [dict(r._mapping) for r in session.execute(
            select(q.c.username, func.count().label("n"),
                   func.sum(case((q.c.outcome == "refused", 1), else_=0)).label("refused"))
            .where(*where).group_by(q.c.username).order_by(q.c.username))]  # fmt: skip
        names = {row.username: row for row in session.execute(
            select(u.c.username, u.c.first_name, u.c.last_name).where(u.c.username.in_([x["username"] for x in users])))}  # fmt: skip
        for x in users:
            x["refused"] = int(x["refused"] or 0)
            row = names.get(x["username"])
            x["name"] = _full_name(row.first_name, row.last_name) if row else ""
        if not limit:  # the summary only
            sections.append(WeeklySection(agency, users, []))
            continue
        entries = [dict(r._mapping) for r in session.execute(
            select(q.c.at, q.c.username, q.c.form_title.label("form"), q.c.case_no, q.c.reason,
                   func.coalesce(b.c.name, q.c.business_item).label("business_item"), q.c.outcome,
                   q.c.row_count.label("rows"))
            .select_from(q.outerjoin(b, b.c.code == q.c.business_item)).where(*where)
            .order_by(q.c.username, q.c.at, q.c.id).limit(limit))]  # fmt: skip
        sections.append(WeeklySection(agency, users, entries))
    return sections


def _full_name(first: str | None, last: str | None) -> str:
    first, last = first or "", last or ""
    if any("\u4e00" <= ch <= "\u9fff" for ch in first + last):
        return f"{last}{first}"
    return f"{first} {last}".strip()
