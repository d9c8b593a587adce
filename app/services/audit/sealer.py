"""The sealer: a loop, run in its own process (``flask worker sealer``), that
links committed events into the chain every AUDIT_SEAL_SECONDS until told to stop.

With ``AUDIT_SEALING = "background"`` (PostgreSQL, MySQL default) commands
only insert their events; this loop seals them shortly after, so requests
never queue on the chain's lock. Every round seals every pending row, whoever
wrote it, so a sealer that dies leaves nothing behind that the next round (or
``flask audit seal``/``verify``) does not pick up; two sealers at once are
safe (they take turns on the chain's lock). With ``"inline"`` (the SQLite
default) events are sealed in their own transaction and this loop finds
nothing to do.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from app.services.audit.chain import any_pending, seal_all

log = logging.getLogger(__name__)
DEFAULT_SECONDS = 0.25


def seal_round(engine) -> int:
    """One round: seal what is pending (nothing written when nothing is).
    A failed round (a lock timeout, a restart) is logged; the next one retries."""
    try:
        with engine.connect() as conn:
            if not any_pending(conn):
                return 0
        return seal_all(engine)
    except Exception as exc:
        log.warning("audit sealing round failed: %s", type(exc).__name__)
        return 0


def run(app, stop_event: threading.Event, on_round: Callable[[int], None] | None = None) -> None:
    """Seal committed events every ``AUDIT_SEAL_SECONDS`` until ``stop_event``
    is set, then seal once more (what committed meanwhile) and return.
    ``on_round(sealed)`` is called after each round (tests, metrics)."""
    from app.extensions import db

    interval = float(app.config.get("AUDIT_SEAL_SECONDS", DEFAULT_SECONDS))
    with app.app_context():
        engine = db.engine
        while not stop_event.is_set():
            sealed = seal_round(engine)
            if on_round is not None:
                on_round(sealed)
            stop_event.wait(interval)
        seal_round(engine)
