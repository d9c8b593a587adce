"""What every notification command shares: reading a row by an id from the
outside (bounded to 64 bits), and writing the case's audit event."""

from __future__ import annotations

from app.models.notify import Dispatch, NotificationCase
from app.services import audit
from app.services.actors import Actor

MAX_ID = 2**63 - 1


def row(session, model, pk):
    """The row with this id, or None (also for ids no column can hold)."""
    if isinstance(pk, bool) or not isinstance(pk, int) or not 0 < pk <= MAX_ID:
        return None
    return session.get(model, pk)


def audit_case(
    session,
    actor: Actor,
    action: str,
    case: NotificationCase,
    dispatch: Dispatch | None = None,
    detail: dict | None = None,
) -> None:
    """The audit event of a case or dispatch command, in the command's transaction (no personal data)."""
    audit.record(
        session,
        action,
        object_type="Dispatch" if dispatch else "NotificationCase",
        object_id=dispatch.id if dispatch else case.id,
        detail={"case_no": case.case_no, **(detail or {})},
        actor=actor,
    )
