"""Answering: the invitation a completed case sends, and the one response its
one-time link takes."""

from __future__ import annotations

import datetime
import hashlib
import re
import secrets
import time
from collections.abc import Mapping

from flask import current_app
from flask_babel import lazy_gettext as _l
from marshmallow import ValidationError
from sqlalchemy import exists, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import selectinload

from app.lib.rocdate import format_roc
from app.models.notify import NotificationCase
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
from app.schemas.survey import answer_schema
from app.services import actors, audit
from app.services.command import transaction
from app.services.errors import DomainError, InvalidInput
from app.services.survey.design import current_version, utcnow

TEXT_MAX = 2000
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,100}$")


# --- invitations -------------------------------------------------------------------


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def survey_url(token: str) -> str:
    base = current_app.config.get("PUBLIC_BASE_URL") or "https://127.0.0.1:8443"
    return base.rstrip("/") + "/survey/" + token


def invite(session, case: NotificationCase, now: datetime.datetime | None = None) -> str | None:
    """Create the one-time invitation of a completed case, in the caller's
    transaction, and return the paragraph the citizen's e-mail carries (with
    the only copy of the link); None when the category has no active
    questionnaire or the case was already invited."""
    category = case.category
    if category is None or category.kind != "citizen" or not case.citizen_email:
        return None  # agency-to-agency notifications have no citizen to ask
    questionnaire = category.questionnaire
    if questionnaire is None:
        return None
    questionnaire = current_version(session, questionnaire)
    if not questionnaire.active or not questionnaire.questions:
        return None
    if session.scalar(select(exists().where(Invitation.case_id == case.id))):
        return None
    now = now or utcnow()
    days = int(current_app.config.get("SURVEY_INVITATION_DAYS", 30))
    token = secrets.token_urlsafe(32)
    invitation = Invitation(
        token_hash=token_hash(token),
        questionnaire_id=questionnaire.id,
        case_id=case.id,
        category_id=category.id,
        agency_id=case.agency_id,
        created_at=now,
        expires_at=now + datetime.timedelta(days=days),
    )
    session.add(invitation)
    return (
        f"請撥冗填寫服務滿意度問卷「{questionnaire.title}」（約 1 分鐘），協助我們改善服務：\n{survey_url(token)}\n"
        f"此連結僅供您使用一次，有效期限至 {format_roc(invitation.expires_at, 'long')}。"
    )


# --- the link ----------------------------------------------------------------------------


class LinkProblem(DomainError):
    """The link cannot be used: kind is invalid | used | expired | closed."""

    def __init__(self, kind: str, message, **params):
        super().__init__(message, **params)
        self.kind = kind
        self.status = 404 if kind == "invalid" else 410


def _invalid() -> LinkProblem:
    return LinkProblem(
        "invalid", _l("This link is not valid. Please use the link in your e-mail exactly as it was sent.")
    )


def _used() -> LinkProblem:
    return LinkProblem("used", _l("This questionnaire has already been answered with this link. Thank you!"))


def _diagnose(invitation: Invitation | None, now) -> LinkProblem | None:
    if invitation is None:
        return _invalid()
    if invitation.used_at is not None:
        return _used()
    if invitation.expires_at <= now:
        return LinkProblem(
            "expired",
            _l("This link expired on %(date)s; the questionnaire can no longer be answered with it."),
            date=format_roc(invitation.expires_at, "long"),
        )
    if not invitation.questionnaire.active:
        return LinkProblem("closed", _l("This questionnaire is closed. Thank you for your interest."))
    return None


def _lookup(session, token: str) -> Invitation | None:
    if not isinstance(token, str) or not _TOKEN.match(token):
        return None
    questions = selectinload(Invitation.questionnaire).selectinload(Questionnaire.questions)
    stmt = select(Invitation).where(Invitation.token_hash == token_hash(token))
    return session.scalar(stmt.options(questions.selectinload(Question.choices)))


def open_invitation(session, token: str, now: datetime.datetime | None = None) -> Invitation:
    """The invitation behind a link that can still be answered. Raises LinkProblem."""
    invitation = _lookup(session, token)
    problem = _diagnose(invitation, now or utcnow())
    if problem:
        raise problem
    return invitation


# --- the answers ---------------------------------------------------------------------------


class AnswerErrors(InvalidInput):
    """Some answers are missing or not allowed; ``errors`` maps question id -> message."""

    def __init__(self, errors: dict[int, str], message=None):
        super().__init__(message or _l("Some answers need your attention; see the marked questions."))
        self.errors = errors


class UnknownFields(AnswerErrors):
    """The form holds fields this questionnaire does not ask (a forged or stale form): nothing is taken."""

    def __init__(self):
        super().__init__({}, _l("The form does not match this questionnaire; nothing was saved. Please answer again."))


