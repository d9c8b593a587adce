"""Registering a transfer, and the configuration file the kit encrypts with."""

from __future__ import annotations

import datetime
import json
import uuid
from dataclasses import dataclass

from asn1crypto import pem as asn1_pem
from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.lib.rocdate import format_roc
from app.models.transfer import StaffCertificate, TransferCase, TransferEvent, TransferItem, TransferRecipient
from app.services import audit
from app.services.actors import Actor
from app.services.command import transaction
from app.services.errors import Conflict, Forbidden, InvalidInput
from app.services.roles import TRANSFER_FILES, holders_of
from app.services.transfer import pki, rules
from app.services.transfer.answers import ConfigFile, ItemRecipient, Registered, UsableItem, case_answer, party

CONFIG_FORMAT = "transfer-config/1"
MAX_RECORDS = 10**9


@dataclass
class TransferDraft:
    """A registration as loaded by ``app.schemas.transfer.TransferDraftSchema``."""

    item_id: int
    source: str
    record_count: int
    upload_no: str = ""
    remarks: str = ""
    recipient_cert_ids: list[int] | None = None


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def add_event(session, actor: Actor, case: TransferCase, action: str, note=None) -> None:
    """The case's timeline entry, flushed (a concurrent change of the case is a Conflict)."""
    session.add(
        TransferEvent(
            case_id=case.id, at=now(), actor_id=actor.user_id, agency_id=actor.agency_id, action=action, note=note
        )
    )
    rules.flush(session)


def record_step(session, actor: Actor, case: TransferCase, action: str, detail=None, note=None) -> None:
    """The case's timeline entry and its audit event for one step."""
    add_event(session, actor, case, action, note)
    audit_step(session, actor, action, case, detail)


def audit_step(session, actor: Actor, action: str, case: TransferCase, detail=None) -> None:
    audit.record(
        session,
        f"transfer.{action}",
        object_type="TransferCase",
        object_id=case.id,
        detail={"upload_no": case.upload_no, **(detail or {})},
        actor=actor,
    )


# --- what the registration form offers ----------------------------------------------------------


def items_for(session, actor: Actor) -> list[TransferItem]:
    """Active transfer items the actor's agency sends."""
    stmt = select(TransferItem).where(TransferItem.active.is_(True), TransferItem.sending_agency_id == actor.agency_id)
    return session.scalars(stmt.order_by(TransferItem.id)).all()


def usable_items(session, actor: Actor) -> list[UsableItem]:
    """Command (read-only): the active transfer items a transfer officer's agency may send,
    each with the receiving staff's valid encryption certificates (what registering needs)."""
    rules.require_officer(actor)
    with transaction(session):
        return [
            UsableItem(
                id=item.id,
                description=item.description,
                ftp_allowed=bool(item.ftp_allowed),
                sending_agency=party(item.sending_agency),
                receiving_agency=party(item.receiving_agency),
                recipients=tuple(
                    ItemRecipient(c.id, c.user.username, c.user.get_full_name(), c.fingerprint)
                    for c in proposed_recipients(session, item)
                ),
            )
            for item in items_for(session, actor)
        ]


def proposed_recipients(session, item: TransferItem) -> list[StaffCertificate]:
    """Every transfer officer of the receiving agency with a valid encryption certificate."""
    staff = holders_of(session, TRANSFER_FILES, agency_id=item.receiving_agency_id)
    return pki.usable(session, [u.id for u in staff], "encrypt")


def sender_certificate(session, actor: Actor) -> StaffCertificate | None:
    """The actor's own valid signing certificate, if any."""
    certs = pki.usable(session, [actor.user_id], "sign") if actor.signed_in else []
    return certs[0] if certs else None


def signing_certificate(session, actor: Actor) -> StaffCertificate:
    cert = sender_certificate(session, actor)
    if cert is None:
        raise InvalidInput(_l("Register your own valid signing certificate before registering a transfer."))
    return cert


# --- register -------------------------------------------------------------------------------------


def _checked_fields(session, draft: TransferDraft) -> tuple[str, int, str]:
    source = (draft.source or "").strip()
    if not source or len(source) > 200:
        raise InvalidInput(_l("Name the sending source (at most 200 characters)."))
    count = draft.record_count
    if isinstance(count, bool) or not isinstance(count, int):
        raise InvalidInput(_l("The record count must be a whole number."))
    if count < 1 or count > MAX_RECORDS:
        raise InvalidInput(_l("The record count must be between 1 and 1,000,000,000."))
    upload_no = (draft.upload_no or "").strip()
    if upload_no and (len(upload_no) > 40 or not all(c.isascii() and (c.isalnum() or c in "-_") for c in upload_no)):
        raise InvalidInput(_l("The upload number may hold letters, digits, - and _ only (at most 40)."))
    if upload_no and session.scalar(select(TransferCase.id).where(TransferCase.upload_no == upload_no)):
        raise Conflict(_l("Upload number %(no)s is already in use."), no=upload_no)
    return source, count, upload_no


