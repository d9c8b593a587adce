"""Confidential file transfer between agencies: register, upload, receive, process, return.

The platform never sees plaintext. Each upload (web, API or FTP) is streamed
to a temporary file, checked to be CMS EnvelopedData for exactly the case's
recipients, hashed, and only then renamed into place and registered; a broken
or refused upload leaves nothing behind.

States: registered -> uploaded -> received -> processed -> result_received.
Only the sending and receiving agencies see a case.
"""

from __future__ import annotations

import datetime
import errno
import hashlib
import json
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography import x509
from flask import current_app
from flask_appbuilder.security.sqla.models import Role
from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.exc import StaleDataError

from app.lib.rocdate import format_roc, format_roc_datetime
from app.models.org import PlatformUser
from app.models.transfer import StaffCertificate, TransferCase, TransferEvent, TransferItem, TransferRecipient
from app.services import audit, certificates, outbox
from app.services.actors import Actor
from app.services.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound

ROLE = "Transferor"
CHUNK = 1024 * 1024
CONFIG_FORMAT = "transfer-config/1"

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


class StorageFull(DomainError):
    status = 507


@dataclass
class TransferDraft:
    item_id: int
    source: str
    record_count: object
    upload_no: str = ""
    remarks: str = ""
    recipient_cert_ids: list[int] | None = None


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def _audit(session, actor: Actor, action: str, case: TransferCase, detail: dict | None = None, outcome="ok") -> None:
    audit.record(session, f"transfer.{action}", object_type="TransferCase", object_id=case.id, outcome=outcome,
                 detail={"upload_no": case.upload_no, **(detail or {})}, actor=actor)  # fmt: skip


def _event(session, case: TransferCase, actor: Actor, action: str, note: str | None = None) -> None:
    session.add(TransferEvent(case_id=case.id, at=_now(), actor_id=actor.user_id, agency_id=actor.agency_id,
                              action=action, note=note))  # fmt: skip


def _require_role(actor: Actor) -> None:
    if ROLE not in actor.roles:
        raise Forbidden(_l("Only transfer officers may do this."))


# --- items and recipients ------------------------------------------------------


def items_for(session, actor: Actor) -> list[TransferItem]:
    """Active transfer items the actor's agency sends."""
    return session.scalars(
        select(TransferItem)
        .where(TransferItem.active.is_(True), TransferItem.sending_agency_id == actor.agency_id)
        .order_by(TransferItem.id)
    ).all()  # fmt: skip


def staff_of(session, agency_id: int) -> list[int]:
    """Active transfer officers of an agency."""
    return list(session.scalars(
        select(PlatformUser.id).join(PlatformUser.roles)
        .where(PlatformUser.agency_id == agency_id, PlatformUser.active.is_(True), Role.name == ROLE)
        .distinct()
    ))  # fmt: skip


def proposed_recipients(session, item: TransferItem) -> list[StaffCertificate]:
    """Every transfer officer of the receiving agency with a valid encryption certificate."""
    return certificates.usable(session, staff_of(session, item.receiving_agency_id), "encrypt")


def signing_certificate(session, actor: Actor) -> StaffCertificate:
    certs = certificates.usable(session, [actor.user_id], "sign")
    if not certs:
        raise InvalidInput(_l("Register your own valid signing certificate before registering a transfer."))
    return certs[0]


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


# --- registration ---------------------------------------------------------------


def _count(value) -> int:
    try:
        count = int(str(value).strip())
    except (TypeError, ValueError):
        raise InvalidInput(_l("The record count must be a whole number.")) from None
    if count < 1 or count > 10**9:
        raise InvalidInput(_l("The record count must be between 1 and 1,000,000,000."))
    return count


