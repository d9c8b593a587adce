"""Secrets at rest: one Fernet helper with key rotation, and a column type.

Keys come from FIELD_ENCRYPTION_KEYS (comma-separated). The first key
encrypts; every key decrypts, so a new key is put first and old ciphertexts
are re-encrypted with ``rotate()``.
"""

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy.types import Text, TypeDecorator

_fernet: MultiFernet | None = None
_newest: Fernet | None = None


def configure(keys: str) -> None:
    global _fernet, _newest
    parts = [k.strip() for k in (keys or "").split(",") if k.strip()]
    if not parts:
        raise ValueError("FIELD_ENCRYPTION_KEYS is empty")
    fernets = [Fernet(k.encode()) for k in parts]
    _fernet, _newest = MultiFernet(fernets), fernets[0]


def _f() -> MultiFernet:
    if _fernet is None:
        raise RuntimeError("field encryption is not configured")
    return _fernet


def encrypt(plain: str | bytes) -> str:
    data = plain.encode() if isinstance(plain, str) else plain
    return _f().encrypt(data).decode()


def decrypt_bytes(token: str) -> bytes:
    try:
        return _f().decrypt(token.encode())
    except InvalidToken as exc:
        raise ValueError("ciphertext cannot be decrypted with the configured keys") from exc


def decrypt(token: str) -> str:
    return decrypt_bytes(token).decode()


def rotate(token: str) -> str:
    """Re-encrypt a ciphertext with the first (newest) key."""
    try:
        return _f().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("ciphertext cannot be decrypted with the configured keys") from exc


def is_current(token: str) -> bool:
    """Whether a ciphertext is under the first (newest) key already."""
    _f()
    try:
        _newest.decrypt(token.encode())
    except InvalidToken:
        return False
    return True


class EncryptedText(TypeDecorator):
    """A text column stored Fernet-encrypted; Python sees plain text."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return encrypt(value)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return decrypt(value)
