"""The sealer: a loop, run in its own process (``flask worker sealer``), that
links committed events into the chain every AUDIT_SEAL_SECONDS until told to
stop, and writes the signed checkpoints (``checkpoints.Schedule``): to the
checkpoint file when the chain has grown and AUDIT_CHECKPOINT_SECONDS have
passed, to the auditors' mail every AUDIT_CHECKPOINT_MAIL_SECONDS.

With ``AUDIT_SEALING = "background"`` (PostgreSQL, MySQL default) commands
only insert their events; this loop seals them shortly after, so requests
never queue on the chain's lock. Every round seals every pending row, whoever
wrote it, so a sealer that dies leaves nothing behind that the next round (or
``flask audit seal``) does not pick up; two sealers at once are safe (they
take turns on the chain's lock). With ``"inline"`` (the SQLite default)
events are sealed in their own transaction and this loop only writes the
checkpoints. A pending row whose entry seal does not match (written without
the key), or whose entry seal an event in the chain (or earlier in the
batch) already carries (a replayed copy), is never linked: it is logged and
recorded once per sealer process (``audit_forged_rows``,
``audit_replayed_rows``: counts and row ids only), and later rounds skip it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from app.services.audit import checkpoints
from app.services.audit.chain import any_pending, seal_all

log = logging.getLogger(__name__)
DEFAULT_SECONDS = 0.25


def seal_round(engine, refused: set[int] | None = None) -> int:
    """One round: seal what is pending (nothing written when nothing is).
    A failed round (a lock timeout, a restart) is logged; the next one retries.
    ``refused``: ids of forged or replayed rows found so far (skipped; new ones recorded)."""
    refused = set() if refused is None else refused
    try:
        with engine.connect() as conn:
            if not any_pending(conn, refused):
                return 0
        known = set(refused)
        replayed: set[int] = set()
        sealed = seal_all(engine, refused=refused, replayed=replayed)
        report_refused(sorted(refused - known - replayed), sorted(replayed))
        return sealed
    except Exception as exc:
        log.warning("audit sealing round failed: %s", type(exc).__name__)
        return 0


def report_refused(forged: list[int], replayed: list[int]) -> None:
    """A security event: rows in the chain's queue that the platform did not write
    (``forged``), or copies of events already written (``replayed``). Logged and
    recorded with row ids and counts only (never the rows' content)."""
    from app.extensions import db
    from app.services.audit.recording import record

    if not forged and not replayed:
        return
    if forged:
        log.error(
            "audit sealing refused %d unsealed rows whose entry seal does not match: ids %s", len(forged), forged[:20]
        )
    if replayed:
        log.error(
            "audit sealing refused %d unsealed rows that repeat the entry seal of an event already written"
            " (replayed copies): ids %s",
            len(replayed),
            replayed[:20],
        )
    try:
        for action, ids in (("audit_forged_rows", forged), ("audit_replayed_rows", replayed)):
            if ids:
                record(db.session, action, object_type="AuditChain", outcome="refused",
                       detail={"count": len(ids), "ids": ids[:20]})  # fmt: skip
        db.session.commit()
    except Exception as exc:
        db.session.rollback()
        log.warning("could not record the refused rows: %s", type(exc).__name__)
    finally:
        db.session.remove()


def checkpoint_round(engine, schedule: checkpoints.Schedule) -> None:
    try:
        schedule.tick(engine)
    except Exception as exc:
        log.warning("audit checkpoint round failed: %s", type(exc).__name__)


def run(
    app,
    stop_event: threading.Event,
    on_round: Callable[[int], None] | None = None,
    mailer: Callable[..., int] | None = None,
) -> None:
    """Seal committed events every ``AUDIT_SEAL_SECONDS`` and write the due
    checkpoints until ``stop_event`` is set, then seal once more (what
    committed meanwhile) and return. ``on_round(sealed)`` is called after each
    round (tests, metrics); ``mailer(engine, fields, config)`` queues a
    checkpoint to the auditors (`flask worker sealer` passes
    ``app.services.checkpoint_mail.mail``)."""
    from app.extensions import db

    interval = float(app.config.get("AUDIT_SEAL_SECONDS", DEFAULT_SECONDS))
    refused: set[int] = set()
    with app.app_context():
        engine = db.engine
        schedule = checkpoints.Schedule.from_config(app.config, mailer)
        while not stop_event.is_set():
            sealed = seal_round(engine, refused)
            checkpoint_round(engine, schedule)
            if on_round is not None:
                on_round(sealed)
            stop_event.wait(interval)
        seal_round(engine, refused)
