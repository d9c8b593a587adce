"""The notification screens: work lists, registering a case in two steps, the
case and dispatch pages with their actions, attachments. Thin: each method
parses the form, loads it through app.schemas.notify, calls one command of
app.services.notify and renders its result."""

from __future__ import annotations

import io
import itertools
import os

from flask import abort, current_app, flash, redirect, request, send_file, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from marshmallow import ValidationError

from app.extensions import db
from app.schemas.notify import CaseRegistrationSchema, CaseSearchSchema, DispatchActionSchema
from app.services import notify
from app.services.errors import Conflict, DomainError, NotFound
from app.services.notify import workflow
from app.services.reports import replica
from app.views.notify_admin import KIND_LABELS
from app.web import INVALID
from app.web import current_actor as actor

TAB_LABELS = {
    "cases": _l("My agency's cases"),
    "incoming": _l("Incoming / to assign / to review"),
    "work": _l("My work"),
}
CASE_STATUS = {
    "open": _l("in progress"),
    "completed": _l("all dispatches closed"),
    "withdrawn": _l("withdrawn by the applicant"),
}
CONTROL_LABELS = {"closed": _l("Concluded"), "continuing": _l("Continuing"), "refused": _l("Refused (control type)")}
ATTACHMENT_KINDS = {"consent": _l("Consent scan"), "other": _l("Other attachment")}
EVENT_LABELS = {
    **workflow.ACTION_LABELS,
    "register": _l("register"),
    "dispatch": _l("dispatch"),
    "complete": _l("all dispatches closed"),
    "await_payment": _l("Waiting for the fee to be paid"),
    "notice_phone": _l("Citizen to be told by phone"),
    "notice_postal": _l("Citizen to be sent a postal notice"),
}
SIGNATURE_STATUS = {
    "good": _l("Valid: not revoked"),
    "revoked": _l("Revoked"),
    "expired": _l("Expired"),
    "untrusted": _l("Not trusted"),
    "unknown": _l("Unknown: the OCSP responder and the CRL could not be reached"),
    "invalid": _l("The signature does not verify"),
}
CITIZEN_FIELDS = ("name", "id_no", "email", "phone", "address", "contact_by")
CONTACT_LABELS = {"email": _l("E-mail"), "phone": _l("Phone call"), "postal": _l("Postal notice")}
ACTION_FIELDS = ("handler", "result", "control_type", "notes", "reason")
REGISTRATION = CaseRegistrationSchema()
DISPATCH_ACTION = DispatchActionSchema()
CASE_SEARCH = CaseSearchSchema()
SEARCH_FIELDS = tuple(CASE_SEARCH.fields)


def _labels() -> dict:
    return {
        "states": workflow.STATE_LABELS,
        "actions_labels": workflow.ACTION_LABELS,
        "event_labels": EVENT_LABELS,
        "controls": CONTROL_LABELS,
        "case_status": CASE_STATUS,
        "kinds": KIND_LABELS,
        "attachment_kinds": ATTACHMENT_KINDS,
        "contact_labels": CONTACT_LABELS,
    }


def _number(text, digits: int = 18) -> int | None:
    """A number typed in a form or URL (None when it is not one)."""
    text = (text or "").strip()
    return int(text) if text.isdigit() and len(text) <= digits else None


def _invalid(exc: ValidationError) -> str:
    """A schema's refusal as one line for the page."""
    messages = exc.normalized_messages()
    details = "; ".join(f"{k}: {v}" for k, v in messages.items()) if isinstance(messages, dict) else str(messages)
    return f"{INVALID} ({details})"


def _field_values(specs) -> dict | None:
    """The category's structured fields as the form posted them (``field.<name>``, a pair's
    ``field.<name>.old`` / ``.new``); None when the form posted none of them."""
    form, out, posted = request.form, {}, False
    for spec in specs:
        if spec.old_new:
            keys = (f"field.{spec.name}.old", f"field.{spec.name}.new")
            posted = posted or any(k in form for k in keys)
            out[spec.name] = {"old": form.get(keys[0], ""), "new": form.get(keys[1], "")}
        else:
            posted = posted or f"field.{spec.name}" in form
            out[spec.name] = form.get(f"field.{spec.name}", "")
    return out if posted else None


def _upload_list() -> list[notify.Upload]:
    uploads = []
    consent = request.files.get("consent")
    if consent is not None and consent.filename:
        uploads.append(notify.Upload(consent.filename, consent.read(), "consent"))
    for f in request.files.getlist("others"):
        if f is not None and f.filename:
            uploads.append(notify.Upload(f.filename, f.read(), "other"))
    return uploads


