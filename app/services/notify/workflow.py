"""The receiving agency's workflow on a dispatch, as a table.

    (state, action) -> (next state, capabilities that may do it)

``apply()`` is the only way a dispatch changes state: it checks the table,
the actor's agency and capabilities, the expected version (optimistic
locking), sets the state's timestamp and records the timeline event, in the
caller's transaction (the command in ``dispatches`` owns it and writes the
audit event and the e-mails of the stage).
"""

from __future__ import annotations

import datetime

from flask_babel import lazy_gettext as _l

from app.models.notify import CONTROL_TYPES, CaseEvent, Dispatch
from app.services.actors import Actor
from app.services.errors import Conflict, Forbidden, InvalidInput
from app.services.roles import DISPATCH_HANDLE, DISPATCH_SUPERVISE

_SUPERVISE = frozenset({DISPATCH_SUPERVISE})
_HANDLE = frozenset({DISPATCH_HANDLE})

# (state, action) -> (next state, capabilities of which the actor needs one)
TRANSITIONS: dict[tuple[str, str], tuple[str, frozenset[str]]] = {
    ("sent", "receive"): ("received", _SUPERVISE | _HANDLE),
    ("sent", "assign"): ("assigned", _SUPERVISE),
    ("received", "assign"): ("assigned", _SUPERVISE),
    ("assigned", "assign"): ("assigned", _SUPERVISE),  # reassign before acceptance
    ("assigned", "accept"): ("accepted", _HANDLE),
    ("accepted", "process"): ("processed", _HANDLE),
    ("processed", "close"): ("closed", _SUPERVISE),
    ("processed", "return"): ("accepted", _SUPERVISE),
}
# Actions only the assigned handler may take.
HANDLER_ONLY = ("accept", "process")

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
TIMESTAMP = {
    "received": "received_at",
    "assigned": "assigned_at",
    "accepted": "accepted_at",
    "processed": "processed_at",
    "closed": "closed_at",
}
STALE = _l("Someone else has changed this dispatch in the meantime; reload it and try again.")


def may(actor: Actor, capabilities: frozenset[str]) -> bool:
    return any(actor.can(c) for c in capabilities)


def allowed_actions(dispatch: Dispatch, actor: Actor) -> list[str]:
    """What this actor may do now (for buttons); receiving happens on first opening."""
    out = []
    for (state, action), (_next, needed) in TRANSITIONS.items():
        if state != dispatch.state or action == "receive" or dispatch.agency_id != actor.agency_id:
            continue
        if not may(actor, needed):
            continue
        if action in HANDLER_ONLY and dispatch.handler_id != actor.user_id:
            continue
        out.append(action)
    return out


def _event(session, dispatch: Dispatch, actor: Actor, action: str, note: str | None = None) -> None:
    session.add(
        CaseEvent(
            case_id=dispatch.case_id,
            dispatch_id=dispatch.id,
            at=datetime.datetime.utcnow(),
            username=actor.username,
            agency_code=actor.agency_code,
            action=action,
            note=note,
        )
    )


def _rule(dispatch: Dispatch, action: str, actor: Actor, expected_version: int | None) -> str:
    """The next state, or the refusal (another agency, stale version, illegal step, lacking capability)."""
    if dispatch.agency_id != actor.agency_id:
        raise Forbidden(_l("This dispatch belongs to another agency."))
    if expected_version is not None and expected_version != dispatch.version:
        raise Conflict(STALE)
    if dispatch.case is not None and dispatch.case.status == "withdrawn":
        raise Conflict(_l("The citizen withdrew this application: it can no longer be acted on."))
    rule = TRANSITIONS.get((dispatch.state, action))
    if rule is None:
        raise Conflict(
            _l("You cannot %(action)s a dispatch that is %(state)s."),
            action=ACTION_LABELS.get(action, action),
            state=STATE_LABELS.get(dispatch.state, dispatch.state),
        )
    next_state, needed = rule
    if not may(actor, needed):
        raise Forbidden(_l("Your role may not %(action)s a dispatch."), action=ACTION_LABELS.get(action, action))
    if action in HANDLER_ONLY and dispatch.handler_id != actor.user_id:
        raise Forbidden(_l("Only the assigned handler may %(action)s this dispatch."), action=ACTION_LABELS[action])
    return next_state


def _assign(dispatch: Dispatch, actor: Actor, handler, handler_capabilities, now) -> str:
    if handler is None or getattr(handler, "agency_id", None) != actor.agency_id:
        raise InvalidInput(_l("Choose a handler of your own agency."))
    if DISPATCH_HANDLE not in handler_capabilities or not handler.active:
        raise InvalidInput(_l("The chosen user is not an active handler."))
    if dispatch.received_at is None:  # assigning is also opening it
        dispatch.received_at, dispatch.received_by = now, actor.username
    dispatch.supervisor_id = actor.user_id
    dispatch.handler_id = handler.id
    return handler.username


def _process(dispatch: Dispatch, result, control_type, notes) -> str:
    result = (result or "").strip()
    if not result:
        raise InvalidInput(_l("Record the result before submitting it."))
    if control_type not in CONTROL_TYPES:
        raise InvalidInput(_l("Choose the control type: concluded, continuing or refused."))
    if len(result) > 4000 or len(notes or "") > 4000:
        raise InvalidInput(_l("The result or notes are too long."))
    dispatch.result, dispatch.control_type = result, control_type
    dispatch.notes = (notes or "").strip() or dispatch.notes
    return control_type


def _return(dispatch: Dispatch, reason, now) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(_l("Give the reason for returning it."))
    dispatch.return_reason, dispatch.returned_at = reason[:2000], now
    return reason[:2000]


def apply(
    session,
    dispatch: Dispatch,
    action: str,
    actor: Actor,
    *,
    expected_version: int | None = None,
    handler=None,
    handler_capabilities: frozenset[str] = frozenset(),
    result: str | None = None,
    control_type: str | None = None,
    notes: str | None = None,
    reason: str | None = None,
) -> Dispatch:
    """Move a dispatch along the table in the caller's transaction.

    Raises Forbidden (another agency, lacking capability, not your case),
    Conflict (illegal transition or stale version), InvalidInput (missing
    result, handler of another agency...).
    """
    next_state = _rule(dispatch, action, actor, expected_version)
    now = datetime.datetime.utcnow()
    note = None
    if action == "assign":
        note = _assign(dispatch, actor, handler, handler_capabilities, now)
    elif action == "process":
        note = _process(dispatch, result, control_type, notes)
    elif action == "return":
        note = _return(dispatch, reason, now)
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
