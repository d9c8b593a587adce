"""The reports a manager can choose, by key."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from app.services.errors import InvalidInput
from app.services.reports.agency_report import by_agency
from app.services.reports.category_report import by_category
from app.services.reports.clerk_report import by_clerk
from app.services.reports.dialect import tune
from app.services.reports.filters import Filters
from app.services.reports.query_report import queries
from app.services.reports.shapes import Report
from app.services.reports.transfer_report import transfers

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
    report = REPORTS.get(key)
    if report is None:
        raise InvalidInput(_l("No such report."))
    tune(session)
    return report(session, filters, now=now)
