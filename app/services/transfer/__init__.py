"""Confidential file transfer between agencies: register, upload, receive, process, return.

The platform never sees plaintext. Each upload (web, API or FTP) is streamed
to a temporary file, checked to be as long as its sender declared and to be
CMS EnvelopedData, whole to its end, for exactly the case's recipients, hashed,
and only then renamed into place and registered; a cut-off, broken or refused
upload leaves nothing behind and changes nothing. ``storage.sweep`` removes
what killed processes leave.

States: registered -> uploaded -> received -> processed -> result_received.
Only the sending and receiving agencies see a case.

Each business operation is one command that checks the actor's capability
(``transfer_files``) and agency, owns its transaction, writes its audit event
and outbox mail inside it, and returns what this actor may see:

- ``registration.register``, ``registration.download_config``
- ``files.upload_payload``, ``files.download_payload``, ``files.upload_result``, ``files.download_result``
- ``notes.record_notes``
- ``certificates.upload_certificate``, ``certificates.withdraw_certificate``, ``certificates.recheck_certificates``

Reads: ``cases.view_case``, ``cases.list_cases``, ``certificates.my_certificates``.
Rules: ``rules`` (who, when), ``pki`` (certificate checks), ``storage`` (files), ``mail``.
"""

from app.services.transfer.answers import CaseAnswer, ConfigFile, Download, Registered
from app.services.transfer.cases import find_by_upload_no, list_cases, view_case
from app.services.transfer.certificates import (
    CertificateAnswer,
    my_certificates,
    recheck_certificates,
    upload_certificate,
    withdraw_certificate,
)
from app.services.transfer.files import download_payload, download_result, upload_payload, upload_result
from app.services.transfer.notes import record_notes
from app.services.transfer.registration import (
    TransferDraft,
    config_bytes,
    config_file,
    download_config,
    items_for,
    proposed_recipients,
    register,
    sender_certificate,
    signing_certificate,
    usable_items,
)
from app.services.transfer.rules import (
    ACTION_LABELS,
    BOXES,
    CHANNEL_LABELS,
    ROLE,
    STATE_LABELS,
    allowed_actions,
    get_case,
    notes_visible,
    validate_item,
)
from app.services.transfer.storage import StorageFull, check_envelope, sweep, sweep_parts

__all__ = [
    "ACTION_LABELS",
    "BOXES",
    "CHANNEL_LABELS",
    "ROLE",
    "STATE_LABELS",
    "CaseAnswer",
    "CertificateAnswer",
    "ConfigFile",
    "Download",
    "Registered",
    "StorageFull",
    "TransferDraft",
    "allowed_actions",
    "check_envelope",
    "config_bytes",
    "config_file",
    "download_config",
    "download_payload",
    "download_result",
    "find_by_upload_no",
    "get_case",
    "items_for",
    "list_cases",
    "my_certificates",
    "notes_visible",
    "proposed_recipients",
    "recheck_certificates",
    "record_notes",
    "register",
    "sender_certificate",
    "signing_certificate",
    "sweep",
    "sweep_parts",
    "upload_certificate",
    "upload_payload",
    "upload_result",
    "usable_items",
    "validate_item",
    "view_case",
    "withdraw_certificate",
]
