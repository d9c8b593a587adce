"""Satisfaction questionnaires: the designer's screens (with versions), the
public answering page behind the one-time link, and the statistics.

Thin: the rules (versions, validation, one response per link, counting) live
in app.services.survey.
"""

from __future__ import annotations

import io

from flask import abort, current_app, flash, g, make_response, redirect, request, send_file, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.models.sqla.filters import FilterEqual
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, SelectField

from app.extensions import db
from app.lib.rocdate import format_roc
from app.models.survey import QUESTION_TYPES, Choice, Question, Questionnaire
from app.services import audit, charts, report_excel, reports, survey
from app.services.errors import DomainError
from app.views.base import PlatformModelView, yes_no

LABELS = {
    "title": _l("Title"), "introduction": _l("Introduction"), "active": _l("Active"), "version": _l("Version"),
    "is_current": _l("Current version"), "questions": _l("Questions"), "categories": _l("Notification categories"),
    "created_at": _l("Created"), "questionnaire": _l("Questionnaire"), "sort_order": _l("Order"),
    "type": _l("Type"), "text": _l("Text"), "required": _l("Required"), "choices": _l("Choices"),
    "question": _l("Question"),
}  # fmt: skip


def _type_label(value) -> str:
    return str(survey.TYPE_LABELS.get(value, value))


class _Versioned(PlatformModelView):
    """Every change goes through app.services.survey, which makes a new
    version instead of changing a questionnaire that has answers."""

    #: columns whose change, once answered, needs a new version
    versioned_columns: list[str] = []

    def process_form(self, form, is_created):
        # Runs before the form fills the item (whose relationship fields may
        # flush it on the way): note the stored values of the versioned columns.
        if not is_created:
            item = self.datamodel.get(request.view_args.get("pk"))
            g.survey_before = {c: getattr(item, c) for c in self.versioned_columns} if item is not None else {}
        super().process_form(form, is_created)

    def pre_update(self, item):
        session = self.datamodel.session
        before = g.pop("survey_before", {})
        with session.no_autoflush:
            changed = {c: getattr(item, c) for c in self.versioned_columns if getattr(item, c) != before.get(c)}
            for c in changed:
                setattr(item, c, before[c])  # the stored values stay until the service decides
            revision = survey.revise(session, item, changed)
        self._remember(revision)

    def _remember(self, revision) -> None:
        if revision.new_version:
            g.survey_new_version = revision.questionnaire

    def _after(self):
        nq = g.pop("survey_new_version", None)
        if nq is None:
            return redirect(self.get_redirect())
        flash(gettext("This questionnaire already has answers, so the change was saved as version %(version)s; the "
                      "answers given keep version %(old)s.", version=nq.version, old=nq.version - 1), "info")  # fmt: skip
        return redirect(url_for("QuestionnaireView.show", pk=nq.id))

    post_add_redirect = post_edit_redirect = post_delete_redirect = _after

    def _delete(self, pk):
        item = self.datamodel.get(pk, self._base_filters)
        if not item:
            abort(404)
        session = self.datamodel.session
        try:
            revision = survey.remove(session, item)
            session.commit()
        except DomainError as exc:
            session.rollback()
            flash(str(exc), "danger")
        else:
            self._remember(revision)
            if not revision.new_version:
                flash(self.delete_row_message, "success")
        self.update_redirect()


class ChoiceView(_Versioned):
    datamodel = SQLAInterface(Choice)
    list_title = _l("Choices")
    show_title = _l("Choice")
    add_title = _l("Add choice")
    edit_title = _l("Edit choice")
    label_columns = LABELS
    list_columns = ["question", "sort_order", "text"]
    add_columns = ["question", "sort_order", "text"]
    edit_columns = ["sort_order", "text"]
    show_columns = ["question", "sort_order", "text"]
    search_columns = ["text"]
    versioned_columns = ["sort_order", "text"]
    base_order = ("sort_order", "asc")

    def pre_add(self, item):
        session = self.datamodel.session
        with session.no_autoflush:
            question = item.question
            item.question = None
            if item in session:
                session.expunge(item)
            self._remember(survey.add_choice(session, question, item))


