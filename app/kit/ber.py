"""Just enough BER/DER to stream CMS: write definite-length headers, and read
tag-length-value items one by one from a stream, definite or indefinite length,
with OCTET STRING content (primitive or constructed) yielded in chunks.

The reader checks that every definite-length item ends exactly where its length
says, and that indefinite ones end with end-of-contents, so a changed length
byte is an error rather than a silent misreading.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from asn1crypto import core

from .errors import Damaged, FileUnreadable

CHUNK = 1 << 20
UNIVERSAL, APPLICATION, CONTEXT, PRIVATE = 0, 1, 2, 3
INTEGER, OCTET_STRING, NULL, OID, SEQUENCE, SET = 2, 4, 5, 6, 16, 17
MAX_SMALL = 16 << 20  # a header part (certificates, recipient infos) larger than this is refused


# --- writing (DER) ---------------------------------------------------------------


def length_octets(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def header(tag: int, length: int) -> bytes:
    """Identifier octet + DER length: `header(0x30, 5)` -> b'0\\x05'."""
    return bytes([tag]) + length_octets(length)


def tlv(tag: int, content: bytes) -> bytes:
    return header(tag, len(content)) + content


def same_name(a: core.Asn1Value, b: core.Asn1Value) -> bool:
    """X.509 Name equality: same bytes, or equal by RFC 5280 comparison rules."""
    if a.dump() == b.dump():
        return True
    try:
        return a == b
    except ValueError:  # names asn1crypto cannot normalise are simply different
        return False


def oid(dotted: str) -> bytes:
    return core.ObjectIdentifier(dotted).dump()


def integer(value: int) -> bytes:
    return core.Integer(value).dump()


# --- reading -------------------------------------------------------------------


class Source(Protocol):
    """Gives up to n bytes; the view may be reused by the next call; empty at the end."""

    def read(self, n: int) -> bytes | memoryview: ...


class FileSource:
    """A binary file read into one reused buffer."""

    def __init__(self, fileobj: BinaryIO, chunk: int = CHUNK):
        self._f = fileobj
        self._buf = bytearray(chunk)
        self._view = memoryview(self._buf)

    def read(self, n: int) -> memoryview:
        n = min(n, len(self._buf))
        try:
            readinto = getattr(self._f, "readinto", None)
            if readinto is None:
                data = self._f.read(n)
                self._view[: len(data)] = data
                return self._view[: len(data)]
            got = readinto(self._view[:n]) or 0
        except OSError as exc:
            raise FileUnreadable(exc.strerror or str(exc)) from None
        return self._view[:got]


@dataclass(slots=True)
class Header:
    """One item's identifier and length; `start` is where its content begins."""

    tag_class: int
    constructed: bool
    number: int
    length: int | None  # None: indefinite
    start: int
    raw: bytes

    @property
    def end(self) -> int:
        assert self.length is not None
        return self.start + self.length

    def is_(self, tag_class: int, number: int, constructed: bool | None = None) -> bool:
        return (
            self.tag_class == tag_class
            and self.number == number
            and (constructed is None or self.constructed == constructed)
        )


