"""The clerk's query pages, the query REST API, and the public verification page.

Each method parses the request through ``app.schemas.query``, calls one
command or read of ``app.services.query`` with the request's actor, and
renders the result; domain errors become HTTP answers in ``app.web``.
"""

from __future__ import annotations

import io

from flask import abort, current_app, flash, redirect, request, send_file, session, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.api import BaseApi
from flask_appbuilder.api import expose as api_expose
from flask_appbuilder.security.decorators import protect
from flask_babel import lazy_gettext as _l

from app.extensions import db
from app.schemas import query as schemas
from app.services import printout, query
from app.services.audit.labels import outcome_label
from app.services.errors import DomainError, InvalidInput
from app.views.base import agency_name, json_body
from app.web import current_actor


def _or_abort(call, *args):
    """A page's read or command; a refusal is the page's HTTP status (403, 404)."""
    try:
        return call(*args)
    except DomainError as exc:
        abort(exc.status)


# The purpose of the case at hand (case number or reason, business item), kept in the
# browser's session from one form to the next until the clerk starts another case.
PURPOSE_KEY = "query_purpose"
PURPOSE_FIELDS = ("case_no", "reason", "business_item")
NEW_CASE = _l("Ready for another case: the case number, reason and business item were cleared.")


def _carried_purpose() -> dict:
    kept = session.get(PURPOSE_KEY) or {}
    return {k: kept.get(k, "") if isinstance(kept.get(k, ""), str) else "" for k in PURPOSE_FIELDS}


# Built once (a marshmallow schema holds no per-call state; building one copies its fields).
_RUN_SCHEMA = schemas.QueryRunSchema()


class QueryView(BaseView):
    """免書證查詢: the menu of granted forms, the form, the result, history, print."""

    route_base = "/query"
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        forms = query.granted_forms(db.session, current_actor())
        return self.render_template("query/index.html", forms=forms, purpose=_carried_purpose())

    @expose("/new-case", methods=["POST"])
    @has_access
    def new_case(self):
        """Start another case: the carried case number, reason and business item are forgotten."""
        session.pop(PURPOSE_KEY, None)
        flash(str(NEW_CASE), "info")
        return redirect(request.form.get("next") if request.form.get("next", "").startswith("/query/") else
                        url_for("QueryView.index"))  # fmt: skip

    @expose("/form/<code>", methods=["GET", "POST"])
    @has_access
    def form(self, code):
        who = current_actor()
        purpose = _carried_purpose()
        typed, error, run = {}, None, None
        if request.method == "POST":
            data = schemas.QueryPageSchema().load(schemas.split_page_form(request.form))
            purpose = {k: data[k] for k in purpose}
            typed = data["params"]
            try:
                run = query.run_query(db.session, who, code, *purpose.values(), typed, data["pick"])
                session[PURPOSE_KEY] = purpose  # carried to the next form of the same case
            except InvalidInput as exc:  # shown beside the form, which keeps what was typed
                error = str(exc)
            except DomainError as exc:  # a form one may not use: refused (and recorded by the command)
                abort(exc.status)
        form = _or_abort(query.find_form, db.session, who, code)
        values = {i.name: typed.get(i.name, "") for i in form.inputs}
        return self.render_template(
            "query/form.html",
            form=form,
            values=values,
            purpose=purpose,
            error=error,
            run=run,
            snapshot=run.snapshot if run else None,
            section_choices=query.section_choices(form),
            items=query.offered_items(form, who.agency_code),
            typed=typed,
        )

    @expose("/history/")
    @has_access
    def history(self):
        who = current_actor()
        filters = schemas.HistoryQuerySchema().load(request.args.to_dict())
        filters["everyone"] = filters["everyone"] and query.may_read_everyones(who)
        entries = query.history(db.session, who, **filters)
        return self.render_template(
            "query/history.html",
            entries=entries,
            args=request.args,
            everyone=filters["everyone"],
            forms=query.granted_forms(db.session, who),
            is_auditor=query.may_read_everyones(who),
            outcome_label=outcome_label,
            agency_name=agency_name,
        )

    @expose("/result/<int:query_id>")
    @has_access
    def result(self, query_id):
        entry, snapshot = _or_abort(query.stored_result, db.session, current_actor(), query_id, "page")
        return self.render_template("query/result.html", entry=entry, snapshot=snapshot)

    @expose("/result/<int:query_id>/print")
    @has_access
    def print_page(self, query_id):
        entry, snapshot = _or_abort(query.stored_result, db.session, current_actor(), query_id, "print")
        return self.render_template(
            "query/print.html",
            entry=entry,
            snapshot=snapshot,
            qr_svg=printout.qr_data_uri(entry.verification_code),
            watermark=printout.watermark_text(snapshot),
            verify_url=printout.verify_url(entry.verification_code),
        )

    @expose("/result/<int:query_id>/pdf")
    @has_access
    def pdf(self, query_id):
        entry, snapshot = _or_abort(query.stored_result, db.session, current_actor(), query_id, "pdf")
        data = printout.render_pdf(entry, snapshot)
        return send_file(
            io.BytesIO(data), mimetype="application/pdf", as_attachment=False, download_name=f"query-{entry.id}.pdf"
        )


class VerifyView(BaseView):
    """Public: anyone holding a printout can check its code (no sign-in)."""

    route_base = "/verify"
    default_view = "page"

    @expose("/", methods=["GET"])
    @expose("/<code>", methods=["GET"])
    def page(self, code=None):
        code = code or request.args.get("code")
        check = query.check_code(db.session, code) if code else None
        result = check.answer if check and check.answer["valid"] else None
        error = check.answer["message"] if check and not check.answer["valid"] else None
        if result:  # the page shows Taipei time in ROC form, as the printout does (the API keeps ISO UTC)
            shown = {key: printout.roc_moment(result.get(key)) for key in ("issued_at", "valid_until")}
            result = {**result, **shown}
        return self.render_template("query/verify.html", code=code or "", result=result, error=error)


