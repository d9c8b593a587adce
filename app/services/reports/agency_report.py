"""Performance by receiving agency: each dispatch counts once for the agency it went to."""

from __future__ import annotations

import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.models.org import Agency
from app.services.reports.builds import current_build
from app.services.reports.casework import tallies
from app.services.reports.filters import Filters
from app.services.reports.shapes import CASE_COLUMNS, CASE_SERIES, Column, Report, finish, scope
from app.services.reports.tally import Tally, overall


def by_agency(session, filters: Filters, now: datetime.datetime | None = None, live: bool = False) -> Report:
    """Dispatches registered in the period, per receiving agency and overall.
    ``live``: from the live tables alone, as if there were no summary."""
    now = now or datetime.datetime.utcnow()
    build = None if live else current_build(session)
    groups = tallies(session, "dispatch", ["agency_id"], filters, now, build)
    cases = tallies(session, "case", [], filters, now, build, stats=False).get((), Tally())
    names = {a.id: a for a in session.scalars(select(Agency).where(Agency.id.in_([key[0] for key in groups])))}
    rows = []
    for (agency_id,), tally in groups.items():
        agency = names.get(agency_id)
        row = {"agency_id": agency_id, **tally.figures()}
        row["label"] = agency.name if agency else str(agency_id)
        row["code"] = agency.code if agency else ""
        rows.append(finish(row, tally.satisfaction))
    rows.sort(key=lambda row: (-row["n"], row["label"]))
    total = finish(overall(groups).figures(), cases.satisfaction)
    total["label"] = str(_l("All receiving agencies"))
    return Report(
        "agencies",
        _l("Performance by receiving agency"),
        filters,
        [Column("label", _l("Receiving agency")), *CASE_COLUMNS],
        rows,
        total,
        "label",
        CASE_SERIES,
        note=_l(
            "Each dispatch counts once for its receiving agency; processing time runs from dispatch to "
            "closing. Satisfaction: mean of the rating answers of the cases the agency took part in."
        ),
        scope=scope(session, filters, _l("Receiving agency")),
    )
