"""Keys, certificates and CRLs from files: PEM or DER, PKCS#12 with a PIN."""

from __future__ import annotations

import datetime
import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from asn1crypto import keys as asn1_keys
from asn1crypto import pem as asn1_pem
from asn1crypto import pkcs12 as asn1_pkcs12
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from .errors import (
    CertificateUnusable,
    FileUnreadable,
    KeyMismatch,
    NotACertificate,
    NotAKey,
    PinRequired,
    WrongPin,
)

PIN_ENV = "KIT_PIN"
PinPrompt = Callable[[], str | None]


@dataclass
class Identity:
    """A private key with its certificate and the chain to send along."""

    key: rsa.RSAPrivateKey
    certificate: x509.Certificate
    chain: list[x509.Certificate] = field(default_factory=list)


def read_file(path: str | os.PathLike) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise FileUnreadable(f"{path} ({exc.strerror or exc})") from None


def _is_pem(data: bytes) -> bool:
    return b"-----BEGIN " in data[:4096]


def load_certificates(data: bytes, source: str = "") -> list[x509.Certificate]:
    """Every certificate in PEM bytes, or the one certificate in DER bytes."""
    try:
        if _is_pem(data):
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise NotACertificate(source or None) from None


def load_certificate(data: bytes, source: str = "") -> x509.Certificate:
    """The first certificate in PEM or DER bytes; NotACertificate otherwise."""
    return load_certificates(data, source)[0]


def read_certificates(path: str | os.PathLike) -> list[x509.Certificate]:
    return load_certificates(read_file(path), str(path))


def read_certificate(path: str | os.PathLike) -> x509.Certificate:
    return read_certificates(path)[0]


def certificate_sha256(cert: x509.Certificate | bytes) -> str:
    """Lower-case hex SHA-256 of a certificate's DER (what the platform stores as its fingerprint)."""
    if isinstance(cert, bytes | bytearray):
        cert = load_certificate(bytes(cert))
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def normalize_fingerprint(text: str) -> str:
    return text.strip().lower().replace(":", "").replace(" ", "")


def read_crls(path: str | os.PathLike) -> list[bytes]:
    """DER CRLs from a PEM (one or more) or DER file."""
    data = read_file(path)
    try:
        if asn1_pem.detect(data):
            ders = [der for kind, _h, der in asn1_pem.unarmor(data, multiple=True) if kind == "X509 CRL"]
        else:
            ders = [data]
        for der in ders:
            x509.load_der_x509_crl(der)
    except ValueError:
        ders = []
    if not ders:
        raise FileUnreadable(f"{path}: 不是憑證廢止清單 / not a CRL")
    return ders


def describe(cert: x509.Certificate) -> str:
    """`CN (O), serial 0x..` for messages."""
    cn = _attr(cert.subject, x509.NameOID.COMMON_NAME) or cert.subject.rfc4514_string()
    org = _attr(cert.subject, x509.NameOID.ORGANIZATION_NAME)
    return f"{cn}{f' ({org})' if org else ''}, serial {cert.serial_number:#x}"


def _attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    values = name.get_attributes_for_oid(oid)
    return str(values[0].value) if values else ""


# --- private keys -----------------------------------------------------------------


def _pin_bytes(pin: str | None, prompt: PinPrompt | None) -> bytes | None:
    if pin is None:
        pin = os.environ.get(PIN_ENV)
    if pin is None and prompt is not None:
        pin = prompt()
    return pin.encode() if pin is not None else None


def _looks_like_pkcs12(data: bytes) -> bool:
    try:
        pfx = asn1_pkcs12.Pfx.load(data)
        return pfx["version"].native in (3, "v3") and pfx["auth_safe"]["content_type"].native in ("data", "signed_data")
    except (ValueError, TypeError, KeyError):
        return False


def _is_encrypted_key(data: bytes, pem: bool) -> bool:
    if pem:
        return b"ENCRYPTED PRIVATE KEY" in data or b"Proc-Type: 4,ENCRYPTED" in data
    try:
        _ = asn1_keys.EncryptedPrivateKeyInfo.load(data)["encryption_algorithm"].native
        return True
    except (ValueError, TypeError, KeyError):
        return False


