"""The receiving agency's workflow on a dispatch, as a table.

    (state, action) -> (next state, roles allowed)

``apply()`` is the only way a dispatch changes state: it checks the table,
the actor's agency and role, the expected version (optimistic locking), sets
the state's timestamp, records the timeline event and the audit event, and
queues the e-mails of the stage — all in the caller's transaction.
"""

from __future__ import annotations

import datetime

from flask_babel import lazy_gettext as _l

from app.models.notify import CONTROL_TYPES, CaseEvent, Dispatch
from app.services.actors import Actor
from app.services.errors import Conflict, Forbidden, InvalidInput

# (state, action) -> (next state, roles that may do it)
TRANSITIONS: dict[tuple[str, str], tuple[str, frozenset[str]]] = {
    ("sent", "receive"): ("received", frozenset({"Supervisor", "Handler"})),
    ("sent", "assign"): ("assigned", frozenset({"Supervisor"})),
    ("received", "assign"): ("assigned", frozenset({"Supervisor"})),
    ("assigned", "assign"): ("assigned", frozenset({"Supervisor"})),  # reassign before acceptance
    ("assigned", "accept"): ("accepted", frozenset({"Handler"})),
    ("accepted", "process"): ("processed", frozenset({"Handler"})),
    ("processed", "close"): ("closed", frozenset({"Supervisor"})),
    ("processed", "return"): ("accepted", frozenset({"Supervisor"})),
}

ACTION_LABELS = {
    "receive": _l("receive"),
    "assign": _l("assign"),
    "accept": _l("accept"),
    "process": _l("record the result"),
    "close": _l("close"),
    "return": _l("return"),
}
STATE_LABELS = {
    "sent": _l("sent, not yet opened"),
    "received": _l("received"),
    "assigned": _l("assigned"),
    "accepted": _l("accepted"),
    "processed": _l("processed"),
    "closed": _l("closed"),
}
TIMESTAMP = {"received": "received_at", "assigned": "assigned_at", "accepted": "accepted_at",
             "processed": "processed_at", "closed": "closed_at"}  # fmt: skip


def allowed_actions(dispatch: Dispatch, actor: Actor) -> list[str]:
    """What this actor may do now (for buttons)."""
    out = []
    for (state, action), (_next, roles) in TRANSITIONS.items():
        if state != dispatch.state or not (roles & actor.roles) or dispatch.agency_id != actor.agency_id:
            continue
        if action in ("accept", "process") and dispatch.handler_id != actor.user_id:
            continue
        if action == "receive":
            continue  # receiving happens on first opening
        out.append(action)
    return out


def _event(session, dispatch: Dispatch, actor: Actor, action: str, note: str | None = None) -> None:
    session.add(CaseEvent(case_id=dispatch.case_id, dispatch_id=dispatch.id, at=datetime.datetime.utcnow(),
                          username=actor.username, agency_code=actor.agency_code, action=action, note=note))  # fmt: skip


def apply(session, dispatch: Dispatch, action: str, actor: Actor, *, expected_version: int | None = None,
          handler=None, result: str | None = None, control_type: str | None = None, notes: str | None = None,
          reason: str | None = None) -> Dispatch:  # fmt: skip
    """Move a dispatch along the table; the caller commits.

    Raises Forbidden (another agency, wrong role, not your case), Conflict
    (illegal transition or stale version), InvalidInput (missing result,
    handler of another agency...).
    """
    if dispatch.agency_id != actor.agency_id:
        raise Forbidden(_l("This dispatch belongs to another agency."))
    if expected_version is not None and int(expected_version) != dispatch.version:
        raise Conflict(_l("Someone else has changed this dispatch in the meantime; reload it and try again."))
    rule = TRANSITIONS.get((dispatch.state, action))
    if rule is None:
        raise Conflict(
            _l("You cannot %(action)s a dispatch that is %(state)s."),
            action=ACTION_LABELS.get(action, action),
            state=STATE_LABELS.get(dispatch.state, dispatch.state),
        )
    next_state, roles = rule
    if not roles & actor.roles:
        raise Forbidden(_l("Your role may not %(action)s a dispatch."), action=ACTION_LABELS.get(action, action))
    now = datetime.datetime.utcnow()
    note = None
    if action == "assign":
        if handler is None or getattr(handler, "agency_id", None) != actor.agency_id:
            raise InvalidInput(_l("Choose a handler of your own agency."))
        if "Handler" not in {r.name for r in handler.roles} or not handler.active:
            raise InvalidInput(_l("The chosen user is not an active handler."))
        if dispatch.received_at is None:  # assigning is also opening it
            dispatch.received_at, dispatch.received_by = now, actor.username
        dispatch.supervisor_id = actor.user_id
        dispatch.handler_id = handler.id
        note = handler.username
    elif action in ("accept", "process"):
        if dispatch.handler_id != actor.user_id:
            raise Forbidden(_l("Only the assigned handler may %(action)s this dispatch."),
                            action=ACTION_LABELS[action])  # fmt: skip
        if action == "process":
            result = (result or "").strip()
            if not result:
                raise InvalidInput(_l("Record the result before submitting it."))
            if control_type not in CONTROL_TYPES:
                raise InvalidInput(_l("Choose the control type: closed or continuing."))
            if len(result) > 4000 or len(notes or "") > 4000:
                raise InvalidInput(_l("The result or notes are too long."))
            dispatch.result, dispatch.control_type = result, control_type
            dispatch.notes = (notes or "").strip() or dispatch.notes
            note = control_type
    elif action == "return":
        reason = (reason or "").strip()
        if not reason:
            raise InvalidInput(_l("Give the reason for returning it."))
        dispatch.return_reason, dispatch.returned_at = reason[:2000], now
        note = reason[:2000]
    elif action == "receive":
        dispatch.received_by = actor.username
    dispatch.state = next_state
    stamp = TIMESTAMP.get(next_state)
    if stamp and not (action == "receive" and dispatch.received_at):
        setattr(dispatch, stamp, now)
    if action == "close":
        dispatch.supervisor_id = dispatch.supervisor_id or actor.user_id
    _event(session, dispatch, actor, action, note)
    return dispatch
