"""The card checks: a PKCS#7 sign-in signature (verify_signature) and a card certificate
alone (check_certificate, for client certificates forwarded by a proxy and for rechecks).

A certificate passes when it is within its validity, chains to one of the
configured roots (CERT_TRUST_ROOTS, through CERT_CA_BUNDLE or the certificates
the signature carries), was issued by a CA of a known card kind, allows
digital signatures, and is not revoked (OCSP, then the CRL; neither: refused).
"""

from __future__ import annotations

import datetime
import threading
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import cms
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import ExtensionPolicy, PolicyBuilder, Store, VerificationError
from flask import current_app
from flask_babel import lazy_gettext as _l

from app.services.certauth.card import Card, card_of, issuer_kind
from app.services.certauth.refusals import CardRefused
from app.services.certauth.revocation import check_authority, check_revocation

MAX_SIGNATURE_BYTES = 64 * 1024
MAX_CERTIFICATE_BYTES = 16 * 1024
# Extended key usages a card's certificate may name, when it names any.
PERSON_PURPOSES = frozenset(
    {
        ExtendedKeyUsageOID.CLIENT_AUTH,
        ExtendedKeyUsageOID.EMAIL_PROTECTION,
        ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
    }
)
HASHES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}


@dataclass(frozen=True)
class Settings:
    """Where the trust comes from; `from_config` reads the app's CERT_* settings."""

    trust_roots: str
    ca_bundle: str = ""
    ocsp_timeout: float = 3.0
    ocsp_url: str = ""
    crl_paths: tuple[str, ...] = ()
    ocsp_cache_seconds: float = 300

    @classmethod
    def from_config(cls, config) -> Settings:
        crl = config.get("CERT_CRL_PATHS") or ()
        if isinstance(crl, str):
            crl = [p.strip() for p in crl.split(",")]
        return cls(
            trust_roots=str(config.get("CERT_TRUST_ROOTS") or ""),
            ca_bundle=str(config.get("CERT_CA_BUNDLE") or ""),
            ocsp_timeout=float(config.get("CERT_OCSP_TIMEOUT", 3.0)),
            ocsp_url=str(config.get("CERT_OCSP_URL") or ""),
            crl_paths=tuple(p for p in crl if p),
            ocsp_cache_seconds=float(config.get("CERT_OCSP_CACHE_SECONDS", 300)),
        )


_stores: dict[tuple, tuple[Store, list[x509.Certificate]]] = {}
_stores_lock = threading.Lock()


def _read_pems(path: str) -> tuple[list[x509.Certificate], object]:
    if not path:
        return [], None
    p = Path(path)
    try:
        stamp = p.stat().st_mtime_ns
        return x509.load_pem_x509_certificates(p.read_bytes()), stamp
    except (OSError, ValueError):
        return [], None


def _trust(settings: Settings) -> tuple[Store, list[x509.Certificate]]:
    """The roots as a Store and the bundle's CAs, read again when a file changes."""
    stamps = []
    for path in (settings.trust_roots, settings.ca_bundle):
        try:
            stamps.append(Path(path).stat().st_mtime_ns if path else None)
        except OSError:
            stamps.append(None)
    key = (settings.trust_roots, settings.ca_bundle, *stamps)
    with _stores_lock:
        found = _stores.get(key)
    if found:
        return found
    roots, _ = _read_pems(settings.trust_roots)
    if not roots:
        raise CardRefused(
            "untrusted", _l("No trusted root certificate is configured for card sign-in (CERT_TRUST_ROOTS).")
        )
    bundle, _ = _read_pems(settings.ca_bundle)
    found = (Store(roots), bundle)
    with _stores_lock:
        _stores.clear()  # one configuration at a time in practice; tests switch freely
        _stores[key] = found
    return found


def _settings(settings: Settings | None) -> Settings:
    return settings if settings is not None else Settings.from_config(current_app.config)


def _now(now: datetime.datetime | None) -> datetime.datetime:
    return (now or datetime.datetime.now(datetime.UTC)).astimezone(datetime.UTC)


def _check(cert: x509.Certificate, carried: list[x509.Certificate], settings: Settings, now: datetime.datetime) -> Card:
    if now < cert.not_valid_before_utc:
        raise CardRefused("not_yet_valid")
    if now > cert.not_valid_after_utc:
        raise CardRefused("expired")
    store, bundle = _trust(settings)
    verifier = (
        PolicyBuilder()
        .store(store)
        .time(now)
        .max_chain_depth(4)
        .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ExtensionPolicy.permit_all())
        .build_client_verifier()
    )
    try:
        chain = verifier.verify(cert, [*bundle, *carried]).chain
    except VerificationError:
        raise CardRefused("untrusted") from None
    issuer = chain[1]
    kind = issuer_kind(cert.issuer)
    if kind is None:
        raise CardRefused(
            "untrusted", _l("The certificate's authority is trusted, but it issues no card this platform accepts.")
        )
    try:
        if cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            raise CardRefused("wrong_usage")
    except x509.ExtensionNotFound:
        pass
    try:
        if not cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature:
            raise CardRefused("wrong_usage")
    except x509.ExtensionNotFound:
        pass  # RFC 5280: no key usage, no restriction
    try:
        purposes = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
        if not purposes & PERSON_PURPOSES:
            raise CardRefused("wrong_usage")  # a server's or an OCSP responder's certificate, not a card's
    except x509.ExtensionNotFound:
        pass  # the cards carry none
    checked_by = check_revocation(
        cert,
        issuer,
        timeout=settings.ocsp_timeout,
        ocsp_url=settings.ocsp_url,
        crl_paths=settings.crl_paths,
        cache_seconds=settings.ocsp_cache_seconds,
        now=now,
    )
    for below, above in zip(chain[1:-1], chain[2:]):
        check_authority(below, above, timeout=settings.ocsp_timeout, crl_paths=settings.crl_paths, now=now)
    return card_of(cert, kind, checked_by)


