"""Staff certificates: kept at this name for ``flask transfer recheck-certs`` (app/cli.py).

The rules live in ``app.services.transfer.pki``, the commands in
``app.services.transfer.certificates``.
"""

from app.services.transfer.pki import STATUS_LABELS, USAGE_LABELS, check, recheck

__all__ = ["STATUS_LABELS", "USAGE_LABELS", "check", "recheck"]
