"""Moving the encrypted files: the payload up and down, the result up and down (commands)."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from flask_babel import lazy_gettext as _l
from sqlalchemy.orm.exc import StaleDataError

from app.models.transfer import TransferCase
from app.services.actors import Actor
from app.services.command import refuse, transaction
from app.services.errors import Conflict, InvalidInput
from app.services.transfer import mail, rules, storage
from app.services.transfer.answers import CaseAnswer, Download, case_answer
from app.services.transfer.registration import add_event, audit_step, now, record_step


def _record_upload(session, actor: Actor, case: TransferCase, stored: storage.Stored, channel: str, kind: str):
    at = now()
    if kind == "payload":
        case.payload_path, case.payload_sha256, case.payload_size = str(stored.path), stored.sha256, stored.size
        case.payload_channel, case.uploaded_at, case.state = channel, at, "uploaded"
    else:
        case.result_path, case.result_sha256, case.result_size = str(stored.path), stored.sha256, stored.size
        case.result_channel, case.processed_at, case.state = channel, at, "processed"
    action = "uploaded" if kind == "payload" else "processed"
    detail = {"channel": channel, "sha256": stored.sha256, "size": stored.size}
    record_step(session, actor, case, action, detail, note=str(rules.CHANNEL_LABELS[channel]))
    mail.notify_upload(session, case, kind)


class _RefusedFile(Exception):
    """The uploaded file itself was refused (cut off, damaged, plaintext, wrong recipients)."""

    def __init__(self, error: InvalidInput, case_id: int):
        super().__init__(error)
        self.error, self.case_id = error, case_id


def _upload(
    session, actor: Actor, case_id, stream: BinaryIO, channel: str, kind: str, declared: int | None
) -> CaseAnswer:
    stored = None
    try:
        with transaction(session):
            case = _case_to_upload(session, actor, case_id, kind)
            expected = [r.certificate for r in case.recipients] if kind == "payload" else [case.sender_cert]
            try:
                stored = storage.keep(stream, expected, case.id, kind, declared)
            except InvalidInput as exc:
                raise _RefusedFile(exc, case.id) from exc
            _record_upload(session, actor, case, stored, channel, kind)
            answer = case_answer(case, actor)
    except _RefusedFile as refused:
        # Nothing was stored and the case is unchanged (rolled back): it stays ready for another try.
        detail = {"kind": kind, "channel": channel}
        raise refuse(
            session,
            refused.error,
            actor,
            "transfer.upload_refused",
            object_type="TransferCase",
            object_id=refused.case_id,
            detail=detail,
        ) from None
    except StaleDataError:
        if stored is not None:
            stored.path.unlink(missing_ok=True)
        raise Conflict(rules.CHANGED_MEANWHILE) from None
    except BaseException:
        if stored is not None:
            stored.path.unlink(missing_ok=True)
        raise
    return answer


def _case_to_upload(session, actor: Actor, case_id, kind: str) -> TransferCase:
    if kind == "payload":
        case = rules.sending_case(session, actor, case_id, _l("Only the sending agency uploads the encrypted file."))
        if case.state != "registered":
            raise Conflict(
                _l("This transfer already has its encrypted file (%(state)s)."), state=rules.STATE_LABELS[case.state]
            )
        return case
    case = rules.receiving_case(session, actor, case_id, _l("Only the receiving agency uploads the result."))
    if case.state != "received":
        raise Conflict(
            _l("A result can be uploaded only after the file was received (now: %(state)s)."),
            state=rules.STATE_LABELS[case.state],
        )
    return case


def upload_payload(
    session, actor: Actor, case_id, stream: BinaryIO, channel: str = "web", declared: int | None = None
) -> CaseAnswer:
    """Command: the sending agency's encrypted file (web, API or FTP); the receivers are told by e-mail.

    ``declared``: the length the sender announced (HTTP Content-Length). A body shorter
    than that, a lost connection, or a file that is not whole CMS to its end is refused
    (InvalidInput, the refusal audited) and changes nothing: the case can be uploaded again."""
    return _upload(session, actor, case_id, stream, channel, "payload", declared)


def upload_result(
    session, actor: Actor, case_id, stream: BinaryIO, channel: str = "web", declared: int | None = None
) -> CaseAnswer:
    """Command: the receiving agency's encrypted result, enveloped for the sender, who is told by e-mail
    (refusals as ``upload_payload``)."""
    return _upload(session, actor, case_id, stream, channel, "result", declared)


def download_payload(session, actor: Actor, case_id) -> Download:
    """Command: the receiving agency downloads the ciphertext; the first download marks it received."""
    refusal = _l("Only the receiving agency downloads the encrypted file.")
    with transaction(session):
        case = rules.receiving_case(session, actor, case_id, refusal)
        if case.state == "registered":
            raise Conflict(_l("Nothing has been uploaded yet."))
        path = storage.existing(case.payload_path)
        first = case.state == "uploaded"
        if first:
            case.state, case.received_at, case.receiver_id = "received", now(), actor.user_id
        add_event(session, actor, case, "received" if first else "downloaded")
        audit_step(session, actor, "payload_downloaded", case, {"sha256": case.payload_sha256})
        return _download(case, actor, path, f"{case.upload_no}.p7m")


def download_result(session, actor: Actor, case_id) -> Download:
    """Command: the sending agency downloads the encrypted result; the first download completes the case."""
    refusal = _l("Only the sending agency downloads the result.")
    with transaction(session):
        case = rules.sending_case(session, actor, case_id, refusal)
        if case.state not in ("processed", "result_received"):
            raise Conflict(_l("The receiving agency has not returned a result yet."))
        path = storage.existing(case.result_path)
        first = case.state == "processed"
        if first:
            case.state, case.result_received_at = "result_received", now()
        add_event(session, actor, case, "result_received" if first else "result_downloaded")
        audit_step(session, actor, "result_downloaded", case, {"sha256": case.result_sha256})
        return _download(case, actor, path, f"{case.upload_no}-result.p7m")


def _download(case: TransferCase, actor: Actor, path: Path, filename: str) -> Download:
    return Download(case=case_answer(case, actor, with_events=False), path=path, filename=filename)