def register(session, actor: Actor, draft: TransferDraft) -> TransferCase:
    """Register a transfer; the caller commits. Returns the case with its recipients."""
    _require_role(actor)
    item = session.get(TransferItem, int(draft.item_id)) if str(draft.item_id).isdigit() else None
    if item is None or not item.active:
        raise InvalidInput(_l("Choose an active transfer item."))
    if item.sending_agency_id != actor.agency_id:
        raise Forbidden(_l("Your agency is not the sending agency of this transfer item."))
    source = (draft.source or "").strip()
    if not source or len(source) > 200:
        raise InvalidInput(_l("Name the sending source (at most 200 characters)."))
    count = _count(draft.record_count)
    upload_no = (draft.upload_no or "").strip()
    if upload_no and (len(upload_no) > 40 or not all(c.isalnum() or c in "-_" for c in upload_no)):
        raise InvalidInput(_l("The upload number may hold letters, digits, - and _ only (at most 40)."))
    if upload_no and session.scalar(select(TransferCase.id).where(TransferCase.upload_no == upload_no)):
        raise Conflict(_l("Upload number %(no)s is already in use."), no=upload_no)
    sender_cert = signing_certificate(session, actor)
    proposed = {c.id: c for c in proposed_recipients(session, item)}
    if not proposed:
        raise InvalidInput(_l("No one at the receiving agency has a valid encryption certificate yet."))
    if draft.recipient_cert_ids is None:
        chosen = list(proposed.values())
    else:
        ids = []
        for raw in draft.recipient_cert_ids:
            try:
                ids.append(int(raw))
            except (TypeError, ValueError):
                raise InvalidInput(_l("Choose the receiving staff from the list.")) from None
        if not ids:
            raise InvalidInput(_l("Choose at least one receiving staff member."))
        if any(i not in proposed for i in ids):
            raise InvalidInput(_l("A chosen recipient has no valid encryption certificate at the receiving agency."))
        chosen = [proposed[i] for i in dict.fromkeys(ids)]
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
        registered_at=_now(),
    )
    session.add(case)
    session.flush()
    if not upload_no:
        case.upload_no = f"TR{format_roc(case.registered_at, 'compact')}{case.id:06d}"
    for cert in chosen:
        session.add(TransferRecipient(case_id=case.id, user_id=cert.user_id, certificate_id=cert.id))
    _event(session, case, actor, "registered")
    session.flush()
    _audit(session, actor, "registered", case, {"recipients": len(chosen), "records": count})
    return case


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
                "cert_pem": certificates.pem(r.certificate),
                "cert_sha256": r.certificate.fingerprint,
            }
            for r in case.recipients
        ],
        "upload_url": f"{base}/api/v1/transfers/{case.id}/payload",
    }


def config_for(session, actor: Actor, case_id) -> TransferCase:
    """The case whose configuration file the sending officer downloads (audited; the caller commits)."""
    _require_role(actor)
    case = get_case(session, actor, case_id)
    if actor.agency_id != case.sending_agency_id:
        raise Forbidden(_l("Only the sending agency's transfer officers use this file."))
    _audit(session, actor, "config_downloaded", case)
    return case


def config_bytes(case: TransferCase) -> bytes:
    return json.dumps(config_file(case), ensure_ascii=False, indent=2).encode()


# --- access ---------------------------------------------------------------------


def get_case(session, actor: Actor, case_id) -> TransferCase:
    """A case the actor's agency sends or receives (others: not found, not forbidden)."""
    try:
        case = session.get(TransferCase, int(case_id))
    except (TypeError, ValueError):
        case = None
    if case is None or actor.agency_id not in (case.sending_agency_id, case.receiving_agency_id):
        raise NotFound(_l("No such transfer case for your agency."))
    return case


def find_by_upload_no(session, upload_no: str) -> TransferCase | None:
    return session.scalar(select(TransferCase).where(TransferCase.upload_no == upload_no))


def cases_for(session, actor: Actor, box: str = "all", limit: int = 200) -> list[TransferCase]:
    mine = actor.agency_id
    q = select(TransferCase).options(selectinload(TransferCase.item))
    if box == "outgoing":
        q = q.where(
            TransferCase.sending_agency_id == mine, TransferCase.state.in_(("registered", "uploaded", "received"))
        )
    elif box == "incoming":
        q = q.where(
            TransferCase.receiving_agency_id == mine, TransferCase.state.in_(("uploaded", "received", "processed"))
        )
    elif box == "completed":
        q = q.where(TransferCase.sending_agency_id == mine, TransferCase.state.in_(("processed", "result_received")))
    else:
        q = q.where(or_(TransferCase.sending_agency_id == mine, TransferCase.receiving_agency_id == mine))
    return session.scalars(q.order_by(TransferCase.id.desc()).limit(limit)).all()


def notes_visible(case: TransferCase, actor: Actor) -> bool:
    """The receiving agency's notes: for the receiver, and for the sender once the result is back."""
    return actor.agency_id == case.receiving_agency_id or case.state == "result_received"


def allowed_actions(case: TransferCase, actor: Actor) -> list[str]:
    """What the actor may do now (for buttons)."""
    if ROLE not in actor.roles:
        return []
    out = []
    if actor.agency_id == case.sending_agency_id:
        out.append("config")
        if case.state == "registered":
            out.append("upload_payload")
        if case.state in ("processed", "result_received"):
            out.append("download_result")
    if actor.agency_id == case.receiving_agency_id:
        if case.state in ("uploaded", "received", "processed", "result_received"):
            out.append("download_payload")
        if case.state == "received":
            out += ["notes", "upload_result"]
    return out