class Reader:
    """Reads BER items from a Source, keeping count of the position."""

    def __init__(self, source: Source, where: str = "byte"):
        self._src = source
        self._buf = bytearray()
        self._off = 0
        self.pos = 0
        self.where = where  # how positions are named in messages

    def damaged(self, what: str, at: int | None = None) -> Damaged:
        return Damaged(f"{what} ({self.where} {self.pos if at is None else at})")

    # raw bytes

    def _pending(self) -> int:
        return len(self._buf) - self._off

    def _fill(self, n: int) -> bool:
        """At least n bytes pending, unless the stream ends first."""
        while self._pending() < n:
            view = self._src.read(max(n - self._pending(), 1 << 16))
            if not len(view):
                return False
            if self._off:
                del self._buf[: self._off]
                self._off = 0
            self._buf += view
        return True

    def peek(self, n: int) -> bytes:
        if not self._fill(n):
            raise self.damaged("unexpected end of data")
        return bytes(self._buf[self._off : self._off + n])

    def read_exact(self, n: int) -> bytes:
        if n > self._pending():
            if n - self._pending() > MAX_SMALL:
                raise self.damaged("item too large")
            if not self._fill(n):
                raise self.damaged("unexpected end of data")
        out = bytes(self._buf[self._off : self._off + n])
        self._off += n
        self.pos += n
        return out

    def read_some(self, n: int) -> bytes | memoryview:
        """Up to n bytes (at least one unless the stream ended), without copying large reads."""
        if self._pending():
            k = min(n, self._pending())
            out = bytes(self._buf[self._off : self._off + k])
            self._off += k
        else:
            out = self._src.read(n)
            k = len(out)
        self.pos += k
        return out

    def expect_eof(self) -> None:
        if self._pending() or len(self._src.read(1)):
            raise self.damaged("unexpected data after the end")

    # items

    def read_header(self) -> Header:
        at = self.pos
        self._fill(16)  # a header we accept is at most 15 bytes; fewer at the end of the stream
        buf, start, end = self._buf, self._off, len(self._buf)
        i = start
        if i + 2 > end:
            raise self.damaged("unexpected end of data", at)
        b0 = buf[i]
        i += 1
        number = b0 & 0x1F
        if number == 0x1F:
            number = 0
            for _ in range(5):
                if i >= end:
                    raise self.damaged("unexpected end of data", at)
                b = buf[i]
                i += 1
                number = (number << 7) | (b & 0x7F)
                if not b & 0x80:
                    break
            else:
                raise self.damaged("tag number too long", at)
        if i >= end:
            raise self.damaged("unexpected end of data", at)
        lb = buf[i]
        i += 1
        constructed = bool(b0 & 0x20)
        if lb < 0x80:
            length: int | None = lb
        elif lb == 0x80:
            if not constructed:
                raise self.damaged("indefinite length on a primitive item", at)
            length = None
        elif lb == 0xFF or lb - 0x80 > 8:
            raise self.damaged("invalid length", at)
        else:
            n = lb - 0x80
            if i + n > end:
                raise self.damaged("unexpected end of data", at)
            length = int.from_bytes(buf[i : i + n], "big")
            if buf[i] == 0 or length < 0x80:
                raise self.damaged("non-minimal length", at)
            i += n
        if b0 == 0 and number == 0:
            raise self.damaged("unexpected end-of-contents", at)
        raw = bytes(buf[start:i])
        self._off = i
        self.pos += i - start
        return Header(b0 >> 6, constructed, number, length, self.pos, raw)

    def expect(self, tag_class: int, number: int, constructed: bool | None, what: str) -> Header:
        at = self.pos
        h = self.read_header()
        if not h.is_(tag_class, number, constructed):
            raise self.damaged(f"expected {what}", at)
        return h

    def has_more(self, parent: Header) -> bool:
        """Whether another item follows inside `parent` (a constructed item being read)."""
        if parent.length is None:
            return self.peek(2) != b"\0\0"
        if self.pos > parent.end:
            raise self.damaged("item runs past its container")
        return self.pos < parent.end

    def close(self, parent: Header) -> None:
        """Check that `parent`'s content ends here (reading its end-of-contents if indefinite)."""
        if parent.length is None:
            if self.read_exact(2) != b"\0\0":
                raise self.damaged("missing end-of-contents")
        elif self.pos != parent.end:
            raise self.damaged("length does not match content")

    def content(self, h: Header, limit: int = MAX_SMALL) -> bytes:
        """The whole encoding (header included) of an item whose header was just read."""
        if h.length is not None:
            if h.length > limit:
                raise self.damaged("item too large")
            return h.raw + self.read_exact(h.length)
        parts = [h.raw]
        size = 0
        while self.has_more(h):
            part = self.content(self.read_header(), limit - size)
            size += len(part)
            if size > limit:
                raise self.damaged("item too large")
            parts.append(part)
        self.close(h)
        parts.append(b"\0\0")
        return b"".join(parts)

    def read_item(self, limit: int = MAX_SMALL) -> bytes:
        return self.content(self.read_header(), limit)

    def read_oid(self) -> str:
        h = self.expect(UNIVERSAL, OID, False, "object identifier")
        try:
            return core.ObjectIdentifier.load(self.content(h, 256)).dotted
        except ValueError:
            raise self.damaged("invalid object identifier") from None

    def read_integer(self) -> int:
        h = self.expect(UNIVERSAL, INTEGER, False, "integer")
        raw = self.content(h, 64)
        if not canonical(raw):
            raise self.damaged("invalid integer")
        return core.Integer.load(raw).native

    def octets(self, h: Header, chunk: int = CHUNK) -> Iterator[bytes | memoryview]:
        """The content of an OCTET STRING (or implicitly tagged one) in chunks; each
        chunk is valid only until the next one is asked for."""
        if not h.constructed:
            remaining = h.length or 0
            while remaining:
                part = self.read_some(min(remaining, chunk))
                if not len(part):
                    raise self.damaged("unexpected end of data")
                remaining -= len(part)
                yield part
            return
        while True:
            small = self._small_segment(h)
            if small is not None:
                yield small
                continue
            if not self.has_more(h):
                break
            at = self.pos
            sub = self.read_header()
            if not sub.is_(UNIVERSAL, OCTET_STRING):
                raise self.damaged("expected an OCTET STRING segment", at)
            yield from self.octets(sub, chunk)
        self.close(h)

    def _small_segment(self, parent: Header) -> bytes | None:
        """A primitive OCTET STRING segment under 64 KiB, read in one go (openssl
        -stream writes 4 KiB segments, and the general path per segment costs more
        than decrypting it); None when the general path must decide."""
        self._fill(4)
        buf, i = self._buf, self._off
        avail = len(buf) - i
        if avail < 2 or buf[i] != 0x04:
            return None
        lb = buf[i + 1]
        if lb < 0x80:
            hl, n = 2, lb
        elif lb == 0x81 and avail >= 3 and buf[i + 2] >= 0x80:
            hl, n = 3, buf[i + 2]
        elif lb == 0x82 and avail >= 4 and buf[i + 2]:
            hl, n = 4, (buf[i + 2] << 8) | buf[i + 3]
        else:
            return None
        if (parent.length is not None and self.pos + hl + n > parent.end) or not self._fill(hl + n):
            return None
        buf, i = self._buf, self._off  # the buffer may have moved
        out = bytes(buf[i + hl : i + hl + n])
        self._off += hl + n
        self.pos += hl + n
        return out


