"""Citizen satisfaction questionnaires: the designer's rules (with versions),
invitations when a case is complete, answering through a one-time link, and
the statistics of the answers.

Versions: once a questionnaire has a response, nothing that a citizen saw
(title, introduction, questions, choices) changes in place. ``revise``,
``add_question``/``add_choice`` and ``remove`` make a new version instead (a
copy with the change), move the categories to it, and leave the answered
version untouched, so every answer keeps the question it answered.
"""

from __future__ import annotations

import datetime
import hashlib
import re
import secrets
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, exists, func, literal, null, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import selectinload

from app.lib.rocdate import format_roc
from app.models.notify import Dispatch, NotificationCase, NotificationCategory
from app.models.reports import SurveySummary
from app.models.survey import (
    CHOICE_TYPES,
    QUESTION_TYPES,
    RATING_MAX,
    RATING_MIN,
    Answer,
    Choice,
    Invitation,
    Question,
    Questionnaire,
    Response,
)
from app.services import actors, audit
from app.services.errors import DomainError, InvalidInput, NotFound

TYPE_LABELS = {
    "single": _l("Single choice"),
    "multiple": _l("Multiple choice"),
    "rating": _l("Rating 1-5"),
    "text": _l("Free text"),
}
TEXT_MAX = 2000
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,100}$")


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


# --- the designer's rules ---------------------------------------------------------


def validate_questionnaire(session, q: Questionnaire) -> None:
    """Raise InvalidInput for a missing title or an active questionnaire that cannot be answered."""
    if not (q.title or "").strip():
        raise InvalidInput(_l("A questionnaire needs a title."))
    if len(q.title) > 200 or len(q.introduction or "") > 4000:
        raise InvalidInput(_l("The title or introduction is too long."))
    if q.active:
        if not q.questions:
            raise InvalidInput(_l("Add questions before activating the questionnaire."))
        for question in q.questions:
            if question.type in CHOICE_TYPES and len(question.choices) < 2:
                raise InvalidInput(_l("The question “%(text)s” needs at least two choices before the questionnaire is "
                                      "activated."), text=question.text)  # fmt: skip


def validate_question(session, question: Question) -> None:
    if question.type not in QUESTION_TYPES:
        raise InvalidInput(_l("Choose the question type: single choice, multiple choice, rating 1-5 or free text."))
    if not (question.text or "").strip():
        raise InvalidInput(_l("Write the question."))
    if len(question.text) > 500:
        raise InvalidInput(_l("The question is too long."))
    if question.sort_order is not None and int(question.sort_order) < 0:
        raise InvalidInput(_l("The order cannot be negative."))


def validate_choice(session, choice: Choice) -> None:
    if not (choice.text or "").strip():
        raise InvalidInput(_l("Write the choice."))
    if len(choice.text) > 200:
        raise InvalidInput(_l("The choice is too long."))
    if choice.question is not None and choice.question.type not in CHOICE_TYPES:
        raise InvalidInput(_l("Only single and multiple choice questions have choices."))


VALIDATORS = {Questionnaire: validate_questionnaire, Question: validate_question, Choice: validate_choice}


def questionnaire_of(obj) -> Questionnaire | None:
    if isinstance(obj, Questionnaire):
        return obj
    if isinstance(obj, Question):
        return obj.questionnaire
    if isinstance(obj, Choice):
        return obj.question.questionnaire if obj.question is not None else None
    raise TypeError(type(obj).__name__)


def answered(session, questionnaire_id: int | None) -> bool:
    if questionnaire_id is None:
        return False
    return bool(session.scalar(select(exists().where(Response.questionnaire_id == questionnaire_id))))


def ensure_series(session, q: Questionnaire) -> None:
    """A first version names itself as its series."""
    if q.series_id is None:
        session.flush()
        q.series_id = q.id


def versions(session, q: Questionnaire) -> list[Questionnaire]:
    series = q.series_id or q.id
    return list(session.scalars(select(Questionnaire).where(Questionnaire.series_id == series)
                                .order_by(Questionnaire.version)))  # fmt: skip


def current_version(session, q: Questionnaire) -> Questionnaire:
    if q.is_current:
        return q
    series = q.series_id or q.id
    return session.scalar(select(Questionnaire).where(Questionnaire.series_id == series,
                                                      Questionnaire.is_current.is_(True))) or q  # fmt: skip


