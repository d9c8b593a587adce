"""Verification codes for printouts: 80 random bits + one check character.

Format: ``XXXX-XXXX-XXXX-XXXX-C`` in Crockford's base32 alphabet (no I, L, O,
U), so a clerk reading it aloud or a citizen typing it cannot confuse 0/O or
1/I/L. The check character (mod 37, as ISO 7064 / Crockford) catches every
single-character typo and most transpositions before any lookup is made.
"""

import re
import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # 32 symbols
CHECK_ALPHABET = ALPHABET + "*~$=U"  # 37 symbols for the check character
_READ = {"O": "0", "I": "1", "L": "1"}


def _check_char(body: str) -> str:
    value = 0
    for ch in body:
        value = value * 32 + ALPHABET.index(ch)
    return CHECK_ALPHABET[value % 37]


def new_code() -> str:
    bits = secrets.randbits(80)  # one read of the system's random source, 16 x 5 bits
    body = "".join(ALPHABET[(bits >> (5 * i)) & 31] for i in range(16))
    return "-".join(body[i : i + 4] for i in range(0, 16, 4)) + "-" + _check_char(body)


def normalise(text: str) -> str | None:
    """The canonical form of a typed code, or None when it is malformed or
    its check character does not match (a typo)."""
    if not isinstance(text, str) or len(text) > 40:
        return None
    raw = re.sub(r"[\s-]", "", text.upper())
    raw = "".join(_READ.get(ch, ch) for ch in raw)
    if len(raw) != 17:
        return None
    body, check = raw[:16], raw[16]
    if any(ch not in ALPHABET for ch in body) or _check_char(body) != check:
        return None
    return "-".join(body[i : i + 4] for i in range(0, 16, 4)) + "-" + check