class NotifyView(BaseView):
    """通報作業: work lists, new case, case and dispatch pages."""

    route_base = "/notify"
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        case_no = (request.args.get("case_no") or "").strip()
        if case_no:
            return redirect(url_for("NotifyView.case", case_no=case_no[:20]))
        who = actor()
        wanted = request.args.get("tab")
        page = notify.page_number(request.args.get("page"))
        tabs = []
        for box in notify.boxes_of(who):
            work = notify.worklist(db.session, who, box, page=page if box == wanted else 1)
            tabs.append(
                {
                    "box": box,
                    "label": TAB_LABELS[box],
                    "items": work.items,
                    "count": work.count,
                    "overdue": work.overdue,
                    "more": work.more,
                    "page": work.page,
                }
            )
        current = next((t for t in tabs if t["box"] == wanted), tabs[0] if tabs else None)
        can_new = self.appbuilder.sm.has_access("can_new", "NotifyView")
        return self.render_template("notify/index.html", tabs=tabs, current=current, can_new=can_new, **_labels())

    @expose("/new", methods=["GET", "POST"])
    @has_access
    def new(self):
        who = actor()
        ref = (request.values.get("category") or "").strip()
        form = notify.registration_form(db.session, who, _number(ref)) if _number(ref) else None
        if form is None:
            categories = notify.list_categories(db.session, who)
            groups = [(main, list(cats)) for main, cats in itertools.groupby(categories, key=lambda c: c.main_item)]
            error = gettext("Choose one of the categories listed.") if ref else None
            return self.render_template("notify/categories.html", groups=groups, error=error), 404 if ref else 200
        values = {k: "" for k in (*CITIZEN_FIELDS, "content", "case_no")}
        ticked = sorted(form.default_ids)
        error, files_lost, found, field_values = None, False, None, None
        if request.method == "POST":
            values = {k: request.form.get(k, "") for k in values}
            ticked = [n for n in (_number(x, 9) for x in request.form.getlist("receivers")) if n is not None]
            field_values = _field_values(form.fields)
        if request.method == "POST" and "lookup" in request.form:
            try:
                found = notify.look_up_citizen(db.session, who, form.category.id, values["id_no"], values["case_no"])
            except DomainError as exc:
                error = str(exc)
            else:
                values["case_no"] = found.case_no
                if found.found:
                    values["name"], values["address"] = found.name, found.address
        elif request.method == "POST":
            body = {
                "category": form.category.id,
                "citizen": {k: values[k] for k in CITIZEN_FIELDS},
                "content": values["content"],
                "receivers": ticked,
                "fields": field_values,
                "case_no": values["case_no"] or None,
            }
            uploads = _upload_list()
            try:
                draft = REGISTRATION.load(body)
                draft.uploads = uploads
                case = notify.register_case(db.session, who, draft)
            except DomainError as exc:
                error, files_lost = str(exc), bool(uploads)
            except ValidationError as exc:
                error, files_lost = _invalid(exc), bool(uploads)
            else:
                flash(
                    gettext(
                        "Case %(case_no)s is registered and sent to %(agencies)s.",
                        case_no=case.case_no,
                        agencies="、".join(d.agency.name for d in case.dispatches),
                    ),
                    "success",
                )
                return redirect(url_for("NotifyView.case", case_no=case.case_no))
        page = self.render_template(
            "notify/new.html",
            cat=form.category,
            agencies=form.agencies,
            default_ids=form.default_ids,
            ticked=set(ticked),
            values=values,
            fields=form.fields,
            field_values=field_values or {},
            found=found,
            contact_labels=CONTACT_LABELS,
            error=error,
            files_lost=files_lost,
            kinds=KIND_LABELS,
            max_mb=f"{current_app.config['ATTACHMENT_MAX_BYTES'] / (1024 * 1024):.1f}".removesuffix(".0"),
        )
        return page, 400 if error else 200

    @expose("/case/<case_no>")
    @has_access
    def case(self, case_no):
        try:
            case = notify.view_case(db.session, actor(), case_no)
        except DomainError as exc:
            abort(exc.status)
        return self.render_template(
            "notify/case.html",
            case=case,
            dispatches=case.dispatches,
            events=case.events,
            citizen=case.citizen,
            own=case.own,
            **_labels(),
        )

    @expose("/dispatch/<int:dispatch_id>")
    @has_access
    def dispatch(self, dispatch_id):
        return self._dispatch_page(dispatch_id)

    @expose("/dispatch/<int:dispatch_id>/act/<action>", methods=["POST"])
    @has_access
    def act(self, dispatch_id, action):
        form = {k: request.form.get(k) for k in ACTION_FIELDS}
        body = {**form, "handler": form["handler"] or None, "version": _number(request.form.get("version"))}
        if action == "process":
            body["publish_result"] = bool(request.form.get("publish_result"))
        try:
            notify.act(db.session, actor(), dispatch_id, action, DISPATCH_ACTION.load(body))
        except NotFound:
            abort(404)
        except Conflict as exc:
            reloaded = gettext("The page now shows the dispatch as it is.")
            flash(f"{exc} {reloaded}", "warning")
            return redirect(url_for("NotifyView.dispatch", dispatch_id=dispatch_id))
        except DomainError as exc:
            return self._dispatch_page(dispatch_id, error=str(exc), values=form, status=exc.status)
        except ValidationError as exc:
            return self._dispatch_page(dispatch_id, error=_invalid(exc), values=form, status=400)
        flash(gettext("Done: %(action)s.", action=workflow.ACTION_LABELS[action]), "success")
        return redirect(url_for("NotifyView.dispatch", dispatch_id=dispatch_id))

    def _dispatch_page(self, dispatch_id, error=None, values=None, status=200):
        try:
            detail = notify.open_dispatch(db.session, actor(), dispatch_id)
        except DomainError as exc:
            abort(exc.status)
        d, case = detail.dispatch, detail.case
        page = self.render_template(
            "notify/dispatch.html",
            d=d,
            case=case,
            actions=d.allowed_actions,
            handlers=detail.handlers,
            error=error,
            values=values or {},
            id_no=case.citizen.id_no,
            **_labels(),
        )
        return page, status

    @expose("/attachment/<int:attachment_id>")
    @has_access
    def attachment(self, attachment_id):
        copy = request.args.get("copy", "original")
        try:
            att, data = notify.download_attachment(db.session, actor(), attachment_id, copy)
        except DomainError as exc:
            abort(exc.status)
        if copy == "original":
            name, mime = att.filename, att.mime
        else:
            name, mime = f"{os.path.splitext(att.filename)[0]}-stamped.pdf", "application/pdf"
        return send_file(io.BytesIO(data), mimetype=mime, as_attachment=True, download_name=name)

    @expose("/check/<int:attachment_id>")
    @has_access
    def check(self, attachment_id):
        try:
            att = notify.check_attachment(db.session, actor(), attachment_id)
        except DomainError as exc:
            abort(exc.status)
        return self.render_template("notify/check.html", att=att, intact=att.intact, kinds=ATTACHMENT_KINDS)

    @expose("/case/<case_no>/signature")
    @has_access
    def signature(self, case_no):
        """Check integrity of an online application's card signature (signer, time, status now)."""
        try:
            checked = notify.check_signature(db.session, actor(), case_no)
        except DomainError as exc:
            abort(exc.status)
        return self.render_template("notify/signature.html", sig=checked, statuses=SIGNATURE_STATUS)


