"""The notification screens: work lists, registering a case in two steps, the
case and dispatch pages with their actions, attachments. Thin: the rules are
in app.services.notify and app.services.workflow."""

from __future__ import annotations

import io
import itertools
import os

from flask import abort, current_app, flash, redirect, request, send_file, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.extensions import db
from app.lib.identifiers import mask_id
from app.models.org import Agency
from app.services import actors, notify, workflow
from app.services.errors import Conflict, DomainError, NotFound
from app.views.notify_admin import KIND_LABELS
from app.web import current_actor as actor

# (work list, role that needs it, tab label)
TABS = (
    ("cases", "Notifier", _l("My agency's cases")),
    ("incoming", "Supervisor", _l("Incoming / to assign / to review")),
    ("work", "Handler", _l("My work")),
)
CASE_STATUS = {"open": _l("in progress"), "completed": _l("all dispatches closed")}
CONTROL_LABELS = {"closed": _l("Concluded"), "continuing": _l("Continuing")}
ATTACHMENT_KINDS = {"consent": _l("Consent scan"), "other": _l("Other attachment")}
EVENT_LABELS = {
    **workflow.ACTION_LABELS,
    "register": _l("register"),
    "dispatch": _l("dispatch"),
    "complete": _l("all dispatches closed"),
}
CITIZEN_FIELDS = ("name", "id_no", "email", "phone", "address")
ACTION_FIELDS = ("handler", "result", "control_type", "notes", "reason")


