"""Satisfaction questionnaires: the designer's screens (with versions), the
public answering page behind the one-time link, and the statistics.

Thin: the rules (versions, validation, one response per link) live in
app.services.survey, the statistics in app.services.reports.
"""

from __future__ import annotations

import base64
import io

from flask import current_app, flash, make_response, redirect, request, send_file, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.models.sqla.filters import FilterEqual
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from marshmallow import ValidationError
from wtforms import BooleanField, SelectField
from wtforms.fields.choices import SelectChoice

from app.extensions import db
from app.lib.rocdate import format_roc
from app.models.survey import QUESTION_TYPES, Choice, Question, Questionnaire
from app.schemas.reports import INVALID_QUERY, SurveyStatsQuerySchema
from app.services import reports, survey
from app.services.errors import DomainError
from app.services.reports import charts, replica
from app.views.base import CommandInterface, PlatformModelView, yes_no
from app.web import current_actor as actor

LABELS = {
    "title": _l("Title"),
    "introduction": _l("Introduction"),
    "active": _l("Active"),
    "version": _l("Version"),
    "is_current": _l("Current version"),
    "questions": _l("Questions"),
    "categories": _l("Notification categories"),
    "created_at": _l("Created"),
    "questionnaire": _l("Questionnaire"),
    "sort_order": _l("Order"),
    "type": _l("Type"),
    "text": _l("Text"),
    "required": _l("Required"),
    "choices": _l("Choices"),
    "question": _l("Question"),
}


def _type_label(value) -> str:
    return str(survey.TYPE_LABELS.get(value, value))


def _version_message(questionnaire) -> str:
    return gettext(
        "This questionnaire already has answers, so the change was saved as version %(version)s; the answers given "
        "keep version %(old)s.",
        version=questionnaire.version,
        old=questionnaire.version - 1,
    )


class _Versioned(PlatformModelView):
    """Every change goes through a command of app.services.survey, which makes
    a new version instead of changing a questionnaire that has answers."""

    def _remember(self, revision) -> None:
        if revision.new_version:
            flash(_version_message(revision.questionnaire), "info")

    def pre_update(self, item):
        self._remember(survey.save_edit(self.datamodel.session, actor(), item))

    def pre_delete(self, item):
        survey.prepare_removal(self.datamodel.session, actor(), item)

    def _after(self):
        """Back to the list, or, when the item's questionnaire has a newer version
        now, to that version."""
        pk = (request.view_args or {}).get("pk")
        item = self.datamodel.get(pk) if pk is not None else None
        questionnaire = survey.questionnaire_of(item) if item is not None else None
        if questionnaire is None or questionnaire.is_current:
            return redirect(self.get_redirect())
        current = survey.current_version(self.datamodel.session, questionnaire)
        return redirect(url_for("QuestionnaireView.show", pk=current.id))

    post_add_redirect = post_edit_redirect = post_delete_redirect = _after


class ChoiceView(_Versioned):
    datamodel = CommandInterface(Choice)
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
    base_order = ("sort_order", "asc")

    def pre_add(self, item):
        session = self.datamodel.session
        with session.no_autoflush:  # the form put the new choice in its question's list: nothing flushes it there
            self._remember(survey.add_choice(session, actor(), item.question, item))


class QuestionView(_Versioned):
    datamodel = CommandInterface(Question)
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
    related_views = [ChoiceView]
    base_order = ("sort_order", "asc")
    formatters_columns = {"type": _type_label, "required": yes_no}
    add_form_query_rel_fields = {"questionnaire": [["is_current", FilterEqual, True]]}
    add_form_extra_fields = edit_form_extra_fields = {
        "type": SelectField(
            _l("Type"), choices=[SelectChoice(kind, survey.TYPE_LABELS[kind]) for kind in QUESTION_TYPES]
        ),
        # FAB marks a non-nullable boolean as required, which an unticked box never satisfies
        "required": BooleanField(_l("Required"), default=True),
    }

    def pre_add(self, item):
        session = self.datamodel.session
        with (
            session.no_autoflush
        ):  # the form put the new question in its questionnaire's list: nothing flushes it there
            self._remember(survey.add_question(session, actor(), item.questionnaire, item))


