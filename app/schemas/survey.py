"""The survey's resources as marshmallow schemas.

``answer_schema``: what a citizen sends through the one-time link, one field
``q<question id>`` per question of that questionnaire version, each a list of
the values given (choices' ids, a rating, a text). Any other field is refused
(marshmallow's RAISE), so a forged or stale form cannot be half-taken.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

MAX_VALUES = 50  # values of one question (a multiple choice has far fewer choices)
MAX_VALUE_LENGTH = 20_000  # one value; the service asks the citizen to keep a text under 2,000 characters


def answer_schema(question_ids) -> Schema:
    """The schema of the answers to the questions with these ids."""
    values = {
        f"q{question_id}": fields.List(
            fields.String(validate=validate.Length(max=MAX_VALUE_LENGTH)),
            validate=validate.Length(max=MAX_VALUES),
            load_default=list,
        )
        for question_id in question_ids
    }
    return Schema.from_dict(values, name="SurveyAnswerSchema")()
