"""What the platform reads from a card certificate (DOMAIN.md, Certificates)."""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization

SUBJECT_DIRECTORY_ATTRIBUTES = x509.ObjectIdentifier("2.5.29.9")
ID_LAST4 = "2.16.886.1.100.2.51"
BUSINESS_NO = "2.16.886.1.100.2.101"
ORG_OID = "2.16.886.1.100.2.102"
# The issuing CAs of Taiwan's government PKI, by the organizational unit in their
# names (the real ones: C=TW, O=行政院, OU=...; the demo's use the same units).
ISSUER_KINDS = {
    "內政部憑證管理中心": "citizen",  # MOICA
    "工商憑證管理中心": "business",  # MOEACA
    "政府憑證管理中心": "government",  # GCA
    "組織及團體憑證管理中心": "organisation",  # XCA
}
KINDS = ("citizen", "business", "government", "organisation")


@dataclass(frozen=True)
class Card:
    """A checked card certificate. ``id_last4`` is all a citizen card says of the ID number."""

    kind: str
    holder: str
    id_last4: str | None
    business_no: str | None
    org_oid: str | None
    serial: str  # upper-case hex
    issuer: str  # RFC 4514
    fingerprint: str  # SHA-256 of the DER, lower-case hex
    not_before: datetime.datetime  # naive UTC
    not_after: datetime.datetime
    der: bytes
    checked_by: str = ""  # how revocation was checked: "ocsp", "ocsp-cache" or "crl"

    def __repr__(self) -> str:  # never the holder's name in a log line
        return f"Card(kind={self.kind!r}, serial={self.serial!r}, fingerprint={self.fingerprint[:16]!r}...)"


def _text(value) -> str | None:
    native = value.native
    if isinstance(native, bytes):
        return native.decode("utf-8", "replace")
    return str(native) if native is not None else None


def directory_attributes(cert: x509.Certificate) -> dict[str, str]:
    """The Subject Directory Attributes (2.5.29.9) as {OID: first value as text}; {} when absent or unreadable."""
    try:
        ext = cert.extensions.get_extension_for_oid(SUBJECT_DIRECTORY_ATTRIBUTES)
    except x509.ExtensionNotFound:
        return {}
    raw = ext.value.value if isinstance(ext.value, x509.UnrecognizedExtension) else None
    if raw is None:
        return {}
    try:
        out = {}
        for attr in asn1_x509.Attributes.load(raw):
            values = attr["values"]
            if len(values):
                out[attr["type"].dotted] = _text(values[0])
        return out
    except (ValueError, TypeError, KeyError):
        return {}


def issuer_kind(issuer: x509.Name) -> str | None:
    """The kind of card a CA issues, from its organizational unit or common name; None for another CA."""
    for oid in (x509.NameOID.ORGANIZATIONAL_UNIT_NAME, x509.NameOID.COMMON_NAME):
        for attr in issuer.get_attributes_for_oid(oid):
            kind = ISSUER_KINDS.get(str(attr.value).strip())
            if kind:
                return kind
    return None


def common_name(name: x509.Name) -> str:
    attrs = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


def card_of(cert: x509.Certificate, kind: str, checked_by: str = "") -> Card:
    der = cert.public_bytes(serialization.Encoding.DER)
    attrs = directory_attributes(cert)
    return Card(
        kind=kind,
        holder=common_name(cert.subject),
        id_last4=attrs.get(ID_LAST4),
        business_no=attrs.get(BUSINESS_NO),
        org_oid=attrs.get(ORG_OID),
        serial=format(cert.serial_number, "X"),
        issuer=cert.issuer.rfc4514_string(),
        fingerprint=hashlib.sha256(der).hexdigest(),
        not_before=cert.not_valid_before_utc.replace(tzinfo=None),
        not_after=cert.not_valid_after_utc.replace(tzinfo=None),
        der=der,
        checked_by=checked_by,
    )
