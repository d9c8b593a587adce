"""Staff certificates, the commands: upload (checked; a refusal is audited), withdraw, re-check."""

from __future__ import annotations

import base64
import binascii
import datetime
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.models.org import PlatformUser
from app.models.transfer import StaffCertificate
from app.services import actors, audit
from app.services.actors import Actor
from app.services.command import refuse, transaction
from app.services.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from app.services.transfer import pki, rules

OBJECT = "StaffCertificate"


@dataclass(frozen=True)
class CertificateAnswer:
    id: int
    serial: str
    subject: str
    issuer: str
    fingerprint: str
    usage: tuple[str, ...]
    status: str
    status_reason: str | None
    not_before: datetime.datetime
    not_after: datetime.datetime


def certificate_answer(cert: StaffCertificate) -> CertificateAnswer:
    return CertificateAnswer(
        id=cert.id,
        serial=cert.serial,
        subject=cert.subject,
        issuer=cert.issuer,
        fingerprint=cert.fingerprint,
        usage=tuple(u for u in cert.usage.split(",") if u),
        status=cert.status,
        status_reason=cert.status_reason,
        not_before=cert.not_before,
        not_after=cert.not_after,
    )


def my_certificates(session, actor: Actor) -> list[CertificateAnswer]:
    """The actor's own certificates, newest first."""
    return [certificate_answer(c) for c in pki.of_user(session, actor.user_id)] if actor.signed_in else []


def _bytes(data: bytes | str | None) -> bytes:
    """A certificate file's bytes; text is PEM or base64 DER (the API's JSON)."""
    if not data:
        raise InvalidInput(_l("Choose your certificate file (.cer, .crt or .pem)."))
    if isinstance(data, bytes):
        return data
    text = data.strip()
    if text.startswith("-----BEGIN"):
        return text.encode()
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(_l("This file is not an X.509 certificate (PEM or DER).")) from exc


def _register(session, actor: Actor, user_id: int, data: bytes | str | None) -> CertificateAnswer:
    if not actor.signed_in or not (rules.is_officer(actor) or actor.can(actors.ALL_AGENCIES)):
        raise Forbidden(_l("Only transfer officers may do this."))
    if user_id != actor.user_id and not actor.can(actors.ALL_AGENCIES):
        raise Forbidden(_l("You may only register your own certificate."))
    user = session.get(PlatformUser, user_id)
    if user is None:
        raise NotFound(_l("No such user."))
    checked = pki.check(_bytes(data))
    if session.scalar(select(StaffCertificate.id).where(StaffCertificate.fingerprint == checked.fingerprint)):
        raise Conflict(_l("This certificate is already registered."))
    cert = pki.record(session, user_id, checked)
    session.flush()
    detail = {"user": user.username, "fingerprint": checked.fingerprint, "usage": checked.usage}
    audit.record(session, "certificate.registered", object_type=OBJECT, object_id=cert.id, detail=detail, actor=actor)
    return certificate_answer(cert)


def upload_certificate(
    session, actor: Actor, data: bytes | str | None, user_id: int | None = None
) -> CertificateAnswer:
    """Command: check and record a staff certificate (one's own; another's needs ALL_AGENCIES).

    A refusal (not a certificate, expired, revoked, untrusted, unsuitable,
    already registered) is audited with its reason and raised.
    """
    try:
        with transaction(session):
            return _register(session, actor, actor.user_id if user_id is None else user_id, data)
    except DomainError as exc:
        raise refuse(
            session, exc, actor, "certificate.refused", object_type=OBJECT, detail={"reason": str(exc)}
        ) from None


def withdraw_certificate(session, actor: Actor, cert_id: int) -> CertificateAnswer:
    """Command: the owner (or ALL_AGENCIES) withdraws a certificate; nothing new is encrypted for it."""
    with transaction(session):
        cert = session.get(StaffCertificate, cert_id) if 0 < cert_id <= rules.MAX_ID else None
        if cert is None:
            raise NotFound(_l("No such certificate."))
        if cert.user_id != actor.user_id and not actor.can(actors.ALL_AGENCIES):
            raise Forbidden(_l("This certificate belongs to someone else."))
        cert.status = "withdrawn"
        cert.status_reason = str(_l("Withdrawn by its owner."))
        audit.record(session, "certificate.withdrawn", object_type=OBJECT, object_id=cert.id, actor=actor)
        return certificate_answer(cert)


def recheck_certificates(session, actor: Actor, certs: list[StaffCertificate] | None = None) -> dict[str, int]:
    """Command: re-check certificates (default: every valid one) against today's date and the CRLs."""
    if not actor.can(actors.ALL_AGENCIES):
        raise Forbidden(_l("Only administrators re-check the certificate registry."))
    with transaction(session):
        counts = pki.recheck(session, certs)
        audit.record(session, "certificate.rechecked", object_type=OBJECT, detail=counts, actor=actor)
    return counts
