"""Content digests computed in a helper thread while the caller encrypts or writes.

hashlib releases the GIL for large buffers, so hashing one chunk runs on the
other core while the main thread encrypts or writes the same chunk.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor

SUPPORTED = ("sha256", "sha384", "sha512", "sha224", "sha1")


class BackgroundHash:
    """Digests of a stream by several algorithms; `update` returns at once, `wait`
    must be called before the buffer given to `update` is reused."""

    def __init__(self, names: Iterable[str]):
        self._hashes = {name: hashlib.new(name) for name in names if name in SUPPORTED}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kit-hash")
        self._pending: Future | None = None

    @property
    def names(self) -> list[str]:
        return list(self._hashes)

    def _update(self, data: bytes | memoryview) -> None:
        for h in self._hashes.values():
            h.update(data)

    def update(self, data: bytes | memoryview) -> None:
        self.wait()
        self._pending = self._pool.submit(self._update, data)

    def wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def digests(self) -> dict[str, bytes]:
        self.wait()
        return {name: h.digest() for name, h in self._hashes.items()}

    def close(self) -> None:
        self._pending = None
        self._pool.shutdown(wait=True)

    def __enter__(self) -> BackgroundHash:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
