"""CMS SignedData, streamed: written in one pass for content of known size, and
read item by item with the content passed on in chunks.

The writer knows every length before the content is read: the signed
attributes have a fixed size and an RSA PKCS#1 v1.5 signature is exactly as long
as the modulus, so headers go out first, the content streams through, and the
certificates and SignerInfo follow once the digest is known.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from . import ber
from .errors import Damaged, NotEnvelope, UnsupportedAlgorithm
from .hashing import Digests
from .keys import Identity

DATA = "1.2.840.113549.1.7.1"
SIGNED_DATA = "1.2.840.113549.1.7.2"
SHA256 = "2.16.840.1.101.3.4.2.1"
RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
ContentSink = Callable[[bytes | memoryview], None]


def _signed_attributes(digest: bytes, signing_time: datetime.datetime) -> bytes:
    """The content of the signed-attributes SET, in DER order."""
    attrs = [
        cms.CMSAttribute({"type": "content_type", "values": [DATA]}).dump(),
        cms.CMSAttribute({"type": "signing_time", "values": [cms.Time({"utc_time": signing_time})]}).dump()
        if signing_time.year < 2050
        else cms.CMSAttribute(
            {"type": "signing_time", "values": [cms.Time({"generalized_time": signing_time})]}
        ).dump(),
        cms.CMSAttribute({"type": "message_digest", "values": [digest]}).dump(),
    ]
    return b"".join(sorted(attrs))


class SignedDataWriter:
    """Plans a DER ContentInfo(SignedData) around `content_size` bytes of data."""

    def __init__(self, identity: Identity, content_size: int, signing_time: datetime.datetime):
        self._key = identity.key
        self._time = signing_time.replace(microsecond=0)
        cert_der = identity.certificate.public_bytes(serialization.Encoding.DER)
        signer = asn1_x509.Certificate.load(cert_der)
        self._sid = ber.tlv(0x30, signer.issuer.dump() + ber.integer(signer.serial_number))
        ders = {cert_der} | {c.public_bytes(serialization.Encoding.DER) for c in identity.chain}
        self._certificates = ber.tlv(0xA0, b"".join(sorted(ders)))
        self._sig_len = (self._key.key_size + 7) // 8
        self._trailer_len = len(self._trailer(b"\0" * 32, b"\0" * self._sig_len))

        digest_algs = ber.tlv(0x31, ber.tlv(0x30, ber.oid(SHA256)))
        econtent_hdr = ber.header(0x04, content_size)
        explicit_hdr = ber.header(0xA0, len(econtent_hdr) + content_size)
        eci_len = len(ber.oid(DATA)) + len(explicit_hdr) + len(econtent_hdr) + content_size
        eci_hdr = ber.header(0x30, eci_len)
        body_head = ber.integer(1) + digest_algs + eci_hdr + ber.oid(DATA) + explicit_hdr + econtent_hdr
        sd_len = len(body_head) + content_size + self._trailer_len
        sd_hdr = ber.header(0x30, sd_len)
        ci_inner = ber.oid(SIGNED_DATA) + ber.header(0xA0, len(sd_hdr) + sd_len)
        ci_hdr = ber.header(0x30, len(ci_inner) + len(sd_hdr) + sd_len)
        self.prefix = ci_hdr + ci_inner + sd_hdr + body_head
        self.total_length = len(self.prefix) + content_size + self._trailer_len

    def _trailer(self, digest: bytes, signature: bytes) -> bytes:
        attrs = _signed_attributes(digest, self._time)
        signer_info = ber.tlv(
            0x30,
            ber.integer(1)
            + self._sid
            + ber.tlv(0x30, ber.oid(SHA256))
            + ber.tlv(0xA0, attrs)
            + ber.tlv(0x30, ber.oid(RSA_ENCRYPTION) + b"\x05\x00")
            + ber.tlv(0x04, signature),
        )
        return self._certificates + ber.tlv(0x31, signer_info)

    def trailer(self, digest: bytes) -> bytes:
        """Certificates and SignerInfos, signed over the content's SHA-256 `digest`."""
        to_sign = ber.tlv(0x31, _signed_attributes(digest, self._time))
        signature = self._key.sign(to_sign, padding.PKCS1v15(), hashes.SHA256())
        out = self._trailer(digest, signature)
        assert len(out) == self._trailer_len, "signature length differs from the modulus size"
        return out


# --- reading ---------------------------------------------------------------------


@dataclass
class SignedParts:
    """Everything of a SignedData but its content, which went to the sink."""

    version: int
    digest_algorithms: bytes
    content_type: str
    certificates: bytes | None
    crls: bytes | None
    signer_infos: bytes
    digests: dict[str, bytes]
    content_size: int

    def signed_data(self) -> cms.SignedData:
        """The SignedData as if detached (content left out), for validation."""
        body = (
            ber.integer(self.version)
            + self.digest_algorithms
            + ber.tlv(0x30, ber.oid(self.content_type))
            + (self.certificates or b"")
            + (self.crls or b"")
            + self.signer_infos
        )
        try:
            sd = cms.SignedData.load(ber.tlv(0x30, body))
            _ = sd.native  # parse everything now, so damage shows here
        except (ValueError, TypeError):
            raise Damaged("SignedData") from None
        return sd


