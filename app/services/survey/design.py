"""The designer's rules: validation, and versions.

Once a questionnaire has a response, nothing that a citizen saw (title,
introduction, questions, choices) changes in place. An edit, an added
question or choice and a removal make a new version instead (a copy with the
change), move the categories to it, and leave the answered version
untouched, so every answer keeps the question it answered.

The screens (FAB model views) fill the object from the form; the stored value
of each versioned column is noted when it is first changed (an attribute
event), so ``save_edit`` knows what changed even when loading a relationship
on the way has already flushed the new values.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field

from flask_babel import lazy_gettext as _l
from sqlalchemy import event, exists, func, inspect, select
from sqlalchemy.orm import NO_VALUE

from app.models.survey import CHOICE_TYPES, QUESTION_TYPES, Choice, Invitation, Question, Questionnaire, Response
from app.services.command import transaction
from app.services.errors import DomainError, InvalidInput, NotFound

TYPE_LABELS = {
    "single": _l("Single choice"),
    "multiple": _l("Multiple choice"),
    "rating": _l("Rating 1-5"),
    "text": _l("Free text"),
}
#: per model, the columns whose change, once answered, needs a new version
VERSIONED = {
    Questionnaire: ("title", "introduction"),
    Question: ("sort_order", "type", "text", "required"),
    Choice: ("sort_order", "text"),
}
STORED = "survey_stored_values"


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


# --- validation ---------------------------------------------------------------------


def validate_questionnaire(session, questionnaire: Questionnaire, without=None) -> None:
    """Raise InvalidInput for a missing title or an active questionnaire that
    cannot be answered (``without``: as it would be without that question or choice)."""
    if not (questionnaire.title or "").strip():
        raise InvalidInput(_l("A questionnaire needs a title."))
    if len(questionnaire.title) > 200 or len(questionnaire.introduction or "") > 4000:
        raise InvalidInput(_l("The title or introduction is too long."))
    if questionnaire.active:
        questions = [question for question in questionnaire.questions if question is not without]
        if not questions:
            raise InvalidInput(_l("Add questions before activating the questionnaire."))
        for question in questions:
            choices = [choice for choice in question.choices if choice is not without]
            if question.type in CHOICE_TYPES and len(choices) < 2:
                raise InvalidInput(
                    _l("The question “%(text)s” needs at least two choices before the questionnaire is activated."),
                    text=question.text,
                )


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


# --- versions -------------------------------------------------------------------------


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


def ensure_series(session, questionnaire: Questionnaire) -> None:
    """A first version names itself as its series."""
    if questionnaire.series_id is None:
        session.flush()
        questionnaire.series_id = questionnaire.id


def versions(session, questionnaire: Questionnaire) -> list[Questionnaire]:
    series = questionnaire.series_id or questionnaire.id
    stmt = select(Questionnaire).where(Questionnaire.series_id == series).order_by(Questionnaire.version)
    return list(session.scalars(stmt))


def current_version(session, questionnaire: Questionnaire) -> Questionnaire:
    if questionnaire.is_current:
        return questionnaire
    series = questionnaire.series_id or questionnaire.id
    stmt = select(Questionnaire).where(Questionnaire.series_id == series, Questionnaire.is_current.is_(True))
    return session.scalar(stmt) or questionnaire


@dataclass
class NewVersion:
    questionnaire: Questionnaire
    questions: dict = field(default_factory=dict)  # old Question -> copy
    choices: dict = field(default_factory=dict)  # old Choice -> copy

    def mapped(self, obj):
        """The copy of a questionnaire, question or choice of the old version."""
        if isinstance(obj, Questionnaire):
            return self.questionnaire
        if isinstance(obj, Question):
            return self.questions[obj]
        return self.choices[obj]


def new_version(session, questionnaire: Questionnaire) -> NewVersion:
    """Copy the questionnaire with its questions and choices as the next version;
    the categories move to the copy. In the caller's transaction."""
    ensure_series(session, questionnaire)
    latest = session.scalar(
        select(func.max(Questionnaire.version)).where(Questionnaire.series_id == questionnaire.series_id)
    )
    copy = Questionnaire(
        series_id=questionnaire.series_id,
        version=(latest or questionnaire.version or 1) + 1,
        is_current=True,
        title=questionnaire.title,
        introduction=questionnaire.introduction,
        active=questionnaire.active,
        created_at=utcnow(),
    )
    out = NewVersion(copy)
    for question in questionnaire.questions:
        question_copy = Question(
            sort_order=question.sort_order, type=question.type, text=question.text, required=question.required
        )
        out.questions[question] = question_copy
        copy.questions.append(question_copy)
        for choice in question.choices:
            choice_copy = Choice(sort_order=choice.sort_order, text=choice.text)
            out.choices[choice] = choice_copy
            question_copy.choices.append(choice_copy)
    for older in versions(session, questionnaire):
        older.is_current = False
    for category in list(questionnaire.categories):
        category.questionnaire = copy
    session.add(copy)
    session.flush()
    return out


