"""The connector contract and the registry of source kinds, discovered.

    connector_for(source).test() -> latency in seconds, or raises SourceError
    connector_for(source).fetch(section, params) -> Result(columns, rows)
    connector_for(source).describe() -> [Entity]: what the source offers
    connector_class(kind).validate(settings) -> the settings loaded, or ValidationError

Every fetch honours ``source.timeout`` (seconds) and ``source.row_cap``; a
dead source fails fast with a SourceError whose message is plain words with
no secret and no personal data. Drivers are imported lazily inside the kind's
module, so a missing driver fails only that kind's sources, naming what to
install.

``source.confinement`` (``app.lib.confinement``) holds the operators' limits:
the files, databases and addresses a source may reach. Each kind checks it in
``confine()`` (what the sources service calls when a source is saved) and
again whenever it opens a file or a connection, and refuses with a
SourceError ("refused") that names no more than the rule.

A kind is ONE module (or package) of ``app.connectors`` whose Connector
subclass is decorated with ``@register``: it declares its ``kind``, its
``label``, its ``settings_schema`` (marshmallow: the connection fields it uses
and its ``options``, which load ``SourceConfig.settings`` into the connector's
``settings``), ``test()``, ``fetch()`` and ``describe()``. The registry
imports every module of the package once (``pkgutil``), so adding a kind
touches no other file: the sources' validation, the admin screen's choices
and the API's schema read ``kinds()``/``choices()``.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import pkgutil
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from flask_babel import lazy_gettext as _l
from marshmallow import RAISE, Schema, ValidationError, fields, validate

from app.lib import confinement as confine
from app.lib.confinement import Confinement, Refused

log = logging.getLogger(__name__)
OPERATORS = ("eq", "ne", "lt", "le", "gt", "ge", "like", "prefix", "in")


class SourceError(Exception):
    """A source could not answer. ``reason`` is one of: unreachable, timeout,
    config, driver, refused, not_found, bad_response. ``message``: plain words
    (translatable, ``lazy_gettext``: said in the reader's language where it is
    shown; never a secret or personal data). A confinement refusal also names
    its ``field`` and ``rule`` (``app.lib.confinement``), for the audit trail."""

    def __init__(self, message, reason: str = "unreachable", *, field: str | None = None, rule: str | None = None):
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.field = field
        self.rule = rule

    def __str__(self) -> str:
        return str(self.message)


# What a connector says when the operators' confinement refuses a source it is
# asked to use (the source was saved before the rule, or written to the
# database directly); the screen and the API say it at save time in the
# administrator's language (app.services.sources.settings).
REFUSALS = {
    confine.OUTSIDE_ROOTS: _l("the file is outside the folders allowed for data sources"),
    confine.PROTECTED: _l("the file is outside the folders allowed for data sources"),
    confine.PLATFORM_DATABASE: _l("this is the platform's own database, which no data source may read"),
    confine.NOT_ALLOWED: _l("the address is not on the operators' allow-list for data sources"),
    confine.UNRESOLVED: _l("the host name has no address, so it cannot be checked against the allow-list"),
    confine.OTHER_DATABASE: _l(
        "the table or view is in another database than the source's own, which a source never reads"
    ),
}


def refusal(exc: Refused, source: SourceConfig | None = None) -> SourceError:
    """The SourceError for a confinement refusal, logged (a security event) with the source's code and the rule."""
    if source is not None:
        log.warning("source %s refused by the confinement: %s %s", source.name, exc.field, exc.reason)
    message = REFUSALS.get(exc.reason, REFUSALS[confine.NOT_ALLOWED])
    return SourceError(message, "refused", field=exc.field, rule=exc.reason)


