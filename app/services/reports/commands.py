"""The reports' commands: export a report, export the survey statistics, and
read or export the weekly query log within the actor's reach. Each export is
audited in the same transaction that produces it."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l

from app.lib.rocdate import format_roc
from app.services import actors, audit
from app.services.command import transaction
from app.services.errors import Forbidden, InvalidInput
from app.services.reports.catalogue import REPORTS, run
from app.services.reports.charts import report_chart
from app.services.reports.excel import report_xlsx, survey_xlsx
from app.services.reports.filters import Filters, parse_day, parse_filters
from app.services.reports.pdf import report_pdf, weekly_pdf
from app.services.reports.shapes import Report
from app.services.reports.survey_stats import SurveyStats, survey_statistics
from app.services.reports.weekly import WeeklySection, last_week, week_of, weekly_query_log

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PDF = "application/pdf"
FORMATS = {"xlsx": XLSX, "pdf": PDF}


class NothingToExport(InvalidInput):
    """The chosen report or statistics have no figures: nothing was exported (nor audited)."""


@dataclass(frozen=True)
class Export:
    data: bytes
    mimetype: str
    filename: str


def report_key(value) -> str:
    """The report asked for; the first one when none or an unknown one is asked."""
    return value if value in REPORTS else "agencies"


def read_report(session, actor: actors.Actor, key: str, args: Mapping) -> Report:
    """One report for the filters in ``args``. Raises InvalidInput."""
    return run(session, report_key(key), parse_filters(args))


def export_report(session, actor: actors.Actor, key: str, fmt: str, args: Mapping, reader=None) -> Export:
    """A report as Excel or PDF, audited (in ``session``; the figures are read with
    ``reader``, a replica's session, when given). Raises InvalidInput, NothingToExport."""
    if fmt not in FORMATS:
        raise InvalidInput(_l("Choose Excel or PDF."))
    key = report_key(key)
    filters = parse_filters(args)
    with transaction(session):
        report = run(reader or session, key, filters)
        if report.empty:
            raise NothingToExport(
                _l("Nothing to export: %(report)s has no figures for %(period)s with these filters."),
                report=report.title,
                period=filters.period,
            )
        if fmt == "xlsx":
            data = report_xlsx(report)
        else:
            data = report_pdf(report, report_chart(report, fmt="png"))
        detail = {"format": fmt, **filters.args(), "rows": len(report.rows)}
        audit.record(session, "report_export", object_type="Report", object_id=key, detail=detail, actor=actor)
    name = f"report-{key}-{filters.date_from:%Y%m%d}-{filters.date_to:%Y%m%d}.{fmt}"
    return Export(data, FORMATS[fmt], name)


def export_survey_statistics(
    session, actor: actors.Actor, questionnaire_id: int, filters: Filters, reader=None
) -> Export:
    """The statistics of one questionnaire version as Excel, audited (read with ``reader``
    when given). Raises NotFound, NothingToExport."""
    with transaction(session):
        stats: SurveyStats = survey_statistics(reader or session, questionnaire_id, filters)
        if stats.empty:
            raise NothingToExport(
                _l("Nothing to export: no invitations were sent in %(period)s with these filters."),
                period=filters.period,
            )
        data = survey_xlsx(stats)
        detail = {"format": "xlsx", "questionnaire": questionnaire_id, **filters.args()}
        audit.record(session, "report_export", object_type="Report", object_id="survey", detail=detail, actor=actor)
    name = f"survey-{questionnaire_id}-{filters.date_from:%Y%m%d}-{filters.date_to:%Y%m%d}.xlsx"
    return Export(data, XLSX, name)


# --- the weekly query log ---------------------------------------------------------------


@dataclass(frozen=True)
class WeeklyReach:
    """The week and the agency (None: every agency) a weekly log covers."""

    monday: datetime.date
    sunday: datetime.date
    agency_code: str | None


def reads_every_agency(actor: actors.Actor) -> bool:
    """Who may read the weekly log of every agency: holders of the capability,
    and the platform itself (the operator's ``flask report weekly-queries``)."""
    return actor == actors.SYSTEM or actor.can(actors.WEEKLY_ALL_AGENCIES)


def weekly_reach(actor: actors.Actor, week: str | None, agency_code: str | None) -> WeeklyReach:
    """The week holding the ROC date ``week`` (blank: last week) and the agency
    the actor may read: the one asked for (blank: every agency) for those who
    read every agency, else their own whatever they asked. Raises InvalidInput,
    Forbidden."""
    week = (week or "").strip()
    day = parse_day(week, _l("week")) if week else last_week()[0]
    monday, sunday = week_of(day)
    if reads_every_agency(actor):
        return WeeklyReach(monday, sunday, (agency_code or "").strip()[:20] or None)
    if not actor.agency_code:
        raise Forbidden(_l("Your account belongs to no agency."))
    return WeeklyReach(monday, sunday, actor.agency_code)


def read_weekly_log(session, actor: actors.Actor, reach: WeeklyReach) -> list[WeeklySection]:
    """The per-user counts of the week (no entries). Raises InvalidInput for an unknown agency."""
    return weekly_query_log(session, reach.monday, reach.agency_code, limit=0)


@dataclass(frozen=True)
class WeeklyExport(Export):
    sections: list[WeeklySection]


def export_weekly_log(session, actor: actors.Actor, reach: WeeklyReach, via: str | None = None, reader=None) -> Export:
    """The weekly log as PDF, audited (read with ``reader`` when given). Raises InvalidInput
    for an unknown agency."""
    with transaction(session):
        sections = weekly_query_log(reader or session, reach.monday, reach.agency_code)
        data = weekly_pdf(sections, reach.monday, reach.sunday)
        detail = {
            "format": "pdf",
            "week": format_roc(reach.monday),
            "agency": reach.agency_code or "all",
            "queries": sum(section.total for section in sections),
        }
        if via:
            detail["via"] = via
        audit.record(
            session, "report_export", object_type="Report", object_id="weekly-queries", detail=detail, actor=actor
        )
    name = f"query-log-{reach.agency_code or 'all'}-{reach.monday:%Y%m%d}.pdf"
    return WeeklyExport(data, PDF, name, sections)