def _chosen(session, item: TransferItem, ids: list[int] | None) -> list[StaffCertificate]:
    proposed = {c.id: c for c in proposed_recipients(session, item)}
    if not proposed:
        raise InvalidInput(_l("No one at the receiving agency has a valid encryption certificate yet."))
    if ids is None:
        return list(proposed.values())
    if not ids:
        raise InvalidInput(_l("Choose at least one receiving staff member."))
    if any(i not in proposed for i in ids):
        raise InvalidInput(_l("A chosen recipient has no valid encryption certificate at the receiving agency."))
    return [proposed[i] for i in dict.fromkeys(ids)]


def _item(session, actor: Actor, item_id) -> TransferItem:
    item = session.get(TransferItem, item_id) if isinstance(item_id, int) and 0 < item_id <= rules.MAX_ID else None
    if item is None or not item.active:
        raise InvalidInput(_l("Choose an active transfer item."))
    if item.sending_agency_id != actor.agency_id:
        raise Forbidden(_l("Your agency is not the sending agency of this transfer item."))
    return item


def _new_case(session, actor: Actor, draft: TransferDraft) -> TransferCase:
    item = _item(session, actor, draft.item_id)
    source, count, upload_no = _checked_fields(session, draft)
    sender_cert = signing_certificate(session, actor)
    chosen = _chosen(session, item, draft.recipient_cert_ids)
    case = TransferCase(
        item_id=item.id,
        upload_no=upload_no or f"pending-{uuid.uuid4().hex}",
        source=source,
        record_count=count,
        remarks=(draft.remarks or "").strip() or None,
        sending_agency_id=item.sending_agency_id,
        receiving_agency_id=item.receiving_agency_id,
        sender_id=actor.user_id,
        sender_cert_id=sender_cert.id,
        state="registered",
        registered_at=now(),
    )
    session.add(case)
    session.flush()
    if not upload_no:
        case.upload_no = f"TR{format_roc(case.registered_at, 'compact')}{case.id:06d}"
    for cert in chosen:
        session.add(TransferRecipient(case_id=case.id, user_id=cert.user_id, certificate_id=cert.id))
    record_step(session, actor, case, "registered", {"recipients": len(chosen), "records": count})
    return case


def register(session, actor: Actor, draft: TransferDraft) -> Registered:
    """Command: register a transfer; returns the case (as its sender sees it) and its configuration file."""
    rules.require_officer(actor)
    with transaction(session):
        case = _new_case(session, actor, draft)
        # Built before the commit, which would expire every loaded row and reload them one by one.
        return Registered(case=case_answer(case, actor), config=config_file(case))


def config_file(case: TransferCase) -> dict:
    """The transfer configuration file the kit reads (`--config`)."""
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
    return {
        "format": CONFIG_FORMAT,
        "case_id": case.id,
        "upload_no": case.upload_no,
        "item": case.item.description,
        "sending_agency": case.sending_agency.name,
        "receiving_agency": case.receiving_agency.name,
        "sender_cert_sha256": case.sender_cert.fingerprint,
        "recipients": [
            {
                "name": r.user.get_full_name(),
                "agency": case.receiving_agency.name,
                "cert_pem": pki.pem(r.certificate),
                "cert_sha256": r.certificate.fingerprint,
            }
            for r in case.recipients
        ],
        "upload_url": f"{base}/api/v1/transfers/{case.id}/payload",
        **trust_fields(),
    }


def _config_list(name: str) -> list[str]:
    return [u.strip() for u in str(current_app.config.get(name) or "").split(",") if u.strip()]


def trust_fields() -> dict:
    """The trusted roots, the CRLs and where to fetch fresh ones: `decrypt --config FILE` needs nothing else."""
    roots, crls = pki.trust_store()
    return {
        "trust_pem": "".join(asn1_pem.armor("CERTIFICATE", c.dump()).decode() for c in roots),
        "crls_pem": "".join(asn1_pem.armor("X509 CRL", c.dump()).decode() for c in crls),
        "crl_urls": _config_list("TRANSFER_CRL_URLS"),
        "ocsp_urls": _config_list("TRANSFER_OCSP_URLS"),
    }


def config_bytes(config: dict) -> bytes:
    return json.dumps(config, ensure_ascii=False, indent=2).encode()


def download_config(session, actor: Actor, case_id) -> ConfigFile:
    """Command: the configuration file again, for the officers of either agency (audited):
    the sender encrypts with it, the receiver decrypts with it."""
    rules.require_officer(actor)
    with transaction(session):
        case = rules.get_case(session, actor, case_id)
        audit_step(session, actor, "config_downloaded", case)
        return ConfigFile(filename=f"transfer-{case.upload_no}.json", config=config_file(case))
