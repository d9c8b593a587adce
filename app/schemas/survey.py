"""The survey's resources as marshmallow schemas.

``answer_schema``: what a citizen sends through the one-time link, one field
``q<question id>`` per question of that questionnaire version, each a list of
the values given (choices' ids, a rating, a text). Any other field is refused
(marshmallow's RAISE), so a forged or stale form cannot be half-taken.
"""

from __future__ import annotations

import re

from flask_babel import lazy_gettext as _l
from marshmallow import Schema, ValidationError, fields, validate

MAX_VALUES = 50  # values of one question (a multiple choice has far fewer choices)
MAX_VALUE_LENGTH = 20_000  # one value; the service asks the citizen to keep a text under 2,000 characters
# Control characters (tab and line breaks aside) and lone UTF-16 surrogates: nothing a person types,
# and what the Excel export of the answers could not hold.
UNTYPABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def typable(value: str) -> None:
    if UNTYPABLE.search(value):
        raise ValidationError(str(_l("Please remove the invisible control characters from the answer.")))


def answer_schema(question_ids) -> Schema:
    """The schema of the answers to the questions with these ids."""
    values = {
        f"q{question_id}": fields.List(
            fields.String(validate=[validate.Length(max=MAX_VALUE_LENGTH), typable]),
            validate=validate.Length(max=MAX_VALUES),
            load_default=list,
        )
        for question_id in question_ids
    }
    return Schema.from_dict(values, name="SurveyAnswerSchema")()