class QueryApi(BaseApi):
    resource_name = "query"
    openapi_spec_tag = "Query"
    openapi_spec_component_schemas = (
        schemas.QueryRunSchema,
        schemas.QueryRunAnswerSchema,
        schemas.QueryFormListSchema,
        schemas.HistoryAnswerSchema,
        schemas.StoredResultAnswerSchema,
    )

    @api_expose("/forms", methods=["GET"])
    @protect()
    def forms(self):
        """The caller's granted forms, their inputs and allowed business items.
        ---
        get:
          summary: The query forms the caller may run
          responses:
            200:
              description: The granted forms
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/QueryFormListSchema'
            401:
              $ref: '#/components/responses/401'
        """
        who = current_actor()
        plans = query.granted_forms(db.session, who)
        lists = {p.code: query.section_choices(p) for p in plans}
        items = {p.code: query.offered_items(p, who.agency_code) for p in plans}
        return self.response(200, **schemas.forms_answer(plans, items, lists))

    @api_expose("/run", methods=["POST"])
    @protect()
    def run(self):
        """Run a query; every query and every refusal is recorded and audited.
        ---
        post:
          summary: Run a query
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  $ref: '#/components/schemas/QueryRunSchema'
          responses:
            200:
              description: The result as shown, its query id and verification code
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/QueryRunAnswerSchema'
            400:
              $ref: '#/components/responses/400'
            401:
              $ref: '#/components/responses/401'
            403:
              $ref: '#/components/responses/403'
            404:
              $ref: '#/components/responses/404'
        """
        data = json_body(_RUN_SCHEMA)
        run = query.run_query(
            db.session,
            current_actor(),
            data["form"],
            data["case_no"],
            data["reason"],
            data["business_item"],
            data["params"],
            data["pick"],
        )
        return self.response(200, **schemas.run_answer(run))

    @api_expose("/history", methods=["GET"])
    @protect()
    def history(self):
        """The caller's own queries, newest first (auditors: ?everyone=1).
        ---
        get:
          summary: The caller's query history
          parameters:
          - {in: query, name: form, schema: {type: string, maxLength: 60}}
          - {in: query, name: case_no, schema: {type: string, maxLength: 60}}
          - {in: query, name: from, description: a Taipei day (115/11/26 or 2026-11-26), schema: {type: string}}
          - {in: query, name: to, description: a Taipei day (115/11/26 or 2026-11-26), schema: {type: string}}
          - {in: query, name: everyone, description: auditors only, schema: {type: string, enum: ['', '0', '1']}}
          - {in: query, name: limit, schema: {type: integer, minimum: 1, maximum: 200}}
          responses:
            200:
              description: The queries, newest first
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/HistoryAnswerSchema'
            400:
              $ref: '#/components/responses/400'
            401:
              $ref: '#/components/responses/401'
        """
        who = current_actor()
        filters = schemas.HistoryQuerySchema().load(request.args.to_dict())
        return self.response(200, **schemas.history_answer(query.history(db.session, who, **filters), who))

    @api_expose("/history/<int:query_id>", methods=["GET"])
    @protect()
    def stored(self, query_id):
        """One stored result, exactly as it was shown (the reopening is audited).
        ---
        get:
          summary: Reopen a stored result
          parameters:
          - in: path
            name: query_id
            required: true
            schema: {type: integer, minimum: 1, maximum: 9223372036854775807}
          responses:
            200:
              description: The stored result and its verification code
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/StoredResultAnswerSchema'
            401:
              $ref: '#/components/responses/401'
            403:
              $ref: '#/components/responses/403'
            404:
              $ref: '#/components/responses/404'
        """
        entry, snapshot = query.stored_result(db.session, current_actor(), query_id, "api")
        return self.response(200, **schemas.stored_answer(entry, snapshot))


class VerifyApi(BaseApi):
    resource_name = "verify"
    openapi_spec_tag = "Verify"
    openapi_spec_component_schemas = (schemas.VerifyAnswerSchema, schemas.VerifyRefusedSchema)

    @api_expose("/<code>", methods=["GET"])
    def check(self, code):
        """Public and rate-limited: is this printout's code genuine?
        ---
        get:
          summary: Check a printout's verification code
          security: []
          parameters:
          - in: path
            name: code
            required: true
            schema: {type: string, maxLength: 64}
          responses:
            200:
              description: The code is genuine; what it confirms (no personal data)
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/VerifyAnswerSchema'
            400:
              description: Not a verification code (a typo)
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/VerifyRefusedSchema'
            404:
              description: Unknown, expired or altered
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/VerifyRefusedSchema'
            429:
              description: Too many checks from this address
        """
        check = query.check_code(db.session, code)
        schema = schemas.VerifyAnswerSchema if check.answer["valid"] else schemas.VerifyRefusedSchema
        return self.response(check.status, **schema().dump(check.answer))


def register(appbuilder) -> None:
    appbuilder.add_view(
        QueryView,
        # not "Query", the category's own name: menu access to the category (auditors have it,
        # for their history) would show this item too, which auditors may not open
        "Certificate-free query",
        label=_l("Certificate-free query"),
        icon="fa-search",
        category="Query",
        category_label=_l("Query"),
        category_icon="fa-search",
        href="/query/",
    )
    appbuilder.add_link(
        "Query history", label=_l("My query history"), href="/query/history/", icon="fa-history", category="Query"
    )
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


__all__ = ["QueryView", "QueryApi", "VerifyView", "VerifyApi"]