def check_certificate(
    cert_der: bytes, *, settings: Settings | None = None, now: datetime.datetime | None = None
) -> Card:
    """The Card of a certificate (DER or PEM) that passes every check but a signature's.

    Raises CardRefused: malformed, expired, not_yet_valid, untrusted, wrong_usage, revoked, revocation_unknown.
    """
    if not cert_der or len(cert_der) > MAX_CERTIFICATE_BYTES:
        raise CardRefused("malformed", _l("This is not a certificate the platform can read."))
    try:
        if cert_der.lstrip().startswith(b"-----BEGIN"):
            cert = x509.load_pem_x509_certificate(cert_der)
        else:
            cert = x509.load_der_x509_certificate(cert_der)
    except ValueError:
        raise CardRefused("malformed", _l("This is not a certificate the platform can read.")) from None
    return _check(cert, [], _settings(settings), _now(now))


# --- PKCS#7 -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Signed:
    signer: x509.Certificate
    carried: list[x509.Certificate]
    info: cms.SignerInfo
    content: bytes | None  # None: detached


def _parse(pkcs7_der: bytes) -> _Signed:
    if not pkcs7_der or len(pkcs7_der) > MAX_SIGNATURE_BYTES:
        raise CardRefused("malformed")
    try:
        info = cms.ContentInfo.load(pkcs7_der)
        if info["content_type"].native != "signed_data":
            raise CardRefused("malformed")
        signed = info["content"]
        signer_infos = signed["signer_infos"]
        if len(signer_infos) != 1:
            raise CardRefused("malformed")
        signer_info = signer_infos[0]
        encap = signed["encap_content_info"]
        if encap["content_type"].native != "data":
            raise CardRefused("malformed")
        content = encap["content"].native if encap["content"].native is not None else None
        if content is not None and not isinstance(content, bytes):
            raise CardRefused("malformed")
        ders = [c.chosen.dump() for c in (signed["certificates"] or []) if c.name == "certificate"]
        sid = signer_info["sid"]
        _ = signer_info.native  # parse the rest now: damage shows here, not later
    except CardRefused:
        raise
    except (ValueError, TypeError, KeyError):
        raise CardRefused("malformed") from None
    try:
        certs = [x509.load_der_x509_certificate(d) for d in ders]
    except ValueError:
        raise CardRefused("malformed") from None
    signer = None
    for cert in certs:
        if sid.name == "issuer_and_serial_number":
            chosen = sid.chosen
            if chosen["serial_number"].native == cert.serial_number and chosen["issuer"].dump() == (
                cert.issuer.public_bytes()
            ):
                signer = cert
                break
        else:
            try:
                ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
            except x509.ExtensionNotFound:
                continue
            if ski == sid.chosen.native:
                signer = cert
                break
    if signer is None:
        raise CardRefused("no_certificate")
    return _Signed(signer, [c for c in certs if c is not signer], signer_info, content)


def _verify(public_key, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm, scheme: str) -> None:
    try:
        if isinstance(public_key, rsa.RSAPublicKey) and scheme == "rsassa_pkcs1v15":
            public_key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(public_key, ec.EllipticCurvePublicKey) and scheme == "ecdsa":
            public_key.verify(signature, data, ec.ECDSA(algorithm))
        else:
            raise CardRefused("bad_signature")
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        raise CardRefused("bad_signature") from None


def _check_signature(signed: _Signed, expected: bytes) -> None:
    info = signed.info
    if signed.content is not None and signed.content != expected:
        raise CardRefused("wrong_content")
    digest_name = info["digest_algorithm"]["algorithm"].native
    if digest_name not in HASHES:
        raise CardRefused(
            "malformed", _l("The signature uses a hash algorithm the platform does not accept (use SHA-256).")
        )
    algorithm = HASHES[digest_name]()
    try:
        scheme = info["signature_algorithm"].signature_algo
    except ValueError:
        raise CardRefused("malformed") from None
    signature = info["signature"].native
    attrs = info["signed_attrs"]
    if attrs.native is None or not len(attrs):
        # No signed attributes: the signature is over the content itself.
        _verify(signed.signer.public_key(), signature, expected, algorithm, scheme)
        return
    digests = [a["values"][0].native for a in attrs if a["type"].native == "message_digest"]
    types = [a["values"][0].native for a in attrs if a["type"].native == "content_type"]
    if len(digests) != 1 or types != ["data"]:
        raise CardRefused("malformed")
    h = hashes.Hash(HASHES[digest_name]())
    h.update(expected)
    if digests[0] != h.finalize():
        # Detached: another text was signed. Attached: the content was changed after signing.
        raise CardRefused("wrong_content" if signed.content is None else "bad_signature")
    raw = attrs.dump()
    _verify(signed.signer.public_key(), signature, b"\x31" + raw[1:], algorithm, scheme)


def verify_signature(
    pkcs7_der: bytes,
    expected_content: bytes,
    *,
    settings: Settings | None = None,
    now: datetime.datetime | None = None,
) -> Card:
    """The Card that signed `expected_content` (a PKCS#7/CMS SignedData, content attached or detached).

    Raises CardRefused: malformed, no_certificate, wrong_content, bad_signature, and those of check_certificate.
    """
    signed = _parse(pkcs7_der)
    _check_signature(signed, expected_content)
    return _check(signed.signer, signed.carried, _settings(settings), _now(now))
