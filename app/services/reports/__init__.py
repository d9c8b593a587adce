"""Management reports: case counts, processing times (mean, median, 90th
percentile), overdue counts and satisfaction, by receiving agency, by category
and by counter clerk; query statistics; transfer counts; survey statistics;
the weekly query log; their Excel and PDF exports and charts.

Modules: ``filters`` (the period, agency, category), ``dialect`` (SQL
functions per backend), ``tally`` (a group's figures), ``builds`` and
``summary`` (the nightly summary), ``casework`` and one module per report
(``agency_report``, ``category_report``, ``clerk_report``, ``query_report``,
``transfer_report``), ``survey_stats``, ``weekly``, ``excel``, ``pdf``,
``charts``; ``commands`` holds what a view or the CLI calls (each export
audited). The names below are re-exported so ``from app.services import
reports`` keeps working.

Dates: the forms use ROC dates (115/11/01); a range covers whole days in
Taipei time; timestamps are stored in UTC.
"""

from app.services.reports.agency_report import by_agency
from app.services.reports.builds import SUMMARY_MARGIN, Build, current_build, drop_builds, summary_days
from app.services.reports.catalogue import REPORT_TITLES, REPORTS, run
from app.services.reports.category_report import by_category
from app.services.reports.clerk_report import by_clerk
from app.services.reports.commands import (
    FORMATS,
    Export,
    NothingToExport,
    WeeklyExport,
    WeeklyReach,
    export_report,
    export_survey_statistics,
    export_weekly_log,
    read_report,
    read_weekly_log,
    reads_every_agency,
    report_key,
    weekly_reach,
)
from app.services.reports.dialect import tune
from app.services.reports.filters import Filters, parse_day, parse_filters, taipei_today
from app.services.reports.query_report import queries
from app.services.reports.shapes import Column, Report, ScopeLine, Series
from app.services.reports.summary import summarise
from app.services.reports.survey_stats import (
    DistributionRow,
    FreeText,
    QuestionStats,
    SurveyStats,
    categories,
    questionnaires_for_statistics,
    survey_statistics,
)
from app.services.reports.tally import Tally, percentiles
from app.services.reports.transfer_report import transfers
from app.services.reports.weekly import WeeklySection, active_agencies, last_week, week_of, weekly_query_log

agencies = active_agencies

__all__ = [
    "FORMATS",
    "REPORTS",
    "REPORT_TITLES",
    "SUMMARY_MARGIN",
    "Build",
    "Column",
    "DistributionRow",
    "Export",
    "Filters",
    "FreeText",
    "NothingToExport",
    "QuestionStats",
    "Report",
    "ScopeLine",
    "Series",
    "SurveyStats",
    "Tally",
    "WeeklyExport",
    "WeeklyReach",
    "WeeklySection",
    "agencies",
    "by_agency",
    "by_category",
    "by_clerk",
    "categories",
    "current_build",
    "drop_builds",
    "export_report",
    "export_survey_statistics",
    "export_weekly_log",
    "last_week",
    "parse_day",
    "parse_filters",
    "percentiles",
    "queries",
    "questionnaires_for_statistics",
    "read_report",
    "read_weekly_log",
    "reads_every_agency",
    "report_key",
    "run",
    "summarise",
    "summary_days",
    "survey_statistics",
    "taipei_today",
    "transfers",
    "tune",
    "week_of",
    "weekly_query_log",
    "weekly_reach",
]