@dataclass
class NewVersion:
    questionnaire: Questionnaire
    questions: dict = field(default_factory=dict)  # old Question -> copy
    choices: dict = field(default_factory=dict)  # old Choice -> copy


def new_version(session, q: Questionnaire) -> NewVersion:
    """Copy the questionnaire with its questions and choices as the next version;
    the categories move to the copy. The caller commits."""
    ensure_series(session, q)
    latest = session.scalar(select(func.max(Questionnaire.version)).where(Questionnaire.series_id == q.series_id))
    copy = Questionnaire(series_id=q.series_id, version=(latest or q.version or 1) + 1, is_current=True,
                         title=q.title, introduction=q.introduction, active=q.active,
                         created_at=_utcnow())  # fmt: skip
    out = NewVersion(copy)
    for question in q.questions:
        qc = Question(sort_order=question.sort_order, type=question.type, text=question.text,
                      required=question.required)  # fmt: skip
        out.questions[question] = qc
        copy.questions.append(qc)
        for choice in question.choices:
            cc = Choice(sort_order=choice.sort_order, text=choice.text)
            out.choices[choice] = cc
            qc.choices.append(cc)
    for older in versions(session, q):
        older.is_current = False
    for category in list(q.categories):
        category.questionnaire = copy
    session.add(copy)
    session.flush()
    return out


@dataclass
class Revision:
    target: object  # the object that now carries the change
    questionnaire: Questionnaire  # the version it belongs to
    new_version: bool


def _writable(session, q: Questionnaire) -> NewVersion | None:
    """None when q may change in place; else the new version to change instead."""
    if q is None:
        raise NotFound(_l("No such questionnaire."))
    if not q.is_current:
        raise InvalidInput(_l("This is an old version kept for the answers given to it; change the current version "
                              "instead."))  # fmt: skip
    return new_version(session, q) if answered(session, q.id) else None


def _mapped(nv: NewVersion | None, obj):
    if nv is None:
        return obj
    if isinstance(obj, Questionnaire):
        return nv.questionnaire
    if isinstance(obj, Question):
        return nv.questions[obj]
    return nv.choices[obj]


def revise(session, obj, values: Mapping[str, object]) -> Revision:
    """Change a questionnaire, question or choice: in place, or, when its
    questionnaire has answers, in a new version. ``obj`` must hold its stored
    values (the caller expires pending edits first). Raises InvalidInput."""
    q = questionnaire_of(obj)
    if not values:  # nothing a citizen saw changes (say, switching a questionnaire on or off)
        VALIDATORS[type(obj)](session, obj)
        return Revision(obj, q, False)
    nv = _writable(session, q)
    target = _mapped(nv, obj)
    for name, value in values.items():
        setattr(target, name, value)
    VALIDATORS[type(target)](session, target)
    version = nv.questionnaire if nv else q
    if isinstance(target, (Question, Choice)) and version.active:
        validate_questionnaire(session, version)
    return Revision(target, version, nv is not None)


def add_question(session, questionnaire: Questionnaire, question: Question) -> Revision:
    nv = _writable(session, questionnaire)
    version = nv.questionnaire if nv else questionnaire
    question.questionnaire = version
    validate_question(session, question)
    return Revision(question, version, nv is not None)


def add_choice(session, question: Question, choice: Choice) -> Revision:
    if question is None:
        raise NotFound(_l("No such question."))
    nv = _writable(session, question.questionnaire)
    target_question = _mapped(nv, question)
    choice.question = target_question
    validate_choice(session, choice)
    return Revision(choice, target_question.questionnaire, nv is not None)


def remove(session, obj) -> Revision:
    """Delete a question or choice (in a new version when answered), or an
    unanswered questionnaire. Raises InvalidInput."""
    if isinstance(obj, Questionnaire):
        if session.scalar(select(exists().where(Invitation.questionnaire_id == obj.id))):
            raise InvalidInput(_l("Invitations to this questionnaire have been sent: deactivate it instead of "
                                  "deleting it."))  # fmt: skip
        for category in list(obj.categories):
            category.questionnaire = None
        session.delete(obj)
        return Revision(None, obj, False)
    q = questionnaire_of(obj)
    nv = _writable(session, q)
    target = _mapped(nv, obj)
    version = nv.questionnaire if nv else q
    if isinstance(target, Question):
        version.questions.remove(target)
    else:
        target.question.choices.remove(target)
    if version.active:
        validate_questionnaire(session, version)
    return Revision(None, version, nv is not None)


