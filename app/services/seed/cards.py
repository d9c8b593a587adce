"""The demo's certificate card accounts: ``clerk.card``, a tax-bureau clerk who
must sign in with card plus password, bound to the demo GCA card of the card
PKI (``python -m app.simulators.cardpki``: its cards.json names the staff
account each government card is meant for). The other staff cards (clerk.social's)
are left unbound: their holders bind them after a password sign-in. Idempotent;
without the card PKI the account is made and left unbound."""

from __future__ import annotations

import datetime
import hashlib
import json
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import select

from app.models.cards import CardBinding
from app.models.org import Agency, PlatformUser
from app.services import org

# username, role, agency code, last name, first name, title
CARD_ACCOUNTS = [("clerk.card", "Clerk", "TAX", "張", "稅務", "查詢人員（憑證登入）")]


def seed_card_accounts(sm, session, agencies: dict[str, Agency], password: str, cards_dir: Path) -> dict:
    created, bound = [], []
    for username, role_name, agency_code, last, first, title in CARD_ACCOUNTS:
        user = sm.find_user(username=username)
        if user is None:
            user = sm.add_user(
                username=username, first_name=first, last_name=last, email=f"{username}@county.demo.gov.tw",
                role=sm.find_role(role_name), password=password,
            )  # fmt: skip
            if not user:
                raise RuntimeError(f"could not create demo account {username}")
            user.agency = agencies[agency_code]
            user.title = title
            user.card_required = True
            org.validate_user(session, user)
            created.append(username)
    session.commit()
    manifest = Path(cards_dir) / "cards.json"
    if not manifest.is_file():
        return {"created": created, "bound": bound}
    pki = json.loads(manifest.read_text(encoding="utf-8"))
    ours = {account[0] for account in CARD_ACCOUNTS}  # the other staff cards are left for their holders to bind
    for card in pki["cards"]:
        if card.get("kind") != "government" or card.get("username") not in ours or card.get("state") != "good":
            continue
        user = session.scalar(select(PlatformUser).where(PlatformUser.username == card["username"]))
        if user is None:
            continue
        cert = x509.load_pem_x509_certificate((Path(cards_dir) / card["sign_cert"]).read_bytes())
        der = cert.public_bytes(Encoding.DER)
        fingerprint = hashlib.sha256(der).hexdigest()
        if session.scalar(select(CardBinding.id).where(CardBinding.fingerprint == fingerprint)):
            continue
        session.add(
            CardBinding(
                user_id=user.id, kind="government", fingerprint=fingerprint, issuer=cert.issuer.rfc4514_string()[:500],
                serial=format(cert.serial_number, "X"), org_oid=card.get("org_oid"),
                not_after=cert.not_valid_after_utc.replace(tzinfo=None), certificate=der,
                created_at=datetime.datetime.utcnow(),
            )
        )  # fmt: skip
        bound.append(card["username"])
    session.commit()
    return {"created": created, "bound": bound}
