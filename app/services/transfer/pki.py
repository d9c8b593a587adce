"""Staff certificates, the rules: checked on upload (chain, dates, key usage, CRLs), kept with their status.

The trusted CAs and the CRLs are configuration (TRANSFER_CA_BUNDLE,
TRANSFER_CRL_FILES): a county points them at the government PKI's files.
Path and revocation checks use pyhanko-certvalidator with revocation_mode
"require" whenever CRLs are configured.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import crl as asn1_crl
from asn1crypto import pem as asn1_pem
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from flask import current_app
from flask_babel import lazy_gettext as _l
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator import errors as cv_errors
from sqlalchemy import select

from app.models.transfer import StaffCertificate
from app.services.errors import InvalidInput

STATUS_LABELS = {
    "valid": _l("valid"),
    "revoked": _l("revoked"),
    "expired": _l("expired"),
    "withdrawn": _l("withdrawn"),
}
USAGE_LABELS = {"sign": _l("signing"), "encrypt": _l("encryption")}


@dataclass(frozen=True)
class Checked:
    """What the platform learned from a certificate file."""

    der: bytes
    serial: str
    issuer: str
    subject: str
    common_name: str
    not_before: datetime.datetime
    not_after: datetime.datetime
    fingerprint: str
    usage: str


def fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def parse(data: bytes) -> x509.Certificate:
    """A certificate from PEM or DER bytes, or InvalidInput saying it is not one."""
    try:
        if b"-----BEGIN" in data[:200] or data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise InvalidInput(_l("This file is not an X.509 certificate (PEM or DER).")) from exc


def _name(name: x509.Name) -> str:
    return name.rfc4514_string()[:500]


def _cn(name: x509.Name) -> str:
    attrs = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


def _usage(cert: x509.Certificate) -> str:
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return "sign,encrypt"  # RFC 5280: no extension, no restriction
    usage = []
    if ku.digital_signature or ku.content_commitment:
        usage.append("sign")
    if ku.key_encipherment:
        usage.append("encrypt")
    return ",".join(usage)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _pem_blocks(data: bytes) -> list[bytes]:
    if asn1_pem.detect(data):
        return [der for _type, _headers, der in asn1_pem.unarmor(data, multiple=True)]
    return [data] if data else []


def trust_store() -> tuple[list[asn1_x509.Certificate], list[asn1_crl.CertificateList]]:
    """The configured trusted CAs and CRLs, read from their files."""
    cfg = current_app.config
    bundle = Path(cfg["TRANSFER_CA_BUNDLE"])
    roots = [asn1_x509.Certificate.load(der) for der in _pem_blocks(bundle.read_bytes())] if bundle.exists() else []
    crls = []
    for name in filter(None, (p.strip() for p in cfg.get("TRANSFER_CRL_FILES", "").split(","))):
        path = Path(name)
        if path.exists():
            crls.extend(asn1_crl.CertificateList.load(der) for der in _pem_blocks(path.read_bytes()))
    return roots, crls


def _path_problem(cert: x509.Certificate, at: datetime.datetime, store=None) -> tuple[str, object] | None:
    """None when the path to a trusted CA holds; else (status, reason). `store`: trust_store(), read once."""
    bundle, crls = store or trust_store()
    # Self-signed CAs anchor trust; intermediates in the bundle only help build the
    # path (as anchors they would leave their own CRLs without a chain of trust).
    roots = [c for c in bundle if c.self_issued]
    if not roots:
        return "invalid", _l("No trusted certificate authority is configured (TRANSFER_CA_BUNDLE).")
    context = ValidationContext(
        trust_roots=roots,
        other_certs=[c for c in bundle if not c.self_issued],
        crls=crls,
        revocation_mode="require" if crls else "soft-fail",
        moment=at.replace(tzinfo=datetime.UTC),
    )
    validator = CertificateValidator(
        asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)), validation_context=context
    )
    try:
        asyncio.run(validator.async_validate_path())
    except cv_errors.RevokedError:
        return "revoked", _l("The certificate has been revoked by its authority.")
    except cv_errors.ExpiredError:
        return "expired", _l("The certificate has expired.")
    except cv_errors.InsufficientRevinfoError:
        return "invalid", _l("No current revocation list covers this certificate.")
    except cv_errors.PathBuildingError:
        return "invalid", _l("The certificate was not issued by a trusted certificate authority.")
    except cv_errors.PathValidationError:
        return "invalid", _l("The certificate's chain to the trusted authority is not valid.")
    return None


MAX_FILE_BYTES = 64 * 1024


def check(data: bytes, at: datetime.datetime | None = None) -> Checked:
    """Validate a staff certificate file; InvalidInput with the reason when refused."""
    if len(data) > MAX_FILE_BYTES:
        raise InvalidInput(_l("A certificate file is never this large; choose the certificate itself."))
    cert = parse(data)
    now = at or datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    not_before = cert.not_valid_before_utc.replace(tzinfo=None)
    not_after = cert.not_valid_after_utc.replace(tzinfo=None)
    if not_after < now:
        raise InvalidInput(_l("The certificate has expired."))
    if not_before > now:
        raise InvalidInput(_l("The certificate is not valid yet."))
    if _is_ca(cert):
        raise InvalidInput(_l("This is a certificate authority's certificate, not a staff certificate."))
    usage = _usage(cert)
    if not usage:
        raise InvalidInput(_l("The certificate's key usage allows neither signing nor encryption."))
    problem = _path_problem(cert, now)
    if problem:
        raise InvalidInput(problem[1])
    der = cert.public_bytes(serialization.Encoding.DER)
    return Checked(
        der=der,
        serial=format(cert.serial_number, "X"),
        issuer=_name(cert.issuer),
        subject=_name(cert.subject),
        common_name=_cn(cert.subject),
        not_before=not_before,
        not_after=not_after,
        fingerprint=fingerprint(der),
        usage=usage,
    )


def record(session, user_id: int, checked: Checked) -> StaffCertificate:
    """Add the row of a checked certificate (no audit: the upload command audits a user's upload)."""
    cert = StaffCertificate(
        user_id=user_id,
        der=checked.der,
        serial=checked.serial,
        issuer=checked.issuer,
        subject=checked.subject,
        not_before=checked.not_before,
        not_after=checked.not_after,
        fingerprint=checked.fingerprint,
        usage=checked.usage,
        status="valid",
    )
    session.add(cert)
    return cert


def recheck(session, certs: list[StaffCertificate] | None = None) -> dict[str, int]:
    """Re-validate certificates against today's date and CRLs; mark expired/revoked ones (no commit)."""
    if certs is None:
        certs = session.scalars(select(StaffCertificate).where(StaffCertificate.status == "valid")).all()
    counts = {"valid": 0, "expired": 0, "revoked": 0, "invalid": 0}
    store = trust_store()
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    for cert in certs:
        if cert.status != "valid":
            continue
        if cert.not_after < now:
            status, reason = "expired", _l("The certificate has expired.")
        else:
            status, reason = _path_problem(x509.load_der_x509_certificate(cert.der), now, store) or ("valid", None)
        cert.checked_at = now
        if status != "valid":
            cert.status = "expired" if status == "expired" else "revoked" if status == "revoked" else "withdrawn"
            cert.status_reason = str(reason)
        counts[status] += 1
    return counts


def usable(session, user_ids: list[int], usage: str) -> list[StaffCertificate]:
    """Valid certificates of these users that allow `usage` today."""
    if not user_ids:
        return []
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    rows = session.scalars(
        select(StaffCertificate)
        .where(
            StaffCertificate.user_id.in_(user_ids),
            StaffCertificate.status == "valid",
            StaffCertificate.not_after > now,
            StaffCertificate.not_before <= now,
        )
        .order_by(StaffCertificate.user_id, StaffCertificate.not_after.desc())
    ).all()
    return [c for c in rows if usage in c.usage.split(",")]


def of_user(session, user_id: int) -> list[StaffCertificate]:
    stmt = select(StaffCertificate).where(StaffCertificate.user_id == user_id)
    return session.scalars(stmt.order_by(StaffCertificate.id.desc())).all()


def pem(cert: StaffCertificate) -> str:
    return x509.load_der_x509_certificate(cert.der).public_bytes(serialization.Encoding.PEM).decode()