# --- strictness for the parts that asn1crypto parses leniently ---------------------


def canonical(data: bytes) -> bool:
    """Whether `data` is exactly one item with minimal lengths and minimal INTEGERs
    throughout (indefinite lengths allowed), so that no changed byte goes unnoticed."""
    try:
        return _walk(memoryview(data), 0, 0) == len(data)
    except (IndexError, ValueError):
        return False


def _walk(d: memoryview, i: int, depth: int) -> int:
    """End of the item starting at i; ValueError when not canonical."""
    if depth > 64:
        raise ValueError("too deep")
    b0 = d[i]
    i += 1
    if b0 & 0x1F == 0x1F:
        if d[i] == 0x80:
            raise ValueError("non-minimal tag")
        while d[i] & 0x80:
            i += 1
        i += 1
    lb = d[i]
    i += 1
    constructed = bool(b0 & 0x20)
    if lb == 0x80:
        if not constructed:
            raise ValueError("indefinite primitive")
        while bytes(d[i : i + 2]) != b"\0\0":
            i = _walk(d, i, depth + 1)
        return i + 2
    if lb > 0x80:
        n = lb - 0x80
        body = bytes(d[i : i + n])
        if n > 8 or len(body) != n or body[0] == 0:
            raise ValueError("bad length")
        length = int.from_bytes(body, "big")
        if length < 0x80:
            raise ValueError("non-minimal length")
        i += n
    else:
        length = lb
    end = i + length
    if end > len(d):
        raise ValueError("truncated")
    if b0 == INTEGER:
        if length == 0 or (length > 1 and (d[i] == 0 and d[i + 1] < 0x80 or d[i] == 0xFF and d[i + 1] >= 0x80)):
            raise ValueError("non-minimal integer")
    if constructed:
        while i < end:
            i = _walk(d, i, depth + 1)
        if i != end:
            raise ValueError("length mismatch")
    return end
