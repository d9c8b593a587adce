"""Answers kept for a while in one process: the form plans' configuration
generation, the token checks' credentials, the permission checks.

``cache.get(key, ttl, compute)`` gives the answer computed less than ``ttl``
seconds ago, or computes, keeps and gives a new one. ``ttl`` is given on each
call (the settings are read when asked, so a test may change them). ``None``
is never kept: "not found" is asked again next time (a record created
meanwhile is found at once). ``forget(key)`` drops one answer (the process
changed what it says), ``clear()`` all.

Thread safe: the table is read and written under a lock; ``compute`` runs
outside it, so a slow answer holds nobody else up (two threads may compute the
same key at once; both answers are fresh, the last kept). At ``max_entries``
the table is emptied rather than grown.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any


class TTLCache:
    def __init__(self, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic):
        self.max_entries = max_entries
        self.clock = clock
        self._answers: dict[Hashable, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, ttl: float, compute: Callable[[], Any]) -> Any:
        """The answer for ``key`` computed less than ``ttl`` seconds ago, else ``compute()`` (kept unless None)."""
        now = self.clock()
        with self._lock:
            kept = self._answers.get(key)
        if kept is not None and now - kept[0] < ttl:
            return kept[1]
        value = compute()
        if value is not None:
            with self._lock:
                if len(self._answers) >= self.max_entries:
                    self._answers.clear()
                self._answers[key] = (now, value)
        return value

    def forget(self, *keys: Hashable) -> None:
        with self._lock:
            for key in keys:
                self._answers.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._answers.clear()
