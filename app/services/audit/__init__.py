"""The audit trail: events recorded in a keyed hash chain (HMAC-SHA256 under a
key kept outside the database), sealed, checkpointed, verified.

Modules: ``chain`` (canonical form, entry seal, link, sealing, verification),
``checkpoints`` (signed checkpoints in a file and the auditors' mail),
``archive`` (retention: a month archived to a signed file, checked offline,
then removed; import it as ``app.services.audit.archive``), ``recording`` (explicit events, session hooks, a row written with its event in
one statement), ``sealer`` (the loop that seals in its own process:
``sealer.run(app, stop_event)``). The names below keep
``from app.services import audit; audit.record(...)`` working.
"""

from app.services.audit import chain, checkpoints, recording, sealer
from app.services.audit.chain import (
    CHAIN_FIELDS,
    GENESIS,
    Checkpoint,
    VerifyResult,
    any_pending,
    canonical,
    digest,
    entry_mac,
    pending,
    seal,
    seal_all,
    verify,
)
from app.services.audit.recording import (
    IGNORED_FIELDS,
    NOT_AUDITED,
    OBJECT_TYPES,
    Fanout,
    can_write_with_event,
    current_actor,
    event_insert_from,
    event_params,
    event_values,
    execute_autocommitted,
    insert_with_event,
    install_session_hooks,
    record,
    remove_session_hooks,
    sealing_mode,
    set_actor_provider,
)

__all__ = [
    "CHAIN_FIELDS",
    "GENESIS",
    "Checkpoint",
    "Fanout",
    "IGNORED_FIELDS",
    "NOT_AUDITED",
    "OBJECT_TYPES",
    "VerifyResult",
    "any_pending",
    "can_write_with_event",
    "canonical",
    "chain",
    "checkpoints",
    "current_actor",
    "digest",
    "entry_mac",
    "event_insert_from",
    "event_params",
    "event_values",
    "execute_autocommitted",
    "insert_with_event",
    "install_session_hooks",
    "pending",
    "record",
    "recording",
    "remove_session_hooks",
    "seal",
    "seal_all",
    "sealer",
    "sealing_mode",
    "set_actor_provider",
    "verify",
]