def load_identity(
    key_path: str | os.PathLike,
    cert_path: str | os.PathLike | None = None,
    pin: str | None = None,
    chain_paths: Iterable[str | os.PathLike] = (),
    prompt: PinPrompt | None = None,
) -> Identity:
    """Key (PEM, encrypted PEM, DER or PKCS#12) + certificate (+ chain).

    Raises WrongPin, PinRequired, NotAKey, NotACertificate, KeyMismatch,
    CertificateUnusable (not RSA).
    """
    data = read_file(key_path)
    extra: list[x509.Certificate] = []
    cert = None
    if _is_pem(data) or not _looks_like_pkcs12(data):
        pem = _is_pem(data)
        password = None
        if _is_encrypted_key(data, pem):
            password = _pin_bytes(pin, prompt)
            if password is None:
                raise PinRequired(str(key_path))
        try:
            key = (serialization.load_pem_private_key if pem else serialization.load_der_private_key)(data, password)
        except ValueError:
            if password is not None:
                raise WrongPin() from None
            raise NotAKey(str(key_path)) from None
        except (TypeError, UnsupportedAlgorithm):
            raise NotAKey(str(key_path)) from None
    else:
        password = _pin_bytes(pin, None)
        try:
            loaded = pkcs12.load_pkcs12(data, password)
        except ValueError:
            if password is not None:
                raise WrongPin("或 PKCS#12 檔損毀 / or the PKCS#12 file is damaged") from None
            password = _pin_bytes(None, prompt)
            if password is None:
                raise PinRequired(str(key_path)) from None
            try:
                loaded = pkcs12.load_pkcs12(data, password)
            except ValueError:
                raise WrongPin("或 PKCS#12 檔損毀 / or the PKCS#12 file is damaged") from None
        if loaded.key is None:
            raise NotAKey(f"{key_path}: PKCS#12 檔內沒有私密金鑰 / no private key in the PKCS#12 file")
        key = loaded.key
        cert = loaded.cert.certificate if loaded.cert else None
        extra = [c.certificate for c in loaded.additional_certs]
    if cert_path is not None:
        cert = read_certificate(cert_path)
    if cert is None:
        raise NotACertificate("需要 --cert / --cert is required for this key")
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CertificateUnusable("只支援 RSA 金鑰 / only RSA keys are supported")
    public = cert.public_key()
    if not isinstance(public, rsa.RSAPublicKey) or public.public_numbers() != key.public_key().public_numbers():
        raise KeyMismatch(describe(cert))
    chain: list[x509.Certificate] = []
    for path in chain_paths:
        chain.extend(read_certificates(path))
    chain.extend(extra)
    return Identity(key, cert, _unique(chain, exclude=cert))


def _unique(certs: list[x509.Certificate], exclude: x509.Certificate) -> list[x509.Certificate]:
    seen = {exclude.public_bytes(serialization.Encoding.DER)}
    out = []
    for c in certs:
        der = c.public_bytes(serialization.Encoding.DER)
        if der not in seen:
            seen.add(der)
            out.append(c)
    return out


# --- what a certificate may be used for -------------------------------------------


def _key_usage(cert: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def _check_dates(cert: x509.Certificate, now: datetime.datetime) -> None:
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise CertificateUnusable(
            f"{describe(cert)}: 憑證已過期或尚未生效 / expired or not yet valid "
            f"({cert.not_valid_before_utc:%Y-%m-%d} .. {cert.not_valid_after_utc:%Y-%m-%d})"
        )


def check_signing_certificate(cert: x509.Certificate, now: datetime.datetime | None = None) -> None:
    """CertificateUnusable unless the certificate is valid now and allows signing."""
    _check_dates(cert, now or datetime.datetime.now(datetime.UTC))
    ku = _key_usage(cert)
    if ku is not None and not (ku.digital_signature or ku.content_commitment):
        raise CertificateUnusable(f"{describe(cert)}: 憑證用途不含簽章 / key usage does not allow signing")


def check_recipient_certificate(cert: x509.Certificate, now: datetime.datetime | None = None) -> None:
    """CertificateUnusable unless the certificate is valid now, RSA, and allows key encipherment."""
    _check_dates(cert, now or datetime.datetime.now(datetime.UTC))
    if not isinstance(cert.public_key(), rsa.RSAPublicKey):
        raise CertificateUnusable(f"{describe(cert)}: 只支援 RSA 金鑰 / only RSA keys are supported")
    ku = _key_usage(cert)
    if ku is not None and not ku.key_encipherment:
        raise CertificateUnusable(f"{describe(cert)}: 憑證用途不含加密 / key usage does not allow encryption")
