"""The clerk's query pages, the query REST API, and the public verification page."""

from __future__ import annotations

import datetime
import io

from flask import abort, current_app, make_response, request, send_file
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.api import BaseApi, safe
from flask_appbuilder.api import expose as api_expose
from flask_appbuilder.security.decorators import protect
from flask_babel import lazy_gettext as _l

from app.extensions import db
from app.lib.rocdate import format_roc, format_roc_datetime, parse_roc
from app.services import actors, printout, query
from app.services.actors import Actor
from app.services.errors import DomainError
from app.web import current_actor


def _requester() -> Actor:
    return current_actor()


def _history_filters(args) -> dict:
    def day(name):
        text = (args.get(name) or "").strip()
        if not text:
            return None
        try:
            return parse_roc(text) if "-" not in text else datetime.date.fromisoformat(text)
        except ValueError:
            return None

    return {
        "form_code": (args.get("form") or "").strip() or None,
        "case_no": (args.get("case_no") or "").strip()[:60] or None,
        "date_from": day("from"),
        "date_to": day("to"),
    }


class QueryView(BaseView):
    """免書證查詢: the menu of granted forms, the form, the result, history, print."""

    route_base = "/query"
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        forms = query.granted_forms(db.session, _requester())
        return self.render_template("query/index.html", forms=forms)

    @expose("/form/<code>", methods=["GET", "POST"])
    @has_access
    def form(self, code):
        who = _requester()
        purpose = {"case_no": "", "reason": "", "business_item": ""}
        try:
            form = query.find_form(db.session, who, code)
        except DomainError as exc:
            if request.method == "POST":
                # A query sent to a form one may not use is refused and
                # recorded as any refused query is (run_query does both).
                purpose = {k: request.form.get(k, "") for k in purpose}
                typed = {k: v for k, v in request.form.items() if k not in purpose and k != "csrf_token"}
                try:
                    query.run_query(db.session, who, code, purpose["case_no"], purpose["reason"],
                                    purpose["business_item"], typed)  # fmt: skip
                except DomainError as refused:
                    abort(refused.status)
            abort(exc.status)
        values = {i.name: "" for i in form.inputs}
        error, run = None, None
        if request.method == "POST":
            purpose = {k: request.form.get(k, "") for k in purpose}
            values = {i.name: request.form.get(i.name, "") for i in form.inputs}
            try:
                run = query.run_query(db.session, who, code, purpose["case_no"], purpose["reason"],
                                      purpose["business_item"], values)  # fmt: skip
            except DomainError as exc:
                error = str(exc)
        return self.render_template(
            "query/form.html", form=form, values=values, purpose=purpose, error=error,
            run=run, snapshot=run.snapshot if run else None,
        )  # fmt: skip

    @expose("/history/")
    @has_access
    def history(self):
        who = _requester()
        filters = _history_filters(request.args)
        everyone = who.can(actors.READ_ALL_QUERIES) and request.args.get("everyone") == "1"
        entries = query.history(db.session, who, everyone=everyone, **filters)
        return self.render_template("query/history.html", entries=entries, args=request.args, everyone=everyone,
                                    forms=query.granted_forms(db.session, who), is_auditor=who.can(actors.READ_ALL_QUERIES))  # fmt: skip

    @expose("/result/<int:query_id>")
    @has_access
    def result(self, query_id):
        entry, snapshot = self._stored(query_id, "page")
        return self.render_template("query/result.html", entry=entry, snapshot=snapshot)

    @expose("/result/<int:query_id>/print")
    @has_access
    def print_page(self, query_id):
        entry, snapshot = self._stored(query_id, "print")
        return self.render_template(
            "query/print.html", entry=entry, snapshot=snapshot, qr_svg=printout.qr_data_uri(entry.verification_code),
            watermark=printout.watermark_text(snapshot), verify_url=printout.verify_url(entry.verification_code),
        )  # fmt: skip

    @expose("/result/<int:query_id>/pdf")
    @has_access
    def pdf(self, query_id):
        entry, snapshot = self._stored(query_id, "pdf")
        data = printout.render_pdf(entry, snapshot)
        return send_file(io.BytesIO(data), mimetype="application/pdf", as_attachment=False,
                         download_name=f"query-{entry.id}.pdf")  # fmt: skip

    def _stored(self, query_id, way: str):
        try:
            return query.stored_result(db.session, _requester(), query_id, way)
        except DomainError as exc:
            abort(exc.status)


class VerifyView(BaseView):
    """Public: anyone holding a printout can check its code (no sign-in)."""

    route_base = "/verify"
    default_view = "page"

    @expose("/", methods=["GET"])
    @expose("/<code>", methods=["GET"])
    def page(self, code=None):
        code = code or request.args.get("code")
        result, error = None, None
        if code:
            try:
                result = query.verify_code(db.session, code)
            except DomainError as exc:
                error = str(exc)
        response = make_response(self.render_template("query/verify.html", code=code or "", result=result, error=error))
        return response