class QuestionnaireView(_Versioned):
    datamodel = CommandInterface(Questionnaire)
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
    related_views = [QuestionView]
    base_order = ("id", "desc")
    formatters_columns = {"active": yes_no, "is_current": yes_no, "created_at": lambda v: format_roc(v) if v else ""}
    edit_form_extra_fields = {"active": BooleanField(_l("Active"))}
    description_columns = {
        "active": _l("Only an active questionnaire is sent. Add the questions (and choices) first."),
        "categories": _l("Citizens of these categories receive this questionnaire when their case is complete."),
    }

    def pre_add(self, item):
        session = self.datamodel.session
        with session.no_autoflush:  # the form gave the new questionnaire its categories: nothing flushes them first
            survey.create_questionnaire(session, actor(), item)


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
        values, errors, problem = {}, {}, None
        try:
            if request.method == "POST":
                form = {name: request.form.getlist(name) for name in request.form if name != "csrf_token"}
                try:
                    survey.submit(db.session, token, form)
                except survey.AnswerErrors as exc:
                    values, errors, problem = form, exc.errors, str(exc)
                else:
                    return redirect(url_for("SurveyPublicView.thanks"))
            invitation = survey.open_invitation(db.session, token)
        except survey.LinkProblem as exc:
            return self._problem(exc)
        page = self.render_template(
            "survey/public_form.html",
            q=invitation.questionnaire,
            values=values,
            errors=errors,
            problem=problem,
            token=token,
            rating_range=range(1, 6),
        )
        return _no_store(make_response(page, 400 if problem else 200))

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
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode() if svg else None


class SurveyStatsView(BaseView):
    """問卷統計: distributions, mean ratings, free-text answers, response rate."""

    route_base = "/survey-stats"
    default_view = "index"

    def _chosen(self, versions, chosen: str):
        questionnaire = next((v for v in versions if str(v.id) == chosen), None)
        if questionnaire is None:
            current = (v for v in versions if v.is_current and v.active)
            questionnaire = next(current, versions[0] if versions else None)
        return questionnaire

    @expose("/")
    @has_access
    def index(self):
        error, filters, stats, freshness = None, None, None, None
        versions = reports.questionnaires_for_statistics(db.session)
        questionnaire = None
        try:
            query = SurveyStatsQuerySchema().load(request.args)
            questionnaire = self._chosen(versions, query["questionnaire"])
            filters = reports.parse_filters(query)
            if questionnaire is not None:
                stats, freshness = replica.read(
                    db.session, lambda s: reports.survey_statistics(s, questionnaire.id, filters)
                )
        except ValidationError:
            error = str(INVALID_QUERY)
        except DomainError as exc:
            error = str(exc)
        charts_ = {}
        if stats is not None:
            charts_ = {s.question.id: _data_uri(charts.question_chart(s)) for s in stats.questions}
        page = self.render_template(
            "survey/stats.html",
            versions=versions,
            q=questionnaire,
            stats=stats,
            freshness=freshness,
            filters=filters,
            error=error,
            charts=charts_,
            agencies=reports.agencies(db.session),
            categories=reports.categories(db.session),
            args=dict(request.args),
            type_labels=survey.TYPE_LABELS,
        )
        return page, 400 if error else 200

    @expose("/export")
    @has_access
    def export(self):
        back = url_for("SurveyStatsView.index", **request.args)
        try:
            query = SurveyStatsQuerySchema().load(request.args)
            questionnaire = self._chosen(reports.questionnaires_for_statistics(db.session), query["questionnaire"])
            filters = reports.parse_filters(query)
            if questionnaire is None:
                raise reports.NothingToExport(
                    _l("Nothing to export: no invitations were sent in %(period)s with these filters."),
                    period=filters.period,
                )
            export, _ = replica.read(
                db.session,
                lambda s: reports.export_survey_statistics(db.session, actor(), questionnaire.id, filters, reader=s),
            )
        except ValidationError:
            flash(str(INVALID_QUERY), "danger")
            return redirect(url_for("SurveyStatsView.index"))
        except reports.NothingToExport as exc:
            flash(str(exc), "warning")
            return redirect(back)
        except DomainError as exc:
            flash(str(exc), "danger")
            return redirect(back)
        return send_file(
            io.BytesIO(export.data), as_attachment=True, download_name=export.filename, mimetype=export.mimetype
        )


def register(appbuilder) -> None:
    category = {
        "category": "Satisfaction survey",
        "category_label": _l("Satisfaction survey"),
        "category_icon": "fa-smile-o",
    }
    appbuilder.add_view(QuestionnaireView, "Questionnaires", label=_l("Questionnaires"), icon="fa-list-ol", **category)
    appbuilder.add_view(
        SurveyStatsView,
        "Survey statistics",
        label=_l("Survey statistics"),
        icon="fa-bar-chart",
        href="/survey-stats/",
        **category,
    )
    appbuilder.add_view_no_menu(QuestionView)
    appbuilder.add_view_no_menu(ChoiceView)
    appbuilder.add_view_no_menu(SurveyPublicView)
    limit = current_app.config.get("SURVEY_RATE_LIMIT", "60 per minute")
    for view in appbuilder.baseviews:
        if isinstance(view, SurveyPublicView) and getattr(view, "blueprint", None) is not None:
            appbuilder.sm.limiter.limit(limit)(view.blueprint)
