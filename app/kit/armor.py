"""Encrypted files that arrive base64-wrapped: PEM (`-----BEGIN CMS-----`,
`PKCS7`) as `openssl cms -outform PEM` writes it, and S/MIME (`smime.p7m`
mail parts) as `openssl cms -encrypt` writes it by default. Both are unwrapped
to DER in a temporary file, streamed, so the rest of the kit reads DER only.
"""

from __future__ import annotations

import binascii
import io
import re
import tempfile
from typing import BinaryIO

from .errors import Damaged, NotEnvelope

_HEADER = re.compile(rb"^[A-Za-z][A-Za-z0-9-]*:")
_PEM_LABELS = (b"CMS", b"PKCS7", b"PKCS #7 SIGNED DATA")
MAX_LINE = 1 << 16


def open_der(fin: BinaryIO) -> BinaryIO:
    """`fin` itself when it holds DER (or BER), else a temporary file with the unwrapped DER."""
    head = fin.read(64)
    fin.seek(0)
    if head[:1] == b"\x30" or not head.strip():
        return fin
    text = head.lstrip()
    if text.startswith(b"-----BEGIN "):
        body = _pem_body
    elif _HEADER.match(text):
        body = _smime_body
    else:
        return fin  # not ours to judge here: the DER reader says what it is not
    reader = io.BufferedReader(fin)
    try:
        return _unwrap(reader, body)
    finally:
        reader.detach()  # `fin` stays open: its opener closes it


def _unwrap(reader: io.BufferedReader, body) -> BinaryIO:
    out = tempfile.TemporaryFile()
    try:
        pending = b""
        for line in body(reader):
            pending += b"".join(line.split())
            cut = len(pending) - len(pending) % 4
            out.write(_decode(pending[:cut]))
            pending = pending[cut:]
        if pending:
            raise Damaged("base64 的長度不對 / base64 length is not a multiple of 4")
        out.seek(0)
        return out
    except BaseException:
        out.close()
        raise


def _decode(chunk: bytes) -> bytes:
    try:
        return binascii.a2b_base64(chunk, strict_mode=True)
    except binascii.Error:
        raise Damaged("base64 內容無效 / invalid base64") from None


def _lines(reader: io.BufferedReader):
    while True:
        line = reader.readline(MAX_LINE)
        if not line:
            return
        if len(line) >= MAX_LINE and not line.endswith(b"\n"):
            raise Damaged("行太長 / line too long")
        yield line


def _pem_body(reader: io.BufferedReader):
    lines = _lines(reader)
    for line in lines:
        if line.strip():
            break
    label = line.strip()[len(b"-----BEGIN ") :].rstrip(b"-")
    if label not in _PEM_LABELS:
        raise NotEnvelope(f"PEM 標籤 {label.decode('ascii', 'replace')[:40]} / PEM label is not CMS")
    for line in lines:
        if line.startswith(b"-----END "):
            if line.strip()[len(b"-----END ") :].rstrip(b"-") != label:
                raise Damaged("PEM 結尾標籤不符 / PEM end label does not match")
            if any(rest.strip() for rest in lines):
                raise Damaged("PEM 之後還有資料 / data after the PEM block")
            return
        yield line
    raise Damaged("PEM 沒有結尾 / PEM block has no end line")


def _smime_body(reader: io.BufferedReader):
    lines = _lines(reader)
    headers: dict[bytes, bytes] = {}
    name = None
    for line in lines:
        if not line.strip():
            break
        if line[:1] in b" \t" and name is not None:  # a folded header continues
            headers[name] += b" " + line.strip()
            continue
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        headers[name] = value.strip()
    kind = headers.get(b"content-type", b"").lower()
    if b"multipart/signed" in kind or b"signed-data" in kind:
        raise NotEnvelope("這是只有簽章、未加密的郵件 / the S/MIME message is signed but not encrypted")
    if b"pkcs7-mime" not in kind:
        raise NotEnvelope("不是 S/MIME 加密郵件 / not an S/MIME encrypted message")
    if headers.get(b"content-transfer-encoding", b"base64").lower() != b"base64":
        raise NotEnvelope("S/MIME 內容不是 base64 / the S/MIME body is not base64")
    for line in lines:
        if not line.strip():  # the body ends at the first blank line
            if any(rest.strip() for rest in lines):
                raise Damaged("S/MIME 內容之後還有資料 / data after the S/MIME body")
            return
        yield line