# --- storage --------------------------------------------------------------------


def _root() -> Path:
    root = Path(current_app.config["TRANSFER_DIR"])
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    return root


def _storage_error(exc: OSError) -> DomainError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull(_l("The platform's storage is full; nothing was registered. Please try again later."))
    return DomainError(_l("The file could not be stored; nothing was registered. Please try again."))


def spool(stream: BinaryIO, max_bytes: int | None = None) -> tuple[Path, str, int]:
    """Copy an upload to a temporary file while hashing it; nothing remains on failure."""
    max_bytes = max_bytes or current_app.config["TRANSFER_MAX_BYTES"]
    digest = hashlib.sha256()
    size = 0
    fd, name = tempfile.mkstemp(dir=_root() / "tmp", suffix=".part")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            while True:
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > max_bytes:
                    raise InvalidInput(_l("The file is larger than the platform accepts."))
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise _storage_error(exc) from exc
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if size == 0:
        path.unlink(missing_ok=True)
        raise InvalidInput(_l("The file is empty."))
    return path, digest.hexdigest(), size


def _recipient_key(cert_der: bytes) -> tuple[bytes, int]:
    cert = x509.load_der_x509_certificate(cert_der)
    return cert.issuer.public_bytes(), cert.serial_number


def check_envelope(path: Path, expected: list[StaffCertificate]) -> None:
    """InvalidInput unless the file is CMS EnvelopedData for exactly these certificates."""
    from app.kit.errors import KitError
    from app.kit.inspect import envelope_recipients

    try:
        with open(path, "rb") as fh:
            found = envelope_recipients(fh)
    except KitError as exc:
        raise InvalidInput(
            _l("The file is not an encrypted file made by the kit (CMS EnvelopedData); plaintext is never accepted.")
        ) from exc
    got = {(bytes(i), int(s)) for i, s in ((r[0], r[1]) for r in found)}
    want = {_recipient_key(c.der) for c in expected}
    if got != want:
        raise InvalidInput(
            _l("The file is encrypted for the wrong people: %(missing)s of the case's recipients cannot open it "
               "and %(extra)s others can. Encrypt it again with this case's configuration file."),
            missing=len(want - got), extra=len(got - want),
        )  # fmt: skip


def _store(session, actor: Actor, case: TransferCase, stream: BinaryIO, channel: str, kind: str) -> TransferCase:
    expected = [r.certificate for r in case.recipients] if kind == "payload" else [case.sender_cert]
    tmp, sha, size = spool(stream)
    final = None
    try:
        check_envelope(tmp, expected)
        folder = _root() / str(case.id)
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"{kind}-{sha[:16]}-{uuid.uuid4().hex[:8]}.p7m"
        os.replace(tmp, final)
        now = _now()
        if kind == "payload":
            case.payload_path, case.payload_sha256, case.payload_size = str(final), sha, size
            case.payload_channel, case.uploaded_at, case.state = channel, now, "uploaded"
        else:
            case.result_path, case.result_sha256, case.result_size = str(final), sha, size
            case.result_channel, case.processed_at, case.state = channel, now, "processed"
        _event(session, case, actor, "uploaded" if kind == "payload" else "processed", str(CHANNEL_LABELS[channel]))
        session.flush()
        _audit(session, actor, "uploaded" if kind == "payload" else "processed", case,
               {"channel": channel, "sha256": sha, "size": size})  # fmt: skip
        _notify(session, case, kind)
    except StaleDataError:
        session.rollback()
        if final:
            final.unlink(missing_ok=True)
        raise Conflict(_l("Someone else has changed this transfer in the meantime; reload it and try again.")) from None
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if final:
            final.unlink(missing_ok=True)
        raise _storage_error(exc) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        if final:
            final.unlink(missing_ok=True)
        raise
    return case


def upload_payload(session, actor: Actor, case_id, stream: BinaryIO, channel: str = "web") -> TransferCase:
    """The sending agency's encrypted file; the caller commits."""
    _require_role(actor)
    case = get_case(session, actor, case_id)
    if actor.agency_id != case.sending_agency_id:
        raise Forbidden(_l("Only the sending agency uploads the encrypted file."))
    if case.state != "registered":
        raise Conflict(_l("This transfer already has its encrypted file (%(state)s)."),
                       state=STATE_LABELS[case.state])  # fmt: skip
    return _store(session, actor, case, stream, channel, "payload")


