"""CMS EnvelopedData, streamed: the header for recipients identified by issuer
and serial number (RSA PKCS#1 v1.5 key transport, AES-256-CBC), and on the way
back the header's parts, the content key and a decrypting stream. Reading also
takes AuthEnvelopedData with AES-GCM (RFC 5083/5084), as `openssl cms -encrypt
-aes-256-gcm` makes it: its tag is checked before the output is kept.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from . import ber
from .errors import (
    Damaged,
    DecryptionFailed,
    NotEnvelope,
    NotForRecipient,
    UnsupportedAlgorithm,
    UnsupportedRecipient,
)
from .signed import DATA, RSA_ENCRYPTION, SIGNED_DATA

ENVELOPED_DATA = "1.2.840.113549.1.7.3"
AUTH_ENVELOPED_DATA = "1.2.840.113549.1.9.16.1.23"
AES256_CBC = "2.16.840.1.101.3.4.1.42"
AES_CBC_KEY_SIZES = {"aes128_cbc": 16, "aes192_cbc": 24, "aes256_cbc": 32}
AES_GCM_KEY_SIZES = {"aes128_gcm": 16, "aes192_gcm": 24, "aes256_gcm": 32}
# Ciphers senders still meet (openssl 3.0's `cms -encrypt` defaults to 3DES) that the kit will not open.
OLD_CIPHERS = {"tripledes_3key": "3DES (des-ede3-cbc)", "des": "DES (des-cbc)", "rc2": "RC2 (rc2-cbc)"}


class GcmParams(core.Sequence):
    """GCMParameters of RFC 5084: the nonce and the tag length."""

    _fields = [("aes_nonce", core.OctetString), ("aes_icvlen", core.Integer, {"default": 12})]


BLOCK = 16


class Recipient(NamedTuple):
    """Who can open an envelope: the issuer's DER Name and the certificate's serial."""

    issuer: bytes
    serial: int


# --- writing ---------------------------------------------------------------------


def cipher_length(plain_length: int) -> int:
    """AES-CBC with PKCS#7 padding always adds 1..16 bytes."""
    return (plain_length // BLOCK + 1) * BLOCK


def _key_trans_info(cert: x509.Certificate, cek: bytes) -> bytes:
    a = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    public = cert.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    rid = ber.tlv(0x30, a.issuer.dump() + ber.integer(a.serial_number))
    return ber.tlv(
        0x30,
        ber.integer(0)
        + rid
        + ber.tlv(0x30, ber.oid(RSA_ENCRYPTION) + b"\x05\x00")
        + ber.tlv(0x04, public.encrypt(cek, padding.PKCS1v15())),
    )


def envelope_header(recipients: list[x509.Certificate], cek: bytes, iv: bytes, plain_length: int) -> bytes:
    """Everything before the ciphertext of a DER ContentInfo(EnvelopedData) whose
    encrypted content (id-data, as `openssl cms -encrypt` makes it) is `plain_length`
    bytes before padding."""
    infos = ber.tlv(0x31, b"".join(sorted(_key_trans_info(c, cek) for c in recipients)))
    n = cipher_length(plain_length)
    content_hdr = ber.header(0x80, n)
    algorithm = ber.tlv(0x30, ber.oid(AES256_CBC) + ber.tlv(0x04, iv))
    eci_head = ber.oid(DATA) + algorithm + content_hdr
    eci_hdr = ber.header(0x30, len(eci_head) + n)
    ed_head = ber.integer(0) + infos + eci_hdr + eci_head
    ed_hdr = ber.header(0x30, len(ed_head) + n)
    explicit_hdr = ber.header(0xA0, len(ed_hdr) + len(ed_head) + n)
    ci_head = ber.oid(ENVELOPED_DATA) + explicit_hdr + ed_hdr + ed_head
    return ber.header(0x30, len(ci_head) + n) + ci_head


def new_content_key() -> tuple[bytes, bytes]:
    return os.urandom(32), os.urandom(16)


# --- reading ---------------------------------------------------------------------


@dataclass
class EnvelopeStart:
    """The header of an EnvelopedData read up to its encrypted content."""

    version: int
    authenticated: bool  # AuthEnvelopedData (AES-GCM), not EnvelopedData
    originator_info: bool
    recipient_infos: cms.RecipientInfos
    content_type: str
    algorithm: cms.EncryptionAlgorithm
    content: ber.Header | None
    open_items: list[ber.Header]  # ContentInfo, [0], EnvelopedData, EncryptedContentInfo


def read_envelope_start(reader: ber.Reader) -> EnvelopeStart:
    """Read up to the encrypted content; NotEnvelope if this is not CMS EnvelopedData."""
    try:
        ci = reader.expect(ber.UNIVERSAL, ber.SEQUENCE, True, "SEQUENCE")
        kind = reader.read_oid()
    except Damaged:
        raise NotEnvelope() from None
    if kind not in (ENVELOPED_DATA, AUTH_ENVELOPED_DATA):
        if kind == SIGNED_DATA:
            raise NotEnvelope("這是只有簽章、未加密的檔案 / the file is signed but not encrypted")
        raise NotEnvelope()
    explicit = reader.expect(ber.CONTEXT, 0, True, "[0]")
    authenticated = kind == AUTH_ENVELOPED_DATA
    ed = reader.expect(ber.UNIVERSAL, ber.SEQUENCE, True, "EnvelopedData")
    version = reader.read_integer()
    if version not in ((0,) if authenticated else (0, 2, 3, 4)):
        raise reader.damaged("unknown EnvelopedData version")
    h = reader.read_header()
    originator = h.is_(ber.CONTEXT, 0, True)
    if originator:
        reader.content(h)
        h = reader.read_header()
    if not h.is_(ber.UNIVERSAL, ber.SET, True):
        raise reader.damaged("expected recipient infos")
    raw = reader.content(h)
    if not ber.canonical(raw):
        raise reader.damaged("invalid recipient infos")
    try:
        infos = cms.RecipientInfos.load(raw)
        _ = infos.native  # parse all of it now: damage shows here, not later
    except (ValueError, TypeError, KeyError):
        raise reader.damaged("invalid recipient infos") from None
    eci = reader.expect(ber.UNIVERSAL, ber.SEQUENCE, True, "EncryptedContentInfo")
    content_type = reader.read_oid()
    if content_type not in (DATA, SIGNED_DATA):
        raise reader.damaged("unexpected encrypted content type")
    raw = reader.read_item(4096)
    if not ber.canonical(raw):
        raise reader.damaged("invalid content encryption algorithm")
    try:
        algorithm = cms.EncryptionAlgorithm.load(raw)
        _ = algorithm.native
    except (ValueError, TypeError, KeyError):
        raise reader.damaged("invalid content encryption algorithm") from None
    content = None
    if reader.has_more(eci):
        at = reader.pos
        content = reader.read_header()
        if not content.is_(ber.CONTEXT, 0):
            raise reader.damaged("expected encrypted content", at)
    return EnvelopeStart(
        version, authenticated, originator, infos, content_type, algorithm, content, [ci, explicit, ed, eci]
    )


def recipients(start: EnvelopeStart) -> list[Recipient]:
    out = []
    for info in start.recipient_infos:
        if info.name != "ktri" or info.chosen["rid"].name != "issuer_and_serial_number":
            raise UnsupportedRecipient(
                "只支援以簽發者與序號識別的 RSA 收件人 / only RSA recipients by issuer and serial"
            )
        rid = info.chosen["rid"].chosen
        out.append(Recipient(rid["issuer"].dump(), rid["serial_number"].native))
    return out


def finish_envelope(reader: ber.Reader, start: EnvelopeStart) -> bytes | None:
    """After the content: the rest of the structure, its version, and nothing after it.

    Returns the AuthEnvelopedData's authentication tag (None for EnvelopedData)."""
    ci, explicit, ed, eci = start.open_items
    reader.close(eci)
    if start.authenticated:
        return _finish_authenticated(reader, start)
    unprotected = False
    if reader.has_more(ed):
        h = reader.read_header()
        if not h.is_(ber.CONTEXT, 1, True):
            raise reader.damaged("unexpected item in EnvelopedData")
        reader.content(h)
        unprotected = True
    reader.close(ed)
    reader.close(explicit)
    reader.close(ci)
    reader.expect_eof()
    kinds = {info.name for info in start.recipient_infos}
    if kinds & {"pwri", "ori"}:
        expected = {3}
    elif start.originator_info:
        expected = {2, 3, 4}
    elif not unprotected and all(info.chosen["version"].native == "v0" for info in start.recipient_infos):
        expected = {0}
    else:
        expected = {2}
    if start.version not in expected:
        raise reader.damaged("EnvelopedData version does not match its content")
    return None


def _finish_authenticated(reader: ber.Reader, start: EnvelopeStart) -> bytes:
    """AuthEnvelopedData after its content: [authAttrs], mac, [unauthAttrs]."""
    ci, explicit, ed, _eci = start.open_items
    at = reader.pos
    h = reader.read_header()
    if h.is_(ber.CONTEXT, 1, True):
        # They are the GCM's additional data, needed before the first byte is decrypted.
        raise UnsupportedAlgorithm("AuthEnvelopedData 含驗證屬性 / AuthEnvelopedData with authenticated attributes")
    if not h.is_(ber.UNIVERSAL, ber.OCTET_STRING, False):
        raise reader.damaged("expected the authentication tag", at)
    mac = reader.content(h, 64)[len(h.raw) :]
    if reader.has_more(ed):
        h = reader.read_header()
        if not h.is_(ber.CONTEXT, 2, True):
            raise reader.damaged("unexpected item in AuthEnvelopedData")
        reader.content(h)
    reader.close(ed)
    reader.close(explicit)
    reader.close(ci)
    reader.expect_eof()
    return mac


def _matches(info: cms.RecipientInfo, cert: asn1_x509.Certificate) -> bool:
    if info.name != "ktri":
        return False
    rid = info.chosen["rid"]
    version = info.chosen["version"].native
    if rid.name == "issuer_and_serial_number":
        ias = rid.chosen
        return (
            version == "v0"
            and ias["serial_number"].native == cert.serial_number
            and ber.same_name(ias["issuer"], cert.issuer)
        )
    return version == "v2" and cert.key_identifier is not None and rid.chosen.native == cert.key_identifier


def _key_padding(algorithm: cms.KeyEncryptionAlgorithm) -> padding.AsymmetricPadding:
    name = algorithm["algorithm"].native
    if name == "rsaes_pkcs1v15":
        if algorithm["parameters"].dump() not in (b"", b"\x05\x00"):
            raise Damaged("key transport parameters")
        return padding.PKCS1v15()
    if name == "rsaes_oaep":
        params = algorithm["parameters"]
        digest = params["hash_algorithm"]["algorithm"].native
        mgf_digest = params["mask_gen_algorithm"]["parameters"]["algorithm"].native
        label = params["p_source_algorithm"]["parameters"].native or None
        chosen = {"sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}
        if digest not in chosen or mgf_digest not in chosen:
            raise UnsupportedAlgorithm(f"RSAES-OAEP with {digest}")
        return padding.OAEP(mgf=padding.MGF1(chosen[mgf_digest]()), algorithm=chosen[digest](), label=label)
    raise UnsupportedAlgorithm(f"key transport {name}")


def unwrap_key(start: EnvelopeStart, key: rsa.RSAPrivateKey, cert: x509.Certificate) -> bytes:
    """The content-encryption key, from the RecipientInfo for `cert`."""
    a = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    info = next((i for i in start.recipient_infos if _matches(i, a)), None)
    if info is None:
        raise NotForRecipient()
    name = start.algorithm["algorithm"].native
    sizes = AES_GCM_KEY_SIZES if start.authenticated else AES_CBC_KEY_SIZES
    if name in OLD_CIPHERS:
        raise UnsupportedAlgorithm(
            f"此檔以 {OLD_CIPHERS[name]} 加密，本工具不接受；請寄件者改用 AES 重新加密"
            f"（openssl cms -encrypt -aes256）/ the file is encrypted with {OLD_CIPHERS[name]}, which the kit "
            "does not accept; ask the sender to encrypt it again with AES (openssl cms -encrypt -aes256)"
        )
    if name not in sizes:
        raise UnsupportedAlgorithm(f"content encryption {name}")
    ktri = info.chosen
    try:
        cek = key.decrypt(ktri["encrypted_key"].native, _key_padding(ktri["key_encryption_algorithm"]))
    except ValueError:
        raise DecryptionFailed("無法解開內容加密金鑰 / cannot unwrap the content key") from None
    if len(cek) != sizes[name]:
        raise DecryptionFailed("內容加密金鑰長度不符 / content key has the wrong length")
    return cek


class DecryptingSource:
    """The plaintext of AES-CBC ciphertext chunks, padding removed and checked.

    Views it returns are valid until the next `read`.
    """

    def __init__(self, ciphertext: Iterator[bytes | memoryview], algorithm: cms.EncryptionAlgorithm, cek: bytes):
        iv = algorithm["parameters"].native
        if not isinstance(iv, bytes) or len(iv) != BLOCK:
            raise Damaged("initialisation vector")
        self._chunks = ciphertext
        self._dec = Cipher(algorithms.AES(cek), modes.CBC(iv)).decryptor()
        self._out = bytearray(2 * ber.CHUNK + 2 * BLOCK)
        self._view = memoryview(self._out)
        self._tail = b""  # the last plaintext block is held back until the end is known
        self._ready = self._view[:0]
        self._done = False

    def _refill(self) -> None:
        """Decrypt ciphertext until about CHUNK bytes are ready (BER input comes in small segments)."""
        t = len(self._tail)
        self._view[:t] = self._tail
        total = t
        while total < ber.CHUNK:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                self._finish(total)
                return
            total += self._dec.update_into(chunk, self._view[total:])
        keep = BLOCK
        self._tail = bytes(self._view[total - keep : total])
        self._ready = self._view[: total - keep]

    def _finish(self, total: int) -> None:
        """The ciphertext ended: `total` plaintext bytes wait in the buffer, padding included."""
        self._done = True
        try:
            self._dec.finalize()
        except ValueError:
            raise Damaged("密文長度不是區塊的整數倍 / ciphertext length is not a whole number of blocks") from None
        if total < BLOCK or total % BLOCK:
            raise Damaged("密文太短 / ciphertext too short")
        pad = self._view[total - 1]
        if not 1 <= pad <= BLOCK or bytes(self._view[total - pad : total]) != bytes([pad]) * pad:
            raise DecryptionFailed("填充錯誤：金鑰錯誤或密文遭竄改 / bad padding: wrong key or altered ciphertext")
        self._ready = self._view[: total - pad]

    def read(self, n: int) -> memoryview:
        if not len(self._ready) and not self._done:
            self._refill()
        out = self._ready[:n]
        self._ready = self._ready[len(out) :]
        return out


class GcmDecryptingSource:
    """The plaintext of AES-GCM ciphertext chunks. Nothing of it may be kept until
    ``authenticate`` has checked the tag that follows the content.

    Views it returns are valid until the next `read`.
    """

    def __init__(self, ciphertext: Iterator[bytes | memoryview], algorithm: cms.EncryptionAlgorithm, cek: bytes):
        try:
            params = GcmParams.load(algorithm["parameters"].dump())
            nonce, self.tag_length = params["aes_nonce"].native, params["aes_icvlen"].native
        except (ValueError, TypeError, KeyError):
            raise Damaged("GCM parameters") from None
        if not isinstance(nonce, bytes) or not nonce or self.tag_length not in range(12, 17):
            raise Damaged("GCM parameters")
        self._chunks = ciphertext
        self._dec = Cipher(algorithms.AES(cek), modes.GCM(nonce, min_tag_length=self.tag_length)).decryptor()
        self._out = bytearray(2 * ber.CHUNK)
        self._ready = memoryview(self._out)[:0]
        self._done = False

    def read(self, n: int) -> memoryview:
        while not len(self._ready) and not self._done:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                self._done = True
                break
            if len(chunk) + BLOCK > len(self._out):  # update_into wants a block of room
                self._out = bytearray(len(chunk) + BLOCK)
            m = self._dec.update_into(chunk, self._out)
            self._ready = memoryview(self._out)[:m]
        out = self._ready[:n]
        self._ready = self._ready[len(out) :]
        return out

    def authenticate(self, tag: bytes) -> None:
        """DecryptionFailed unless the tag proves the ciphertext intact and the key right."""
        if len(tag) != self.tag_length:
            raise Damaged("authentication tag length")
        try:
            self._dec.finalize_with_tag(tag)
        except InvalidTag:
            raise DecryptionFailed(
                "驗證標籤不符：金鑰錯誤或密文遭竄改 / authentication tag mismatch: wrong key or altered ciphertext"
            ) from None
