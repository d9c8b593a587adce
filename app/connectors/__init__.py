"""Connectors to other agencies' systems, one module per source kind.

They depend on nothing of the app (no Flask, no models): the query service
hands them a SourceConfig and a SectionSpec and gets a Result back.
"""

from app.connectors.base import (  # noqa: F401
    Connector,
    Filter,
    Result,
    SectionSpec,
    SourceConfig,
    SourceError,
    close_all,
    connector_for,
    kinds,
    register,
)