@dataclass
class Revision:
    target: object  # the object that now carries the change
    questionnaire: Questionnaire  # the version it belongs to
    new_version: bool


def _writable(session, questionnaire: Questionnaire) -> NewVersion | None:
    """None when the questionnaire may change in place; else the new version to change instead."""
    if questionnaire is None:
        raise NotFound(_l("No such questionnaire."))
    if not questionnaire.is_current:
        raise InvalidInput(
            _l("This is an old version kept for the answers given to it; change the current version instead.")
        )
    return new_version(session, questionnaire) if answered(session, questionnaire.id) else None


def revise(session, obj, values: Mapping[str, object]) -> Revision:
    """Change a questionnaire, question or choice: in place, or, when its
    questionnaire has answers, in a new version. ``obj`` must hold its stored
    values. In the caller's transaction. Raises InvalidInput."""
    questionnaire = questionnaire_of(obj)
    if not values:  # nothing a citizen saw changes (say, switching a questionnaire on or off)
        VALIDATORS[type(obj)](session, obj)
        return Revision(obj, questionnaire, False)
    copy = _writable(session, questionnaire)
    target = copy.mapped(obj) if copy else obj
    for name, value in values.items():
        setattr(target, name, value)
    VALIDATORS[type(target)](session, target)
    version = copy.questionnaire if copy else questionnaire
    if isinstance(target, (Question, Choice)) and version.active:
        validate_questionnaire(session, version)
    return Revision(target, version, copy is not None)


def _note_stored(target, value, oldvalue, initiator) -> None:
    """Keep the value a versioned column held before the screen first changed it."""
    state = inspect(target)
    if state.persistent and oldvalue is not NO_VALUE:
        state.info.setdefault(STORED, {}).setdefault(initiator.key, oldvalue)


for _model, _columns in VERSIONED.items():
    for _column in _columns:
        event.listen(getattr(_model, _column), "set", _note_stored, active_history=True)


def pending_changes(obj) -> dict[str, object]:
    """The versioned columns the screen changed on ``obj``: name -> new value.
    Puts their stored values back (the command decides where the change goes)."""
    stored = inspect(obj).info.pop(STORED, {})
    changed = {name: getattr(obj, name) for name, old in stored.items() if getattr(obj, name) != old}
    for name in changed:
        setattr(obj, name, stored[name])
    inspect(obj).info.pop(STORED, None)
    return changed


def save_edit(session, actor, obj) -> Revision:
    """Command: the screen's edit of a questionnaire, question or choice, saved in
    place or, once answered, as a new version of the questionnaire. Raises InvalidInput."""
    with transaction(session), session.no_autoflush:
        return revise(session, obj, pending_changes(obj))