# --- invitations -------------------------------------------------------------------


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def survey_url(token: str) -> str:
    base = current_app.config.get("PUBLIC_BASE_URL") or "http://127.0.0.1:8080"
    return base.rstrip("/") + "/survey/" + token


def invite(session, case: NotificationCase, now: datetime.datetime | None = None) -> str | None:
    """Create the one-time invitation of a completed case, in the caller's
    transaction, and return the paragraph the citizen's e-mail carries (with
    the only copy of the link); None when the category has no active
    questionnaire or the case was already invited."""
    category = case.category
    if category is None or category.kind != "citizen" or not case.citizen_email:
        return None  # agency-to-agency notifications have no citizen to ask
    q = category.questionnaire
    if q is None:
        return None
    q = current_version(session, q)
    if not q.active or not q.questions:
        return None
    if session.scalar(select(exists().where(Invitation.case_id == case.id))):
        return None
    now = now or _utcnow()
    days = int(current_app.config.get("SURVEY_INVITATION_DAYS", 30))
    token = secrets.token_urlsafe(32)
    invitation = Invitation(token_hash=token_hash(token), questionnaire_id=q.id, case_id=case.id,
                            category_id=category.id, agency_id=case.agency_id, created_at=now,
                            expires_at=now + datetime.timedelta(days=days))  # fmt: skip
    session.add(invitation)
    return (f"請撥冗填寫服務滿意度問卷「{q.title}」（約 1 分鐘），協助我們改善服務：\n{survey_url(token)}\n"
            f"此連結僅供您使用一次，有效期限至 {format_roc(invitation.expires_at, 'long')}。")  # fmt: skip


# --- answering through the link ----------------------------------------------------------


class LinkProblem(DomainError):
    """The link cannot be used: kind is invalid | used | expired | closed."""

    def __init__(self, kind: str, message, **params):
        super().__init__(message, **params)
        self.kind = kind
        self.status = 404 if kind == "invalid" else 410


def _invalid() -> LinkProblem:
    return LinkProblem("invalid", _l("This link is not valid. Please use the link in your e-mail exactly as it was "
                                     "sent."))  # fmt: skip


def _diagnose(invitation: Invitation | None, now) -> LinkProblem | None:
    if invitation is None:
        return _invalid()
    if invitation.used_at is not None:
        return LinkProblem("used", _l("This questionnaire has already been answered with this link. Thank you!"))
    if invitation.expires_at <= now:
        return LinkProblem("expired", _l("This link expired on %(date)s; the questionnaire can no longer be answered "
                                         "with it."), date=format_roc(invitation.expires_at, "long"))  # fmt: skip
    if not invitation.questionnaire.active:
        return LinkProblem("closed", _l("This questionnaire is closed. Thank you for your interest."))
    return None


def _lookup(session, token: str) -> Invitation | None:
    if not isinstance(token, str) or not _TOKEN.match(token):
        return None
    return session.scalar(select(Invitation).where(Invitation.token_hash == token_hash(token))
                          .options(selectinload(Invitation.questionnaire).selectinload(Questionnaire.questions)
                                   .selectinload(Question.choices)))  # fmt: skip


def open_invitation(session, token: str, now: datetime.datetime | None = None) -> Invitation:
    """The invitation behind a link that can still be answered. Raises LinkProblem."""
    invitation = _lookup(session, token)
    problem = _diagnose(invitation, now or _utcnow())
    if problem:
        raise problem
    return invitation


class AnswerErrors(InvalidInput):
    """Some answers are missing or not allowed; ``errors`` maps question id -> message."""

    def __init__(self, errors: dict[int, str]):
        super().__init__(_l("Some answers need your attention; see the marked questions."))
        self.errors = errors