def upload_result(session, actor: Actor, case_id, stream: BinaryIO, channel: str = "web") -> TransferCase:
    """The receiving agency's encrypted result, enveloped for the sender; the caller commits."""
    _require_role(actor)
    case = get_case(session, actor, case_id)
    if actor.agency_id != case.receiving_agency_id:
        raise Forbidden(_l("Only the receiving agency uploads the result."))
    if case.state != "received":
        raise Conflict(_l("A result can be uploaded only after the file was received (now: %(state)s)."),
                       state=STATE_LABELS[case.state])  # fmt: skip
    return _store(session, actor, case, stream, channel, "result")


def _open(path: str | None) -> Path:
    if not path or not Path(path).exists():
        raise NotFound(_l("The encrypted file is missing from storage; contact the administrator."))
    return Path(path)


def download_payload(session, actor: Actor, case_id) -> tuple[TransferCase, Path]:
    """The receiving agency downloads the ciphertext; the first download marks it received."""
    _require_role(actor)
    case = get_case(session, actor, case_id)
    if actor.agency_id != case.receiving_agency_id:
        raise Forbidden(_l("Only the receiving agency downloads the encrypted file."))
    if case.state == "registered":
        raise Conflict(_l("Nothing has been uploaded yet."))
    path = _open(case.payload_path)
    first = case.state == "uploaded"
    if first:
        case.state, case.received_at, case.receiver_id = "received", _now(), actor.user_id
    _event(session, case, actor, "received" if first else "downloaded")
    _flush(session)
    _audit(session, actor, "payload_downloaded", case, {"sha256": case.payload_sha256})
    return case, path


def download_result(session, actor: Actor, case_id) -> tuple[TransferCase, Path]:
    """The sending agency downloads the encrypted result; the first download completes the case."""
    _require_role(actor)
    case = get_case(session, actor, case_id)
    if actor.agency_id != case.sending_agency_id:
        raise Forbidden(_l("Only the sending agency downloads the result."))
    if case.state not in ("processed", "result_received"):
        raise Conflict(_l("The receiving agency has not returned a result yet."))
    path = _open(case.result_path)
    first = case.state == "processed"
    if first:
        case.state, case.result_received_at = "result_received", _now()
    _event(session, case, actor, "result_received" if first else "result_downloaded")
    _flush(session)
    _audit(session, actor, "result_downloaded", case, {"sha256": case.result_sha256})
    return case, path


def record_notes(session, actor: Actor, case_id, notes: str) -> TransferCase:
    _require_role(actor)
    case = get_case(session, actor, case_id)
    if actor.agency_id != case.receiving_agency_id:
        raise Forbidden(_l("Only the receiving agency records processing notes."))
    if case.state != "received":
        raise Conflict(_l("Notes can be recorded while the file is being processed (now: %(state)s)."),
                       state=STATE_LABELS[case.state])  # fmt: skip
    notes = (notes or "").strip()
    if not notes or len(notes) > 4000:
        raise InvalidInput(_l("Write the processing notes (at most 4,000 characters)."))
    case.notes = notes
    _event(session, case, actor, "noted", notes[:200])
    _flush(session)
    _audit(session, actor, "noted", case, {"length": len(notes)})
    return case


def _flush(session) -> None:
    try:
        session.flush()
    except StaleDataError:
        session.rollback()
        raise Conflict(_l("Someone else has changed this transfer in the meantime; reload it and try again.")) from None


# --- e-mail ----------------------------------------------------------------------


def _notify(session, case: TransferCase, kind: str) -> None:
    when = format_roc_datetime(_now(), seconds=False)
    link = f"{current_app.config['PUBLIC_BASE_URL'].rstrip('/')}/transfer/case/{case.id}"
    if kind == "payload":
        people = [r.user for r in case.recipients]
        subject = f"【機關資料傳遞】{case.sending_agency.name}傳來加密檔案（上傳編號 {case.upload_no}）"
        body = (f"{{name}} 您好：\n\n{case.sending_agency.name}已於 {when} 上傳「{case.item.description}」的加密檔案"
                f"（上傳編號 {case.upload_no}，{case.record_count} 筆）。\n請登入平台下載，並以您的憑證以解密工具解密：\n{link}\n")  # fmt: skip
    else:
        people = [case.sender]
        subject = f"【機關資料傳遞】{case.receiving_agency.name}已回傳處理結果（上傳編號 {case.upload_no}）"
        body = (f"{{name}} 您好：\n\n{case.receiving_agency.name}已於 {when} 回傳「{case.item.description}」的加密處理結果"
                f"（上傳編號 {case.upload_no}）。\n請登入平台下載：\n{link}\n")  # fmt: skip
    for person in people:
        if person.email:
            outbox.enqueue(session, person.email, subject, body.replace("{name}", person.get_full_name()),
                           topic=f"transfer:{case.upload_no}:{kind}")  # fmt: skip
