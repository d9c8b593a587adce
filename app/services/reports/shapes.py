"""What a report is: its columns, rows, overall row, chart series and the lines
saying what it covers; and the figures every case report shows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from flask_babel import lazy_gettext as _l

from app.models.notify import NotificationCategory
from app.models.org import Agency
from app.services.reports.filters import Filters
from app.services.reports.tally import Satisfaction


@dataclass
class Column:
    key: str
    label: object
    kind: str = "text"  # text | int | days | pct | rating | ms


class Series(NamedTuple):
    """A column drawn in the chart."""

    key: str
    label: object


class ScopeLine(NamedTuple):
    """A line under the title saying what the report covers."""

    label: object
    value: str


@dataclass
class Report:
    key: str
    title: object
    filters: Filters
    columns: list[Column]
    rows: list[dict]
    total: dict | None
    label_key: str  # the column naming each row (chart labels)
    series: list[Series]  # drawn in the chart
    note: object | None = None
    scope: list[ScopeLine] = field(default_factory=list)

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
CASE_SERIES = [Series("n", _l("Cases")), Series("late", _l("Overdue"))]
CASE_NOTE = _l(
    "A case counts once; processing time runs from registration until every receiving agency has closed it. "
    "Satisfaction: mean of the rating answers to the case's questionnaire."
)


def round_days(row: dict) -> None:
    for key in ("mean", "median", "p90"):
        row[key] = round(float(row[key]), 2) if row.get(key) is not None else None


def finish(row: dict, satisfaction: Satisfaction | None = None) -> dict:
    """A case report's row as shown: open work, overdue share, days rounded, mean rating."""
    n = int(row.get("n") or 0)
    done = int(row.get("done") or 0)
    row["n"], row["done"], row["open"] = n, done, n - done
    row["late"] = int(row.get("late") or 0)
    row["late_pct"] = round(100.0 * row["late"] / n, 1) if n else None
    round_days(row)
    satisfaction = satisfaction or Satisfaction()
    row["responses"] = int(satisfaction.responses or 0)
    row["satisfaction"] = (
        round(float(satisfaction.rating_sum) / float(satisfaction.rating_count), 2)
        if satisfaction.rating_count
        else None
    )
    return row


def scope(session, filters: Filters, agency_note=None) -> list[ScopeLine]:
    """The period, and the agency and category chosen."""
    out = [ScopeLine(_l("Period"), filters.period)]
    if filters.agency_id:
        agency = session.get(Agency, filters.agency_id)
        out.append(ScopeLine(agency_note or _l("Agency"), agency.name if agency else "?"))
    if filters.category_id:
        category = session.get(NotificationCategory, filters.category_id)
        out.append(ScopeLine(_l("Category"), str(category) if category else "?"))
    return out
