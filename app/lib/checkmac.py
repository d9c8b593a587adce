"""The check value of Taiwan's payment gateways (ECPay's CheckMacValue, SHA-256).

The fields but the check value itself, sorted by name without regard to case,
joined as ``HashKey=...&k1=v1&...&HashIV=...``, URL-encoded as .NET's
``HttpUtility.UrlEncode`` does (spaces as ``+``; ``- _ . ! * ( )`` left as
they are), lower-cased, hashed with SHA-256 and written in upper-case hex.
The platform's payment providers and the gateway simulator both use it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import quote_plus

FIELD = "CheckMacValue"
_KEEP = "-_.!*()"


def check_value(fields: Mapping[str, object], hash_key: str, hash_iv: str) -> str:
    pairs = sorted(
        ((k, "" if v is None else str(v)) for k, v in fields.items() if k != FIELD), key=lambda kv: kv[0].lower()
    )
    raw = "&".join([f"HashKey={hash_key}", *(f"{k}={v}" for k, v in pairs), f"HashIV={hash_iv}"])
    encoded = quote_plus(raw, safe=_KEEP).lower()
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest().upper()


def sign(fields: Mapping[str, object], hash_key: str, hash_iv: str) -> dict[str, str]:
    """The fields as strings with their check value added."""
    out = {k: "" if v is None else str(v) for k, v in fields.items() if k != FIELD}
    out[FIELD] = check_value(out, hash_key, hash_iv)
    return out


def verify(fields: Mapping[str, object], hash_key: str, hash_iv: str) -> bool:
    given = str(fields.get(FIELD) or "")
    return bool(given) and hmac.compare_digest(given.upper(), check_value(fields, hash_key, hash_iv))
