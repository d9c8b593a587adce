"""Survey statistics: the answers to one questionnaire version, for the
invitations sent (cases completed) in a period, counted in SQL from the
nightly summary's rows of the period plus, from the live tables, the
invitations and responses it does not hold."""

from __future__ import annotations

import datetime
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.orm import selectinload

from app.models.notify import Dispatch, NotificationCategory
from app.models.reports import SurveySummary
from app.models.survey import (
    CHOICE_TYPES,
    RATING_MAX,
    RATING_MIN,
    Answer,
    Invitation,
    Question,
    Questionnaire,
    Response,
)
from app.services.errors import NotFound
from app.services.reports.builds import Build, current_build, summary_days
from app.services.reports.dialect import tune
from app.services.reports.filters import Filters


class DistributionRow(NamedTuple):
    """One choice or rating value of a question."""

    label: str
    count: int
    percent: float  # of the question's respondents


class FreeText(NamedTuple):
    at: datetime.datetime
    text: str


@dataclass
class QuestionStats:
    question: Question
    respondents: int = 0
    rows: list[DistributionRow] = field(default_factory=list)
    mean: float | None = None
    texts: list[FreeText] = field(default_factory=list)
    texts_total: int = 0


@dataclass
class SurveyStats:
    questionnaire: Questionnaire
    filters: Filters
    invitations: int
    responses: int
    questions: list[QuestionStats]

    @property
    def response_rate(self) -> float | None:
        return round(100.0 * self.responses / self.invitations, 1) if self.invitations else None

    @property
    def empty(self) -> bool:
        return self.invitations == 0


def _pct(n: int, of: int) -> float:
    return round(100.0 * n / of, 1) if of else 0.0


@dataclass
class _Counts:
    invitations: int = 0
    responses: int = 0
    respondents: Counter = field(default_factory=Counter)  # question -> responses answering it
    by_choice: Counter = field(default_factory=Counter)  # (question, choice) -> answers
    by_rating: Counter = field(default_factory=Counter)  # (question, rating) -> answers

    def answer(self, question_id, choice_id, rating, n) -> None:
        if choice_id is not None:
            self.by_choice[(question_id, choice_id)] += n
        elif rating is not None:
            self.by_rating[(question_id, rating)] += n


def _invitation_where(questionnaire_id: int, filters: Filters) -> list:
    invitations = Invitation.__table__
    start, end = filters.bounds()
    where = [
        invitations.c.questionnaire_id == questionnaire_id,
        invitations.c.created_at >= start,
        invitations.c.created_at < end,
    ]
    if filters.category_id:
        where.append(invitations.c.category_id == filters.category_id)
    if filters.agency_id:
        dispatches = Dispatch.__table__
        dispatched = exists().where(
            and_(dispatches.c.case_id == invitations.c.case_id, dispatches.c.agency_id == filters.agency_id)
        )
        where.append(or_(invitations.c.agency_id == filters.agency_id, dispatched))
    return where


def _from_summary(session, counts: _Counts, questionnaire_id: int, filters: Filters, build: Build) -> None:
    summary = SurveySummary.__table__
    where = [
        summary.c.build_id == build.id,
        summary.c.questionnaire_id == questionnaire_id,
        summary_days(summary, filters.date_from, filters.date_to),
    ]
    if filters.category_id:
        where.append(summary.c.category_id == filters.category_id)
    if filters.agency_id:
        receiving = summary.c.receivers.contains(f",{filters.agency_id},")
        where.append(or_(summary.c.agency_id == filters.agency_id, receiving))
    keys = [summary.c.kind, summary.c.question_id, summary.c.choice_id, summary.c.rating]
    stmt = select(*keys, func.sum(summary.c.n).label("n")).where(*where).group_by(*keys)
    for row in session.execute(stmt):
        n = int(row.n or 0)
        if row.kind == "invited":
            counts.invitations += n
        elif row.kind == "responded" and row.question_id is None:
            counts.responses += n
        elif row.kind == "responded":
            counts.respondents[row.question_id] += n
        else:
            counts.answer(row.question_id, row.choice_id, row.rating, n)


