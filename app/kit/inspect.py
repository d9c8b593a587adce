"""What the platform may learn from an upload without decrypting it: who can open it,
and whether the file is whole.

    with open(path, "rb") as f:
        for issuer_der, serial in whole_envelope_recipients(f): ...

``envelope_recipients`` reads only the start of the stream (DER or BER);
``whole_envelope_recipients`` reads the envelope to its end, so that a file cut
off anywhere, or with anything after its end, is Damaged. Both raise a KitError
(NotEnvelope, Damaged, UnsupportedRecipient) for anything that is not CMS
EnvelopedData (or AuthEnvelopedData) for recipients named by issuer and serial
number, a plaintext upload included.
"""

from __future__ import annotations

from typing import BinaryIO

from . import ber
from .envelope import Recipient, finish_envelope, read_envelope_start, recipients
from .errors import Damaged
from .keys import certificate_sha256, load_certificate, load_certificates

__all__ = [
    "Recipient",
    "envelope_recipients",
    "whole_envelope_recipients",
    "certificate_sha256",
    "load_certificate",
    "load_certificates",
]


def envelope_recipients(fileobj: BinaryIO) -> list[Recipient]:
    """(issuer DER, serial) of every recipient of the EnvelopedData in `fileobj`."""
    reader = ber.Reader(ber.FileSource(fileobj, 1 << 16), "byte")
    return recipients(read_envelope_start(reader))


def whole_envelope_recipients(fileobj: BinaryIO) -> list[Recipient]:
    """The recipients, once the whole envelope has been read to its end: every definite
    length matches its content, every indefinite one ends with end-of-contents, the
    encrypted content and what follows it (the tag of an AuthEnvelopedData) are there,
    and nothing follows the envelope. Damaged otherwise (a cut-off or padded file)."""
    reader = ber.Reader(ber.FileSource(fileobj, 1 << 20), "byte")
    start = read_envelope_start(reader)
    found = recipients(start)
    if start.content is None:
        raise Damaged("沒有加密內容 / no encrypted content")
    for _chunk in reader.octets(start.content):
        pass
    finish_envelope(reader, start)
    return found