def check_answers(q: Questionnaire, form: Mapping[str, list[str]]) -> list[Answer]:
    """Turn the submitted values (``q<question id>`` -> values) into answers.
    Raises AnswerErrors naming each question that is missing or not allowed."""
    answers, errors = [], {}
    for question in q.questions:
        values = [str(v).strip() for v in form.get(f"q{question.id}", []) if str(v).strip()]
        if not values:
            if question.required:
                errors[question.id] = str(_l("This question needs an answer."))
            continue
        if question.type in CHOICE_TYPES:
            allowed = {str(c.id): c for c in question.choices}
            picked = list(dict.fromkeys(values))
            if any(v not in allowed for v in picked):
                errors[question.id] = str(_l("Choose among the answers listed."))
            elif question.type == "single" and len(picked) > 1:
                errors[question.id] = str(_l("Choose one answer only."))
            else:
                answers += [Answer(question_id=question.id, choice_id=allowed[v].id) for v in picked]
        elif question.type == "rating":
            if len(values) != 1 or values[0] not in {str(n) for n in range(RATING_MIN, RATING_MAX + 1)}:
                errors[question.id] = str(_l("Choose a rating from 1 to 5."))
            else:
                answers.append(Answer(question_id=question.id, rating=int(values[0])))
        else:
            text = "\n".join(values)
            if len(text) > TEXT_MAX:
                errors[question.id] = str(_l("Please keep the answer under %(n)s characters.", n=TEXT_MAX))
            else:
                answers.append(Answer(question_id=question.id, text=text))
    if errors:
        raise AnswerErrors(errors)
    return answers


def _claim(session, token: str, now) -> int | None:
    """Mark the link used with one conditional UPDATE (the first statement of
    the transaction): of two submits at once, exactly one matches."""
    t = Invitation.__table__
    for attempt in range(5):
        try:
            result = session.execute(update(t).where(t.c.token_hash == token_hash(token), t.c.used_at.is_(None),
                                                     t.c.expires_at > now).values(used_at=now))  # fmt: skip
            break
        except OperationalError as exc:  # SQLite: another writer holds the database
            session.rollback()
            if "locked" not in str(exc.orig) or attempt == 4:
                raise
            time.sleep(0.05 * (attempt + 1))
    if result.rowcount != 1:
        return None
    return session.scalar(select(t.c.id).where(t.c.token_hash == token_hash(token)))


def submit(session, token: str, form: Mapping[str, list[str]], now: datetime.datetime | None = None) -> Response:
    """Store one response for the link, in the caller's transaction (the caller
    commits; on any error it rolls back, which also releases the link).

    Raises LinkProblem (forged, used, expired, closed), AnswerErrors.
    """
    now = now or _utcnow()
    if not isinstance(token, str) or not _TOKEN.match(token):
        raise _invalid()
    session.rollback()  # start a fresh transaction: the claim must be its first statement
    invitation_id = _claim(session, token, now)
    if invitation_id is None:
        raise _diagnose(_lookup(session, token), now) or _invalid()
    invitation = _lookup(session, token)
    q = invitation.questionnaire
    if not q.active:
        raise _diagnose(invitation, now) or _invalid()
    answers = check_answers(q, form)
    ratings = [a.rating for a in answers if a.rating is not None]
    response = Response(invitation_id=invitation_id, questionnaire_id=q.id, case_id=invitation.case_id,
                        submitted_at=now, rating_sum=sum(ratings), rating_count=len(ratings), answers=answers)  # fmt: skip
    session.add(response)
    try:
        session.flush()
    except IntegrityError as exc:  # the unique link constraint: someone else answered first
        session.rollback()
        raise LinkProblem(
            "used", _l("This questionnaire has already been answered with this link. Thank you!")
        ) from exc
    # The audit trail records that a response came in, never who gave it or what it says.
    audit.record(session, "survey_response", object_type="SurveyResponse", object_id=response.id,
                 detail={"questionnaire": q.id, "version": q.version, "answers": len(answers)},
                 actor=actors.Actor(user_id=None, username="citizen"))  # fmt: skip
    return response


# --- statistics ------------------------------------------------------------------------


@dataclass
class QuestionStats:
    question: Question
    respondents: int = 0
    # (label, count, percent of respondents) per choice or rating value
    rows: list[tuple[str, int, float]] = field(default_factory=list)
    mean: float | None = None
    texts: list[tuple[datetime.datetime, str]] = field(default_factory=list)
    texts_total: int = 0


@dataclass
class SurveyStats:
    questionnaire: Questionnaire
    filters: object
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


