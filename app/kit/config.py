"""The transfer configuration file the platform generates for one case (`--config`).

{"format": "transfer-config/1", "case_id": 12, "upload_no": "TR1150101000012",
 "item": "...", "sending_agency": "...", "receiving_agency": "...",
 "sender_cert_sha256": "<hex SHA-256 of the sender's certificate DER>",
 "recipients": [{"name": "...", "agency": "...", "cert_pem": "-----BEGIN CERTIFICATE-----...",
                 "cert_sha256": "<hex>"}],
 "upload_url": "https://.../api/v1/transfers/12/payload",
 "trust_pem": "-----BEGIN CERTIFICATE-----... (the roots a signer must chain to)",
 "crls_pem": "-----BEGIN X509 CRL-----... (the CRLs, as the platform had them)",
 "crl_urls": ["http://..."], "ocsp_urls": ["http://..."]}

The last four are optional (older files lack them); with them `decrypt --config
FILE --key KEY` needs nothing else.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field

from cryptography import x509

from .errors import ConfigError, NotACertificate, WrongSender
from .keys import certificate_sha256, load_certificate, normalize_fingerprint, read_file

FORMAT = "transfer-config/1"


@dataclass(frozen=True)
class ConfigRecipient:
    name: str
    agency: str
    certificate: x509.Certificate
    cert_sha256: str


@dataclass(frozen=True)
class TransferConfig:
    case_id: int
    upload_no: str
    item: str
    sending_agency: str
    receiving_agency: str
    sender_cert_sha256: str
    recipients: list[ConfigRecipient]
    upload_url: str
    trust_roots: list[bytes] = field(default_factory=list)  # DER
    crls: list[bytes] = field(default_factory=list)  # DER
    crl_urls: list[str] = field(default_factory=list)
    ocsp_urls: list[str] = field(default_factory=list)

    def check_sender(self, cert: x509.Certificate) -> None:
        """WrongSender unless `cert` is the certificate the case was registered with."""
        if certificate_sha256(cert) != self.sender_cert_sha256:
            raise WrongSender(f"case {self.case_id} / {self.upload_no}")

    def required_signer(self, reader: x509.Certificate) -> str | None:
        """The SHA-256 of the certificate a file `reader` decrypts with this file must be signed with.

        A receiving officer reads the case's payload: the registered sender signed it. Anyone
        else (the sender reading the result, which any officer of the receiving agency may
        sign) gets None: the signer's path is checked, not who it is.
        """
        if certificate_sha256(reader) in {r.cert_sha256 for r in self.recipients}:
            return self.sender_cert_sha256
        return None


def _field(data: dict, name: str, kind: type | tuple[type, ...]):
    value = data.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ConfigError(f"'{name}'")
    return value


def _fingerprint(data: dict, name: str) -> str:
    value = normalize_fingerprint(_field(data, name, str))
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise ConfigError(f"'{name}' is not a SHA-256 fingerprint")
    return value


def _pem_list(raw: dict, name: str, label: str) -> list[bytes]:
    """The DER blocks of the optional PEM text `name` whose blocks are `label`."""
    text = raw.get(name)
    if text is None:
        return []
    if not isinstance(text, str):
        raise ConfigError(f"'{name}'")
    begin, end = f"-----BEGIN {label}-----", f"-----END {label}-----"
    blocks = []
    for part in text.split(begin)[1:]:
        body, sep, _ = part.partition(end)
        try:
            if not sep:
                raise ValueError
            blocks.append(base64.b64decode("".join(body.split()), validate=True))
        except ValueError:
            raise ConfigError(f"'{name}' 不是 PEM / is not PEM") from None
    return blocks


def _urls(raw: dict, name: str) -> list[str]:
    value = raw.get(name, [])
    if not isinstance(value, list) or not all(isinstance(u, str) for u in value):
        raise ConfigError(f"'{name}'")
    return value


def parse_config(data: bytes) -> TransferConfig:
    """A TransferConfig from the file's bytes; ConfigError naming the first problem."""
    try:
        raw = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ConfigError("不是 JSON / not JSON") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ConfigError(f"'format' is not {FORMAT}")
    recipients = []
    items = _field(raw, "recipients", list)
    if not items:
        raise ConfigError("沒有收件人 / no recipients")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConfigError(f"recipients[{i}]")
        expected = _fingerprint(item, "cert_sha256")
        try:
            cert = load_certificate(_field(item, "cert_pem", str).encode(), f"recipients[{i}].cert_pem")
        except NotACertificate as exc:
            raise ConfigError(str(exc.detail)) from None
        if certificate_sha256(cert) != expected:
            raise ConfigError(f"recipients[{i}]: 憑證與指紋不符 / certificate does not match cert_sha256")
        recipients.append(ConfigRecipient(_field(item, "name", str), str(item.get("agency", "")), cert, expected))
    return TransferConfig(
        case_id=_field(raw, "case_id", int),
        upload_no=_field(raw, "upload_no", str),
        item=_field(raw, "item", str),
        sending_agency=_field(raw, "sending_agency", str),
        receiving_agency=_field(raw, "receiving_agency", str),
        sender_cert_sha256=_fingerprint(raw, "sender_cert_sha256"),
        recipients=recipients,
        upload_url=_field(raw, "upload_url", str),
        trust_roots=_check_roots(_pem_list(raw, "trust_pem", "CERTIFICATE")),
        crls=_pem_list(raw, "crls_pem", "X509 CRL"),
        crl_urls=_urls(raw, "crl_urls"),
        ocsp_urls=_urls(raw, "ocsp_urls"),
    )


def _check_roots(blocks: list[bytes]) -> list[bytes]:
    for i, der in enumerate(blocks):
        try:
            x509.load_der_x509_certificate(der)
        except ValueError:
            raise ConfigError(f"trust_pem[{i}]: 不是憑證 / not a certificate") from None
    return blocks


def load_config(path: str | os.PathLike) -> TransferConfig:
    return parse_config(read_file(path))