class QuestionView(_Versioned):
    datamodel = SQLAInterface(Question)
    list_title = _l("Questions")
    show_title = _l("Question")
    add_title = _l("Add question")
    edit_title = _l("Edit question")
    label_columns = LABELS
    list_columns = ["questionnaire", "sort_order", "type", "text", "required"]
    add_columns = ["questionnaire", "sort_order", "type", "text", "required"]
    edit_columns = ["sort_order", "type", "text", "required"]
    show_columns = ["questionnaire", "sort_order", "type", "text", "required"]
    search_columns = ["text", "type"]
    versioned_columns = ["sort_order", "type", "text", "required"]
    related_views = [ChoiceView]
    base_order = ("sort_order", "asc")
    formatters_columns = {"type": _type_label, "required": yes_no}
    add_form_query_rel_fields = {"questionnaire": [["is_current", FilterEqual, True]]}
    add_form_extra_fields = edit_form_extra_fields = {
        "type": SelectField(_l("Type"), choices=[(t, survey.TYPE_LABELS[t]) for t in QUESTION_TYPES]),
        # FAB marks a non-nullable boolean as required, which an unticked box never satisfies
        "required": BooleanField(_l("Required"), default=True),
    }

    def pre_add(self, item):
        session = self.datamodel.session
        with session.no_autoflush:
            questionnaire = item.questionnaire
            item.questionnaire = None
            if item in session:
                session.expunge(item)
            self._remember(survey.add_question(session, questionnaire, item))


class QuestionnaireView(_Versioned):
    datamodel = SQLAInterface(Questionnaire)
    list_title = _l("Questionnaires")
    show_title = _l("Questionnaire")
    add_title = _l("Add questionnaire")
    edit_title = _l("Edit questionnaire")
    label_columns = LABELS
    list_columns = ["title", "version", "is_current", "active", "categories"]
    add_columns = ["title", "introduction", "categories"]
    edit_columns = ["title", "introduction", "active", "categories"]
    show_columns = ["title", "version", "is_current", "introduction", "active", "categories", "created_at"]
    search_columns = ["title", "is_current", "active"]
    versioned_columns = ["title", "introduction"]
    related_views = [QuestionView]
    base_order = ("id", "desc")
    formatters_columns = {"active": yes_no, "is_current": yes_no,
                          "created_at": lambda v: format_roc(v) if v else ""}  # fmt: skip
    edit_form_extra_fields = {"active": BooleanField(_l("Active"))}
    description_columns = {
        "active": _l("Only an active questionnaire is sent. Add the questions (and choices) first."),
        "categories": _l("Citizens of these categories receive this questionnaire when their case is complete."),
    }

    def pre_add(self, item):
        item.active = False
        item.version, item.is_current = 1, True
        survey.validate_questionnaire(self.datamodel.session, item)

    def post_add(self, item):
        survey.ensure_series(self.datamodel.session, item)
        self.datamodel.session.commit()


# --- the public page behind the link -----------------------------------------------------


class SurveyPublicView(BaseView):
    """問卷填答: no sign-in; the one-time link is the key."""

    route_base = "/survey"
    default_view = "thanks"

    def _problem(self, exc: survey.LinkProblem):
        page = self.render_template("survey/public_problem.html", problem=exc, kind=exc.kind)
        return _no_store(make_response(page, exc.status))

    @expose("/<token>", methods=["GET", "POST"])
    def answer(self, token):
        values, errors = {}, {}
        try:
            if request.method == "POST":
                form = {k: request.form.getlist(k) for k in request.form if k.startswith("q")}
                try:
                    survey.submit(db.session, token, form)
                    db.session.commit()
                except survey.AnswerErrors as exc:
                    db.session.rollback()
                    values, errors = form, exc.errors
                else:
                    return redirect(url_for("SurveyPublicView.thanks"))
            invitation = survey.open_invitation(db.session, token)
        except survey.LinkProblem as exc:
            db.session.rollback()
            return self._problem(exc)
        page = self.render_template("survey/public_form.html", q=invitation.questionnaire, values=values,
                                    errors=errors, token=token, rating_range=range(1, 6))  # fmt: skip
        return _no_store(make_response(page, 400 if errors else 200))

    @expose("/thanks")
    def thanks(self):
        return _no_store(make_response(self.render_template("survey/public_thanks.html")))


