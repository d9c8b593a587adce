"""Data sources: where another agency's system is and how to reach it.

``settings``: a source's settings checked against its kind (the connector
registry) and turned into the connectors' SourceConfig. ``commands``: create,
update and delete a source, test its connection, describe it; each owns its
transaction, whose automatic audit events (or its own) commit with it.
"""

from app.services.sources.commands import (  # noqa: F401
    ConnectionTest,
    SourceDescription,
    create_source,
    delete_source,
    describe_source,
    test_connection,
    update_source,
)
from app.services.sources.settings import (  # noqa: F401
    OutsideConfinement,
    TargetOutside,
    check_confinement,
    check_section_target,
    confinement,
    keep_stored_secret,
    options_of,
    problems_text,
    settings_of,
    source_config,
    validate_source,
)
