"""What the platform may learn from an upload without decrypting it: who can open it.

    with open(path, "rb") as f:
        for issuer_der, serial in envelope_recipients(f): ...

Reads only the start of the stream (DER or BER); raises a KitError (NotEnvelope,
Damaged, UnsupportedRecipient) for anything that is not CMS EnvelopedData
for recipients named by issuer and serial number, a plaintext upload included.
"""

from __future__ import annotations

from typing import BinaryIO

from app.kit import ber
from app.kit.envelope import Recipient, read_envelope_start, recipients
from app.kit.keys import certificate_sha256, load_certificate, load_certificates

__all__ = ["Recipient", "envelope_recipients", "certificate_sha256", "load_certificate", "load_certificates"]


def envelope_recipients(fileobj: BinaryIO) -> list[Recipient]:
    """(issuer DER, serial) of every recipient of the EnvelopedData in `fileobj`."""
    reader = ber.Reader(ber.FileSource(fileobj, 1 << 16), "byte")
    return recipients(read_envelope_start(reader))