def _digest_names(raw: bytes, reader: ber.Reader) -> list[str]:
    try:
        return [alg["algorithm"].native for alg in cms.DigestAlgorithms.load(raw)]
    except (ValueError, TypeError):
        raise reader.damaged("invalid digest algorithms") from None


def read_signed(reader: ber.Reader, sink: ContentSink, wrapped: bool = True) -> SignedParts:
    """Read a ContentInfo(SignedData) (or, not `wrapped`, a bare SignedData), passing
    its content to `sink` in chunks while hashing it by every announced digest algorithm."""
    outer = reader.expect(ber.UNIVERSAL, ber.SEQUENCE, True, "SEQUENCE")
    wrapper: ber.Header | None = None
    if wrapped:
        if reader.read_oid() != SIGNED_DATA:
            raise NotEnvelope("加密內容未簽章 / the encrypted content is not CMS SignedData")
        wrapper = reader.expect(ber.CONTEXT, 0, True, "[0]")
        sd = reader.expect(ber.UNIVERSAL, ber.SEQUENCE, True, "SignedData")
    else:
        sd = outer
    version = reader.read_integer()
    h = reader.expect(ber.UNIVERSAL, ber.SET, True, "digest algorithms")
    digest_algorithms = reader.content(h, 4096)
    if not ber.canonical(digest_algorithms):
        raise reader.damaged("invalid digest algorithms")
    names = _digest_names(digest_algorithms, reader)
    eci = reader.expect(ber.UNIVERSAL, ber.SEQUENCE, True, "encapsulated content")
    content_type = reader.read_oid()
    if not reader.has_more(eci):
        raise Damaged("沒有內容（分離式簽章） / no content (detached signature)")
    explicit = reader.expect(ber.CONTEXT, 0, True, "[0] content")
    octets = reader.expect(ber.UNIVERSAL, ber.OCTET_STRING, None, "OCTET STRING content")
    hasher = Digests(names)
    if not hasher.names:
        raise UnsupportedAlgorithm(", ".join(names))
    size = _stream_content(reader.octets(octets), hasher, sink)
    digests = hasher.digests()
    reader.close(explicit)
    reader.close(eci)
    certificates = crls = None
    at = reader.pos
    h = reader.read_header()
    if h.is_(ber.CONTEXT, 0, True):
        certificates = reader.content(h)
        at = reader.pos
        h = reader.read_header()
    if h.is_(ber.CONTEXT, 1, True):
        crls = reader.content(h)
        at = reader.pos
        h = reader.read_header()
    if not h.is_(ber.UNIVERSAL, ber.SET, True):
        raise reader.damaged("expected signer infos", at)
    signer_infos = reader.content(h)
    if not ber.canonical(signer_infos):
        raise reader.damaged("invalid signer infos", at)
    reader.close(sd)
    if wrapper is not None:
        reader.close(wrapper)
        reader.close(outer)
    parts = SignedParts(version, digest_algorithms, content_type, certificates, crls, signer_infos, digests, size)
    _check_version(parts, reader)
    return parts


def _stream_content(chunks: Iterator[bytes | memoryview], hasher: Digests, sink: ContentSink) -> int:
    """Hash and pass on the content, in pieces of about CHUNK bytes (BER content
    often comes in 4 KiB segments: one write per segment would cost more than the rest)."""
    size = 0
    buf = bytearray(ber.CHUNK)
    view = memoryview(buf)
    fill = 0

    def emit(piece: bytes | memoryview) -> None:
        hasher.update(piece)
        sink(piece)

    for chunk in chunks:
        n = len(chunk)
        size += n
        if fill + n > ber.CHUNK:
            emit(view[:fill])
            fill = 0
        if n >= ber.CHUNK // 4 and not fill:
            emit(chunk)
        else:
            view[fill : fill + n] = chunk
            fill += n
    if fill:
        emit(view[:fill])
    return size


def _check_version(parts: SignedParts, reader: ber.Reader) -> None:
    """RFC 5652 5.1: the version follows from the content; a changed one is damage."""
    try:
        infos = cms.SignerInfos.load(parts.signer_infos)
        signer_versions = {si["version"].native for si in infos}
    except (ValueError, TypeError):
        raise reader.damaged("invalid signer infos") from None
    if parts.version in (4, 5):
        return  # attribute or other-format certificates: left to the parser
    expected = 3 if "v3" in signer_versions or parts.content_type != DATA else 1
    if parts.version != expected:
        raise reader.damaged("SignedData version does not match its content")