def load_answers(questionnaire: Questionnaire, form: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """The form through the questionnaire's answer schema. Raises UnknownFields
    for a field it does not ask, AnswerErrors for values of the wrong kind."""
    try:
        return answer_schema(question.id for question in questionnaire.questions).load(form)
    except ValidationError as exc:
        known = {f"q{question.id}" for question in questionnaire.questions}
        messages = exc.normalized_messages()
        if set(messages) - known:
            raise UnknownFields() from None
        raise AnswerErrors({int(name[1:]): _first(problem) for name, problem in messages.items()}) from None


def _first(messages) -> str:
    """The first message of a field's (possibly nested) messages."""
    while isinstance(messages, dict | list):
        messages = next(iter(messages.values() if isinstance(messages, dict) else messages), "")
    return str(messages)


def _answer(question: Question, values: list[str]) -> tuple[list[Answer], str | None]:
    """One question's answers, or the message saying what is wrong with them."""
    if question.type in CHOICE_TYPES:
        allowed = {str(choice.id): choice for choice in question.choices}
        picked = list(dict.fromkeys(values))
        if any(value not in allowed for value in picked):
            return [], str(_l("Choose among the answers listed."))
        if question.type == "single" and len(picked) > 1:
            return [], str(_l("Choose one answer only."))
        return [Answer(question_id=question.id, choice_id=allowed[value].id) for value in picked], None
    if question.type == "rating":
        if len(values) != 1 or values[0] not in {str(n) for n in range(RATING_MIN, RATING_MAX + 1)}:
            return [], str(_l("Choose a rating from 1 to 5."))
        return [Answer(question_id=question.id, rating=int(values[0]))], None
    text = "\n".join(values)
    if len(text) > TEXT_MAX:
        return [], str(_l("Please keep the answer under %(n)s characters.", n=TEXT_MAX))
    return [Answer(question_id=question.id, text=text)], None


def check_answers(questionnaire: Questionnaire, form: Mapping[str, list[str]]) -> list[Answer]:
    """Turn the submitted values (``q<question id>`` -> values) into answers.
    Raises AnswerErrors naming each question that is missing or not allowed."""
    answers, errors = [], {}
    for question in questionnaire.questions:
        values = [str(value).strip() for value in form.get(f"q{question.id}", []) if str(value).strip()]
        if not values:
            if question.required:
                errors[question.id] = str(_l("This question needs an answer."))
            continue
        given, error = _answer(question, values)
        if error:
            errors[question.id] = error
        answers += given
    if errors:
        raise AnswerErrors(errors)
    return answers


def _claim(session, token: str, now) -> int | None:
    """Mark the link used with one conditional UPDATE (the first statement of
    the transaction): of two submits at once, exactly one matches."""
    invitations = Invitation.__table__
    claim = (
        update(invitations)
        .where(
            invitations.c.token_hash == token_hash(token),
            invitations.c.used_at.is_(None),
            invitations.c.expires_at > now,
        )
        .values(used_at=now)
    )
    for attempt in range(5):
        try:
            result = session.execute(claim)
            break
        except OperationalError as exc:  # SQLite: another writer holds the database
            session.rollback()
            if "locked" not in str(exc.orig) or attempt == 4:
                raise
            time.sleep(0.05 * (attempt + 1))
    if result.rowcount != 1:
        return None
    return session.scalar(select(invitations.c.id).where(invitations.c.token_hash == token_hash(token)))


def submit(session, token: str, form: Mapping[str, list[str]], now: datetime.datetime | None = None) -> Response:
    """Command: store the one response of the link and mark it used, audited,
    in one transaction (on any error nothing is stored and the link stays
    usable). The form is loaded through the questionnaire's answer schema
    before the link is touched.

    Raises LinkProblem (forged, used, expired, closed), UnknownFields, AnswerErrors.
    """
    now = now or utcnow()
    invitation = open_invitation(session, token, now)
    form = load_answers(invitation.questionnaire, form)
    session.rollback()  # start a fresh transaction: the claim must be its first statement
    with transaction(session):
        invitation_id = _claim(session, token, now)
        if invitation_id is None:
            raise _diagnose(_lookup(session, token), now) or _invalid()
        invitation = _lookup(session, token)
        questionnaire = invitation.questionnaire
        if not questionnaire.active:
            raise _diagnose(invitation, now) or _invalid()
        answers = check_answers(questionnaire, form)
        ratings = [answer.rating for answer in answers if answer.rating is not None]
        response = Response(
            invitation_id=invitation_id,
            questionnaire_id=questionnaire.id,
            case_id=invitation.case_id,
            submitted_at=now,
            rating_sum=sum(ratings),
            rating_count=len(ratings),
            answers=answers,
        )
        session.add(response)
        try:
            session.flush()
        except IntegrityError as exc:  # the unique link constraint: someone else answered first
            raise _used() from exc
        # The audit trail records that a response came in, never who gave it or what it says.
        detail = {"questionnaire": questionnaire.id, "version": questionnaire.version, "answers": len(answers)}
        audit.record(
            session,
            "survey_response",
            object_type="SurveyResponse",
            object_id=response.id,
            detail=detail,
            actor=actors.Actor(user_id=None, username="citizen"),
        )
    return response
