"""Where the encrypted files live (TRANSFER_DIR), and how an upload gets there.

Each upload is streamed to a temporary file while hashed, checked to be CMS
EnvelopedData for exactly the expected certificates, and only then renamed
into place; a broken or refused upload leaves nothing behind.
"""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography import x509
from flask import current_app
from flask_babel import lazy_gettext as _l

from app.models.transfer import StaffCertificate
from app.services.errors import DomainError, InvalidInput, NotFound

CHUNK = 1024 * 1024


class StorageFull(DomainError):
    status = 507


@dataclass(frozen=True)
class Stored:
    path: Path
    sha256: str
    size: int


def _root() -> Path:
    root = Path(current_app.config["TRANSFER_DIR"])
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    return root


def storage_error(exc: OSError) -> DomainError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull(_l("The platform's storage is full; nothing was registered. Please try again later."))
    return DomainError(_l("The file could not be stored; nothing was registered. Please try again."))


def _copy(stream: BinaryIO, out, max_bytes: int) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            break
        size += len(chunk)
        if size > max_bytes:
            raise InvalidInput(_l("The file is larger than the platform accepts."))
        digest.update(chunk)
        out.write(chunk)
    out.flush()
    os.fsync(out.fileno())
    return digest.hexdigest(), size


def spool(stream: BinaryIO, max_bytes: int | None = None) -> tuple[Path, str, int]:
    """Copy an upload to a temporary file while hashing it; nothing remains on failure."""
    max_bytes = max_bytes or current_app.config["TRANSFER_MAX_BYTES"]
    fd, name = tempfile.mkstemp(dir=_root() / "tmp", suffix=".part")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            sha, size = _copy(stream, out, max_bytes)
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise storage_error(exc) from exc
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if size == 0:
        path.unlink(missing_ok=True)
        raise InvalidInput(_l("The file is empty."))
    return path, sha, size


def _recipient_key(cert_der: bytes) -> tuple[bytes, int]:
    cert = x509.load_der_x509_certificate(cert_der)
    return cert.issuer.public_bytes(), cert.serial_number


def check_envelope(path: Path, expected: list[StaffCertificate]) -> None:
    """InvalidInput unless the file is CMS EnvelopedData for exactly these certificates."""
    from app.kit.errors import KitError
    from app.kit.inspect import envelope_recipients

    try:
        with open(path, "rb") as fh:
            found = envelope_recipients(fh)
    except KitError as exc:
        raise InvalidInput(
            _l("The file is not an encrypted file made by the kit (CMS EnvelopedData); plaintext is never accepted.")
        ) from exc
    got = {(bytes(i), int(s)) for i, s in ((r[0], r[1]) for r in found)}
    want = {_recipient_key(c.der) for c in expected}
    if got != want:
        raise InvalidInput(
            _l(
                "The file is encrypted for the wrong people: %(missing)s of the case's recipients cannot open it "
                "and %(extra)s others can. Encrypt it again with this case's configuration file."
            ),
            missing=len(want - got),
            extra=len(got - want),
        )


def keep(stream: BinaryIO, expected: list[StaffCertificate], case_id: int, kind: str) -> Stored:
    """Spool, check and move an upload into the case's folder; nothing remains when it is refused."""
    tmp, sha, size = spool(stream)
    final = None
    try:
        check_envelope(tmp, expected)
        folder = _root() / str(case_id)
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"{kind}-{sha[:16]}-{uuid.uuid4().hex[:8]}.p7m"
        os.replace(tmp, final)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if final:
            final.unlink(missing_ok=True)
        raise storage_error(exc) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Stored(final, sha, size)


def existing(path: str | None) -> Path:
    """A stored file, or NotFound when storage lost it."""
    if not path or not Path(path).exists():
        raise NotFound(_l("The encrypted file is missing from storage; contact the administrator."))
    return Path(path)
