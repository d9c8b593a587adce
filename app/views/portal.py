"""The citizens' and businesses' portal (/portal/): its own look and menu (not the
back office's layout), my cases, who read my data and its flags; the REST API
under /api/v1/me/; and the back-office page where the querying agency's Auditor
answers the flags. Thin: each parses through ``app.schemas.portal``, calls one
command of ``app.services.portal`` and renders."""

from __future__ import annotations

import functools

from flask import flash, redirect, render_template, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.api import BaseApi
from flask_appbuilder.security.decorators import protect
from flask_babel import lazy_gettext as _l

from app.extensions import db
from app.schemas import portal as schemas
from app.services import portal
from app.services.errors import NotFound
from app.web import current_actor

STATES = {
    "sent": _l("Sent"),
    "received": _l("Received"),
    "assigned": _l("Assigned"),
    "accepted": _l("Accepted"),
    "processed": _l("Processed"),
    "closed": _l("Closed"),
}
STATUSES = {"open": _l("In progress"), "completed": _l("Completed"), "withdrawn": _l("Withdrawn")}
ACTIONS = {
    "register": _l("Registered"),
    "dispatch": _l("Sent to the agency"),
    "receive": _l("Received"),
    "assign": _l("Assigned"),
    "accept": _l("Accepted"),
    "process": _l("Processed"),
    "return": _l("Returned for more work"),
    "close": _l("Closed"),
    "complete": _l("Completed"),
    "withdraw": _l("Withdrawn by you"),
    "await_payment": _l("Waiting for the fee to be paid"),
}
WITHDRAWN = _l("Your application was withdrawn.")
MAILS_SAVED = _l("Your choice of e-mails was saved.")
MAIL_STAGES = {
    "accepted": _l("An agency accepted my application"),
    "dispatch_closed": _l("An agency finished its part"),
    "completed": _l("Every agency finished"),
}
FLAGGED = _l("Thank you. The agency's auditor will look into it and answer here.")
ANSWERED = _l("The answer was saved; the person will read it in the portal.")


def _page(template: str, status: int = 200, **context):
    return render_template(f"portal/{template}", states=STATES, statuses=STATUSES, actions=ACTIONS,
                           mail_stages=MAIL_STAGES, **context), status  # fmt: skip


def card_holder(fn):
    """Anonymous visitors go to the card sign-in; then FAB's permission (Citizen and Business
    roles only); the commands check the portal capability again."""

    checked = has_access(fn)

    @functools.wraps(checked)  # keeps FAB's permission name, so the view lists it
    def guarded(self, *args, **kwargs):
        if not current_actor().signed_in:
            return redirect(url_for("CardSignInView.index"))
        return checked(self, *args, **kwargs)

    return guarded


class PortalView(BaseView):
    """我的服務: the citizens' and businesses' own pages."""

    route_base = "/portal"
    default_view = "index"

    @expose("/")
    @card_holder
    def index(self):
        person = portal.person_of(db.session, current_actor())
        return _page("index.html", person=person)

    @expose("/cases/")
    @card_holder
    def cases(self):
        return _page("cases.html", cases=portal.list_cases(db.session, current_actor()))

    @expose("/cases/<case_no>")
    @card_holder
    def case(self, case_no):
        try:
            found = portal.get_case(db.session, current_actor(), case_no)
        except NotFound as missing:
            return _page("missing.html", 404, message=str(missing))
        return _page("case.html", case=found)

    @expose("/cases/<case_no>/withdraw", methods=["POST"])
    @card_holder
    def withdraw(self, case_no):
        portal.withdraw(db.session, current_actor(), case_no)
        flash(str(WITHDRAWN), "success")
        return redirect(url_for("PortalView.case", case_no=case_no))

    @expose("/cases/<case_no>/mails", methods=["POST"])
    @card_holder
    def mails(self, case_no):
        body = schemas.mail_stages_schema.load({"stages": request.form.getlist("stages")})
        portal.set_mail_stages(db.session, current_actor(), case_no, body["stages"])
        flash(str(MAILS_SAVED), "success")
        return redirect(url_for("PortalView.case", case_no=case_no) + "#mails")

    @expose("/accesses/")
    @card_holder
    def accesses(self):
        found = portal.list_accesses(db.session, current_actor(), request.args.get("page"))
        return _page("accesses.html", entries=found.entries, page=found.page, next_page=found.next_page)

    @expose("/accesses/<int:access_id>/flag", methods=["POST"])
    @card_holder
    def flag(self, access_id):
        body = schemas.access_flag_schema.load({"note": request.form.get("note") or None})
        portal.flag_access(db.session, current_actor(), access_id, body["note"])
        flash(str(FLAGGED), "success")
        return redirect(url_for("PortalView.accesses") + f"#access-{access_id}")


