"""Accountability screens: the Admin's anomaly rules, office calendar and protected list
(validated by app.services.anomaly), the flags' screen for supervisors and auditors, and
the auditor's desk. Thin: parse, call one command, render."""

from __future__ import annotations

import base64
import datetime
import secrets

from flask import Response, current_app, flash, jsonify, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import lazy_gettext as _l
from wtforms import PasswordField, SelectField
from wtforms.fields.choices import SelectChoice

from app.extensions import db
from app.lib.rocdate import format_roc
from app.models.anomaly import AnomalyRule, OfficeDay, ProtectedSubject
from app.schemas import anomaly as schemas
from app.services import anomaly
from app.services.anomaly import reviews
from app.services.errors import InvalidInput
from app.views.base import CommandInterface, PlatformModelView, form_body, yes_no
from app.web import current_actor

LABELS = {
    "code": _l("Code"),
    "name": _l("Name"),
    "kind": _l("What it looks for"),
    "severity": _l("Severity"),
    "threshold": _l("Threshold (people or repeats)"),
    "window_minutes": _l("Period in minutes (60 an hour, 1440 a day)"),
    "office_start": _l("Office hours from (HH:MM)"),
    "office_end": _l("Office hours until (HH:MM)"),
    "active": _l("Active"),
    "description": _l("Description"),
    "day": _l("Date"),
    "label": _l("Why protected"),
    "number": _l("ID number or business number"),
    "added_at": _l("Added"),
    "subject_hash": _l("Keyed hash"),
}
RESOLVED = _l("The flag is resolved and the outcome recorded.")


def _choices(labels: dict) -> list:
    return [SelectChoice(k, v) for k, v in labels.items()]


def _rule_validator(session, item) -> None:
    anomaly.validate_rule(session, item)


def _day_validator(session, item) -> None:
    anomaly.validate_day(session, item)


def _protected_validator(session, item) -> None:
    number = getattr(item, "number", None)
    try:
        anomaly.validate_protected(session, item, number)
    finally:
        if hasattr(item, "number"):
            del item.number  # never kept on the object, never logged


class AnomalyRuleView(PlatformModelView):
    datamodel = CommandInterface(AnomalyRule)
    validator = _rule_validator
    list_title = _l("Anomaly rules")
    show_title = _l("Anomaly rule")
    add_title = _l("Add anomaly rule")
    edit_title = _l("Edit anomaly rule")
    label_columns = LABELS
    list_columns = ["code", "name", "kind", "severity", "threshold", "window_minutes", "active"]
    add_columns = edit_columns = show_columns = [
        "code", "name", "kind", "severity", "threshold", "window_minutes", "office_start", "office_end", "active",
        "description",
    ]  # fmt: skip
    search_columns = ["code", "name", "kind", "severity", "active"]
    formatters_columns = {
        "kind": lambda k: str(anomaly.KIND_LABELS.get(k, k)),
        "severity": lambda s: str(anomaly.SEVERITY_LABELS.get(s, s)),
        "active": yes_no,
    }
    description_columns = {
        "threshold": _l("Many people: how many different people; same person: how many queries under one case number."),
        "window_minutes": _l("Counted per hour or per day of the county's clock."),
    }
    add_form_extra_fields = edit_form_extra_fields = {
        "kind": SelectField(_l("What it looks for"), choices=_choices(anomaly.KIND_LABELS)),
        "severity": SelectField(_l("Severity"), choices=_choices(anomaly.SEVERITY_LABELS), default="medium"),
    }


class OfficeDayView(PlatformModelView):
    datamodel = CommandInterface(OfficeDay)
    validator = _day_validator
    list_title = _l("Office calendar")
    show_title = _l("Calendar day")
    add_title = _l("Add a calendar day")
    edit_title = _l("Edit calendar day")
    label_columns = LABELS
    list_columns = add_columns = edit_columns = show_columns = ["day", "kind", "name"]
    search_columns = ["day", "kind", "name"]
    base_order = ("day", "desc")
    formatters_columns = {
        "day": lambda d: format_roc(d),
        "kind": lambda k: str(anomaly.DAY_KIND_LABELS.get(k, k)),
    }
    add_form_extra_fields = edit_form_extra_fields = {
        "kind": SelectField(_l("Kind of day"), choices=_choices(anomaly.DAY_KIND_LABELS)),
    }


class ProtectedSubjectView(PlatformModelView):
    """The number is typed once and kept only as its keyed hash (never shown, never stored)."""

    datamodel = CommandInterface(ProtectedSubject)
    validator = _protected_validator
    list_title = _l("Protected list")
    show_title = _l("Protected person")
    add_title = _l("Add to the protected list")
    edit_title = _l("Edit protected entry")
    label_columns = LABELS
    list_columns = show_columns = ["label", "added_at"]
    add_columns = ["number", "label"]
    edit_columns = ["label"]
    search_columns = ["label"]
    formatters_columns = {"added_at": lambda d: format_roc(d)}
    add_form_extra_fields = {"number": PasswordField(_l("ID number or business number"))}


