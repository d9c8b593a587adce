"""The password policy: what a password set by an Admin or by its user must be."""

from __future__ import annotations

import functools
import re
from pathlib import Path

from flask import current_app
from flask_babel import lazy_gettext as _l

from app.services.errors import InvalidInput

TOO_SHORT = _l("The password must be at least %(length)s characters long.")
TOO_COMMON = _l("This password is too common and easily guessed; choose another.")
HOLDS_NAME = _l("The password must not contain the account name.")

_TRAILING = re.compile(r"[\d\W_]+$")
# Keyboard rows and columns (US layout, as Taiwanese keyboards print it) a
# password may walk along: a run of 6 or more of these in either direction is
# a pattern, not a secret.
_WALKS = ("1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm", "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
          "zaq12wsxcde34rfvbgt56yhnmju78ik", "abcdefghijklmnopqrstuvwxyz")  # fmt: skip
_WALK_RUN = 6
_MIN_DISTINCT = 5


def _walks(folded: str) -> bool:
    """Whether ``folded`` holds a run of _WALK_RUN keys along a row, a column or
    the alphabet (forwards or backwards, the digit row wrapping 0 -> 1)."""
    for line in _WALKS:
        ring = line + line[: _WALK_RUN - 1] if line[0].isdigit() else line
        for seq in (ring, ring[::-1]):
            for i in range(len(seq) - _WALK_RUN + 1):
                if seq[i : i + _WALK_RUN] in folded:
                    return True
    return False


@functools.lru_cache(maxsize=4)
def _common(path: str) -> frozenset[str]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().casefold() for line in lines if line.strip() and not line.startswith("#"))


def check(password: str, username: str | None) -> None:
    """Raise InvalidInput (in the user's language) when ``password`` breaks the policy:
    shorter than PASSWORD_MIN_LENGTH, a common password (or one followed only by
    digits or signs), a pattern (fewer than five different characters, or a
    walk of six keys along a keyboard row or column or the alphabet), or holding
    the account name (case ignored)."""
    password = password or ""
    length = int(current_app.config.get("PASSWORD_MIN_LENGTH", 12))
    if len(password) < length:
        raise InvalidInput(TOO_SHORT, length=length)
    common = _common(current_app.config["PASSWORD_COMMON_LIST"])
    folded = password.casefold()
    base = _TRAILING.sub("", folded)
    if folded in common or (len(base) >= 4 and base in common):
        raise InvalidInput(TOO_COMMON)
    # 111111111111, 121212121212, 123456789012, abcdefghijkl, zaq12wsxcde3: patterns.
    if len(set(folded)) < _MIN_DISTINCT or _walks(folded):
        raise InvalidInput(TOO_COMMON)
    name = (username or "").strip().casefold()
    if len(name) >= 3 and name in folded:
        raise InvalidInput(HOLDS_NAME)