class AccessFlagView(BaseView):
    """The flags on one's agency's queries, for its Auditor to answer."""

    route_base = "/accessflags"
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        flags = portal.list_flags(db.session, current_actor())
        return self.render_template("portal/flags.html", flags=flags)

    @expose("/<int:flag_id>/answer", methods=["POST"])
    @has_access
    def answer(self, flag_id):
        body = schemas.flag_answer_schema.load({"answer": request.form.get("answer", "")})
        portal.answer_flag(db.session, current_actor(), flag_id, body["answer"])
        flash(str(ANSWERED), "success")
        return redirect(url_for("AccessFlagView.index"))


class MeApi(BaseApi):
    """The portal over REST, with the JWT of the certificate sign-in."""

    resource_name = "me"
    openapi_spec_tag = "Portal"
    openapi_spec_component_schemas = schemas.COMPONENTS

    @expose("/cases", methods=["GET"])
    @protect()
    def cases(self):
        """My cases.
        ---
        get:
          summary: The cases where I am the citizen, newest first (audited)
          responses:
            200:
              description: My cases, each with its receiving agencies' progress
              content:
                application/json:
                  schema: {$ref: '#/components/schemas/MyCaseListSchema'}
            401: {$ref: '#/components/responses/401'}
            403: {$ref: '#/components/responses/403'}
        """
        found = portal.list_cases(db.session, current_actor())
        return self.response(200, **schemas.my_case_list_schema.dump({"result": found}))

    @expose("/cases/<case_no>", methods=["GET"])
    @protect()
    def case(self, case_no):
        """One of my cases.
        ---
        get:
          summary: One of my cases with its timeline (audited; another's case number is a 404, audited)
          parameters:
          - in: path
            name: case_no
            required: true
            schema: {type: string, maxLength: 20}
          responses:
            200:
              description: The case
              content:
                application/json:
                  schema: {$ref: '#/components/schemas/MyCaseSchema'}
            401: {$ref: '#/components/responses/401'}
            403: {$ref: '#/components/responses/403'}
            404: {$ref: '#/components/responses/404'}
        """
        return self.response(200, **schemas.my_case_schema.dump(portal.get_case(db.session, current_actor(), case_no)))

    @expose("/accesses", methods=["GET"])
    @protect()
    def accesses(self):
        """Who read my data.
        ---
        get:
          summary: Every query of my data, newest first, 50 a page (restricted forms after their delay; audited)
          parameters:
          - in: query
            name: page
            required: false
            schema: {type: integer, minimum: 1, maximum: 10000, default: 1}
          responses:
            200:
              description: The queries whose data subject I am
              content:
                application/json:
                  schema: {$ref: '#/components/schemas/MyAccessListSchema'}
            400: {$ref: '#/components/responses/400'}
            401: {$ref: '#/components/responses/401'}
            403: {$ref: '#/components/responses/403'}
        """
        found = portal.list_accesses(db.session, current_actor(), request.args.get("page"))
        body = {"result": found.entries, "page": found.page, "next_page": found.next_page}
        return self.response(200, **schemas.my_access_list_schema.dump(body))

    @expose("/accesses/<int:pk>/flag", methods=["POST"])
    @protect()
    def flag(self, pk):
        """I don't recognise this.
        ---
        post:
          summary: Flag a query of my data that I don't recognise; the querying agency's Auditor answers
          parameters:
          - pk
          requestBody:
            required: false
            content:
              application/json:
                schema: {$ref: '#/components/schemas/AccessFlagSchema'}
          responses:
            201:
              description: Flagged; the entry with the answer's due date
              content:
                application/json:
                  schema: {$ref: '#/components/schemas/MyAccessSchema'}
            400: {$ref: '#/components/responses/400'}
            401: {$ref: '#/components/responses/401'}
            403: {$ref: '#/components/responses/403'}
            404: {$ref: '#/components/responses/404'}
            409: {description: Flagged already}
        """
        raw = request.get_json(silent=True) if request.data else {}
        body = schemas.access_flag_schema.load(raw)
        entry = portal.flag_access(db.session, current_actor(), pk, body["note"])
        return self.response(201, **schemas.my_access_schema.dump(entry))


def register(appbuilder) -> None:
    appbuilder.add_view_no_menu(PortalView)
    appbuilder.add_view(
        AccessFlagView,
        "Access flags",
        label=_l("Flags on our queries"),
        icon="fa-flag",
        category="Audit",
        category_label=_l("Audit"),
    )
    appbuilder.add_api(MeApi)