def _labels() -> dict:
    return {
        "states": workflow.STATE_LABELS,
        "actions_labels": workflow.ACTION_LABELS,
        "event_labels": EVENT_LABELS,
        "controls": CONTROL_LABELS,
        "case_status": CASE_STATUS,
        "kinds": KIND_LABELS,
        "attachment_kinds": ATTACHMENT_KINDS,
    }


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
        size = current_app.config["WORKLIST_PAGE_SIZE"]
        wanted = request.args.get("tab")
        page = int(request.args["page"]) if request.args.get("page", "").isdigit() else 1
        page = max(1, min(page, 10_000))
        tabs = []
        for box, role, label in TABS:
            if role in who.roles:
                offset = (page - 1) * size if box == wanted else 0
                items = notify.worklist(db.session, who, box, limit=size, offset=offset)
                late = sum(1 for i in items if (i[1] if box == "cases" else i.overdue))
                tabs.append({"box": box, "label": label, "items": items, "count": len(items), "overdue": late,
                             "more": len(items) == size, "page": page if box == wanted else 1})  # fmt: skip
        current = next((t for t in tabs if t["box"] == wanted), tabs[0] if tabs else None)
        can_new = self.appbuilder.sm.has_access("can_new", "NotifyView")
        return self.render_template("notify/index.html", tabs=tabs, current=current, can_new=can_new, **_labels())

    @expose("/new", methods=["GET", "POST"])
    @has_access
    def new(self):
        who = actor()
        categories = notify.usable_categories(db.session, who)
        ref = (request.values.get("category") or "").strip()
        cat = next((c for c in categories if str(c.id) == ref), None)
        if cat is None:
            groups = [(main, list(cats)) for main, cats in itertools.groupby(categories, key=lambda c: c.main_item)]
            error = gettext("Choose one of the categories listed.") if ref else None
            return self.render_template("notify/categories.html", groups=groups, error=error), 404 if ref else 200
        values = {k: "" for k in (*CITIZEN_FIELDS, "content")}
        ticked = [a.id for a in cat.default_receivers]
        error, files_lost = None, False
        if request.method == "POST":
            values = {k: request.form.get(k, "") for k in values}
            ticked = [int(x) for x in request.form.getlist("receivers") if x.isdigit() and len(x) < 10]
            uploads = []
            consent = request.files.get("consent")
            if consent is not None and consent.filename:
                uploads.append(notify.Upload(consent.filename, consent.read(), "consent"))
            for f in request.files.getlist("others"):
                if f is not None and f.filename:
                    uploads.append(notify.Upload(f.filename, f.read(), "other"))
            draft = notify.CaseDraft(
                category_id=cat.id,
                citizen=notify.Citizen(**{k: values[k] for k in CITIZEN_FIELDS}),
                content=values["content"],
                receivers=ticked,
                uploads=uploads,
            )
            try:
                case = notify.register_case(db.session, who, draft)
                db.session.commit()
            except DomainError as exc:
                db.session.rollback()
                error, files_lost = str(exc), bool(uploads)
            else:
                flash(gettext("Case %(case_no)s is registered and sent to %(agencies)s.", case_no=case.case_no,
                              agencies="、".join(d.agency.name for d in case.dispatches)), "success")  # fmt: skip
                return redirect(url_for("NotifyView.case", case_no=case.case_no))
        defaults = [a for a in cat.default_receivers if a.active and a.id != who.agency_id]
        default_ids = {a.id for a in defaults}
        others = db.session.scalars(
            select(Agency).where(Agency.active.is_(True)).order_by(Agency.kind, Agency.code)
        ).all()
        agencies = defaults + [a for a in others if a.id not in default_ids and a.id != who.agency_id]
        page = self.render_template(
            "notify/new.html", cat=cat, agencies=agencies, default_ids=default_ids, ticked=set(ticked),
            values=values, error=error, files_lost=files_lost, kinds=KIND_LABELS,
            max_mb=f"{current_app.config['ATTACHMENT_MAX_BYTES'] / (1024 * 1024):.1f}".removesuffix(".0"),
        )  # fmt: skip
        return page, 400 if error else 200

    @expose("/case/<case_no>")
    @has_access
    def case(self, case_no):
        who = actor()
        try:
            case, dispatches = notify.find_case(db.session, who, case_no)
        except DomainError as exc:
            abort(exc.status)
        own = case.agency_id == who.agency_id
        visible = {d.id for d in dispatches}
        events = [e for e in case.events if own or who.can(actors.ALL_AGENCIES) or e.dispatch_id in (None, *visible)]
        agency_names = {a.code: a.name for a in (case.agency, *(d.agency for d in dispatches)) if a is not None}
        citizen = {
            "name": case.citizen_name or "",
            "id_no": case.citizen_id_no if own else mask_id(case.citizen_id_no or ""),
            "email": case.citizen_email if own else None,
            "phone": case.citizen_phone or "",
            "address": case.citizen_address or "",
        }
        return self.render_template(
            "notify/case.html", case=case, dispatches=dispatches, events=events, citizen=citizen, own=own,
            agency_names=agency_names, **_labels(),
        )  # fmt: skip

    @expose("/dispatch/<int:dispatch_id>")
    @has_access
    def dispatch(self, dispatch_id):
        return self._dispatch_page(dispatch_id)

    @expose("/dispatch/<int:dispatch_id>/act/<action>", methods=["POST"])
    @has_access
    def act(self, dispatch_id, action):
        who = actor()
        form = {k: request.form.get(k) for k in ACTION_FIELDS}
        version = (request.form.get("version") or "").strip()
        try:
            notify.act(db.session, who, dispatch_id, action, version=int(version) if version.isdigit() else None,
                       handler=form["handler"] or None, result=form["result"], control_type=form["control_type"],
                       notes=form["notes"], reason=form["reason"])  # fmt: skip
        except NotFound:
            db.session.rollback()
            abort(404)
        except Conflict as exc:
            db.session.rollback()
            reloaded = gettext("The page now shows the dispatch as it is.")
            flash(f"{exc} {reloaded}", "warning")
            return redirect(url_for("NotifyView.dispatch", dispatch_id=dispatch_id))
        except DomainError as exc:
            db.session.rollback()
            return self._dispatch_page(dispatch_id, error=str(exc), values=form, status=exc.status)
        flash(gettext("Done: %(action)s.", action=workflow.ACTION_LABELS[action]), "success")
        return redirect(url_for("NotifyView.dispatch", dispatch_id=dispatch_id))

    def _dispatch_page(self, dispatch_id, error=None, values=None, status=200):
        who = actor()
        try:
            d = notify.open_dispatch(db.session, who, dispatch_id)
        except DomainError as exc:
            db.session.rollback()
            abort(exc.status)
        actions = workflow.allowed_actions(d, who)
        handlers = notify.handlers_of(db.session, d.agency_id) if "assign" in actions else []
        own_case = d.case.agency_id == who.agency_id
        page = self.render_template(
            "notify/dispatch.html", d=d, case=d.case, actions=actions, handlers=handlers, error=error,
            values=values or {}, id_no=d.case.citizen_id_no if own_case else mask_id(d.case.citizen_id_no or ""),
            **_labels(),
        )  # fmt: skip
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
            att, intact = notify.check_attachment(db.session, actor(), attachment_id)
        except DomainError as exc:
            abort(exc.status)
        return self.render_template("notify/check.html", att=att, intact=intact, kinds=ATTACHMENT_KINDS)


def register(appbuilder) -> None:
    appbuilder.add_view(NotifyView, "Notification work", label=_l("Notification work"), icon="fa-inbox",
                        category="Notification", category_label=_l("Notification"), category_icon="fa-paper-plane",
                        href="/notify/")  # fmt: skip
