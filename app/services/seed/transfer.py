"""Demo transfer world: a test PKI, the transfer officers' certificates, a transfer item.

The PKI (root -> intermediate -> staff, plus a revoked, an expired, an
untrusted and an unsuitable certificate to try refusals with) is written once
to DEMO_PKI_DIR; the officers' keys are PKCS#12 files with DEMO_PKI_PIN.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from app.models.org import Agency, PlatformUser
from app.models.transfer import StaffCertificate, TransferItem
from app.services.transfer import pki as checks

# (username, agency code): the demo transfer officers who get a certificate
OFFICERS = [("transfer.social", "SOCIAL"), ("transfer.tax", "TAX")]
ITEMS = [("SOCIAL", "TAX", "低收入戶財稅資料比對", True)]


def ensure_pki(directory: Path, pin: str, agencies: dict[str, Agency]):
    """The demo PKI in `directory` (made once; later calls read it back)."""
    from app.kit import demo_pki

    staff = [demo_pki.StaffSpec(username, agencies[code].name) for username, code in OFFICERS]
    return demo_pki.make_pki(directory, staff, pin=pin)


def seed_transfer(session, agencies: dict[str, Agency], pki_dir: Path, pin: str) -> dict:
    pki = ensure_pki(Path(pki_dir), pin, agencies)
    registered = []
    for username, _code in OFFICERS:
        user = session.scalar(select(PlatformUser).where(PlatformUser.username == username))
        if user is None:
            continue
        der_or_pem = Path(pki.staff[username].cert).read_bytes()
        checked = checks.check(der_or_pem)
        if session.scalar(select(StaffCertificate.id).where(StaffCertificate.fingerprint == checked.fingerprint)):
            continue
        checks.record(session, user.id, checked)
        registered.append(username)
    items = []
    for sending, receiving, description, ftp in ITEMS:
        exists = session.scalar(
            select(TransferItem.id).where(
                TransferItem.sending_agency_id == agencies[sending].id,
                TransferItem.receiving_agency_id == agencies[receiving].id,
                TransferItem.description == description,
            )
        )
        if not exists:
            item = TransferItem(
                sending_agency_id=agencies[sending].id,
                receiving_agency_id=agencies[receiving].id,
                description=description,
                ftp_allowed=ftp,
                active=True,
            )
            session.add(item)
            items.append(description)
    session.commit()
    return {"certificates": registered, "items": items}
