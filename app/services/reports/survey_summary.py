"""The survey statistics' part of the nightly summary: the invitations, the
responses and their answers a build holds (a response and its answers are
stored together and never change), per Taipei day and per month."""

from __future__ import annotations

import datetime

from sqlalchemy import func, literal, null, select

from app.models.notify import Dispatch
from app.models.reports import SurveySummary
from app.models.survey import Answer, Invitation, Response
from app.services.reports.dialect import agency_list, month_start, taipei_day

COLUMNS = [
    "build_id",
    "questionnaire_id",
    "span",
    "day",
    "category_id",
    "agency_id",
    "receivers",
    "kind",
    "question_id",
    "choice_id",
    "rating",
    "n",
]


def summarise_survey(
    session, build_id: int, cutoff: datetime.datetime, last_invitation_id: int, last_response_id: int
) -> None:
    """Count the invitations, responses and answers the build holds into
    survey_summary, per Taipei day and per month. Does not commit."""
    invitations, responses, answers = Invitation.__table__, Response.__table__, Answer.__table__
    dispatches, summary = Dispatch.__table__, SurveySummary.__table__
    receivers = (
        select(dispatches.c.case_id, agency_list(dispatches.c.agency_id).label("receivers"))
        .where(dispatches.c.case_id.in_(select(invitations.c.case_id)))
        .group_by(dispatches.c.case_id)
        .subquery()
    )
    invited = invitations.outerjoin(receivers, receivers.c.case_id == invitations.c.case_id)
    responded = responses.join(invited, invitations.c.id == responses.c.invitation_id)
    held = [responses.c.id <= last_response_id, responses.c.submitted_at < cutoff]
    keys = [
        invitations.c.questionnaire_id,
        taipei_day(invitations.c.created_at),
        invitations.c.category_id,
        invitations.c.agency_id,
        receivers.c.receivers,
    ]

    def count(kind, source, where, n=None, question=None, choice=None, rating=None):
        detail = [column for column in (question, choice, rating) if column is not None]
        values = [
            literal(build_id),
            keys[0],
            literal("day"),
            *keys[1:],
            literal(kind),
            question if question is not None else null(),
            choice if choice is not None else null(),
            rating if rating is not None else null(),
            n if n is not None else func.count(),
        ]
        stmt = select(*values).select_from(source).where(*where).group_by(*keys, *detail)
        session.execute(summary.insert().from_select(COLUMNS, stmt))

    count("invited", invited, [invitations.c.id <= last_invitation_id, invitations.c.created_at < cutoff])
    count("responded", responded, held)
    answered = answers.join(responded, responses.c.id == answers.c.response_id)
    respondents = func.count(func.distinct(answers.c.response_id))
    count("responded", answered, held, n=respondents, question=answers.c.question_id)
    count(
        "answer",
        answered,
        [*held, answers.c.text.is_(None)],
        question=answers.c.question_id,
        choice=answers.c.choice_id,
        rating=answers.c.rating,
    )
    # The days of each month added up: a long period reads its whole months from these.
    month_keys = [
        summary.c.questionnaire_id,
        month_start(summary.c.day),
        summary.c.category_id,
        summary.c.agency_id,
        summary.c.receivers,
        summary.c.kind,
        summary.c.question_id,
        summary.c.choice_id,
        summary.c.rating,
    ]
    per_month = (
        select(literal(build_id), month_keys[0], literal("month"), *month_keys[1:], func.sum(summary.c.n))
        .where(summary.c.build_id == build_id, summary.c.span == "day")
        .group_by(*month_keys)
    )
    session.execute(summary.insert().from_select(COLUMNS, per_month))