@dataclass(frozen=True)
class SourceConfig:
    """What a connector knows about its source (built from DataSource): what
    every kind has, and ``settings``, the kind's own (the connection fields it
    uses and its ``options``) as stored, which the kind's settings schema loads
    (``Connector.settings``). A new kind adds nothing here."""

    kind: str
    name: str = ""
    id: int | None = None
    secret: str | None = None  # decrypted only in memory, never logged
    timeout: float = 5.0
    row_cap: int = 500
    pool_size: int = 5
    settings: Mapping[str, Any] = field(default_factory=dict)
    # The operators' limits (files, databases, addresses), checked by the
    # connector on every use. The platform always sets them
    # (services.sources.source_config); None leaves a connector used on its
    # own, outside the platform (the connector tests, a bench), unconfined.
    confinement: Confinement | None = None

    @classmethod
    def of(cls, kind: str, **values) -> SourceConfig:
        """A config from keywords: the common fields by name, every other one
        (``host``, ``path``, ``options``...) one of the kind's settings."""
        common = {name: values.pop(name) for name in COMMON_FIELDS if name in values}
        return cls(kind=kind, settings=values, **common)

    def fingerprint(self) -> str:
        """Changes whenever any setting changes: a cached connector is rebuilt."""
        raw = json.dumps(
            [
                self.kind,
                self.secret,
                self.timeout,
                self.row_cap,
                self.pool_size,
                self.settings,
                self.confinement,
            ],
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(raw.encode()).hexdigest()


COMMON_FIELDS = ("name", "id", "secret", "timeout", "row_cap", "pool_size", "confinement")


@dataclass(frozen=True)
class Filter:
    """``column <op> params[param]``; ``value`` is a constant used when param is None."""

    column: str
    param: str | None = None
    op: str = "eq"
    value: Any = None


@dataclass(frozen=True)
class SectionSpec:
    """One read from one source.

    target: table or view (sql), file key or "" (textfile), path template
    (rest, e.g. "/companies/{ban}"), transaction code (egate, e.g. "RQ02").
    columns: source columns to return, in order (empty: all).
    order_by: source columns to sort by.
    """

    target: str
    filters: tuple[Filter, ...] = ()
    columns: tuple[str, ...] = ()
    order_by: tuple[str, ...] = ()
    options: dict = field(default_factory=dict)


@dataclass
class Result:
    columns: list[str]
    rows: list[dict]
    truncated: bool = False  # more rows existed than the row cap
    # ID numbers of the people the rows are about, where the protocol says so (the household
    # e-gate's members): the platform records their keyed hashes as the query's data subjects
    # (so each sees the query in "who read my data"); never shown, logged or stored in clear.
    subjects: tuple[str, ...] = ()


@dataclass(frozen=True)
class Field:
    """A column a source offers: its name and its type in the source's words."""

    name: str
    type: str = "text"


@dataclass(frozen=True)
class Entity:
    """Something a form section can read (``SectionSpec.target``) and its columns.

    kind: table, view, file, resource (rest) or transaction (egate).
    inputs: the columns it can be asked by, where the source restricts them (egate).
    """

    target: str
    kind: str
    columns: tuple[Field, ...] = ()
    label: str = ""
    inputs: tuple[str, ...] = ()


# Bounds shared by the kinds' settings schemas.
MAX_TEXT = 500


def text(max_length: int = MAX_TEXT, validate_also=None, **kwargs) -> fields.String:
    """A string of at most ``max_length`` characters (and ``validate_also``, if given)."""
    checks = [validate.Length(max=max_length)] + ([validate_also] if validate_also else [])
    return fields.String(validate=checks, **kwargs)


def port() -> fields.Integer:
    return fields.Integer(strict=True, validate=validate.Range(min=1, max=65535))


def http_url(**kwargs) -> fields.String:
    return fields.String(
        validate=[
            validate.Length(max=MAX_TEXT),
            validate.Regexp(r"^https?://", error=_l("Web-service and e-gate sources need an http(s) URL.")),
        ],
        **kwargs,
    )


class SettingsSchema(Schema):
    """A kind's settings: the connection fields it uses (the rest must stay
    empty) and its ``options`` (the kind's own keys only). Subclassed by each kind."""

    class Meta:
        unknown = RAISE

    options = fields.Dict(keys=fields.String(), load_default=dict)


def _plain_messages(messages):
    """marshmallow keeps a lazy (translatable) message as given: make each a list of text."""
    if isinstance(messages, dict):
        return {key: _plain_messages(value) for key, value in messages.items()}
    if isinstance(messages, (list, tuple)):
        return [str(m) if not isinstance(m, (dict, list)) else _plain_messages(m) for m in messages]
    return [str(messages)]


def _field_paths(messages, prefix: str = "") -> list[str]:
    """The fields marshmallow's messages are about ("options.dialect"), never their values."""
    if not isinstance(messages, dict):
        return [prefix.rstrip(".") or "settings"]
    paths = []
    for key, value in messages.items():
        name = f"{prefix}{key}"
        paths += _field_paths(value, name + ".") if isinstance(value, dict) else [name]
    return paths


class Connector:
    kind: ClassVar[str] = ""
    label: ClassVar[Any] = ""  # lazy_gettext: shown in the admin screen's choices
    order: ClassVar[int] = 100  # place among the choices
    settings_schema: ClassVar[type[Schema]] = SettingsSchema

    def __init__(self, source: SourceConfig):
        self.source = source
        self.settings = self.settings_of(source)

    @property
    def options(self) -> dict:
        """The kind's own options, as its settings schema loaded them."""
        return self.settings.get("options") or {}

    @classmethod
    def settings_of(cls, source: SourceConfig) -> dict:
        """The source's own settings loaded through the kind's schema (typed,
        defaults filled in); a SourceError (config) naming the fields when they
        are not valid (a source saved before a rule, or written to the
        database directly)."""
        try:
            return cls.settings_schema().load(dict(source.settings))
        except ValidationError as exc:
            names = ", ".join(_field_paths(exc.messages))
            raise SourceError(_l("the source's settings are not valid (%(names)s)", names=names), "config") from None

    @classmethod
    def validate(cls, settings: dict) -> dict:
        """The kind's settings (``host``, ``port``, ``database``, ``path``,
        ``url``, ``account`` as set, and ``options``) loaded through its schema;
        raises marshmallow's ValidationError with the fields' messages (as
        lists of text in the caller's language)."""
        try:
            return cls.settings_schema().load(settings)
        except ValidationError as exc:
            raise ValidationError(_plain_messages(exc.messages)) from None

    @classmethod
    def confine(cls, source: SourceConfig) -> None:
        """Raise ``confinement.Refused`` when the source's file, database or
        address is outside ``source.confinement`` (each kind checks what it
        opens; checked again when it opens it)."""

    @classmethod
    def confine_target(cls, source: SourceConfig, target: str) -> None:
        """Raise ``confinement.Refused`` when a section's ``target`` reaches outside
        the source (an SQL table in another database); checked when the section
        is saved and again on every read."""

    def test(self) -> float:
        """Check the source answers; return the latency in seconds."""
        raise NotImplementedError

    def fetch(self, section: SectionSpec, params: dict) -> Result:
        raise NotImplementedError

    def describe(self) -> list[Entity]:
        """The tables, views, files, resources or transactions the source offers, with their columns."""
        raise NotImplementedError

    def close(self) -> None:
        """Release pools, sessions and file handles."""

    # helpers shared by kinds
    def filter_value(self, flt: Filter, params: dict):
        if flt.param is None:
            return flt.value
        if flt.param not in params:
            raise SourceError(_l("missing input '%(name)s'", name=flt.param), "config")
        return params[flt.param]

    def project(self, rows: list[dict], section: SectionSpec) -> Result:
        """Keep the section's columns (all when none listed) and the row cap."""
        cap = self.source.row_cap
        truncated = len(rows) > cap
        rows = rows[:cap]
        if section.columns:
            columns = list(section.columns)
            rows = [{c: r.get(c) for c in columns} for r in rows]
        else:
            columns = list(rows[0].keys()) if rows else []
        return Result(columns=columns, rows=rows, truncated=truncated)


_registry: dict[str, type[Connector]] = {}
_instances: dict[tuple, Connector] = {}
_lock = threading.Lock()
_discovered = threading.Event()
PACKAGE = __name__.rsplit(".", 1)[0]  # app.connectors
NOT_KINDS = {"base"}


def register(kind: str | None = None):
    """Class decorator: the connector of ``kind`` (default: the class's own ``kind``)."""

    def deco(cls: type[Connector]) -> type[Connector]:
        if kind:
            cls.kind = kind
        if not cls.kind:
            raise TypeError(f"{cls.__name__} declares no kind")
        _registry[cls.kind] = cls
        return cls

    return deco


def discover(refresh: bool = False) -> None:
    """Import every module of the package once, so their ``@register`` runs.
    ``refresh``: look again (a module added since, as a test does)."""
    if _discovered.is_set() and not refresh:
        return
    package = importlib.import_module(PACKAGE)
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_") or info.name in NOT_KINDS:
            continue
        importlib.import_module(f"{PACKAGE}.{info.name}")
    _discovered.set()


def kinds() -> list[str]:
    """Every registered kind, in the order the admin screen lists them."""
    discover()
    return [k for k, _ in sorted(_registry.items(), key=lambda item: (item[1].order, item[0]))]


def choices() -> list[tuple[str, Any]]:
    """(kind, label) for a select list."""
    return [(kind, _registry[kind].label or kind) for kind in kinds()]


def label_of(kind: str):
    discover()
    cls = _registry.get(kind)
    return (cls.label or kind) if cls is not None else kind


def connector_class(kind: str) -> type[Connector]:
    discover()
    cls = _registry.get(kind)
    if cls is None:
        raise SourceError(_l("unknown source kind '%(kind)s'", kind=kind), "config")
    return cls


def connector_for(source: SourceConfig) -> Connector:
    """The cached connector of a source (one pool per source), rebuilt when
    the source's settings change."""
    key = (source.kind, source.id if source.id is not None else source.name)
    with _lock:
        current = _instances.get(key)
        # The same config object (a cached form plan's, the usual case) needs no fingerprint.
        if current is not None and (current.source is source or current.source.fingerprint() == source.fingerprint()):
            return current
        if current is not None:
            current.close()
        instance = connector_class(source.kind)(source)
        _instances[key] = instance
        return instance


def close_all() -> None:
    with _lock:
        for instance in _instances.values():
            try:
                instance.close()
            except Exception:
                pass
        _instances.clear()
