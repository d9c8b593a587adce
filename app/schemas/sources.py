"""A data source, for the administrators' API and screen: one schema to load
what is written and to dump what is shown.

The secret is write-only (loaded, never dumped); an update that leaves it
empty keeps the stored one (``services.sources.update_source``). The kind must
be one the connector registry offers; its own settings (host, file, URL,
options) are checked by the kind's schema in the command. Unknown fields are
refused, a boolean is not a number, texts and numbers are bounded.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate
from marshmallow_sqlalchemy import SQLAlchemySchema

from app import connectors
from app.extensions import db
from app.models.sources import DataSource
from app.services.errors import InvalidInput
from app.services.sources import problems_text

MAX_ID = 2**63 - 1
NUMBERS = ("timeout",)  # marshmallow's Float would take "3" or true: JSON numbers only


def _registered_kind(value: str) -> None:
    if value not in connectors.kinds():
        raise ValidationError(str(_l("Unknown source kind.")))


def _text(max_length: int, **kwargs) -> fields.String:
    return fields.String(validate=validate.Length(max=max_length), **kwargs)


class SourceSchema(SQLAlchemySchema):
    class Meta:
        model = DataSource
        load_instance = True
        sqla_session = db.session
        unknown = RAISE

    id = fields.Integer(dump_only=True)
    code = fields.String(required=True, validate=validate.Length(min=1, max=40))
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    kind = fields.String(required=True, validate=_registered_kind, metadata={"description": "a registered kind"})
    agency = fields.Integer(
        strict=True,
        allow_none=True,
        attribute="agency_id",
        validate=validate.Range(min=1, max=MAX_ID),
        metadata={"description": "the id of the agency whose system it is"},
    )
    agency_code = fields.Function(lambda src: src.agency.code if src.agency else None, dump_only=True)
    host = _text(255, allow_none=True)
    port = fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=1, max=65535))
    database = _text(255, allow_none=True)
    path = _text(500, allow_none=True)
    url = _text(500, allow_none=True)
    account = _text(100, allow_none=True)
    secret = _text(1000, allow_none=True, load_only=True, metadata={"description": "write-only; empty keeps it"})
    timeout = fields.Float(allow_nan=False, validate=validate.Range(min=0.1, max=120))
    row_cap = fields.Integer(strict=True, validate=validate.Range(min=1, max=10000))
    pool_size = fields.Integer(strict=True, validate=validate.Range(min=1, max=100))
    options = _text(20000, allow_none=True, metadata={"description": "the kind's options, a JSON object as text"})
    enabled = fields.Boolean(truthy={True}, falsy={False})
    last_checked_at = fields.DateTime(dump_only=True)
    last_ok = fields.Boolean(dump_only=True)
    last_latency_ms = fields.Float(dump_only=True)
    last_error = fields.String(dump_only=True)

    SHOWN = (
        "id",
        "code",
        "name",
        "kind",
        "agency",
        "agency_code",
        "host",
        "port",
        "database",
        "path",
        "url",
        "account",
        "timeout",
        "row_cap",
        "pool_size",
        "options",
        "enabled",
        "last_checked_at",
        "last_ok",
        "last_latency_ms",
        "last_error",
    )  # every field but the secret

    @pre_load
    def numbers_are_numbers(self, data, **kwargs):
        if isinstance(data, dict):
            for name in NUMBERS:
                value = data.get(name)
                if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                    raise ValidationError(str(_l("Not a valid number.")), name)
        return data


# What the screen's form writes, checked through the same schema as the API's body.
SCREEN_FIELDS = (
    "code",
    "name",
    "kind",
    "host",
    "port",
    "database",
    "path",
    "url",
    "account",
    "secret",
    "timeout",
    "row_cap",
    "pool_size",
    "options",
    "enabled",
)


def check_screen_item(session, item: DataSource) -> None:
    """The screen's form values through ``SourceSchema`` (kinds, bounds, types),
    so the screen accepts exactly what the API accepts; InvalidInput if not.
    (An empty field is left out: the command decides what an empty secret means.)"""
    data = {name: getattr(item, name) for name in SCREEN_FIELDS}
    data["agency"] = item.agency.id if item.agency is not None else item.agency_id
    data = {name: value for name, value in data.items() if value is not None and value != ""}
    errors = SourceSchema().validate(data)
    if errors:
        raise InvalidInput(
            _l("The settings of this source are not valid: %(problems)s"), problems=problems_text(errors)
        )


class ConnectionTestSchema(Schema):
    """The answer of a connection test."""

    ok = fields.Boolean(required=True)
    latency_ms = fields.Float(allow_none=True, metadata={"description": "milliseconds, on success"})
    message = fields.String(metadata={"description": "why it failed, in plain words (never the secret)"})


class SourceFieldSchema(Schema):
    name = fields.String(required=True)
    type = fields.String(required=True, metadata={"description": "the type in the source's words"})


class SourceEntitySchema(Schema):
    """A table, view, file, resource or transaction a form section can read (its ``target``)."""

    target = fields.String(required=True)
    kind = fields.String(required=True, metadata={"description": "table, view, file, resource or transaction"})
    label = fields.String()
    inputs = fields.List(fields.String(), metadata={"description": "the columns it can be asked by, if restricted"})
    columns = fields.List(fields.Nested(SourceFieldSchema))


class SourceDescriptionSchema(Schema):
    """What a source offers the form designer, or why it could not say."""

    ok = fields.Boolean(required=True)
    message = fields.String()
    entities = fields.List(fields.Nested(SourceEntitySchema))