class AnomalyFlagView(BaseView):
    """The rules' flags on the agency's queries (supervisors) or every agency's (auditors)."""

    route_base = "/anomalyflags"
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        state = "all" if request.args.get("state") == "all" else "open"
        flags = anomaly.list_flags(db.session, current_actor(), state)
        return self.render_template(
            "anomaly/flags.html", flags=flags, state=state, kinds=anomaly.KIND_LABELS,
            severities=anomaly.SEVERITY_LABELS, outcomes=anomaly.OUTCOME_LABELS,
        )  # fmt: skip

    @expose("/<int:flag_id>/resolve", methods=["POST"])
    @has_access
    def resolve(self, flag_id):
        body = form_body(schemas.flag_resolution_schema, ("outcome", "comment"))
        anomaly.resolve_flag(db.session, current_actor(), flag_id, body["outcome"], body["comment"])
        flash(str(RESOLVED), "success")
        return redirect(url_for("AnomalyFlagView.index"))


class AuditDeskView(BaseView):
    """The auditor's desk: what needs an auditor's eye, on one page."""

    route_base = "/auditdesk"
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        found = anomaly.desk(db.session, current_actor())
        return self.render_template(
            "anomaly/desk.html", desk=found, severities=anomaly.SEVERITY_LABELS, format_roc=format_roc
        )


SIGNED = _l("The weekly review is signed.")


class WeeklyReviewView(BaseView):
    """The supervisor's weekly review: open a finished week (its PDF kept), read it, sign it
    (card or password); anyone who may read the review checks a signed one again."""

    route_base = "/weeklyreview"
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        found = reviews.overview(db.session, current_actor())
        return self.render_template("anomaly/reviews.html", weeks=found.weeks, card=found.card,
                                    signer=current_app.config["CERT_SIGNER_URL"])  # fmt: skip

    @expose("/week/<day>", methods=["POST"])
    @has_access
    def week(self, day):
        try:
            parsed = datetime.date.fromisoformat(day)
        except ValueError:
            raise InvalidInput(reviews.NOT_A_WEEK, n=reviews.WEEKS) from None
        review = reviews.prepare(db.session, current_actor(), parsed)
        return redirect(url_for("WeeklyReviewView.index", _anchor=f"week-{review.week_start.isoformat()}"))

    @expose("/<int:review_id>/pdf")
    @has_access
    def pdf(self, review_id):
        review = reviews.pdf_of(db.session, current_actor(), review_id)
        name = f"query-log-review-{review.agency_code}-{review.week_start:%Y%m%d}.pdf"
        return Response(review.pdf or b"", mimetype="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})  # fmt: skip

    @expose("/<int:review_id>/statement", methods=["POST"])
    @has_access
    def statement(self, review_id):
        """What the card signs (static/card-sign.js hands it to the local signing component)."""
        text = reviews.to_sign(db.session, current_actor(), review_id)
        return jsonify(nonce=secrets.token_urlsafe(16), tbs=base64.b64encode(text).decode(), tbs_encoding="base64")

    @expose("/<int:review_id>/sign", methods=["POST"])
    @has_access
    def sign(self, review_id):
        body = form_body(schemas.review_signing_schema, ("password", "signature", "comment"))
        reviews.sign(db.session, current_actor(), review_id, password=body["password"] or None,
                     signature=body["signature"] or None, comment=body["comment"])  # fmt: skip
        flash(str(SIGNED), "success")
        return redirect(url_for("WeeklyReviewView.index"))

    @expose("/<int:review_id>/verify")
    @has_access
    def verify(self, review_id):
        check = reviews.verify(db.session, current_actor(), review_id)
        return self.render_template("anomaly/review_check.html", check=check)


def register(appbuilder) -> None:
    for view, name, label, icon in (
        (AnomalyRuleView, "Anomaly rules", _l("Anomaly rules"), "fa-exclamation-triangle"),
        (OfficeDayView, "Office calendar", _l("Office calendar"), "fa-calendar"),
        (ProtectedSubjectView, "Protected list", _l("Protected list"), "fa-shield"),
    ):
        appbuilder.add_view(
            view, name, label=label, icon=icon, category="Audit setup", category_label=_l("Audit setup"),
            category_icon="fa-balance-scale",
        )  # fmt: skip
    appbuilder.add_view(
        AnomalyFlagView, "Anomaly flags", label=_l("Anomaly flags"), icon="fa-bell", category="Audit",
        category_label=_l("Audit"),
    )  # fmt: skip
    appbuilder.add_view(
        WeeklyReviewView, "Weekly reviews", label=_l("Weekly review of the query log"), icon="fa-check-square-o",
        category="Audit", category_label=_l("Audit"),
    )  # fmt: skip
    appbuilder.add_view(
        AuditDeskView, "Auditor's desk", label=_l("Auditor's desk"), icon="fa-desktop", category="Audit",
        category_label=_l("Audit"),
    )  # fmt: skip
