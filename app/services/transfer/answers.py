"""What a viewer is shown of a transfer case: a snapshot shaped for that actor.

Built inside the command's transaction (before its commit expires the rows),
the same for the screen and the API (``app.schemas.transfer`` dumps it):
the receiving agency's notes only for whom ``rules.notes_visible`` allows,
and the actions this viewer may take now.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from app.models.transfer import TransferCase
from app.services.actors import Actor
from app.services.transfer import rules


@dataclass(frozen=True)
class Party:
    code: str
    name: str


@dataclass(frozen=True)
class Item:
    id: int
    description: str
    ftp_allowed: bool


@dataclass(frozen=True)
class Recipient:
    username: str
    name: str
    cert_sha256: str


@dataclass(frozen=True)
class ItemRecipient:
    """A certificate a transfer may be encrypted for (its id goes in the draft's recipient_cert_ids)."""

    cert_id: int
    username: str
    name: str
    cert_sha256: str


@dataclass(frozen=True)
class UsableItem:
    """A transfer item the actor's agency may send, with whom it goes to."""

    id: int
    description: str
    ftp_allowed: bool
    sending_agency: Party
    receiving_agency: Party
    recipients: tuple[ItemRecipient, ...]


@dataclass(frozen=True)
class StoredFile:
    channel: str | None
    sha256: str | None
    size: int | None


@dataclass(frozen=True)
class Event:
    at: datetime.datetime
    agency: str | None
    username: str | None
    action: str
    note: str | None


@dataclass(frozen=True)
class CaseAnswer:
    id: int
    upload_no: str
    item: Item
    sending_agency: Party
    receiving_agency: Party
    source: str
    record_count: int
    remarks: str | None
    state: str
    sender: str
    sender_name: str
    receiver: str | None
    recipients: tuple[Recipient, ...]
    payload: StoredFile
    result: StoredFile
    notes: str | None  # None when this viewer may not see them
    registered_at: datetime.datetime
    uploaded_at: datetime.datetime | None
    received_at: datetime.datetime | None
    processed_at: datetime.datetime | None
    result_received_at: datetime.datetime | None
    allowed_actions: tuple[str, ...]
    events: tuple[Event, ...]


@dataclass(frozen=True)
class Registered:
    case: CaseAnswer
    config: dict


@dataclass(frozen=True)
class ConfigFile:
    filename: str
    config: dict


@dataclass(frozen=True)
class Download:
    case: CaseAnswer
    path: Path
    filename: str
    mimetype: str = "application/pkcs7-mime"


def party(agency) -> Party:
    return Party(code=agency.code, name=agency.name)


def case_answer(case: TransferCase, actor: Actor, with_events: bool = True) -> CaseAnswer:
    """The case as ``actor`` may see it."""
    events = tuple(
        Event(
            at=e.at,
            agency=e.agency.name if e.agency else None,
            username=e.actor.username if e.actor else None,
            action=e.action,
            note=e.note,
        )
        for e in case.events
    )
    return CaseAnswer(
        id=case.id,
        upload_no=case.upload_no,
        item=Item(id=case.item_id, description=case.item.description, ftp_allowed=case.item.ftp_allowed),
        sending_agency=party(case.sending_agency),
        receiving_agency=party(case.receiving_agency),
        source=case.source,
        record_count=case.record_count,
        remarks=case.remarks,
        state=case.state,
        sender=case.sender.username,
        sender_name=case.sender.get_full_name(),
        receiver=case.receiver.username if case.receiver else None,
        recipients=tuple(
            Recipient(username=r.user.username, name=r.user.get_full_name(), cert_sha256=r.certificate.fingerprint)
            for r in case.recipients
        ),
        payload=StoredFile(case.payload_channel, case.payload_sha256, case.payload_size),
        result=StoredFile(case.result_channel, case.result_sha256, case.result_size),
        notes=case.notes if rules.notes_visible(case, actor) else None,
        registered_at=case.registered_at,
        uploaded_at=case.uploaded_at,
        received_at=case.received_at,
        processed_at=case.processed_at,
        result_received_at=case.result_received_at,
        allowed_actions=tuple(rules.allowed_actions(case, actor)),
        events=events if with_events else (),
    )
