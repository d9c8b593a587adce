"""Checking the signature an online application carries (it stands in for the scanned
consent form): is the stored content the one that was signed (hash and seal), does the
signature still verify over it, who signed (the name on the certificate: personal data,
for staff who may see the case only, and audited), when, and the certificate's status now
(OCSP, else the CRL, through ``app.services.certauth``)."""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.models.notify import CaseSignature
from app.services import certauth
from app.services.actors import Actor
from app.services.certauth.card import common_name
from app.services.command import transaction
from app.services.errors import NotFound
from app.services.notify import attachments
from app.services.notify.cases import visible_case
from app.services.notify.records import audit_case

NO_SIGNATURE = _l("This case carries no signed online application.")
# The reasons certauth gives about the signature itself (the others are about the certificate now).
_SIGNATURE_REASONS = frozenset({"malformed", "no_certificate", "wrong_content", "bad_signature"})


@dataclass(frozen=True)
class SignatureCheck:
    case_no: str
    intact: bool  # the stored content is the one registered (SHA-256 and seal)
    signature_valid: bool  # the signature verifies over that content
    signer_name: str
    signer_kind: str
    signer_serial: str
    signer_issuer: str
    signed_at: datetime.datetime | None
    verified_at: datetime.datetime
    verified_by: str | None
    status: str  # good | revoked | expired | untrusted | unknown | invalid
    status_by: str | None  # how the status was checked now: ocsp | ocsp-cache | crl
    status_message: str | None
    content: str
    checked_at: datetime.datetime


def _signer_name(der: bytes, fingerprint: str) -> str:
    try:
        for cert in pkcs7.load_der_pkcs7_certificates(der):
            if hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest() == fingerprint:
                return common_name(cert.subject)
    except ValueError:
        return ""
    return ""


def check_signature(session, actor: Actor, case_no) -> SignatureCheck:
    """The online application's signature checked now, for those who may see the case. Audited
    (the signer's name is personal data). Raises NotFound."""
    case, _dispatches = visible_case(session, actor, case_no)
    sig = session.scalar(select(CaseSignature).where(CaseSignature.case_id == case.id))
    if sig is None:
        raise NotFound(NO_SIGNATURE)
    content = (sig.content or "").encode("utf-8")
    der = bytes(sig.pkcs7)
    intact = attachments.verify(content, sig.content_sha256, sig.seal)
    valid, status, status_by, message = True, "good", None, None
    try:
        card = certauth.verify_signature(der, content)
        status_by = card.checked_by or None
    except certauth.CardRefused as exc:
        message = str(exc)
        if exc.reason in _SIGNATURE_REASONS:
            valid, status = False, "invalid"
        else:
            status = {"revoked": "revoked", "expired": "expired", "not_yet_valid": "expired",
                      "revocation_unknown": "unknown"}.get(exc.reason, "untrusted")  # fmt: skip
    now = datetime.datetime.utcnow()
    with transaction(session):
        audit_case(session, actor, "signature_check", case,
                   detail={"intact": intact, "valid": valid, "status": status})  # fmt: skip
        return SignatureCheck(
            case_no=case.case_no, intact=intact, signature_valid=valid,
            signer_name=_signer_name(der, sig.signer_fingerprint),
            signer_kind=sig.signer_kind, signer_serial=sig.signer_serial, signer_issuer=sig.signer_issuer,
            signed_at=sig.signed_at, verified_at=sig.verified_at, verified_by=sig.verified_by, status=status,
            status_by=status_by, status_message=message, content=sig.content or "", checked_at=now,
        )  # fmt: skip
