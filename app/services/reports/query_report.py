"""Query statistics: queries in the period per agency, form and business item,
with how many users asked; and their part of the nightly summary."""

from __future__ import annotations

import datetime
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from flask_babel import lazy_gettext as _l
from sqlalchemy import case, func, literal, literal_column, or_, select

from app.models.org import Agency
from app.models.queries import BusinessItem, QueryForm, QueryLog
from app.models.reports import QuerySummary
from app.services.reports.builds import current_build, summary_days
from app.services.reports.dialect import concat_packed, month_start, packed_seconds, taipei_day, tune, unpack
from app.services.reports.filters import Filters
from app.services.reports.shapes import Column, Report, Series, scope

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
GROUP_KEYS = ("agency_code", "form_code", "business_item")


def query_figures(log) -> dict:
    """The query statistics' figures over query-log rows, by QUERY_FIGURES name."""

    def outcome(name: str):
        return func.sum(case((log.c.outcome == name, 1), else_=0))

    return {
        "n": func.count(),
        "ok": outcome("ok"),
        "partial": outcome("partial"),
        "refused": outcome("refused"),
        "errors": outcome("source_error"),
        "rows": func.coalesce(func.sum(log.c.row_count), 0),
        "ms": func.coalesce(func.sum(log.c.duration_ms), 0),
        "timed": func.count(log.c.duration_ms),
    }


def summarise_queries(session, build_id: int, cutoff: datetime.datetime, last_id: int) -> None:
    """The query-log rows up to ``last_id`` written before ``cutoff`` (a row is
    never changed in what the statistics count) into query_summary, per Taipei
    day and per month, with each group's users packed. Does not commit."""
    log, summary = QueryLog.__table__, QuerySummary.__table__
    keys = [log.c[key] for key in GROUP_KEYS]
    user = func.coalesce(log.c.user_id, literal_column("0"))
    # per day, group and user first: each group's users once
    pairs = (
        select(
            taipei_day(log.c.at).label("day"),
            *keys,
            user.label("user_id"),
            *(expr.label(name) for name, expr in query_figures(log).items()),
        )
        .where(log.c.id <= last_id, log.c.at < cutoff)
        .group_by(taipei_day(log.c.at), *keys, user)
        .subquery()
    )
    day_keys = [pairs.c.day, *(pairs.c[key] for key in GROUP_KEYS)]
    columns = ["build_id", "span", "day", *GROUP_KEYS, *QUERY_FIGURES, "users"]
    per_day = select(
        literal(build_id),
        literal("day"),
        *day_keys,
        *(func.sum(pairs.c[name]) for name in QUERY_FIGURES),
        packed_seconds(pairs.c.user_id),
    ).group_by(*day_keys)
    session.execute(summary.insert().from_select(columns, per_day))
    month_keys = [month_start(summary.c.day), *(summary.c[key] for key in GROUP_KEYS)]
    per_month = (
        select(
            literal(build_id),
            literal("month"),
            *month_keys,
            *(func.sum(summary.c[name]) for name in QUERY_FIGURES),
            concat_packed(summary.c.users),
        )
        .where(summary.c.build_id == build_id, summary.c.span == "day")
        .group_by(*month_keys)
    )
    session.execute(summary.insert().from_select(columns, per_month))


@dataclass
class _Group:
    """One agency, form and business item: the figures added up, and its users
    (ids, repeats allowed; 0: no account) as packed arrays and live ids."""

    figures: dict = field(default_factory=lambda: dict.fromkeys(QUERY_FIGURES, 0))
    packed: list = field(default_factory=list)
    live_ids: list = field(default_factory=list)

    def take(self, row) -> None:
        for name in QUERY_FIGURES:
            self.figures[name] += row[name] or 0

    def users(self) -> np.ndarray:
        return np.unique(np.concatenate([*self.packed, np.asarray(self.live_ids, dtype=np.int32)]))


def _from_summary(session, groups: dict, filters: Filters, agency_code: str, build) -> None:
    summary = QuerySummary.__table__
    where = [summary.c.build_id == build.id, summary_days(summary, filters.date_from, filters.date_to)]
    if filters.agency_id:
        where.append(summary.c.agency_code == agency_code)
    keys = [summary.c[key] for key in GROUP_KEYS]
    figures = [func.sum(summary.c[name]).label(name) for name in QUERY_FIGURES]
    stmt = select(*keys, *figures, concat_packed(summary.c.users).label("users")).where(*where).group_by(*keys)
    for row in session.execute(stmt).mappings():
        group = groups[tuple(row[key] for key in GROUP_KEYS)]
        group.take(row)
        group.packed.append(unpack(row["users"]))


