"""The anomaly flags' resolution, as the flags' screen posts it."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from app.schemas.transfer import StrictSchema, text


class FlagResolutionSchema(StrictSchema):
    """A reviewer's outcome (justified | misconduct | false_alarm; the command checks it) and comment."""

    outcome = text(20, _l("Choose the outcome: justified, misconduct or false alarm."), required=True)
    comment = text(2000, _l("Say it in at most 2000 characters."), required=True)


class ReviewSigningSchema(StrictSchema):
    """The supervisor's signature on a weekly review: the password again, or the card's base64 PKCS#7."""

    password = text(200, required=True)
    signature = text(20000, _l("The signature is too long."), required=True)
    comment = text(2000, _l("Say it in at most 2000 characters."), required=True)


flag_resolution_schema = FlagResolutionSchema()
review_signing_schema = ReviewSigningSchema()
