"""Citizen satisfaction questionnaires: versions, questions, choices, the
one-time invitations sent when a case is complete, and the responses.

A questionnaire that has responses is never edited in place: a change makes a
new version (same ``series_id``, ``version`` + 1) with copies of its questions
and choices, so each answer keeps the question it answered.
"""

import datetime

from flask_appbuilder import Model
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import relationship

from app.lib.fieldcrypt import EncryptedText

QUESTION_TYPES = ("single", "multiple", "rating", "text")
CHOICE_TYPES = ("single", "multiple")
RATING_MIN, RATING_MAX = 1, 5


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


class Questionnaire(Model):
    """問卷: one version of a questionnaire."""

    __tablename__ = "questionnaire"
    __table_args__ = (UniqueConstraint("series_id", "version"),)

    id = Column(Integer, primary_key=True)
    # The first version's id; every later version of the same questionnaire shares it.
    series_id = Column(Integer, index=True)
    version = Column(Integer, nullable=False, default=1)
    is_current = Column(Boolean, nullable=False, default=True)
    title = Column(String(200), nullable=False)
    introduction = Column(Text)
    active = Column(Boolean, nullable=False, default=False)
    created_at = Column(DateTime, nullable=False, default=_utcnow)
    questions = relationship("Question", back_populates="questionnaire", cascade="all, delete-orphan",
                             order_by="(Question.sort_order, Question.id)")  # fmt: skip
    categories = relationship("NotificationCategory", back_populates="questionnaire")

    def __repr__(self) -> str:
        return f"{self.title} (v{self.version})" if self.version and self.version > 1 else (self.title or "")


class Question(Model):
    __tablename__ = "survey_question"

    id = Column(Integer, primary_key=True)
    questionnaire_id = Column(Integer, ForeignKey("questionnaire.id", ondelete="CASCADE"), nullable=False, index=True)
    questionnaire = relationship(Questionnaire, back_populates="questions")
    sort_order = Column(Integer, nullable=False, default=0)
    type = Column(String(10), nullable=False, default="rating")
    text = Column(String(500), nullable=False)
    required = Column(Boolean, nullable=False, default=True)
    choices = relationship("Choice", back_populates="question", cascade="all, delete-orphan",
                           order_by="(Choice.sort_order, Choice.id)")  # fmt: skip

    def __repr__(self) -> str:
        return self.text or ""


class Choice(Model):
    __tablename__ = "survey_choice"

    id = Column(Integer, primary_key=True)
    question_id = Column(Integer, ForeignKey("survey_question.id", ondelete="CASCADE"), nullable=False, index=True)
    question = relationship(Question, back_populates="choices")
    sort_order = Column(Integer, nullable=False, default=0)
    text = Column(String(200), nullable=False)

    def __repr__(self) -> str:
        return self.text or ""


class Invitation(Model):
    """A one-time link sent to the citizen of a completed case. Only the
    SHA-256 of the token is kept: the link in the e-mail is the only copy."""

    __tablename__ = "survey_invitation"
    __table_args__ = (Index("ix_survey_invitation_questionnaire_created", "questionnaire_id", "created_at"),)

    id = Column(Integer, primary_key=True)
    token_hash = Column(String(64), nullable=False, unique=True)
    questionnaire_id = Column(Integer, ForeignKey("questionnaire.id"), nullable=False)
    questionnaire = relationship(Questionnaire)
    case_id = Column(Integer, ForeignKey("notification_case.id", ondelete="CASCADE"), nullable=False, unique=True)
    category_id = Column(Integer, ForeignKey("notification_category.id"), nullable=False)
    agency_id = Column(Integer, ForeignKey("agency.id"), nullable=False)  # the notifying agency
    created_at = Column(DateTime, nullable=False, default=_utcnow)
    expires_at = Column(DateTime, nullable=False)
    used_at = Column(DateTime)


class Response(Model):
    """One citizen's answers. ``rating_sum``/``rating_count`` (over its rating
    answers) let reports compute satisfaction without reading the answers."""

    __tablename__ = "survey_response"

    id = Column(Integer, primary_key=True)
    # unique: one response per link, whatever happens above it
    invitation_id = Column(Integer, ForeignKey("survey_invitation.id", ondelete="CASCADE"), nullable=False, unique=True)
    invitation = relationship(Invitation)
    questionnaire_id = Column(Integer, ForeignKey("questionnaire.id"), nullable=False, index=True)
    case_id = Column(Integer, ForeignKey("notification_case.id", ondelete="CASCADE"), nullable=False, index=True)
    # indexed: reports read the responses that came in since the summary
    submitted_at = Column(DateTime, nullable=False, default=_utcnow, index=True)
    rating_sum = Column(Integer, nullable=False, default=0)
    rating_count = Column(Integer, nullable=False, default=0)
    answers = relationship("Answer", back_populates="response", cascade="all, delete-orphan")


class Answer(Model):
    """One answer: a choice (one row per ticked choice), a rating or a text."""

    __tablename__ = "survey_answer"
    __table_args__ = (Index("ix_survey_answer_question_choice", "question_id", "choice_id"),)

    id = Column(Integer, primary_key=True)
    response_id = Column(Integer, ForeignKey("survey_response.id", ondelete="CASCADE"), nullable=False, index=True)
    response = relationship(Response, back_populates="answers")
    question_id = Column(Integer, ForeignKey("survey_question.id"), nullable=False)
    choice_id = Column(Integer, ForeignKey("survey_choice.id"))
    rating = Column(SmallInteger)
    text = Column(EncryptedText)  # free text may name people: encrypted at rest
