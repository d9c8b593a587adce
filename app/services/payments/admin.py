"""The administrators' commands for payment providers and fee items: save (the
merchant key and IV kept when left empty: the screen never shows them), delete,
and test a provider (the gateway answers and takes the credentials)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from urllib.parse import urlparse

from flask_babel import lazy_gettext as _l
from sqlalchemy import inspect, select

from app.models.payments import FeeItem, Payment, PaymentProvider
from app.services import audit
from app.services.actors import Actor
from app.services.command import transaction
from app.services.errors import Conflict, InvalidInput
from app.services.payments import providers
from app.services.payments.fees import check_fee_item


def config_of(provider: PaymentProvider) -> providers.ProviderConfig:
    """The provider as its kind sees it, the merchant key and IV decrypted in memory only."""
    return providers.ProviderConfig(
        code=provider.code,
        kind=provider.kind,
        url=provider.url,
        merchant_id=provider.merchant_id,
        key=provider.merchant_key or "",
        iv=provider.merchant_iv or "",
        timeout=provider.timeout or 10.0,
    )


def _keep_stored_secrets(provider: PaymentProvider) -> None:
    state = inspect(provider)
    if not state.persistent:
        return
    for name in ("merchant_key", "merchant_iv"):
        history = state.attrs[name].history
        if history.added and not (history.added[0] or "").strip() and history.deleted:
            setattr(provider, name, history.deleted[0])


def check_provider(provider: PaymentProvider) -> None:
    """Refuse a provider that cannot work (InvalidInput). On a change, a merchant key or IV left
    empty keeps the stored one first (the screen leaves them empty unless they change)."""
    _keep_stored_secrets(provider)
    if provider.kind not in providers.kinds():
        raise InvalidInput(_l("Unknown payment provider kind."))
    url = urlparse(provider.url or "")
    if url.scheme not in ("http", "https") or not url.netloc:
        raise InvalidInput(_l("The gateway's address must be an http or https URL."))
    code = (provider.code or "").strip()
    if not code or not code.replace("-", "").replace("_", "").isalnum():
        raise InvalidInput(_l("The provider code may hold letters, digits, - and _ only."))
    if not (provider.merchant_id or "").strip() or not provider.merchant_key or not provider.merchant_iv:
        raise InvalidInput(_l("The merchant ID, key (HashKey) and IV (HashIV) are required."))


def save_provider(session, actor: Actor, provider: PaymentProvider) -> PaymentProvider:
    """Create or change a provider (the automatic CRUD audit event commits with it). Raises InvalidInput."""
    with transaction(session):
        check_provider(provider)
        session.add(provider)
        session.flush()
    return provider


def delete_provider(session, actor: Actor, provider: PaymentProvider) -> None:
    """Raises Conflict while payments were made through it (they are the accounts' records)."""
    with transaction(session):
        if session.scalar(select(Payment.id).where(Payment.provider_id == provider.id).limit(1)):
            raise Conflict(_l("Payments were made through this provider: disable it instead of deleting it."))
        session.delete(provider)


def save_fee_item(session, actor: Actor, item: FeeItem) -> FeeItem:
    with transaction(session):
        check_fee_item(item)
        session.add(item)
        session.flush()
    return item


def delete_fee_item(session, actor: Actor, item: FeeItem) -> None:
    with transaction(session):
        if session.scalar(select(Payment.id).where(Payment.fee_item_id == item.id).limit(1)):
            raise Conflict(_l("Payments were made for this fee item: make it inactive instead of deleting it."))
        session.delete(item)


@dataclass(frozen=True)
class ProviderTest:
    ok: bool
    latency_ms: float | None
    message: str


def test_provider(session, actor: Actor, provider: PaymentProvider) -> ProviderTest:
    """Ask the gateway to check the credentials; record the outcome on the provider and in the audit trail."""
    try:
        latency = providers.provider_for(config_of(provider)).test()
        ok, ms, message = True, round(latency * 1000, 1), ""
    except providers.ProviderError as exc:
        ok, ms, message = False, None, str(exc)
    except Exception as exc:  # a bug in a kind must not take the screen down
        ok, ms, message = False, None, type(exc).__name__
    for secret in (provider.merchant_key, provider.merchant_iv):
        if secret and secret in message:
            message = message.replace(secret, "***")
    with transaction(session):
        provider.last_checked_at = datetime.datetime.utcnow()
        provider.last_ok = ok
        provider.last_error = message[:500] or None
        audit.record(session, "payment_provider_test", object_type="PaymentProvider", object_id=provider.id,
                     outcome="ok" if ok else "error", detail={"provider": provider.code}, actor=actor)  # fmt: skip
    return ProviderTest(ok=ok, latency_ms=ms, message=message)
