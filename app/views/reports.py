"""Managers' reports and the supervisors' weekly query log: filter, read the
table and chart, export to Excel or PDF. Thin: the figures come from
app.services.reports; every download is audited."""

from __future__ import annotations

import base64
import io

from flask import flash, redirect, request, send_file, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import gettext
from flask_babel import lazy_gettext as _l

from app.extensions import db
from app.lib.rocdate import format_roc
from app.models.notify import NotificationCategory
from app.services import actors, audit, charts, report_excel, report_pdf, reports
from app.services.errors import DomainError, Forbidden
from app.web import current_actor as actor

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _audit_download(report: str, fmt: str, detail: dict) -> None:
    audit.record(db.session, "report_export", object_type="Report", object_id=report, detail={"format": fmt, **detail})
    db.session.commit()


class ReportView(BaseView):
    """統計報表: performance by agency, category and clerk; queries; transfers."""

    route_base = "/reports"
    default_view = "index"

    def _key(self) -> str:
        key = request.args.get("report", "agencies")
        return key if key in reports.REPORTS else "agencies"

    @expose("/")
    @has_access
    def index(self):
        key = self._key()
        report, error, chart = None, None, None
        try:
            filters = reports.parse_filters(request.args)
            report = reports.run(db.session, key, filters)
            svg = charts.report_chart(report) if not report.empty else None
            chart = "data:image/svg+xml;base64," + base64.b64encode(svg).decode() if svg else None
        except DomainError as exc:
            db.session.rollback()
            error = str(exc)
        page = self.render_template(
            "reports/index.html", key=key, titles=reports.REPORT_TITLES, report=report, chart=chart, error=error,
            args={k: v for k, v in request.args.items() if k != "report"}, display=report_pdf.display,
            agencies=reports.agencies(db.session),
            categories=db.session.scalars(db.select(NotificationCategory).order_by(
                NotificationCategory.main_item, NotificationCategory.sub_item)).all(),
        )  # fmt: skip
        return page, 400 if error else 200

    @expose("/export/<fmt>")
    @has_access
    def export(self, fmt):
        if fmt not in ("xlsx", "pdf"):
            return redirect(url_for("ReportView.index", **request.args))
        key = self._key()
        try:
            filters = reports.parse_filters(request.args)
            report = reports.run(db.session, key, filters)
        except DomainError as exc:
            db.session.rollback()
            flash(str(exc), "danger")
            return redirect(url_for("ReportView.index", **request.args))
        if report.empty:
            flash(gettext("Nothing to export: %(report)s has no figures for %(period)s with these filters.",
                          report=report.title, period=filters.period), "warning")  # fmt: skip
            return redirect(url_for("ReportView.index", **request.args))
        if fmt == "xlsx":
            data, mime = report_excel.report_xlsx(report), XLSX
        else:
            data, mime = report_pdf.report_pdf(report, charts.report_chart(report, fmt="png")), "application/pdf"
        _audit_download(key, fmt, {**filters.args(), "rows": len(report.rows)})
        name = f"report-{key}-{filters.date_from:%Y%m%d}-{filters.date_to:%Y%m%d}.{fmt}"
        return send_file(io.BytesIO(data), mimetype=mime, as_attachment=True, download_name=name)


class QueryLogReportView(BaseView):
    """查詢紀錄週報表: per agency, the week's queries by user with their purpose."""

    route_base = "/reports/weekly-queries"
    default_view = "index"

    def _params(self):
        who = actor()
        text = (request.args.get("week") or "").strip()
        if text:
            day = reports.parse_day(text, _l("week"))
        else:
            day = reports.last_week()[0]
        monday, sunday = reports.week_of(day)
        if who.can(actors.WEEKLY_ALL_AGENCIES):
            code = (request.args.get("agency") or "").strip()[:20] or None
        else:
            code = who.agency_code
            if not code:
                raise Forbidden(_l("Your account belongs to no agency."))
        return who, monday, sunday, code

    @expose("/")
    @has_access
    def index(self):
        error, sections, monday, sunday, code, who = None, [], None, None, None, actor()
        try:
            who, monday, sunday, code = self._params()
            sections = reports.weekly_query_log(db.session, monday, code, limit=0)
        except DomainError as exc:
            db.session.rollback()
            error = str(exc)
        page = self.render_template(
            "reports/weekly.html", sections=sections, monday=monday, sunday=sunday, code=code, error=error,
            all_agencies=who.can(actors.WEEKLY_ALL_AGENCIES), agencies=reports.agencies(db.session),
            week=format_roc(monday) if monday else (request.args.get("week") or ""),
        )  # fmt: skip
        return page, 400 if error else 200

    @expose("/pdf")
    @has_access
    def pdf(self):
        try:
            _who, monday, sunday, code = self._params()
            sections = reports.weekly_query_log(db.session, monday, code)
        except DomainError as exc:
            db.session.rollback()
            flash(str(exc), "danger")
            return redirect(url_for("QueryLogReportView.index", **request.args))
        data = report_pdf.weekly_pdf(sections, monday, sunday)
        _audit_download("weekly-queries", "pdf", {"week": format_roc(monday), "agency": code or "all",
                                                  "queries": sum(s.total for s in sections)})  # fmt: skip
        name = f"query-log-{code or 'all'}-{monday:%Y%m%d}.pdf"
        return send_file(io.BytesIO(data), mimetype="application/pdf", as_attachment=True, download_name=name)


def register(appbuilder) -> None:
    category = {"category": "Reports", "category_label": _l("Reports"), "category_icon": "fa-line-chart"}
    appbuilder.add_view(ReportView, "Performance reports", label=_l("Performance reports"), icon="fa-table",
                        href="/reports/", **category)  # fmt: skip
    appbuilder.add_view(QueryLogReportView, "Weekly query log", label=_l("Weekly query log"), icon="fa-list",
                        href="/reports/weekly-queries/", **category)  # fmt: skip