def add_question(session, actor, questionnaire: Questionnaire, question: Question) -> Revision:
    """Command: a new question for the questionnaire (in a new version once answered)."""
    with transaction(session), session.no_autoflush:
        question.questionnaire = None  # not part of the version being copied
        copy = _writable(session, questionnaire)
        version = copy.questionnaire if copy else questionnaire
        question.questionnaire = version
        validate_question(session, question)
        session.add(question)
        return Revision(question, version, copy is not None)


def add_choice(session, actor, question: Question, choice: Choice) -> Revision:
    """Command: a new choice for the question (in a new version once answered)."""
    if question is None:
        raise NotFound(_l("No such question."))
    with transaction(session), session.no_autoflush:
        choice.question = None  # not part of the version being copied
        copy = _writable(session, question.questionnaire)
        target = copy.mapped(question) if copy else question
        choice.question = target
        validate_choice(session, choice)
        session.add(choice)
        return Revision(choice, target.questionnaire, copy is not None)


def check_removal(session, obj) -> None:
    """Raise InvalidInput when ``obj`` cannot be removed in place: an invited
    questionnaire, or a question or choice of an old version."""
    if isinstance(obj, Questionnaire):
        if session.scalar(select(exists().where(Invitation.questionnaire_id == obj.id))):
            raise InvalidInput(
                _l("Invitations to this questionnaire have been sent: deactivate it instead of deleting it.")
            )
        return
    questionnaire = questionnaire_of(obj)
    if questionnaire is None:
        raise NotFound(_l("No such questionnaire."))
    if not questionnaire.is_current:
        raise InvalidInput(
            _l("This is an old version kept for the answers given to it; change the current version instead.")
        )


def remove(session, actor, obj) -> Revision:
    """Command: delete a question or choice (in a new version when answered), or
    an unanswered questionnaire. Raises InvalidInput."""
    with transaction(session):
        check_removal(session, obj)
        if isinstance(obj, Questionnaire):
            for category in list(obj.categories):
                category.questionnaire = None
            session.delete(obj)
            return Revision(None, obj, False)
        questionnaire = questionnaire_of(obj)
        copy = _writable(session, questionnaire)
        target = copy.mapped(obj) if copy else obj
        version = copy.questionnaire if copy else questionnaire
        if isinstance(target, Question):
            version.questions.remove(target)
        else:
            target.question.choices.remove(target)
        if version.active:
            validate_questionnaire(session, version)
        return Revision(None, version, copy is not None)


def create_questionnaire(session, actor, questionnaire: Questionnaire) -> None:
    """Command: a new questionnaire, version 1 of its own series, inactive until it has questions."""
    with transaction(session):
        questionnaire.active = False
        questionnaire.version, questionnaire.is_current = 1, True
        validate_questionnaire(session, questionnaire)
        session.add(questionnaire)
        ensure_series(session, questionnaire)


class SavedAsNewVersion(DomainError):
    """The screen's deletion was saved as a new version of an answered
    questionnaire (committed); the answered version keeps the deleted item, so
    the screen must not delete it."""

    status = 200


def prepare_removal(session, actor, obj) -> None:
    """For the screen's delete, before it deletes ``obj`` in its transaction:
    refuse what cannot be removed, detach what the removal leaves behind, and,
    once answered, save the removal as a new version (committed) and raise
    SavedAsNewVersion. Raises InvalidInput. In place, the screen deletes it."""
    check_removal(session, obj)
    if isinstance(obj, Questionnaire):
        for category in list(obj.categories):
            category.questionnaire = None
        return
    questionnaire = questionnaire_of(obj)
    if answered(session, questionnaire.id):
        revision = remove(session, actor, obj)
        raise SavedAsNewVersion(
            _l(
                "This questionnaire already has answers, so the change was saved as version %(version)s; the "
                "answers given keep version %(old)s."
            ),
            version=revision.questionnaire.version,
            old=revision.questionnaire.version - 1,
        )
    if questionnaire.active:
        validate_questionnaire(session, questionnaire, without=obj)
