"""Where the encrypted files live (TRANSFER_DIR), and how an upload gets there.

Each upload is streamed to a temporary file (``tmp/*.part``, locked by its
process while it lives) while hashed; it must be exactly as long as its sender
declared (a connection that ends early is a cut-off upload, not a shorter
file), and read to its end as CMS EnvelopedData (or AuthEnvelopedData) for
exactly the expected certificates: a file cut off anywhere or with anything
after its end is refused. Only then is it renamed into place; a broken or
refused upload leaves nothing behind. What a killed process leaves (an unlocked
``.part``, a partial FTP upload, a file renamed into place but never
registered) is removed by ``sweep``.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import re
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography import x509
from flask import current_app
from flask_babel import lazy_gettext as _l

from app.models.transfer import StaffCertificate
from app.services.errors import DomainError, InvalidInput, NotFound

CHUNK = 1024 * 1024
log = logging.getLogger(__name__)
PART = ".part"
STORED_NAME = re.compile(r"(payload|result)-[0-9a-f]{16}-[0-9a-f]{8}\.p7m")
FTP_KEPT = (".rejected", ".rejected.txt")  # what the FTP folders hold on purpose (refused files and why)

CUT_OFF = _l(
    "The upload was cut off: %(received)s of the %(declared)s bytes announced arrived. "
    "Nothing was registered; please upload the file again."
)
CONNECTION_LOST = _l(
    "The connection was lost after %(received)s bytes. Nothing was registered; please upload the file again."
)
INCOMPLETE = _l(
    "The encrypted file is incomplete or damaged (cut short, or with data after its end). "
    "Nothing was registered; upload the whole file again."
)


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


def _read(stream: BinaryIO, n: int, received: int) -> bytes:
    try:
        return stream.read(n)
    except Exception as exc:  # the server's disconnect error (Werkzeug, gunicorn...), or the line's
        if getattr(exc, "code", None) == 413:  # the server's own size limit (a body without Content-Length)
            raise InvalidInput(_l("The file is larger than the platform accepts.")) from exc
        raise InvalidInput(CONNECTION_LOST, received=received) from exc


def _copy(stream: BinaryIO, out, max_bytes: int, declared: int | None) -> tuple[str, int]:
    """Copy at most ``declared`` bytes (when the sender declared a length), hashing them."""
    if declared is not None and declared > max_bytes:
        raise InvalidInput(_l("The file is larger than the platform accepts."))
    digest = hashlib.sha256()
    size = 0
    while True:
        want = CHUNK if declared is None else min(CHUNK, declared - size)
        chunk = _read(stream, want, size) if want else b""
        if not chunk:
            break
        size += len(chunk)
        if size > max_bytes:
            raise InvalidInput(_l("The file is larger than the platform accepts."))
        digest.update(chunk)
        out.write(chunk)
    if declared is not None and size < declared:
        raise InvalidInput(CUT_OFF, received=size, declared=declared)
    out.flush()
    os.fsync(out.fileno())
    return digest.hexdigest(), size


def _locked_part(folder: Path) -> tuple[int, Path]:
    """A new temporary file, locked by this process (``sweep`` removes only unlocked ones)."""
    while True:
        fd, name = tempfile.mkstemp(dir=folder, suffix=PART)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            same = os.stat(name).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd, Path(name)
        os.close(fd)  # a sweep took it between its creation and the lock: take another


@contextmanager
def spooled(stream: BinaryIO, max_bytes: int | None = None, declared: int | None = None) -> Iterator[tuple]:
    """``(path, sha256, size)`` of an upload copied to a locked temporary file, which
    is removed when the block ends unless the block has moved it away.

    ``declared``: the length the sender announced (HTTP Content-Length); fewer bytes
    is a cut-off upload (InvalidInput), and no byte beyond it is read."""
    max_bytes = max_bytes or current_app.config["TRANSFER_MAX_BYTES"]
    fd, path = _locked_part(_root() / "tmp")
    out = os.fdopen(fd, "wb")
    try:
        try:
            sha, size = _copy(stream, out, max_bytes, declared)
        except OSError as exc:
            raise storage_error(exc) from exc
        if size == 0:
            raise InvalidInput(_l("The file is empty."))
        yield path, sha, size
    finally:
        try:  # still ours (not moved away by the block): removed while locked
            if os.stat(path).st_ino == os.fstat(out.fileno()).st_ino:
                path.unlink()
        except FileNotFoundError:
            pass
        out.close()


def _recipient_key(cert_der: bytes) -> tuple[bytes, int]:
    cert = x509.load_der_x509_certificate(cert_der)
    return cert.issuer.public_bytes(), cert.serial_number


def check_envelope(path: Path, expected: list[StaffCertificate]) -> None:
    """InvalidInput unless the file is CMS EnvelopedData for exactly these certificates."""
    from app.kit.errors import Damaged, KitError
    from app.kit.inspect import whole_envelope_recipients

    try:
        with open(path, "rb") as fh:
            found = whole_envelope_recipients(fh)
    except Damaged as exc:
        raise InvalidInput(INCOMPLETE) from exc
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


def keep(
    stream: BinaryIO, expected: list[StaffCertificate], case_id: int, kind: str, declared: int | None = None
) -> Stored:
    """Spool, check and move an upload into the case's folder; nothing remains when it is refused.

    ``declared``: the length the sender announced; a shorter body is refused as cut off."""
    final = None
    with spooled(stream, declared=declared) as (tmp, sha, size):
        check_envelope(tmp, expected)
        try:
            folder = _root() / str(case_id)
            folder.mkdir(parents=True, exist_ok=True)
            final = folder / f"{kind}-{sha[:16]}-{uuid.uuid4().hex[:8]}.p7m"
            os.replace(tmp, final)
        except OSError as exc:
            if final:
                final.unlink(missing_ok=True)
            raise storage_error(exc) from exc
    return Stored(final, sha, size)


def existing(path: str | None) -> Path:
    """A stored file, or NotFound when storage lost it. It is looked for in the case's
    folder under the current ``TRANSFER_DIR`` first (the storage restored from a backup
    or moved elsewhere), then where it was stored."""
    if path:
        stored = Path(path)
        for candidate in (Path(current_app.config["TRANSFER_DIR"]) / stored.parent.name / stored.name, stored):
            if candidate.is_file():
                return candidate
    raise NotFound(_l("The encrypted file is missing from storage; contact the administrator."))


# --- what a killed process leaves behind --------------------------------------------------------


def _remove_abandoned_part(path: Path, stale_before: float) -> bool:
    """Remove a ``.part`` that no living process holds (its lock is free), or, where
    the file system has no locks, one not written to since ``stale_before``."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # an upload in progress
        except OSError:
            if os.fstat(fd).st_mtime >= stale_before:
                return False
        # Removed while this holds the lock: a process that has just created it and
        # takes the lock after this sees it gone (``_locked_part``) and takes another.
        path.unlink(missing_ok=True)
        return True
    finally:
        os.close(fd)


