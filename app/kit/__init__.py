"""The sign-and-encrypt kit: `python -m app.kit encrypt|decrypt ...`.

It runs alone on an agency PC: nothing here imports Flask, SQLAlchemy or any
other part of the platform. Files are CMS (RFC 5652): SignedData (SHA-256,
RSA) inside EnvelopedData (AES-256-CBC, RSA key transport), streamed so that
memory stays flat whatever the file size, and readable by `openssl cms`.

The modules import one another relatively: the platform ships this package
as it is, renamed `county_transfer_kit`, in the wheel transfer officers
download (command `transfer-kit`; app/services/transfer/kit.py builds it).
"""

from __future__ import annotations

from .errors import KitError

__version__ = "1.1"
__all__ = ["KitError", "__version__"]