class CaseSearchView(BaseView):
    """案件查詢: search every case one may see. The form is posted (an ID number or a
    name never travels in a URL, so never in an access log or the browser's history)."""

    route_base = "/notify/search"
    default_view = "index"

    @expose("/", methods=["GET", "POST"])
    @has_access
    def index(self):
        who = actor()
        values = {k: request.form.get(k, "") for k in SEARCH_FIELDS} if request.method == "POST" else {}
        found, error, errors, status, freshness = None, None, {}, 200, None
        if request.method == "POST":
            try:
                criteria = CASE_SEARCH.load(values)
                found, freshness = replica.read(
                    db.session, lambda s: notify.search_cases(db.session, who, criteria, reader=s)
                )
            except ValidationError as exc:
                errors = {k: "；".join(v) if isinstance(v, list) else str(v) for k, v in exc.messages.items()}
                error, status = gettext("Correct the search and try again."), 400
            except DomainError as exc:
                error, status = str(exc), exc.status
        page = self.render_template(
            "notify/search.html",
            values=values,
            found=found,
            freshness=freshness,
            error=error,
            errors=errors,
            categories=notify.search_categories(db.session),
            by_citizen=notify.searches_by_citizen(who),
            case_statuses=notify.CASE_STATUSES,
            dispatch_states=workflow.STATE_LABELS,
            **_labels(),
        )
        return page, status


def register(appbuilder) -> None:
    appbuilder.add_view(
        NotifyView,
        "Notification work",
        label=_l("Notification work"),
        icon="fa-inbox",
        category="Notification",
        category_label=_l("Notification"),
        category_icon="fa-paper-plane",
        href="/notify/",
    )
    appbuilder.add_view(
        CaseSearchView,
        "Case search",
        label=_l("Case search"),
        icon="fa-search",
        category="Notification",
        category_label=_l("Notification"),
        href="/notify/search/",
    )
