"""Performance by counter clerk: the notifier who registered the cases."""

from __future__ import annotations

import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.models.org import Agency, PlatformUser
from app.services.reports.builds import current_build
from app.services.reports.casework import tallies
from app.services.reports.filters import Filters
from app.services.reports.shapes import CASE_COLUMNS, CASE_NOTE, CASE_SERIES, Column, Report, finish, scope
from app.services.reports.tally import overall


def by_clerk(session, filters: Filters, now: datetime.datetime | None = None, live: bool = False) -> Report:
    """Cases registered in the period, per counter clerk (the notifier who registered them).
    ``live``: from the live tables alone, as if there were no summary."""
    now = now or datetime.datetime.utcnow()
    build = None if live else current_build(session)
    groups = tallies(session, "case", ["operator_id", "agency_id"], filters, now, build)
    user_ids = [operator_id for operator_id, _ in groups if operator_id]
    users = {u.id: u for u in session.scalars(select(PlatformUser).where(PlatformUser.id.in_(user_ids)))}
    agency_ids = [agency_id for _, agency_id in groups]
    agencies = {a.id: a for a in session.scalars(select(Agency).where(Agency.id.in_(agency_ids)))}
    rows = []
    for (operator_id, agency_id), tally in groups.items():
        user, agency = users.get(operator_id), agencies.get(agency_id)
        row = {"operator_id": operator_id, "agency_id": agency_id, **tally.figures()}
        row.update(
            username=user.username if user else "—",
            name=user.get_full_name() if user else "",
            agency=agency.name if agency else "",
        )
        row["label"] = f"{row['name'] or row['username']}（{row['agency']}）"
        rows.append(finish(row, tally.satisfaction))
    rows.sort(key=lambda row: (row["agency"], -row["n"], row["username"]))
    everything = overall(groups)
    total = finish(everything.figures(), everything.satisfaction)
    total.update(username=str(_l("All clerks")), name="", agency="", label=str(_l("All clerks")))
    return Report(
        "clerks",
        _l("Performance by counter clerk"),
        filters,
        [Column("agency", _l("Notifying agency")), Column("username", _l("Account")), Column("name", _l("Clerk"))]
        + CASE_COLUMNS,
        rows,
        total,
        "label",
        CASE_SERIES,
        note=CASE_NOTE,
        scope=scope(session, filters, _l("Agency (notifying or receiving)")),
    )
