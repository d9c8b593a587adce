"""The connector contract and the registry keyed by source kind.

    connector_for(source).test() -> latency in seconds, or raises SourceError
    connector_for(source).fetch(section, params) -> Result(columns, rows)

Every fetch honours ``source.timeout`` (seconds) and ``source.row_cap``; a
dead source fails fast with a SourceError whose message is plain words with
no secret and no personal data. Drivers are imported lazily inside the kind's
module, so a missing driver fails only that kind's sources, naming what to
install. A new kind is one new module that decorates its class with
``@register("kind")`` and is listed in KIND_MODULES.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar

# kind -> module that registers it (imported on first use)
KIND_MODULES = {
    "sql": "app.connectors.sql",
    "textfile": "app.connectors.textfile",
    "rest": "app.connectors.rest",
    "egate": "app.connectors.egate",
}

OPERATORS = ("eq", "ne", "lt", "le", "gt", "ge", "like", "prefix", "in")


class SourceError(Exception):
    """A source could not answer. ``reason`` is one of: unreachable, timeout,
    config, driver, refused, not_found, bad_response."""

    def __init__(self, message: str, reason: str = "unreachable"):
        super().__init__(message)
        self.message = message
        self.reason = reason


@dataclass(frozen=True)
class SourceConfig:
    """What a connector knows about its source (built from DataSource)."""

    kind: str
    name: str = ""
    id: int | None = None
    host: str | None = None
    port: int | None = None
    database: str | None = None  # database / service name / SQLite path
    path: str | None = None  # text file path
    url: str | None = None  # base URL (rest, egate)
    account: str | None = None
    secret: str | None = None  # decrypted only in memory, never logged
    timeout: float = 5.0
    row_cap: int = 500
    pool_size: int = 5
    options: dict = field(default_factory=dict)  # kind-specific settings

    def fingerprint(self) -> str:
        """Changes whenever any setting changes: a cached connector is rebuilt."""
        raw = json.dumps(
            [self.kind, self.host, self.port, self.database, self.path, self.url, self.account,
             self.secret, self.timeout, self.row_cap, self.pool_size, self.options],
            sort_keys=True, default=str,
        )  # fmt: skip
        return hashlib.sha256(raw.encode()).hexdigest()


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


class Connector:
    kind: ClassVar[str] = ""

    def __init__(self, source: SourceConfig):
        self.source = source

    def test(self) -> float:
        """Check the source answers; return the latency in seconds."""
        raise NotImplementedError

    def fetch(self, section: SectionSpec, params: dict) -> Result:
        raise NotImplementedError

    def close(self) -> None:
        """Release pools, sessions and file handles."""

    # helpers shared by kinds
    def filter_value(self, flt: Filter, params: dict):
        if flt.param is None:
            return flt.value
        if flt.param not in params:
            raise SourceError(f"missing input '{flt.param}'", "config")
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


def register(kind: str):
    def deco(cls: type[Connector]) -> type[Connector]:
        cls.kind = kind
        _registry[kind] = cls
        return cls

    return deco


def kinds() -> list[str]:
    return list(KIND_MODULES)


def connector_class(kind: str) -> type[Connector]:
    if kind not in _registry:
        module = KIND_MODULES.get(kind)
        if module is None:
            raise SourceError(f"unknown source kind '{kind}'", "config")
        importlib.import_module(module)
    return _registry[kind]


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