def statistics(session, questionnaire_id: int, filters, text_limit: int = 200, live: bool = False) -> SurveyStats:
    """Answers to one questionnaire version, for invitations sent (cases
    completed) in the filters' date range, category and agency (notifying or
    receiving). Counted in SQL: the nightly summary's rows of the period plus,
    from the live tables, the invitations and responses it does not hold.
    ``live``: from the live tables alone, as if there were no summary. Raises
    NotFound."""
    from app.services.reports import current_build, summary_days, tune

    q = session.scalar(select(Questionnaire).where(Questionnaire.id == questionnaire_id)
                       .options(selectinload(Questionnaire.questions).selectinload(Question.choices)))  # fmt: skip
    if q is None:
        raise NotFound(_l("No such questionnaire."))
    i, r, a = Invitation.__table__, Response.__table__, Answer.__table__
    start, end = filters.bounds()
    where = [i.c.questionnaire_id == q.id, i.c.created_at >= start, i.c.created_at < end]
    if filters.category_id:
        where.append(i.c.category_id == filters.category_id)
    if filters.agency_id:
        d = Dispatch.__table__
        where.append(or_(i.c.agency_id == filters.agency_id,
                         exists().where(and_(d.c.case_id == i.c.case_id, d.c.agency_id == filters.agency_id))))  # fmt: skip
    tune(session)
    invitations = responses = 0
    respondents: Counter = Counter()
    by_choice: Counter = Counter()  # (question, choice) -> answers
    by_rating: Counter = Counter()  # (question, rating) -> answers
    build = None if live else current_build(session)
    if build:
        ss = SurveySummary.__table__
        swhere = [ss.c.build_id == build.id, ss.c.questionnaire_id == q.id,
                  summary_days(ss, filters.date_from, filters.date_to)]  # fmt: skip
        if filters.category_id:
            swhere.append(ss.c.category_id == filters.category_id)
        if filters.agency_id:
            swhere.append(or_(ss.c.agency_id == filters.agency_id, ss.c.receivers.contains(f",{filters.agency_id},")))
        keys = [ss.c.kind, ss.c.question_id, ss.c.choice_id, ss.c.rating]
        for kind, qid, cid, rating, n in session.execute(select(*keys, func.sum(ss.c.n)).where(*swhere)
                                                         .group_by(*keys)):  # fmt: skip
            n = int(n or 0)
            if kind == "invited":
                invitations += n
            elif kind == "responded" and qid is None:
                responses += n
            elif kind == "responded":
                respondents[qid] += n
            elif cid is not None:
                by_choice[(qid, cid)] += n
            elif rating is not None:
                by_rating[(qid, rating)] += n
        # what the build does not hold: invitations and responses since (or committed late)
        live_invitations = [or_(i.c.id > build.last_invitation_id, i.c.created_at >= build.cutoff)]
        live_responses = [or_(r.c.id > build.last_response_id, r.c.submitted_at >= build.cutoff)]
    else:
        live_invitations = live_responses = []
    invitations += session.scalar(select(func.count()).select_from(i).where(*where, *live_invitations))
    # A link is marked used in the same transaction that stores its one response.
    responded = r.join(i, i.c.id == r.c.invitation_id)
    responses += session.scalar(select(func.count()).select_from(responded).where(*where, *live_responses))
    answered_from = a.join(responded, r.c.id == a.c.response_id)
    respondents.update(dict(session.execute(
        select(a.c.question_id, func.count(func.distinct(a.c.response_id))).select_from(answered_from)
        .where(*where, *live_responses).group_by(a.c.question_id)).all()))  # fmt: skip
    for qid, cid, v, n in session.execute(select(a.c.question_id, a.c.choice_id, a.c.rating, func.count())
                                          .select_from(answered_from).where(*where, *live_responses, a.c.text.is_(None))
                                          .group_by(a.c.question_id, a.c.choice_id, a.c.rating)):  # fmt: skip
        if cid is not None:
            by_choice[(qid, cid)] += n
        elif v is not None:
            by_rating[(qid, v)] += n
    out = []
    for question in q.questions:
        st = QuestionStats(question, respondents.get(question.id, 0))
        if question.type in CHOICE_TYPES:
            st.rows = [(c.text, by_choice[(question.id, c.id)], _pct(by_choice[(question.id, c.id)], st.respondents))
                       for c in question.choices]  # fmt: skip
        elif question.type == "rating":
            st.rows = [(str(v), by_rating[(question.id, v)], _pct(by_rating[(question.id, v)], st.respondents))
                       for v in range(RATING_MAX, RATING_MIN - 1, -1)]  # fmt: skip
            n = sum(count for _, count, _ in st.rows)
            st.mean = round(sum(int(v) * count for v, count, _ in st.rows) / n, 2) if n else None
        else:
            st.texts_total = st.respondents
            rows = session.execute(select(r.c.submitted_at, a.c.text).select_from(answered_from)
                                   .where(*where, a.c.question_id == question.id, a.c.text.isnot(None))
                                   .order_by(r.c.submitted_at.desc(), a.c.id.desc()).limit(text_limit)).all()  # fmt: skip
            st.texts = [(at, text) for at, text in rows]
        out.append(st)
    return SurveyStats(q, filters, invitations, responses, out)