def _live(session, counts: _Counts, where: list, build: Build | None):
    """What the build does not hold: invitations and responses since (or committed late).
    Returns the responses' answers joined to their invitations (for the free texts)."""
    invitations, responses, answers = Invitation.__table__, Response.__table__, Answer.__table__
    if build:
        live_invitations = [or_(invitations.c.id > build.last_invitation_id, invitations.c.created_at >= build.cutoff)]
        live_responses = [or_(responses.c.id > build.last_response_id, responses.c.submitted_at >= build.cutoff)]
    else:
        live_invitations = live_responses = []
    counted = select(func.count())
    counts.invitations += session.scalar(counted.select_from(invitations).where(*where, *live_invitations))
    # A link is marked used in the same transaction that stores its one response.
    responded = responses.join(invitations, invitations.c.id == responses.c.invitation_id)
    counts.responses += session.scalar(counted.select_from(responded).where(*where, *live_responses))
    answered = answers.join(responded, responses.c.id == answers.c.response_id)
    per_question = (
        select(answers.c.question_id, func.count(func.distinct(answers.c.response_id)))
        .select_from(answered)
        .where(*where, *live_responses)
        .group_by(answers.c.question_id)
    )
    counts.respondents.update(dict(session.execute(per_question).all()))
    per_value = (
        select(answers.c.question_id, answers.c.choice_id, answers.c.rating, func.count().label("n"))
        .select_from(answered)
        .where(*where, *live_responses, answers.c.text.is_(None))
        .group_by(answers.c.question_id, answers.c.choice_id, answers.c.rating)
    )
    for row in session.execute(per_value):
        counts.answer(row.question_id, row.choice_id, row.rating, row.n)
    return answered


def _question(session, question: Question, counts: _Counts, answered, where: list, text_limit: int) -> QuestionStats:
    stats = QuestionStats(question, counts.respondents.get(question.id, 0))
    if question.type in CHOICE_TYPES:
        stats.rows = [
            DistributionRow(
                choice.text,
                counts.by_choice[(question.id, choice.id)],
                _pct(counts.by_choice[(question.id, choice.id)], stats.respondents),
            )
            for choice in question.choices
        ]
    elif question.type == "rating":
        stats.rows = [
            DistributionRow(
                str(value),
                counts.by_rating[(question.id, value)],
                _pct(counts.by_rating[(question.id, value)], stats.respondents),
            )
            for value in range(RATING_MAX, RATING_MIN - 1, -1)
        ]
        n = sum(row.count for row in stats.rows)
        stats.mean = round(sum(int(row.label) * row.count for row in stats.rows) / n, 2) if n else None
    else:
        responses, answers = Response.__table__, Answer.__table__
        stats.texts_total = stats.respondents
        latest = (
            select(responses.c.submitted_at, answers.c.text)
            .select_from(answered)
            .where(*where, answers.c.question_id == question.id, answers.c.text.isnot(None))
            .order_by(responses.c.submitted_at.desc(), answers.c.id.desc())
            .limit(text_limit)
        )
        stats.texts = [FreeText(row.submitted_at, row.text) for row in session.execute(latest)]
    return stats


def survey_statistics(
    session, questionnaire_id: int, filters: Filters, text_limit: int = 200, live: bool = False
) -> SurveyStats:
    """Answers to one questionnaire version, for invitations sent (cases
    completed) in the filters' date range, category and agency (notifying or
    receiving). ``live``: from the live tables alone, as if there were no
    summary. Raises NotFound."""
    questionnaire = session.scalar(
        select(Questionnaire)
        .where(Questionnaire.id == questionnaire_id)
        .options(selectinload(Questionnaire.questions).selectinload(Question.choices))
    )
    if questionnaire is None:
        raise NotFound(_l("No such questionnaire."))
    tune(session)
    where = _invitation_where(questionnaire.id, filters)
    counts = _Counts()
    build = None if live else current_build(session)
    if build:
        _from_summary(session, counts, questionnaire.id, filters, build)
    answered = _live(session, counts, where, build)
    questions = [
        _question(session, question, counts, answered, where, text_limit) for question in questionnaire.questions
    ]
    return SurveyStats(questionnaire, filters, counts.invitations, counts.responses, questions)


def questionnaires_for_statistics(session) -> list[Questionnaire]:
    """Every version, newest series first, for the statistics' chooser."""
    newest_first = (Questionnaire.series_id.desc(), Questionnaire.version.desc())
    return list(session.scalars(select(Questionnaire).order_by(*newest_first)))


def categories(session) -> list[NotificationCategory]:
    by_item = (NotificationCategory.main_item, NotificationCategory.sub_item)
    return list(session.scalars(select(NotificationCategory).order_by(*by_item)))
