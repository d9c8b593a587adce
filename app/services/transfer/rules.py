"""Who may do what to a transfer case, and when.

A transfer officer (the ``transfer_files`` capability, ``app.services.roles``)
acts for their own agency only: the sending agency registers, uploads the
encrypted file and downloads the result; the receiving agency downloads the
file, records notes and uploads the result. Other agencies do not see the case.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from sqlalchemy.orm.exc import StaleDataError

from app.models.transfer import TransferCase, TransferItem
from app.services.actors import Actor
from app.services.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.services.roles import TRANSFER_FILES

ROLE = "Transferor"  # the shipped role holding TRANSFER_FILES; named, never decided on, here
MAX_ID = 2**63 - 1

STATE_LABELS = {
    "registered": _l("registered, waiting for the encrypted file"),
    "uploaded": _l("uploaded, not yet received"),
    "received": _l("received"),
    "processed": _l("processed, result returned"),
    "result_received": _l("result received"),
}
ACTION_LABELS = {
    "registered": _l("registered"),
    "uploaded": _l("encrypted file uploaded"),
    "received": _l("encrypted file downloaded"),
    "downloaded": _l("encrypted file downloaded again"),
    "noted": _l("processing notes recorded"),
    "processed": _l("encrypted result uploaded"),
    "result_received": _l("result downloaded"),
    "result_downloaded": _l("result downloaded again"),
}
CHANNEL_LABELS = {"web": _l("web"), "api": _l("API"), "ftp": _l("FTPS")}
BOXES = ("outgoing", "incoming", "completed", "all")
CHANGED_MEANWHILE = _l("Someone else has changed this transfer in the meantime; reload it and try again.")


def is_officer(actor: Actor) -> bool:
    return actor.can(TRANSFER_FILES)


def require_officer(actor: Actor) -> None:
    if not is_officer(actor):
        raise Forbidden(_l("Only transfer officers may do this."))


def get_case(session, actor: Actor, case_id) -> TransferCase:
    """A case the actor's agency sends or receives (others: not found, not forbidden)."""
    try:
        key = int(case_id)
    except (TypeError, ValueError):
        key = None
    case = session.get(TransferCase, key) if key is not None and 0 < key <= MAX_ID else None
    if case is None or actor.agency_id not in (case.sending_agency_id, case.receiving_agency_id):
        raise NotFound(_l("No such transfer case for your agency."))
    return case


def sending_case(session, actor: Actor, case_id, refusal) -> TransferCase:
    """The case, for an officer of its sending agency (else Forbidden with ``refusal``)."""
    require_officer(actor)
    case = get_case(session, actor, case_id)
    if actor.agency_id != case.sending_agency_id:
        raise Forbidden(refusal)
    return case


def receiving_case(session, actor: Actor, case_id, refusal) -> TransferCase:
    """The case, for an officer of its receiving agency (else Forbidden with ``refusal``)."""
    require_officer(actor)
    case = get_case(session, actor, case_id)
    if actor.agency_id != case.receiving_agency_id:
        raise Forbidden(refusal)
    return case


def flush(session) -> None:
    """Flush, turning a concurrent change of the case (its version) into a Conflict."""
    try:
        session.flush()
    except StaleDataError:
        raise Conflict(CHANGED_MEANWHILE) from None


def notes_visible(case: TransferCase, actor: Actor) -> bool:
    """The receiving agency's notes: for the receiver, and for the sender once the result is back."""
    return actor.agency_id == case.receiving_agency_id or case.state == "result_received"


def allowed_actions(case: TransferCase, actor: Actor) -> list[str]:
    """What the actor may do now (for buttons)."""
    if not is_officer(actor):
        return []
    out = []
    if actor.agency_id == case.sending_agency_id:
        out.append("config")
        if case.state == "registered":
            out.append("upload_payload")
        if case.state in ("processed", "result_received"):
            out.append("download_result")
    if actor.agency_id == case.receiving_agency_id:
        out.append("config")
        if case.state in ("uploaded", "received", "processed", "result_received"):
            out.append("download_payload")
        if case.state == "received":
            out += ["notes", "upload_result"]
    return out


def validate_item(session, item: TransferItem) -> None:
    """A transfer item goes from one agency to another, with a description."""
    sending = item.sending_agency_id or (item.sending_agency.id if item.sending_agency else None)
    receiving = item.receiving_agency_id or (item.receiving_agency.id if item.receiving_agency else None)
    if not sending or not receiving:
        raise InvalidInput(_l("Choose the sending and the receiving agency."))
    if sending == receiving:
        raise InvalidInput(_l("The sending and the receiving agency must differ."))
    if not (item.description or "").strip():
        raise InvalidInput(_l("Describe what is transferred."))
