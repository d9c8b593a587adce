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


@functools.lru_cache(maxsize=4)
def _common(path: str) -> frozenset[str]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().casefold() for line in lines if line.strip() and not line.startswith("#"))


def check(password: str, username: str | None) -> None:
    """Raise InvalidInput (in the user's language) when ``password`` breaks the policy:
    shorter than PASSWORD_MIN_LENGTH, a common password (or one followed only by
    digits or signs), or holding the account name (case ignored)."""
    password = password or ""
    length = int(current_app.config.get("PASSWORD_MIN_LENGTH", 12))
    if len(password) < length:
        raise InvalidInput(TOO_SHORT, length=length)
    common = _common(current_app.config["PASSWORD_COMMON_LIST"])
    folded = password.casefold()
    base = _TRAILING.sub("", folded)
    if folded in common or (len(base) >= 4 and base in common):
        raise InvalidInput(TOO_COMMON)
    name = (username or "").strip().casefold()
    if len(name) >= 3 and name in folded:
        raise InvalidInput(HOLDS_NAME)