def _from_log(session, groups: dict, where: list) -> None:
    """What the summary does not hold, per group and user (a group's users are its rows)."""
    log = QueryLog.__table__
    keys = [log.c[key] for key in GROUP_KEYS]
    user = func.coalesce(log.c.user_id, literal_column("0"))
    figures = [expr.label(name) for name, expr in query_figures(log).items()]
    stmt = select(*keys, user.label("user_id"), *figures).where(*where).group_by(*keys, user)
    for row in session.execute(stmt).mappings():
        group = groups[tuple(row[key] for key in GROUP_KEYS)]
        group.take(row)
        group.live_ids.append(row["user_id"])


def _names(session, rows: list[dict], period: list) -> tuple[dict, dict, dict]:
    """Agency names, form titles and business item names of the rows' codes."""
    log = QueryLog.__table__
    codes = {row["agency_code"] for row in rows}
    agencies = {a.code: a.name for a in session.scalars(select(Agency).where(Agency.code.in_(codes)))}
    form_codes = {row["form_code"] for row in rows}
    forms = {f.code: f.title for f in session.scalars(select(QueryForm).where(QueryForm.code.in_(form_codes)))}
    if form_codes - set(forms):  # forms deleted since: the title the log kept
        deleted = form_codes - set(forms)
        titles = select(log.c.form_code, func.max(log.c.form_title))
        forms.update(
            session.execute(titles.where(*period, log.c.form_code.in_(deleted)).group_by(log.c.form_code)).all()
        )
    item_codes = {row["business_item"] for row in rows if row["business_item"]}
    items = {b.code: b.name for b in session.scalars(select(BusinessItem).where(BusinessItem.code.in_(item_codes)))}
    return agencies, forms, items


def _tidy(row: dict) -> dict:
    ms, timed = row.pop("ms"), row.pop("timed")
    for key in ("n", "ok", "partial", "refused", "errors", "users", "rows"):
        row[key] = int(row.get(key) or 0)
    row["mean_ms"] = round(float(ms) / int(timed), 1) if timed else None
    return row


def queries(session, filters: Filters, now=None, live: bool = False) -> Report:
    """Queries in the period per agency, form and business item: the nightly
    summary's rows plus the query-log rows written since. ``live``: from the
    query log alone, as if there were no summary."""
    log = QueryLog.__table__
    start, end = filters.bounds()
    period = [log.c.at >= start, log.c.at < end]
    agency = session.get(Agency, filters.agency_id) if filters.agency_id else None
    agency_code = agency.code if agency else ""
    if filters.agency_id:
        period.append(log.c.agency_code == agency_code)
    tune(session)
    groups: dict[tuple, _Group] = defaultdict(_Group)
    where = list(period)
    build = None if live else current_build(session)
    if build:
        _from_summary(session, groups, filters, agency_code, build)
        where.append(or_(log.c.id > build.last_query_log_id, log.c.at >= build.cutoff))
    _from_log(session, groups, where)
    rows, everyone = [], []
    for key, group in groups.items():
        users = group.users()
        everyone.append(users)
        rows.append({**dict(zip(GROUP_KEYS, key, strict=True)), **group.figures, "users": users.size})
    total = {name: sum(row[name] for row in rows) for name in QUERY_FIGURES}
    total["users"] = np.unique(np.concatenate(everyone)).size if everyone else 0
    agencies, forms, items = _names(session, rows, period)
    for row in rows:
        row["agency"] = agencies.get(row["agency_code"], row["agency_code"] or "—")
        row["form"] = forms.get(row["form_code"]) or row["form_code"] or "—"
        row["item"] = items.get(row["business_item"], row["business_item"] or "—")
        row["label"] = f"{row['agency']}／{row['form']}"
        _tidy(row)
    rows.sort(key=lambda row: (row["agency"], -row["n"], row["form"], row["item"]))
    total = _tidy(total)
    total.update(agency=str(_l("All agencies")), form="", item="", label=str(_l("All agencies")))
    columns = [Column("agency", _l("Agency")), Column("form", _l("Form")), Column("item", _l("Business item"))]
    return Report(
        "queries",
        _l("Query statistics"),
        filters,
        columns + QUERY_COLUMNS,
        rows,
        total,
        "label",
        [Series("n", _l("Queries")), Series("refused", _l("Refused"))],
        note=_l("From the query log: every query, refused ones included."),
        scope=scope(session, filters.without_category()),
    )
