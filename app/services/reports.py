"""Management reports: case counts, processing times (mean, median, 90th
percentile), overdue counts and satisfaction, by receiving agency, by category
and by counter clerk; query statistics; transfer counts; the weekly query log.

Every figure is computed by the database (GROUP BY over indexed columns), so
the reports read the same at county scale: PostgreSQL computes percentiles
with ``percentile_cont``; SQLite, which has none, with window functions that
interpolate exactly as ``percentile_cont`` does, so both give the same figures.

Dates: the forms use ROC dates (115/11/01); a range covers whole days in
Taipei time; timestamps are stored in UTC.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field

from flask_babel import lazy_gettext as _l
from sqlalchemy import Float, Integer, and_, case, cast, exists, func, literal, or_, select, tuple_
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from app.lib.rocdate import TAIPEI, format_roc, parse_roc
from app.models.notify import Dispatch, NotificationCase, NotificationCategory
from app.models.org import Agency, PlatformUser
from app.models.queries import BusinessItem, QueryForm, QueryLog
from app.models.survey import Response
from app.models.transfer import TransferCase
from app.services.errors import InvalidInput

DEFAULT_DAYS = 30
MAX_DAYS = 366 * 10

# --- filters -------------------------------------------------------------------------


def taipei_today() -> datetime.date:
    return datetime.datetime.now(TAIPEI).date()


def _utc(day: datetime.date) -> datetime.datetime:
    """Midnight of a Taipei day, as the naive UTC the tables store."""
    local = datetime.datetime.combine(day, datetime.time(0), tzinfo=TAIPEI)
    return local.astimezone(datetime.UTC).replace(tzinfo=None)


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


def days_between(start, end):
    """Days from start to end while end is set, else NULL (still open)."""
    return case((end.isnot(None), cast(elapsed_seconds(start, end), Float) / 86400.0), else_=None)


def overdue(due, done, now):
    """1 when finished after its due time, or unfinished and past it."""
    return case((and_(due.isnot(None), or_(and_(done.isnot(None), done > due), and_(done.is_(None), due < now))), 1),
                else_=0)  # fmt: skip


def tune(session) -> None:
    """PostgreSQL: room to sort and group a year of rows in memory rather than
    on disk (REPORT_WORK_MEM, this transaction only)."""
    from flask import current_app

    if session.get_bind().dialect.name == "postgresql":
        value = current_app.config.get("REPORT_WORK_MEM", "64MB")
        session.execute(select(func.set_config("work_mem", value, True)))


def _duration_stats(session, base, levels: list[list[str]], sums: tuple[str, ...] = ("late",)) -> list[list[dict]]:
    """For each grouping level (a list of ``base`` columns; [] = everything)
    the groups' n, done, mean, median, p90 and each of ``sums``. ``base`` has
    the key columns, ``dur`` (days, NULL while open) and the ``sums``.

    PostgreSQL: one scan for every level (GROUPING SETS) and one sort per
    group for both percentiles (percentile_cont over an array). SQLite: one
    query per level, percentiles by rank with window functions.
    """
    if session.get_bind().dialect.name == "postgresql":
        return _duration_stats_pg(session, base, levels, sums)
    return [_duration_stats_ranked(session, base, keys, sums) for keys in levels]


def _duration_stats_pg(session, base, levels, sums) -> list[list[dict]]:
    keys = list(dict.fromkeys(k for level in levels for k in level))
    kcols = [base.c[k] for k in keys]
    d = base.c.dur
    pct = func.percentile_cont(postgresql.array([0.5, 0.9])).within_group(d)
    pct.type = postgresql.ARRAY(Float)
    cols = [func.count().label("n"), func.count(d).label("done"), func.avg(d).label("mean"), pct.label("pct"),
            *(func.sum(base.c[s]).label(s) for s in sums)]  # fmt: skip
    if not keys:
        stmt = select(literal(0).label("_set"), *cols).select_from(base)
    else:
        sets = func.grouping_sets(*(tuple_(*(base.c[k] for k in level)) for level in levels))
        stmt = select(*kcols, func.grouping(*kcols).label("_set"), *cols).select_from(base).group_by(sets)
    out: list[list[dict]] = [[] for _ in levels]
    # GROUPING() has a 1 bit for every key the row is aggregated over
    masks = {sum(1 << (len(keys) - 1 - i) for i, k in enumerate(keys) if k not in level): n
             for n, level in enumerate(levels)}  # fmt: skip
    for row in session.execute(stmt):
        m = dict(row._mapping)
        pcts = m.pop("pct") or [None, None]
        m["median"], m["p90"] = pcts[0], pcts[1]
        level = masks[m.pop("_set")]
        out[level].append({k: v for k, v in m.items() if k not in keys or k in levels[level]})
    for n, level in enumerate(levels):
        if not level and not out[n]:
            out[n].append({"n": 0})
    return out


def _duration_stats_ranked(session, base, keys: list[str], sums) -> list[dict]:
    kcols = [base.c[k] for k in keys]
    part = kcols or None
    ranked = select(*kcols, base.c.dur, *(base.c[s] for s in sums),
                    func.row_number().over(partition_by=part, order_by=base.c.dur.asc().nulls_last()).label("rn"),
                    func.count(base.c.dur).over(partition_by=part).label("m")).subquery()  # fmt: skip
    d = ranked.c.dur

    def percentile(p: float):
        # percentile_cont: interpolate between the values at ranks floor(pos) and floor(pos) + 1
        pos = 1 + p * (ranked.c.m - 1)
        lo = cast(pos, Integer)
        v_lo = func.max(case((ranked.c.rn == lo, d)))
        v_hi = func.coalesce(func.max(case((ranked.c.rn == lo + 1, d))), v_lo)
        return v_lo + func.max(pos - lo) * (v_hi - v_lo)

    cols = [func.count().label("n"), func.count(d).label("done"), func.avg(d).label("mean"),
            percentile(0.5).label("median"), percentile(0.9).label("p90"),
            *(func.sum(ranked.c[s]).label(s) for s in sums)]  # fmt: skip
    kcols = [ranked.c[k] for k in keys]
    stmt = select(*kcols, *cols).select_from(ranked)
    if kcols:
        stmt = stmt.group_by(*kcols)
    return [dict(row._mapping) for row in session.execute(stmt)]


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


def _satisfaction(session, stmt) -> dict:
    """key -> (responses, rating sum, rating count) from ``stmt`` selecting (key, those three)."""
    return {row[0]: tuple(row[1:]) for row in session.execute(stmt)}


def _sat_cols():
    r = Response.__table__
    return func.count(r.c.id), func.sum(r.c.rating_sum), func.sum(r.c.rating_count)


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


def by_agency(session, filters: Filters, now: datetime.datetime | None = None) -> Report:
    """Dispatches registered in the period, per receiving agency and overall."""
    now = now or datetime.datetime.utcnow()
    d, c, r = Dispatch.__table__, NotificationCase.__table__, Response.__table__
    start, end = filters.bounds()
    where = [d.c.sent_at >= start, d.c.sent_at < end]
    if filters.agency_id:
        where.append(d.c.agency_id == filters.agency_id)
    source = d
    if filters.category_id:
        source = d.join(c, c.c.id == d.c.case_id)
        where.append(c.c.category_id == filters.category_id)
    base = (select(d.c.agency_id.label("agency_id"), days_between(d.c.sent_at, d.c.closed_at).label("dur"),
                   overdue(d.c.due_at, d.c.closed_at, now).label("late"))
            .select_from(source).where(*where).subquery())  # fmt: skip
    groups, totals = _duration_stats(session, base, [["agency_id"], []])
    sat_from = r.join(d, d.c.case_id == r.c.case_id)
    if filters.category_id:
        sat_from = sat_from.join(c, c.c.id == d.c.case_id)
    sat = _satisfaction(session, select(d.c.agency_id, *_sat_cols()).select_from(sat_from).where(*where)
                        .group_by(d.c.agency_id))  # fmt: skip
    overall = _satisfaction(session, select(literal(1), *_sat_cols()).select_from(r.join(c, c.c.id == r.c.case_id))
                            .where(*_case_where(c, filters)))  # fmt: skip
    names = {a.id: a for a in session.scalars(select(Agency).where(Agency.id.in_([g["agency_id"] for g in groups])))}
    rows = []
    for g in groups:
        agency = names.get(g["agency_id"])
        g["label"] = agency.name if agency else str(g["agency_id"])
        g["code"] = agency.code if agency else ""
        rows.append(_finish(g, sat.get(g["agency_id"])))
    rows.sort(key=lambda row: (-row["n"], row["label"]))
    total = _finish(totals[0] if totals else {}, overall.get(1))
    total["label"] = str(_l("All receiving agencies"))
    return Report("agencies", _l("Performance by receiving agency"), filters,
                  [Column("label", _l("Receiving agency")), *CASE_COLUMNS], rows, total, "label", CASE_SERIES,
                  note=_l("Each dispatch counts once for its receiving agency; processing time runs from dispatch to "
                          "closing. Satisfaction: mean of the rating answers of the cases the agency took part in."),
                  scope=_scope(session, filters, _l("Receiving agency")))  # fmt: skip


def _case_base(session, filters: Filters, now, *extra):
    c = NotificationCase.__table__
    cat = NotificationCategory.__table__
    return (select(*extra, days_between(c.c.created_at, c.c.completed_at).label("dur"),
                   overdue(c.c.due_at, c.c.completed_at, now).label("late"))
            .select_from(c.join(cat, cat.c.id == c.c.category_id)).where(*_case_where(c, filters)).subquery())  # fmt: skip


CASE_NOTE = _l("A case counts once; processing time runs from registration until every receiving agency has closed it. "
               "Satisfaction: mean of the rating answers to the case's questionnaire.")  # fmt: skip


def by_category(session, filters: Filters, now: datetime.datetime | None = None) -> Report:
    """Cases registered in the period, per main item and sub item, with main-item subtotals and the overall figures."""
    now = now or datetime.datetime.utcnow()
    c, cat, r = NotificationCase.__table__, NotificationCategory.__table__, Response.__table__
    base = _case_base(session, filters, now, c.c.category_id.label("category_id"), cat.c.main_item.label("main_item"))
    per_sub, mains, totals = _duration_stats(session, base, [["category_id"], ["main_item"], []])
    per_main = {g["main_item"]: g for g in mains}
    sat_from = r.join(c, c.c.id == r.c.case_id).join(cat, cat.c.id == c.c.category_id)
    where = _case_where(c, filters)
    sat_sub = _satisfaction(session, select(c.c.category_id, *_sat_cols()).select_from(sat_from).where(*where)
                            .group_by(c.c.category_id))  # fmt: skip
    sat_main = _satisfaction(session, select(cat.c.main_item, *_sat_cols()).select_from(sat_from).where(*where)
                             .group_by(cat.c.main_item))  # fmt: skip
    sat_all = _satisfaction(session, select(literal(1), *_sat_cols()).select_from(sat_from).where(*where))
    cats = {x.id: x for x in session.scalars(select(NotificationCategory)
                                             .where(NotificationCategory.id.in_([g["category_id"] for g in per_sub])))}  # fmt: skip
    rows = []
    for main in sorted(per_main):
        subs = [
            g for g in per_sub if cats.get(g["category_id"]) is not None and cats[g["category_id"]].main_item == main
        ]
        for g in sorted(subs, key=lambda g: g["category_id"]):  # sub items in the order they were set up
            g.update(main_item=main, sub_item=cats[g["category_id"]].sub_item, level="item",
                     label=f"{main}－{cats[g['category_id']].sub_item}")  # fmt: skip
            rows.append(_finish(g, sat_sub.get(g["category_id"])))
        m = per_main[main]
        m.update(main_item=main, sub_item=str(_l("Subtotal")), level="subtotal", label=f"{main}（{_l('Subtotal')}）")
        rows.append(_finish(m, sat_main.get(main)))
    total = _finish(totals[0] if totals else {}, sat_all.get(1))
    total.update(main_item=str(_l("All categories")), sub_item="", label=str(_l("All categories")))
    return Report("categories", _l("Performance by category"), filters,
                  [Column("main_item", _l("Main item")), Column("sub_item", _l("Sub item")), *CASE_COLUMNS],
                  rows, total, "label", CASE_SERIES, note=CASE_NOTE,
                  scope=_scope(session, filters, _l("Agency (notifying or receiving)")))  # fmt: skip


def by_clerk(session, filters: Filters, now: datetime.datetime | None = None) -> Report:
    """Cases registered in the period, per counter clerk (the notifier who registered them)."""
    now = now or datetime.datetime.utcnow()
    c, r = NotificationCase.__table__, Response.__table__
    base = _case_base(session, filters, now, c.c.operator_id.label("operator_id"), c.c.agency_id.label("agency_id"))
    groups, totals = _duration_stats(session, base, [["operator_id", "agency_id"], []])
    where = _case_where(c, filters)
    sat_from = r.join(c, c.c.id == r.c.case_id)
    sat = {(row[0], row[1]): tuple(row[2:]) for row in session.execute(
        select(c.c.operator_id, c.c.agency_id, *_sat_cols()).select_from(sat_from).where(*where)
        .group_by(c.c.operator_id, c.c.agency_id))}  # fmt: skip
    sat_all = _satisfaction(session, select(literal(1), *_sat_cols()).select_from(sat_from).where(*where))
    users = {u.id: u for u in session.scalars(select(PlatformUser)
                                              .where(PlatformUser.id.in_([g["operator_id"] for g in groups if g["operator_id"]])))}  # fmt: skip
    agencies = {a.id: a for a in session.scalars(select(Agency).where(Agency.id.in_([g["agency_id"] for g in groups])))}
    rows = []
    for g in groups:
        user, agency = users.get(g["operator_id"]), agencies.get(g["agency_id"])
        g.update(username=user.username if user else "—", name=user.get_full_name() if user else "",
                 agency=agency.name if agency else "")  # fmt: skip
        g["label"] = f"{g['name'] or g['username']}（{g['agency']}）"
        rows.append(_finish(g, sat.get((g["operator_id"], g["agency_id"]))))
    rows.sort(key=lambda row: (row["agency"], -row["n"], row["username"]))
    total = _finish(totals[0] if totals else {}, sat_all.get(1))
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


def queries(session, filters: Filters, now=None) -> Report:
    """Queries in the period per agency, form and business item (from the query log)."""
    q = QueryLog.__table__
    start, end = filters.bounds()
    where = [q.c.at >= start, q.c.at < end]
    agency = session.get(Agency, filters.agency_id) if filters.agency_id else None
    if filters.agency_id:
        where.append(q.c.agency_code == (agency.code if agency else ""))

    def figures():
        return [func.count().label("n"),
                func.sum(case((q.c.outcome == "ok", 1), else_=0)).label("ok"),
                func.sum(case((q.c.outcome == "partial", 1), else_=0)).label("partial"),
                func.sum(case((q.c.outcome == "refused", 1), else_=0)).label("refused"),
                func.sum(case((q.c.outcome == "source_error", 1), else_=0)).label("errors"),
                func.sum(q.c.row_count).label("rows"), func.avg(q.c.duration_ms).label("mean_ms")]  # fmt: skip

    keys = [q.c.agency_code, q.c.form_code, q.c.business_item]
    groups = [dict(r._mapping) for r in session.execute(select(*keys, *figures()).where(*where).group_by(*keys))]
    total = dict(session.execute(select(*figures()).where(*where)).one()._mapping)
    # Distinct users apart: hashing (group, user) pairs is far cheaper than COUNT(DISTINCT) sorting every row.
    pairs = select(*keys, q.c.user_id).where(*where).distinct().subquery()
    users = {tuple(r[:3]): r[3] for r in session.execute(
        select(pairs.c.agency_code, pairs.c.form_code, pairs.c.business_item, func.count())
        .group_by(pairs.c.agency_code, pairs.c.form_code, pairs.c.business_item))}  # fmt: skip
    total["users"] = session.scalar(select(func.count()).select_from(select(q.c.user_id).where(*where).distinct()
                                                                     .subquery()))  # fmt: skip
    for g in groups:
        g["users"] = users.get((g["agency_code"], g["form_code"], g["business_item"]), 0)
    codes = {g["agency_code"] for g in groups}
    agencies = {a.code: a.name for a in session.scalars(select(Agency).where(Agency.code.in_(codes)))}
    form_codes = {g["form_code"] for g in groups}
    forms = {f.code: f.title for f in session.scalars(select(QueryForm).where(QueryForm.code.in_(form_codes)))}
    if form_codes - set(forms):  # forms deleted since: the title the log kept
        forms.update(session.execute(select(q.c.form_code, func.max(q.c.form_title))
                                     .where(*where, q.c.form_code.in_(form_codes - set(forms)))
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
    states = tuple(f"st_{s}" for s in TRANSFER_STATES)
    base = (select(t.c.sending_agency_id.label("sender"), t.c.receiving_agency_id.label("receiver"),
                   days_between(t.c.registered_at, t.c.processed_at).label("dur"),
                   func.coalesce(t.c.record_count, 0).label("records"),
                   *(case((t.c.state == s, 1), else_=0).label(f"st_{s}") for s in TRANSFER_STATES))
            .where(*where).subquery())  # fmt: skip
    sums = ("records", *states)
    groups, totals = _duration_stats(session, base, [["sender", "receiver"], []], sums)
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
    total = tidy(totals[0] if totals else {})
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