def _stale(path: Path, stale_before: float) -> bool:
    try:
        return path.is_file() and path.stat().st_mtime < stale_before
    except FileNotFoundError:
        return False


def sweep_parts(transfer_dir: Path, stale_seconds: float) -> int:
    """Remove the temporary files (``TRANSFER_DIR/tmp/*.part``) that no living process
    holds (a process killed mid-upload); safe while other processes upload."""
    stale_before = time.time() - stale_seconds
    tmp = transfer_dir / "tmp"
    return sum(_remove_abandoned_part(p, stale_before) for p in tmp.glob(f"*{PART}")) if tmp.is_dir() else 0


def sweep(session, transfer_dir: Path, ftp_root: Path | None, stale_seconds: float) -> dict[str, int]:
    """Remove what uploads left when their process was killed; returns counts.

    - ``parts``: temporary files (``TRANSFER_DIR/tmp/*.part``) that no living process holds;
    - ``ftp``: partial FTP uploads (files other than ``.rejected`` ones in an agency's
      folder not written to for ``stale_seconds``: the FTPS server hands a whole upload
      on at once, and drops a data connection idle for minutes);
    - ``orphans``: files in a case's folder that no case refers to, older than
      ``stale_seconds`` (renamed into place by a process killed before its commit).
    """
    from sqlalchemy import select

    from app.models.transfer import TransferCase

    stale_before = time.time() - stale_seconds
    counts = {"parts": sweep_parts(transfer_dir, stale_seconds), "ftp": 0, "orphans": 0}
    if ftp_root is not None and ftp_root.is_dir():
        for home in ftp_root.iterdir():
            if not home.is_dir() or home.name.startswith("."):
                continue  # .ready and .working belong to the poller
            for path in home.iterdir():
                if not path.name.endswith(FTP_KEPT) and _stale(path, stale_before):
                    path.unlink(missing_ok=True)
                    counts["ftp"] += 1
    folders = [p for p in transfer_dir.iterdir() if p.is_dir() and p.name.isdigit()] if transfer_dir.is_dir() else []
    for folder in folders:
        files = [p for p in folder.iterdir() if STORED_NAME.fullmatch(p.name) and _stale(p, stale_before)]
        if not files or int(folder.name) > 2**63 - 1:
            continue
        row = session.execute(
            select(TransferCase.payload_path, TransferCase.result_path).where(TransferCase.id == int(folder.name))
        ).first()
        if row is None:
            continue  # a case this database does not know (restored from an older backup?): not ours to judge
        referred = {Path(p).name for p in row if p}  # by name: TRANSFER_DIR may have moved since
        for path in files:
            if path.name not in referred:
                path.unlink(missing_ok=True)
                counts["orphans"] += 1
    if any(counts.values()):
        log.info("transfer sweep removed %(parts)s temporary, %(ftp)s partial FTP and %(orphans)s orphan files", counts)
    return counts
