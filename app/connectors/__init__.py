"""Connectors to other agencies' systems, one module per source kind.

They depend on nothing of the app (no Flask app, no models): the query
service hands them a SourceConfig and a SectionSpec and gets a Result back.
The kinds are found by scanning this package (``base.discover``).
"""

from app.connectors.base import (  # noqa: F401
    Connector,
    Entity,
    Field,
    Filter,
    Result,
    SectionSpec,
    SettingsSchema,
    SourceConfig,
    SourceError,
    choices,
    close_all,
    connector_class,
    connector_for,
    discover,
    kinds,
    label_of,
    refusal,
    register,
)
