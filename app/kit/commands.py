"""The kit's two operations, each one streaming pass over the file.

encrypt: ContentInfo(EnvelopedData) whose encrypted content is a DER
ContentInfo(SignedData) of the input, as `openssl cms -sign | openssl cms
-encrypt` makes it. decrypt: the reverse, writing the content to a temporary
file that is renamed to the output only when every check has passed.
"""

from __future__ import annotations

import datetime
import os
import stat
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from . import ber
from .armor import open_der
from .envelope import (
    BLOCK,
    DecryptingSource,
    GcmDecryptingSource,
    cipher_length,
    envelope_header,
    finish_envelope,
    new_content_key,
    read_envelope_start,
    unwrap_key,
)
from .errors import Damaged, FileUnreadable, InputError, KitError, RevocationNotChecked, UnexpectedSigner
from .files import atomic_output
from .hashing import Digests
from .keys import Identity, check_recipient_certificate, check_signing_certificate
from .signed import DATA, SignedDataWriter, SignedParts, read_signed
from .verify import Signer, check_recipient, verify


@dataclass(frozen=True)
class Encrypted:
    """Bytes written and recipients enveloped for."""

    size: int
    recipients: int


def _open_input(path: str | os.PathLike):
    try:
        f = open(path, "rb", buffering=0)
    except OSError as exc:
        raise FileUnreadable(f"{path} ({exc.strerror or exc})") from None
    return f


def _same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def encrypt(
    in_path: str | os.PathLike,
    out_path: str | os.PathLike,
    identity: Identity,
    recipients: list[x509.Certificate],
    now: datetime.datetime | None = None,
    trust_roots: list[bytes] | None = None,
    crls: list[bytes] | None = None,
) -> Encrypted:
    """Sign `in_path` with `identity` and envelope it for `recipients` into `out_path`.

    With `trust_roots` each recipient must chain to them (and with `crls` not be revoked).
    Raises CertificateUnusable, RecipientUnacceptable, FileUnreadable, StorageError/DiskFull.
    """
    now = now or datetime.datetime.now(datetime.UTC)
    if not recipients:
        raise InputError("沒有收件人 / no recipients")
    check_signing_certificate(identity.certificate, now)
    if crls and not trust_roots:
        raise InputError("--crl 需與 --trust 一起使用 / --crl needs --trust")
    for cert in recipients:
        check_recipient_certificate(cert, now)
        if trust_roots:
            check_recipient(cert, trust_roots, list(crls or []), now)
    if _same_file(in_path, out_path):
        raise InputError("輸出檔不可與輸入檔相同 / OUT must not be IN")
    with _open_input(in_path) as fin:
        st = os.fstat(fin.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{in_path}: 必須是一般檔案 / must be a regular file")
        size = st.st_size
        signed = SignedDataWriter(identity, size, now)
        cek, iv = new_content_key()
        head = envelope_header(recipients, cek, iv, signed.total_length)
        expected = len(head) + cipher_length(signed.total_length)
        enc = Cipher(algorithms.AES(cek), modes.CBC(iv)).encryptor()
        buf = memoryview(bytearray(ber.CHUNK))
        obuf = memoryview(bytearray(ber.CHUNK + BLOCK))
        hasher = Digests(["sha256"])
        with atomic_output(out_path) as out:
            out.write(head)
            out.write(enc.update(signed.prefix))
            remaining = size
            while remaining:
                try:
                    n = fin.readinto(buf[: min(ber.CHUNK, remaining)])
                except OSError as exc:
                    raise FileUnreadable(f"{in_path} ({exc.strerror})") from None
                if not n:
                    break
                hasher.update(buf[:n])
                m = enc.update_into(buf[:n], obuf)
                out.write(obuf[:m])
                remaining -= n
            if remaining or fin.read(1):
                raise FileUnreadable(f"{in_path}: 讀取中檔案大小改變 / the file changed size while it was read")
            trailer = signed.trailer(hasher.digests()["sha256"])
            pad = BLOCK - signed.total_length % BLOCK
            out.write(enc.update(trailer + bytes([pad]) * pad))
            out.write(enc.finalize())
            if out.written != expected:
                raise KitError(f"internal length error ({out.written} != {expected})")
    return Encrypted(expected, len(recipients))


def decrypt(
    in_path: str | os.PathLike,
    out_path: str | os.PathLike,
    identity: Identity,
    trust_roots: list[bytes],
    crls: list[bytes] | None = None,
    now: datetime.datetime | None = None,
    check_revocation: bool = True,
    required_signer: str | None = None,
) -> list[Signer]:
    """Decrypt `in_path` for `identity`, check signature and signer, write the content to `out_path`.

    Without `crls` it refuses (RevocationNotChecked) unless `check_revocation` is False.
    With `required_signer` (a certificate's SHA-256, hex) every signature must be that
    certificate's (else UnexpectedSigner). Reads DER, BER, PEM and S/MIME. Raises
    NotEnvelope, Damaged, NotForRecipient, DecryptionFailed, DigestMismatch,
    SignatureInvalid, Signer* errors, StorageError/DiskFull; no output is left then.
    """
    if check_revocation and not crls:
        raise RevocationNotChecked(
            "請以 --crl 提供 CRL，或以 --no-revocation-check 明示略過 / give the CRLs with --crl, "
            "or --no-revocation-check to skip the check knowingly"
        )
    if _same_file(in_path, out_path):
        raise InputError("輸出檔不可與輸入檔相同 / OUT must not be IN")
    with _open_input(in_path) as raw, atomic_output(out_path) as out:
        fin = open_der(raw)
        try:
            parts = _decrypt_stream(fin, identity, out.write)
        finally:
            if fin is not raw:
                fin.close()
        signers = verify(parts, trust_roots, crls, now)
        for signer in signers:
            if required_signer is not None and signer.cert_sha256 != required_signer:
                raise UnexpectedSigner(
                    f"簽章者憑證 / signer's certificate SHA-256 {signer.cert_sha256[:16]}…, "
                    f"登記的寄件人憑證 / registered sender's SHA-256 {required_signer[:16]}…"
                )
        return signers


def _decrypt_stream(fin, identity: Identity, sink) -> SignedParts:
    """Decrypt and parse in one pass, content to `sink`; the buffers go when this returns,
    before verification loads pyHanko (the larger part of the peak memory)."""
    outer = ber.Reader(ber.FileSource(fin), "byte")
    start = read_envelope_start(outer)
    cek = unwrap_key(start, identity.key, identity.certificate)
    if start.content is None:
        raise Damaged("沒有加密內容 / no encrypted content")
    kind = GcmDecryptingSource if start.authenticated else DecryptingSource
    source = kind(outer.octets(start.content), start.algorithm, cek)
    inner = ber.Reader(source, "decrypted byte")
    parts = read_signed(inner, sink, wrapped=start.content_type == DATA)
    inner.expect_eof()
    tag = finish_envelope(outer, start)
    if start.authenticated:
        source.authenticate(tag)
    return parts