# --- the summary: answers counted once, nightly ------------------------------------------
#
# Built by reports.summarise in the same build as the report summary (same
# cutoff): the invitations up to the build's last_invitation_id sent before the
# cutoff, and the responses up to last_response_id submitted before it with
# their answers (a response and its answers are stored together and never
# change). ``statistics`` adds from the live tables exactly the rest.


def summarise(session, build_id: int, cutoff: datetime.datetime, last_invitation_id: int,
              last_response_id: int) -> None:  # fmt: skip
    """Count the invitations, responses and answers the build holds into
    survey_summary, per Taipei day and per month. Does not commit."""
    from app.services.reports import agency_list, month_start, taipei_day

    i, r, a, d, s = (Invitation.__table__, Response.__table__, Answer.__table__, Dispatch.__table__,
                     SurveySummary.__table__)  # fmt: skip
    receivers = (select(d.c.case_id, agency_list(d.c.agency_id).label("receivers"))
                 .where(d.c.case_id.in_(select(i.c.case_id))).group_by(d.c.case_id).subquery())  # fmt: skip
    invited = i.outerjoin(receivers, receivers.c.case_id == i.c.case_id)
    responded = r.join(invited, i.c.id == r.c.invitation_id)
    held = [r.c.id <= last_response_id, r.c.submitted_at < cutoff]
    day = taipei_day(i.c.created_at)
    keys = [i.c.questionnaire_id, day, i.c.category_id, i.c.agency_id, receivers.c.receivers]
    columns = ["build_id", "questionnaire_id", "span", "day", "category_id", "agency_id", "receivers", "kind",
               "question_id", "choice_id", "rating", "n"]  # fmt: skip

    def count(kind, source, where, n=None, question=None, choice=None, rating=None):
        extra = [x for x in (question, choice, rating) if x is not None]
        group = [*keys, *extra]
        values = [literal(build_id), keys[0], literal("day"), *keys[1:], literal(kind),
                  question if question is not None else null(), choice if choice is not None else null(),
                  rating if rating is not None else null(), n if n is not None else func.count()]  # fmt: skip
        session.execute(s.insert().from_select(columns, select(*values).select_from(source).where(*where)
                                               .group_by(*group)))  # fmt: skip

    count("invited", invited, [i.c.id <= last_invitation_id, i.c.created_at < cutoff])
    count("responded", responded, held)
    answered = a.join(responded, r.c.id == a.c.response_id)
    count("responded", answered, held, n=func.count(func.distinct(a.c.response_id)), question=a.c.question_id)
    count("answer", answered, [*held, a.c.text.is_(None)], question=a.c.question_id, choice=a.c.choice_id,
          rating=a.c.rating)  # fmt: skip
    # The days of each month added up: a long period reads its whole months from these.
    month = month_start(s.c.day)
    mkeys = [s.c.questionnaire_id, month, s.c.category_id, s.c.agency_id, s.c.receivers, s.c.kind, s.c.question_id,
             s.c.choice_id, s.c.rating]  # fmt: skip
    session.execute(s.insert().from_select(columns, select(
        literal(build_id), mkeys[0], literal("month"), *mkeys[1:], func.sum(s.c.n))
        .where(s.c.build_id == build_id, s.c.span == "day").group_by(*mkeys)))  # fmt: skip


def questionnaires_for_statistics(session) -> list[Questionnaire]:
    """Every version, newest series first, for the statistics' chooser."""
    return list(session.scalars(select(Questionnaire).order_by(Questionnaire.series_id.desc(),
                                                              Questionnaire.version.desc())))  # fmt: skip


def categories(session) -> list[NotificationCategory]:
    return list(session.scalars(select(NotificationCategory).order_by(NotificationCategory.main_item,
                                                                      NotificationCategory.sub_item)))  # fmt: skip