def _no_store(response):
    # The link is a secret: keep the page out of caches and off other sites' referrers.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


# --- statistics ----------------------------------------------------------------------------


def _data_uri(svg: bytes | None) -> str | None:
    import base64

    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode() if svg else None


class SurveyStatsView(BaseView):
    """問卷統計: distributions, mean ratings, free-text answers, response rate."""

    route_base = "/survey-stats"
    default_view = "index"

    def _load(self):
        versions = survey.questionnaires_for_statistics(db.session)
        chosen = request.args.get("questionnaire", "")
        q = next((v for v in versions if str(v.id) == chosen), None)
        if q is None:
            q = next((v for v in versions if v.is_current and v.active), versions[0] if versions else None)
        filters = reports.parse_filters(request.args)
        stats = survey.statistics(db.session, q.id, filters) if q is not None else None
        return versions, q, filters, stats

    @expose("/")
    @has_access
    def index(self):
        error, versions, q, filters, stats = None, [], None, None, None
        try:
            versions, q, filters, stats = self._load()
        except DomainError as exc:
            db.session.rollback()
            error = str(exc)
            versions = survey.questionnaires_for_statistics(db.session)
        charts_ = {}
        if stats is not None:
            charts_ = {s.question.id: _data_uri(charts.question_chart(s)) for s in stats.questions}
        args = dict(request.args)
        page = self.render_template(
            "survey/stats.html", versions=versions, q=q, stats=stats, filters=filters, error=error, charts=charts_,
            agencies=reports.agencies(db.session), categories=survey.categories(db.session),
            args=args, type_labels=survey.TYPE_LABELS,
        )  # fmt: skip
        return page, 400 if error else 200

    @expose("/export")
    @has_access
    def export(self):
        try:
            _versions, q, filters, stats = self._load()
        except DomainError as exc:
            db.session.rollback()
            flash(str(exc), "danger")
            return redirect(url_for("SurveyStatsView.index", **request.args))
        if stats is None or stats.empty:
            period = filters.period if filters else ""
            flash(gettext("Nothing to export: no invitations were sent in %(period)s with these filters.",
                          period=period), "warning")  # fmt: skip
            return redirect(url_for("SurveyStatsView.index", **request.args))
        data = report_excel.survey_xlsx(stats)
        audit.record(db.session, "report_export", object_type="Report", object_id="survey",
                     detail={"format": "xlsx", "questionnaire": q.id, **filters.args()})  # fmt: skip
        db.session.commit()
        name = f"survey-{q.id}-{filters.date_from:%Y%m%d}-{filters.date_to:%Y%m%d}.xlsx"
        return send_file(io.BytesIO(data), as_attachment=True, download_name=name,
                         mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")  # fmt: skip


def register(appbuilder) -> None:
    category = {"category": "Satisfaction survey", "category_label": _l("Satisfaction survey"),
                "category_icon": "fa-smile-o"}  # fmt: skip
    appbuilder.add_view(QuestionnaireView, "Questionnaires", label=_l("Questionnaires"), icon="fa-list-ol", **category)
    appbuilder.add_view(SurveyStatsView, "Survey statistics", label=_l("Survey statistics"), icon="fa-bar-chart",
                        href="/survey-stats/", **category)  # fmt: skip
    appbuilder.add_view_no_menu(QuestionView)
    appbuilder.add_view_no_menu(ChoiceView)
    appbuilder.add_view_no_menu(SurveyPublicView)
    limit = current_app.config.get("SURVEY_RATE_LIMIT", "60 per minute")
    for view in appbuilder.baseviews:
        if isinstance(view, SurveyPublicView) and getattr(view, "blueprint", None) is not None:
            appbuilder.sm.limiter.limit(limit)(view.blueprint)
