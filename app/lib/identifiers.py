"""Checks of Taiwanese identifiers: national ID, resident certificate, business number."""

import re

# Letter -> two-digit value (DOMAIN.md).
_LETTER_VALUES = {
    "A": 10, "B": 11, "C": 12, "D": 13, "E": 14, "F": 15, "G": 16, "H": 17,
    "I": 34, "J": 18, "K": 19, "L": 20, "M": 21, "N": 22, "O": 35, "P": 23,
    "Q": 24, "R": 25, "S": 26, "T": 27, "U": 28, "V": 29, "W": 32, "X": 30,
    "Y": 31, "Z": 33,
}  # fmt: skip
_WEIGHTS = (1, 9, 8, 7, 6, 5, 4, 3, 2, 1, 1)
_NATIONAL = re.compile(r"^[A-Z][12][0-9]{8}$")
_RESIDENT_NEW = re.compile(r"^[A-Z][89][0-9]{8}$")
_RESIDENT_OLD = re.compile(r"^[A-Z]{2}[0-9]{8}$")
_BUSINESS = re.compile(r"^[0-9]{8}$")


def _checksum_ok(digits: list[int]) -> bool:
    return sum(w * d for w, d in zip(_WEIGHTS, digits)) % 10 == 0


def _letter_digits(letter: str) -> list[int]:
    v = _LETTER_VALUES[letter]
    return [v // 10, v % 10]


def is_national_id(value: str) -> bool:
    """國民身分證統一編號: letter, 1 or 2, eight digits, checksum."""
    if not isinstance(value, str) or not _NATIONAL.match(value):
        return False
    return _checksum_ok(_letter_digits(value[0]) + [int(c) for c in value[1:]])


def is_resident_id(value: str) -> bool:
    """外來人口統一證號, new format (A800000014) or old format (AA00000009)."""
    if not isinstance(value, str):
        return False
    if _RESIDENT_NEW.match(value):
        return _checksum_ok(_letter_digits(value[0]) + [int(c) for c in value[1:]])
    if _RESIDENT_OLD.match(value):
        # The second letter counts as the units digit of its value.
        second = _LETTER_VALUES[value[1]] % 10
        return _checksum_ok(_letter_digits(value[0]) + [second] + [int(c) for c in value[2:]])
    return False


def is_person_id(value: str) -> bool:
    """A national ID or a resident certificate number."""
    return is_national_id(value) or is_resident_id(value)


def is_business_number(value: str) -> bool:
    """統一編號: weights 1,2,1,2,1,2,4,1; digit sums; multiple of 5 (since 2023)."""
    if not isinstance(value, str) or not _BUSINESS.match(value):
        return False
    weights = (1, 2, 1, 2, 1, 2, 4, 1)
    total = 0
    for w, c in zip(weights, value):
        p = w * int(c)
        total += p // 10 + p % 10
    if total % 5 == 0:
        return True
    return value[6] == "7" and (total + 1) % 5 == 0


def mask_id(value: str, keep: int = 4) -> str:
    """Show only the last ``keep`` characters: ``******6789``."""
    if not value:
        return ""
    return "*" * max(len(value) - keep, 0) + value[-keep:]