class QueryApi(BaseApi):
    resource_name = "query"
    openapi_spec_tag = "Query"

    @api_expose("/forms", methods=["GET"])
    @protect()
    @safe
    def forms(self):
        """The caller's granted forms, their inputs and allowed business items."""
        who = _requester()
        result = []
        for form in query.granted_forms(db.session, who):
            result.append(
                {
                    "code": form.code,
                    "title": form.title,
                    "inputs": [
                        {"name": i.name, "label": i.label, "type": i.type, "required": i.required} for i in form.inputs
                    ],
                    "business_items": [{"code": b.code, "name": b.name} for b in form.business_items if b.active],
                }
            )
        return self.response(200, result=result)

    @api_expose("/run", methods=["POST"])
    @protect()
    @safe
    def run(self):
        """Run a query: {form, case_no, reason, business_item, params}."""
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self.response_400(message=str(_l("The request must be a JSON object.")))
        try:
            run = query.run_query(db.session, _requester(), str(body.get("form") or ""), body.get("case_no"),
                                  body.get("reason"), body.get("business_item"), body.get("params") or {})  # fmt: skip
        except DomainError as exc:
            return self.response(exc.status, message=str(exc))
        sections = [
            {"title": s["title"], "columns": [c["label"] for c in s["columns"]], "rows": s["rows"],
             "error": s["error"], "truncated": s["truncated"]}
            for s in run.snapshot["sections"]
        ]  # fmt: skip
        return self.response(200, query_id=run.id, verification_code=run.verification_code,
                             outcome=run.outcome, sections=sections)  # fmt: skip

    @api_expose("/history", methods=["GET"])
    @protect()
    @safe
    def history(self):
        """The caller's own queries, newest first (auditors: ?everyone=1)."""
        who = _requester()
        filters = _history_filters(request.args)
        try:
            limit = max(1, min(int(request.args.get("limit", 50)), 200))
        except ValueError:
            limit = 50
        entries = query.history(db.session, who, everyone=request.args.get("everyone") == "1", limit=limit, **filters)
        return self.response(200, result=[_history_row(e, who) for e in entries])

    @api_expose("/history/<int:query_id>", methods=["GET"])
    @protect()
    @safe
    def stored(self, query_id):
        """One stored result, exactly as it was shown."""
        try:
            entry, snapshot = query.stored_result(db.session, _requester(), query_id, "api")
        except DomainError as exc:
            return self.response(exc.status, message=str(exc))
        return self.response(200, query_id=entry.id, verification_code=entry.verification_code, result=snapshot)


def _history_row(entry, who) -> dict:
    row = {
        "query_id": entry.id,
        "at": entry.at.isoformat(timespec="seconds") + "Z",
        "form": entry.form_code,
        "case_no": entry.case_no,
        "reason": entry.reason,
        "business_item": entry.business_item,
        "outcome": entry.outcome,
        "row_count": entry.row_count,
    }
    if entry.user_id != who.user_id:
        row.update(user=entry.username, agency=entry.agency_code)
    return row


class VerifyApi(BaseApi):
    resource_name = "verify"
    openapi_spec_tag = "Verify"
    limits = []  # set in register(), from config

    @api_expose("/<code>", methods=["GET"])
    @safe
    def check(self, code):
        """Public and rate-limited: is this printout's code genuine?"""
        try:
            return self.response(200, **query.verify_code(db.session, code))
        except DomainError as exc:
            return self.response(exc.status, valid=False, message=str(exc))


def register(appbuilder) -> None:
    appbuilder.add_view(QueryView, "Query", label=_l("Certificate-free query"), icon="fa-search",
                        category="Query", category_label=_l("Query"), category_icon="fa-search", href="/query/")  # fmt: skip
    appbuilder.add_link("Query history", label=_l("My query history"), href="/query/history/", icon="fa-history",
                        category="Query")  # fmt: skip
    appbuilder.add_view_no_menu(VerifyView)
    appbuilder.add_api(QueryApi)
    appbuilder.add_api(VerifyApi)
    limit = current_app.config.get("VERIFY_RATE_LIMIT", "30 per minute")
    sm = appbuilder.sm
    for view in appbuilder.baseviews:
        if isinstance(view, (VerifyApi, VerifyView)) and getattr(view, "blueprint", None) is not None:
            sm.limiter.limit(limit)(view.blueprint)
    # The query API carries no rate limit (signed-in clerks, every call
    # audited): unless the deployment sets limits for every endpoint, the
    # limiter skips its calls at once instead of resolving an empty list.
    if not any(current_app.config.get(k) for k in ("RATELIMIT_DEFAULT", "RATELIMIT_APPLICATION", "RATELIMIT_META")):
        api_blueprints = {v.blueprint.name for v in appbuilder.baseviews if isinstance(v, QueryApi) and v.blueprint}
        sm.limiter.request_filter(lambda: request.blueprint in api_blueprints)


__all__ = ["QueryView", "QueryApi", "VerifyView", "VerifyApi", "format_roc", "format_roc_datetime"]
