"""Managers' reports and the supervisors' weekly query log: filter, read the
table and chart, export to Excel or PDF. Thin: the figures, the reach of the
weekly log and the audited exports are commands of app.services.reports."""

from __future__ import annotations

import base64
import io

from flask import flash, redirect, request, send_file, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import lazy_gettext as _l
from marshmallow import ValidationError

from app.extensions import db
from app.lib.rocdate import format_roc
from app.schemas.reports import INVALID_QUERY, ReportQuerySchema, WeeklyQuerySchema
from app.services import reports
from app.services.errors import DomainError
from app.services.reports import charts, replica
from app.services.reports.pdf import display
from app.web import current_actor as actor


class ReportView(BaseView):
    """統計報表: performance by agency, category and clerk; queries; transfers."""

    route_base = "/reports"
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        key = reports.report_key(request.args.get("report"))
        report, error, chart, freshness = None, None, None, None
        try:
            query = ReportQuerySchema().load(request.args)
            report, freshness = replica.read(db.session, lambda s: reports.read_report(s, actor(), key, query))
            svg = charts.report_chart(report) if not report.empty else None
            chart = "data:image/svg+xml;base64," + base64.b64encode(svg).decode() if svg else None
        except ValidationError:
            error = str(INVALID_QUERY)
        except DomainError as exc:
            error = str(exc)
        page = self.render_template(
            "reports/index.html",
            key=key,
            titles=reports.REPORT_TITLES,
            report=report,
            chart=chart,
            freshness=freshness,
            error=error,
            args={name: value for name, value in request.args.items() if name != "report"},
            display=display,
            agencies=reports.agencies(db.session),
            categories=reports.categories(db.session),
        )
        return page, 400 if error else 200

    @expose("/export/<fmt>")
    @has_access
    def export(self, fmt):
        back = url_for("ReportView.index", **request.args)
        if fmt not in reports.FORMATS:
            return redirect(back)
        try:
            query = ReportQuerySchema().load(request.args)
            export, _ = replica.read(
                db.session, lambda s: reports.export_report(db.session, actor(), query["report"], fmt, query, reader=s)
            )
        except ValidationError:
            flash(str(INVALID_QUERY), "danger")
            return redirect(url_for("ReportView.index"))
        except reports.NothingToExport as exc:
            flash(str(exc), "warning")
            return redirect(back)
        except DomainError as exc:
            flash(str(exc), "danger")
            return redirect(back)
        return send_file(
            io.BytesIO(export.data), mimetype=export.mimetype, as_attachment=True, download_name=export.filename
        )


class QueryLogReportView(BaseView):
    """查詢紀錄週報表: per agency, the week's queries by user with their purpose."""

    route_base = "/reports/weekly-queries"
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        who = actor()
        error, sections, reach, freshness = None, [], None, None
        try:
            query = WeeklyQuerySchema().load(request.args)
            reach = reports.weekly_reach(who, query["week"], query["agency"])
            sections, freshness = replica.read(db.session, lambda s: reports.read_weekly_log(s, who, reach))
        except ValidationError:
            error = str(INVALID_QUERY)
        except DomainError as exc:
            error = str(exc)
        page = self.render_template(
            "reports/weekly.html",
            sections=sections,
            freshness=freshness,
            monday=reach.monday if reach else None,
            sunday=reach.sunday if reach else None,
            code=reach.agency_code if reach else None,
            error=error,
            all_agencies=reports.reads_every_agency(who),
            agencies=reports.agencies(db.session),
            week=format_roc(reach.monday) if reach else (request.args.get("week") or ""),
        )
        return page, 400 if error else 200

    @expose("/pdf")
    @has_access
    def pdf(self):
        who = actor()
        try:
            query = WeeklyQuerySchema().load(request.args)
            reach = reports.weekly_reach(who, query["week"], query["agency"])
            export, _ = replica.read(db.session, lambda s: reports.export_weekly_log(db.session, who, reach, reader=s))
        except ValidationError:
            flash(str(INVALID_QUERY), "danger")
            return redirect(url_for("QueryLogReportView.index"))
        except DomainError as exc:
            flash(str(exc), "danger")
            return redirect(url_for("QueryLogReportView.index", **request.args))
        return send_file(
            io.BytesIO(export.data), mimetype=export.mimetype, as_attachment=True, download_name=export.filename
        )


def register(appbuilder) -> None:
    category = {"category": "Reports", "category_label": _l("Reports"), "category_icon": "fa-line-chart"}
    appbuilder.add_view(
        ReportView,
        "Performance reports",
        label=_l("Performance reports"),
        icon="fa-table",
        href="/reports/",
        **category,
    )
    appbuilder.add_view(
        QueryLogReportView,
        "Weekly query log",
        label=_l("Weekly query log"),
        icon="fa-list",
        href="/reports/weekly-queries/",
        **category,
    )
