"""Payment providers, one module per kind, found by scanning this package.

    provider_for(config).checkout(order) -> Checkout(redirect_url, trade_no)
    provider_for(config).notice(form) -> Notice, or raises BadCheckValue
    provider_for(config).query(order_no) -> Status
    provider_for(config).refund(order_no, trade_no, amount)
    provider_for(config).settlement(day) -> the day's settlement file (CSV text)
    provider_for(config).test() -> latency in seconds: the gateway answers and takes the credentials

A kind is ONE module of this package whose Provider subclass is decorated
with ``@register``: it declares its ``kind``, ``label`` and the payment
``method`` it offers (card, chip, account). Adding a kind touches no other
file: the administrators' screen, the checks and the portal read ``kinds()``.
Providers know nothing of the platform's tables: the payments service hands
them a ProviderConfig (the merchant key decrypted in memory only). Messages
are plain words, never the merchant key.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from flask_babel import lazy_gettext as _l


class ProviderError(Exception):
    """The gateway could not do it. ``reason``: unreachable, timeout, refused, bad_response."""

    def __init__(self, message, reason: str = "unreachable"):
        super().__init__(message)
        self.message = message
        self.reason = reason

    def __str__(self) -> str:
        return str(self.message)


class BadCheckValue(ProviderError):
    def __init__(self):
        super().__init__(_l("the check value does not match"), "check_value")


@dataclass(frozen=True)
class ProviderConfig:
    code: str
    kind: str
    url: str
    merchant_id: str
    key: str
    iv: str
    timeout: float = 10.0


@dataclass(frozen=True)
class Order:
    order_no: str
    amount: int
    item_name: str
    description: str
    notify_url: str  # server to server: where the gateway posts the notification
    return_url: str  # the payer's browser comes back here (never trusted for state)
    created_at: str  # YYYY/MM/DD HH:MM:SS, Taipei time


@dataclass(frozen=True)
class Checkout:
    redirect_url: str
    trade_no: str


@dataclass(frozen=True)
class Notice:
    """A verified notification's content (the check value held)."""

    merchant_id: str
    order_no: str
    trade_no: str
    amount: int | None
    currency: str
    paid: bool
    rtn_code: str


@dataclass(frozen=True)
class Status:
    """What the query API says of an order: paid, unpaid, failed, refunded or unknown."""

    order_no: str
    state: str
    trade_no: str = ""
    amount: int | None = None


class Provider:
    kind: ClassVar[str] = ""
    label: ClassVar[object] = ""
    method: ClassVar[str] = ""

    def __init__(self, config: ProviderConfig):
        self.config = config

    def checkout(self, order: Order) -> Checkout:
        raise NotImplementedError

    def notice(self, form: Mapping[str, str]) -> Notice:
        raise NotImplementedError

    def query(self, order_no: str) -> Status:
        raise NotImplementedError

    def refund(self, order_no: str, trade_no: str, amount: int) -> None:
        raise NotImplementedError

    def settlement(self, day) -> str:
        raise NotImplementedError

    def test(self) -> float:
        raise NotImplementedError


_registry: dict[str, type[Provider]] = {}
_lock = threading.Lock()
_scanned = False


def register(cls: type[Provider]) -> type[Provider]:
    _registry[cls.kind] = cls
    return cls


def discover() -> dict[str, type[Provider]]:
    global _scanned
    with _lock:
        if not _scanned:
            for info in pkgutil.iter_modules(__path__):
                if not info.name.startswith("_"):
                    importlib.import_module(f"{__name__}.{info.name}")
            _scanned = True
    return _registry


def kinds() -> list[str]:
    return sorted(k for k, c in discover().items() if c.method)


def choices() -> list[tuple[str, str]]:
    return [(k, str(discover()[k].label)) for k in kinds()]


def label_of(kind: str) -> str:
    cls = discover().get(kind)
    return str(cls.label) if cls else kind


def method_of(kind: str) -> str | None:
    cls = discover().get(kind)
    return cls.method if cls else None


def provider_for(config: ProviderConfig) -> Provider:
    cls = discover().get(config.kind)
    if cls is None or not cls.method:
        raise ProviderError(_l("unknown payment provider kind"), "config")
    return cls(config)
