"""A data source's settings: checked against its kind's schema (the connector
registry), the stored secret kept when an update leaves it empty, and the
connectors' SourceConfig built from the row."""

from __future__ import annotations

import json

from flask_babel import lazy_gettext as _l
from marshmallow import ValidationError
from sqlalchemy import inspect

from app.connectors import SourceConfig, connector_class, kinds
from app.models.org import Agency
from app.models.sources import DataSource
from app.services.errors import InvalidInput

# The columns of DataSource a kind's settings schema may use (the rest stay empty).
CONNECTION_COLUMNS = ("host", "port", "database", "path", "url", "account")


def options_of(src: DataSource) -> dict:
    if not src.options:
        return {}
    try:
        value = json.loads(src.options)
    except ValueError as exc:
        raise InvalidInput(_l('Options must be valid JSON (for example {"dialect": "postgresql"}).')) from exc
    if not isinstance(value, dict):
        raise InvalidInput(_l("Options must be a JSON object."))
    return value


def validate_source(session, src: DataSource) -> None:
    """Raise InvalidInput (or marshmallow's ValidationError, field by field,
    from the kind's settings schema) when the settings cannot describe a
    reachable source."""
    src.code = (src.code or "").strip()
    if not src.code or not src.name:
        raise InvalidInput(_l("A data source needs a code and a name."))
    if src.agency_id is not None and session is not None and session.get(Agency, src.agency_id) is None:
        raise InvalidInput(_l("No such agency."))
    if src.kind not in kinds():
        raise InvalidInput(_l("Unknown source kind."))
    options = options_of(src)
    if src.timeout is not None and not (0.1 <= float(src.timeout) <= 120):
        raise InvalidInput(_l("The timeout must be between 0.1 and 120 seconds."))
    if src.row_cap is not None and not (1 <= int(src.row_cap) <= 10000):
        raise InvalidInput(_l("The row cap must be between 1 and 10000."))
    try:
        connector_class(src.kind).validate(settings_of(src, options))
    except ValidationError as exc:
        raise InvalidInput(
            _l("The settings of this source are not valid: %(problems)s"), problems=problems_text(exc.messages)
        ) from None


def problems_text(messages, prefix: str = "") -> str:
    """marshmallow's messages as one line: "options.dialect: ...; host: ..."."""
    parts = []
    for key, value in messages.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            parts.append(problems_text(value, name + "."))
        else:
            parts.append(f"{name}: {' '.join(str(v) for v in value)}")
    return "; ".join(parts)


def settings_of(src: DataSource, options: dict | None = None) -> dict:
    """What the kind's settings schema checks: the connection columns that are set, and the options."""
    settings = {c: getattr(src, c) for c in CONNECTION_COLUMNS if getattr(src, c) not in (None, "")}
    settings["options"] = options_of(src) if options is None else options
    return settings


def keep_stored_secret(src: DataSource) -> None:
    """An update that leaves the password empty keeps the stored one (the
    screen never shows it, the API never returns it): for both, before saving."""
    if not src.secret:
        history = inspect(src).attrs.secret.history
        if history.deleted:
            src.secret = history.deleted[0]


def source_config(src: DataSource) -> SourceConfig:
    return SourceConfig(
        kind=src.kind,
        name=src.code,
        id=src.id,
        host=src.host,
        port=src.port,
        database=src.database,
        path=src.path,
        url=src.url,
        account=src.account,
        secret=src.secret,
        timeout=float(src.timeout or 5.0),
        row_cap=int(src.row_cap or 500),
        pool_size=int(src.pool_size or 5),
        options=options_of(src),
    )
