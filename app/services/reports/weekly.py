"""The weekly query log for supervisors: per agency, the week's queries by
user with their purpose (case number, reason, business item); never the
parameters or the data subjects (they hold ID numbers)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from sqlalchemy import case, func, select

from app.lib.rocdate import utc_midnight
from app.models.org import Agency, PlatformUser
from app.models.queries import BusinessItem, QueryLog
from app.services.errors import InvalidInput
from app.services.reports.filters import taipei_today


def week_of(day: datetime.date) -> tuple[datetime.date, datetime.date]:
    """Monday and Sunday of the week holding ``day``."""
    monday = day - datetime.timedelta(days=day.weekday())
    return monday, monday + datetime.timedelta(days=6)


def last_week(today: datetime.date | None = None) -> tuple[datetime.date, datetime.date]:
    return week_of((today or taipei_today()) - datetime.timedelta(days=7))


def active_agencies(session) -> list[Agency]:
    return list(session.scalars(select(Agency).where(Agency.active.is_(True)).order_by(Agency.kind, Agency.code)))


@dataclass
class WeeklySection:
    agency: Agency
    users: list[dict]  # username, name, n, refused
    entries: list[dict]  # at, username, name, form, case_no, reason, business_item, outcome, rows

    @property
    def total(self) -> int:
        return sum(user["n"] for user in self.users)


def full_name(first: str | None, last: str | None) -> str:
    first, last = first or "", last or ""
    if any("\u4e00" <= ch <= "\u9fff" for ch in first + last):
        return f"{last}{first}"
    return f"{first} {last}".strip()


def _users(session, where: list) -> list[dict]:
    log, accounts = QueryLog.__table__, PlatformUser.__table__
    refused = func.sum(case((log.c.outcome == "refused", 1), else_=0))
    per_user = (
        select(log.c.username, func.count().label("n"), refused.label("refused"))
        .where(*where)
        .group_by(log.c.username)
        .order_by(log.c.username)
    )
    users = [dict(row) for row in session.execute(per_user).mappings()]
    usernames = [user["username"] for user in users]
    names = {
        row.username: full_name(row.first_name, row.last_name)
        for row in session.execute(
            select(accounts.c.username, accounts.c.first_name, accounts.c.last_name).where(
                accounts.c.username.in_(usernames)
            )
        )
    }
    for user in users:
        user["refused"] = int(user["refused"] or 0)
        user["name"] = names.get(user["username"], "")
    return users


def _entries(session, where: list, limit: int) -> list[dict]:
    log, items = QueryLog.__table__, BusinessItem.__table__
    stmt = (
        select(
            log.c.at,
            log.c.username,
            log.c.form_title.label("form"),
            log.c.case_no,
            log.c.reason,
            func.coalesce(items.c.name, log.c.business_item).label("business_item"),
            log.c.outcome,
            log.c.row_count.label("rows"),
        )
        .select_from(log.outerjoin(items, items.c.code == log.c.business_item))
        .where(*where)
        .order_by(log.c.username, log.c.at, log.c.id)
        .limit(limit)
    )
    return [dict(row) for row in session.execute(stmt).mappings()]


def weekly_query_log(
    session, monday: datetime.date, agency_code: str | None = None, limit: int | None = 20000
) -> list[WeeklySection]:
    """Per agency (one, or every active one), the week's queries by user with
    their purpose. ``limit`` 0: the per-user counts only. Raises InvalidInput
    for an unknown agency."""
    if agency_code:
        chosen = session.scalars(select(Agency).where(Agency.code == agency_code)).all()
        if not chosen:
            raise InvalidInput(_l("No agency has the code %(code)s."), code=agency_code[:20])
    else:
        chosen = active_agencies(session)
    start, end = utc_midnight(monday), utc_midnight(monday + datetime.timedelta(days=7))
    log = QueryLog.__table__
    sections = []
    for agency in chosen:
        where = [log.c.agency_code == agency.code, log.c.at >= start, log.c.at < end]
        entries = _entries(session, where, limit) if limit else []
        sections.append(WeeklySection(agency, _users(session, where), entries))
    return sections
