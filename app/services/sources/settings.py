"""A data source's settings: checked against its kind's schema (the connector
registry) and the operators' confinement, the stored secret kept when an
update leaves it empty, and the connectors' SourceConfig built from the row
(carrying the confinement, which the connector checks again on every use)."""

from __future__ import annotations

import json

from flask import current_app
from flask_babel import lazy_gettext as _l
from marshmallow import ValidationError
from sqlalchemy import inspect

from app.connectors import SourceConfig, SourceError, connector_class, kinds
from app.lib import confinement as confine
from app.lib.confinement import Confinement, Refused
from app.models.org import Agency
from app.models.sources import DataSource
from app.services.errors import InvalidInput

# The columns of DataSource a kind's settings schema may use (the rest stay empty).
CONNECTION_COLUMNS = ("host", "port", "database", "path", "url", "account")

# Why the confinement refused a source, for the administrator (zh_TW / English).
REFUSED = {
    confine.OUTSIDE_ROOTS: _l(
        "This file is outside the folders allowed for data sources (the operators' SOURCE_FILE_ROOTS setting)."
    ),
    confine.PROTECTED: _l(
        "This file belongs to the platform itself (its instance folder, database or keys) and is outside the "
        "folders allowed for data sources (the operators' SOURCE_FILE_ROOTS setting)."
    ),
    confine.PLATFORM_DATABASE: _l("This is the platform's own database, which no data source may read."),
    confine.NOT_ALLOWED: _l(
        "This address is not on the operators' allow-list for web-service and e-gate sources "
        "(the SOURCE_URL_ALLOW setting)."
    ),
    confine.UNRESOLVED: _l(
        "The host name of this URL has no address, so it cannot be checked against the operators' allow-list "
        "(the SOURCE_URL_ALLOW setting)."
    ),
    confine.OTHER_DATABASE: _l(
        "This table or view is in another database than the source's own; a data source reads only its own "
        "database (name the table alone, or with the source's database)."
    ),
}
# Settings that make the platform's own files; none is ever a data source.
PROTECTED_SETTINGS = ("TRANSFER_DIR", "TRANSFER_FTP_ROOT", "TRANSFER_FTP_TLS_KEY", "DEMO_PKI_DIR")


def confinement() -> Confinement:
    """The operators' confinement of sources, from the app's configuration
    (built once per configuration)."""
    cfg = current_app.config
    instance = cfg.get("INSTANCE_FOLDER") or current_app.instance_path
    key = (
        tuple(cfg.get("SOURCE_FILE_ROOTS") or ()),
        tuple(cfg.get("SOURCE_URL_ALLOW") or ()),
        cfg["SQLALCHEMY_DATABASE_URI"],
        instance,
        tuple(cfg.get(name) for name in PROTECTED_SETTINGS),
    )
    cached = current_app.extensions.get("source_confinement")
    if cached is not None and cached[0] == key:
        return cached[1]
    built = Confinement.build(
        file_roots=key[0],
        url_allow=key[1],
        platform_url=key[2],
        instance=instance,
        protected=[path for path in key[4] if path],
    )
    current_app.extensions["source_confinement"] = (key, built)
    return built


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


class OutsideConfinement(InvalidInput):
    """A source's file, database or address outside what the operators allow:
    ``field`` (path, database, url) and ``rule`` (the confinement's reason)."""

    def __init__(self, field: str, rule: str):
        super().__init__(
            _l("The settings of this source are not valid: %(problems)s"), problems=f"{field}: {REFUSED[rule]}"
        )
        self.field = field
        self.rule = rule


def check_confinement(src: DataSource) -> None:
    """Raise OutsideConfinement (an InvalidInput) when the source's file,
    database or address is outside what the operators allow (the connector
    checks it again on every use)."""
    try:
        connector_class(src.kind).confine(source_config(src))
    except Refused as exc:
        raise OutsideConfinement(exc.field, exc.reason) from None


class TargetOutside(InvalidInput):
    """A form section's target outside its source (``rule``: the confinement's reason)."""

    def __init__(self, rule: str):
        super().__init__(REFUSED[rule])
        self.field = "target"
        self.rule = rule


def check_section_target(src: DataSource, target: str) -> None:
    """Raise TargetOutside (an InvalidInput) when a section's target reaches
    outside its source (a table in another database of an SQL server); the
    connector checks it again on every read."""
    try:
        connector_class(src.kind).confine_target(source_config(src), target)
    except Refused as exc:
        raise TargetOutside(exc.reason) from None
    except SourceError:  # the source's own settings are not valid: its own checks say so
        return


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
    """The connectors' view of a source: what every kind has, the kind's own
    settings as stored (its schema loads them in the connector) and the
    operators' confinement."""
    return SourceConfig(
        kind=src.kind,
        name=src.code,
        id=src.id,
        secret=src.secret,
        timeout=float(src.timeout or 5.0),
        row_cap=int(src.row_cap or 500),
        pool_size=int(src.pool_size or 5),
        settings=settings_of(src),
        confinement=confinement(),
    )
