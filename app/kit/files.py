"""Output files that appear whole or not at all: written to a temporary file
beside the target, renamed over it only when the caller's block succeeds."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import DiskFull, StorageError

_write = os.write  # the one place bytes leave the process (tests replace it to fill the disk)
FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def _storage_error(exc: OSError, path: Path) -> StorageError:
    if exc.errno in FULL:
        return DiskFull(f"{path.parent} ({exc.strerror})")
    return StorageError(f"{path} ({exc.strerror or exc})")


class Output:
    """An open temporary file; `write` takes bytes or memoryviews."""

    def __init__(self, fd: int, target: Path):
        self._fd = fd
        self._target = target
        self.written = 0

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        try:
            while len(view):
                n = _write(self._fd, view)
                view = view[n:]
                self.written += n
        except OSError as exc:
            raise _storage_error(exc, self._target) from None


@contextmanager
def atomic_output(target: str | os.PathLike) -> Iterator[Output]:
    """Yield an Output; on success fsync and rename it to `target`, on any failure remove it."""
    target = Path(target)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    except OSError as exc:
        raise _storage_error(exc, target) from None
    try:
        yield Output(fd, target)
        try:
            os.fsync(fd)
            os.close(fd)
            fd = -1
            os.replace(tmp, target)
        except OSError as exc:
            raise _storage_error(exc, target) from None
    except BaseException:
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
