"""The quarterly account review screen for supervisors: confirm, change (take
roles away) or disable each staff account of the agency, complete the review,
download the signed export. Thin: the rules are app.services.account_review."""

from __future__ import annotations

import io

from flask import flash, redirect, request, send_file, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import lazy_gettext as _l

from app.extensions import db
from app.services import account_review
from app.services.errors import DomainError
from app.services.roles import REVIEW_ACCOUNTS, ROLE_LABELS
from app.web import current_actor as actor


class AccountReviewView(BaseView):
    """帳號清查: the supervisor's quarterly review of their agency's staff accounts."""

    route_base = "/accounts/review"
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        who = actor()
        if not who.can(REVIEW_ACCOUNTS):
            try:
                rows = account_review.overview(db.session, who)
            except DomainError as exc:
                return self.render_template("accounts/review.html", review=None, error=str(exc), labels={}), 403
            return self.render_template("accounts/overview.html", rows=rows)
        try:
            review = account_review.current_review(db.session, who)
        except DomainError as exc:
            return self.render_template("accounts/review.html", review=None, error=str(exc), labels={}), 403
        labels = {name: str(label) for name, label in ROLE_LABELS.items()}
        return self.render_template("accounts/review.html", review=review, error=None, labels=labels,
                                    decisions=account_review.DECISION_LABELS)  # fmt: skip

    @expose("/open", methods=["POST"])
    @has_access
    def open(self):
        try:
            account_review.open_review(db.session, actor())
        except DomainError as exc:
            flash(str(exc), "danger")
        return redirect(url_for("AccountReviewView.index"))

    @expose("/item/<item_id>", methods=["POST"])
    @has_access
    def decide(self, item_id):
        try:
            account_review.decide(db.session, actor(), item_id, request.form.get("decision", ""),
                                  request.form.getlist("keep"))  # fmt: skip
            flash(str(_l("Decision saved.")), "success")
        except DomainError as exc:
            flash(str(exc), "danger")
        return redirect(url_for("AccountReviewView.index") + f"#item-{item_id}")

    @expose("/<review_id>/complete", methods=["POST"])
    @has_access
    def complete(self, review_id):
        try:
            account_review.complete(db.session, actor(), review_id)
            flash(str(_l("The review is completed; its export is signed.")), "success")
        except DomainError as exc:
            flash(str(exc), "danger")
        return redirect(url_for("AccountReviewView.index"))

    @expose("/<review_id>/export")
    @has_access
    def export(self, review_id):
        return self._download(review_id, "xlsx")

    @expose("/<review_id>/signature")
    @has_access
    def signature(self, review_id):
        return self._download(review_id, "sig")

    def _download(self, review_id, part):
        try:
            made = account_review.export(db.session, actor(), review_id, part)
        except DomainError as exc:
            flash(str(exc), "danger")
            return redirect(url_for("AccountReviewView.index"))
        return send_file(io.BytesIO(made.data), mimetype=made.mimetype, as_attachment=True,
                         download_name=made.filename)  # fmt: skip


def register(appbuilder) -> None:
    appbuilder.add_view(
        AccountReviewView,
        "Account review",
        label=_l("Quarterly account review"),
        icon="fa-user-times",
        href="/accounts/review/",
        category="Security",
    )
