"""Is the signature good and the signer trusted? pyHanko checks the signature over
the signed attributes against the digest we computed while streaming, and
pyhanko-certvalidator checks the signer's path to a trusted root (with CRLs,
required when given), now.

pyHanko is imported here only, when the content has been streamed: it is the
largest part of the kit's memory.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import logging
from dataclasses import dataclass

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509

from . import ber
from .errors import (
    Damaged,
    DigestMismatch,
    RecipientUnacceptable,
    RevocationUnknown,
    SignatureInvalid,
    SignerExpired,
    SignerKeyUsage,
    SignerRevoked,
    SignerUntrusted,
    UnsupportedAlgorithm,
)
from .signed import SignedParts

SIGNING_USAGES = frozenset({"digital_signature", "non_repudiation"})


@dataclass(frozen=True)
class Signer:
    """Who signed, as printed to the user."""

    common_name: str
    subject: str
    issuer: str
    serial: int
    signing_time: datetime.datetime | None
    cert_sha256: str = ""  # lower-case hex SHA-256 of the certificate's DER, as the platform names it

    def lines(self) -> list[str]:
        when = f"{self.signing_time:%Y-%m-%d %H:%M:%S} UTC" if self.signing_time else "-"
        return [
            f"  簽章者 / signer:       {self.common_name}",
            f"  主體 / subject:        {self.subject}",
            f"  簽發者 / issuer:       {self.issuer}",
            f"  序號 / serial:         {self.serial:#x}",
            f"  簽章時間 / signed at:  {when}",
        ]


def _quiet() -> None:
    # pyHanko logs every refusal as a warning; our one-line message says it already.
    for name in ("pyhanko", "pyhanko_certvalidator"):
        logging.getLogger(name).addHandler(logging.NullHandler())
        logging.getLogger(name).propagate = False


def _find_signer(info: cms.SignerInfo, certs: list[asn1_x509.Certificate]) -> asn1_x509.Certificate:
    sid = info["sid"]
    for cert in certs:
        if sid.name == "issuer_and_serial_number":
            if sid.chosen["serial_number"].native == cert.serial_number and ber.same_name(
                sid.chosen["issuer"], cert.issuer
            ):
                return cert
        elif cert.key_identifier is not None and sid.chosen.native == cert.key_identifier:
            return cert
    raise SignerUntrusted("檔案內沒有簽章者憑證 / the signer's certificate is not in the file")


def check_carried_certificates(certs: list[asn1_x509.Certificate], roots: list[asn1_x509.Certificate]) -> None:
    """Damaged if a certificate carried in the file was altered (its issuer's signature fails).

    Path validation may not need every carried certificate (an intermediate can
    also be a trust root), but a changed byte anywhere must not pass.
    """
    try:
        pool = [(c, c.subject) for c in map(x509.load_der_x509_certificate, {c.dump() for c in certs + roots})]
        carried = [(c, c.issuer) for c in map(x509.load_der_x509_certificate, {c.dump() for c in certs})]
    except Exception:  # cryptography is strict DER: anything it refuses was altered or is malformed
        raise Damaged("檔案內的憑證損毀 / a certificate in the file is malformed") from None
    for cert, issuer_name in carried:
        candidates = [issuer for issuer, subject in pool if subject == issuer_name]
        if candidates and not any(_issued_by(cert, issuer) for issuer in candidates):
            raise Damaged("檔案內的憑證遭竄改 / a certificate in the file was altered")


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except Exception:  # InvalidSignature, or a key/algorithm cryptography cannot check
        return False


def split_trust(trusted: list[asn1_x509.Certificate]) -> tuple[list, list]:
    """Trust anchors and intermediates among the --trust certificates.

    A bundle often holds a root and its intermediates. pyhanko-certvalidator
    cannot check a CRL signed by a CA that is itself an anchor, so only the top of
    each trusted chain is an anchor and the CAs below it are path candidates.
    """
    subjects = {c.subject.hashable for c in trusted}
    top = [c.self_signed in ("yes", "maybe") or c.issuer.hashable not in subjects for c in trusted]
    anchors = [c for c, is_top in zip(trusted, top) if is_top]
    below = [c for c, is_top in zip(trusted, top) if not is_top]
    return anchors or trusted, below


def _signing_time(info: cms.SignerInfo) -> datetime.datetime | None:
    for attr in info["signed_attrs"]:
        if attr["type"].native == "signing_time":
            return attr["values"][0].native
    return None


def _describe(cert: asn1_x509.Certificate, info: cms.SignerInfo) -> Signer:
    subject = cert.subject.native
    return Signer(
        common_name=subject.get("common_name", ""),
        subject=cert.subject.human_friendly,
        issuer=cert.issuer.human_friendly,
        serial=cert.serial_number,
        signing_time=_signing_time(info),
        cert_sha256=hashlib.sha256(cert.dump()).hexdigest(),
    )


async def _validate_path(cert, context) -> None:
    from pyhanko_certvalidator import CertificateValidator

    await CertificateValidator(cert, validation_context=context).async_validate_path()


def _check_path(
    cert: asn1_x509.Certificate,
    certs: list[asn1_x509.Certificate],
    roots: list[asn1_x509.Certificate],
    crls: list[bytes],
    now: datetime.datetime | None,
    signing: bool = True,
) -> None:
    from pyhanko.sign.validation.settings import KeyUsageConstraints
    from pyhanko_certvalidator import ValidationContext
    from pyhanko_certvalidator import errors as cv

    anchors, intermediates = split_trust(roots)
    context = ValidationContext(
        trust_roots=anchors,
        other_certs=certs + intermediates,
        crls=crls or None,
        revocation_mode="require" if crls else "soft-fail",
        allow_fetching=False,
        moment=now,
    )
    try:
        asyncio.run(_validate_path(cert, context))
    except cv.RevokedError as exc:
        raise SignerRevoked(exc.failure_msg) from None
    except (cv.ExpiredError, cv.NotYetValidError) as exc:
        raise SignerExpired(exc.failure_msg) from None
    except cv.InsufficientRevinfoError as exc:
        raise RevocationUnknown(exc.failure_msg) from None
    except cv.PathBuildingError:
        raise SignerUntrusted("找不到通往受信任根憑證的路徑 / no path to a trusted root (--trust)") from None
    except cv.PathValidationError as exc:
        raise SignerUntrusted(exc.failure_msg) from None
    except cv.ValidationError as exc:
        raise SignerUntrusted(exc.failure_msg) from None
    if not signing:
        return
    try:
        KeyUsageConstraints(key_usage=SIGNING_USAGES, match_all_key_usages=False).validate(cert)
    except cv.InvalidCertificateError as exc:
        raise SignerKeyUsage(exc.failure_msg) from None


def verify(
    parts: SignedParts,
    trust_roots: list[bytes],
    crls: list[bytes] | None = None,
    now: datetime.datetime | None = None,
) -> list[Signer]:
    """Every SignerInfo must be intact, validly signed, by a trusted, unrevoked,
    unexpired signing certificate; returns the signers. Raises the KitError naming
    the first problem."""
    from pyhanko.sign.validation.generic_cms import validate_sig_integrity

    _quiet()
    sd = parts.signed_data()
    certs = [c.chosen for c in sd["certificates"] if c.name == "certificate"] if sd["certificates"] else []
    roots = [asn1_x509.Certificate.load(der) for der in trust_roots]
    if not len(sd["signer_infos"]):
        raise SignatureInvalid("沒有簽章 / no signature")
    check_carried_certificates(certs, roots)
    content_type = cms.ContentType(parts.content_type).native
    signers = []
    for info in sd["signer_infos"]:
        if not info["signed_attrs"]:
            raise SignatureInvalid("沒有簽署屬性 / no signed attributes")
        digest_name = info["digest_algorithm"]["algorithm"].native
        if digest_name not in parts.digests:
            raise UnsupportedAlgorithm(f"digest {digest_name}")
        cert = _find_signer(info, certs)
        try:
            intact, valid = validate_sig_integrity(info, cert, content_type, parts.digests[digest_name])
        except Exception as exc:  # pyHanko raises its own errors for malformed or disallowed input
            raise SignatureInvalid(getattr(exc, "failure_message", type(exc).__name__)) from None
        if not intact:
            raise DigestMismatch()
        if not valid:
            raise SignatureInvalid("簽章與內容不符 / the signature does not match")
        _check_path(cert, certs, roots, list(crls or []), now)
        signers.append(_describe(cert, info))
    return signers


_RECIPIENT_PROBLEMS = {
    SignerRevoked: "憑證已撤銷 / the certificate is revoked",
    SignerExpired: "憑證已過期或尚未生效 / the certificate has expired or is not yet valid",
    SignerUntrusted: "憑證不受信任 / the certificate is not trusted",
    RevocationUnknown: "無法確認憑證是否撤銷 / its revocation status is unknown",
}


def check_recipient(
    cert: x509.Certificate, trust_roots: list[bytes], crls: list[bytes], now: datetime.datetime | None = None
) -> None:
    """RecipientUnacceptable unless `cert` chains to `trust_roots` (and, with CRLs, is not revoked)."""
    from cryptography.hazmat.primitives import serialization

    from .keys import describe

    _quiet()
    a = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    roots = [asn1_x509.Certificate.load(der) for der in trust_roots]
    try:
        _check_path(a, [], roots, crls, now, signing=False)
    except tuple(_RECIPIENT_PROBLEMS) as exc:
        raise RecipientUnacceptable(f"{describe(cert)}: {_RECIPIENT_PROBLEMS[type(exc)]}") from None
