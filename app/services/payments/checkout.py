"""Starting a payment and reading one: the citizen's commands, and what the case
pages show of a case's fees and payments."""

from __future__ import annotations

import datetime
import secrets
from dataclasses import dataclass, field

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.lib.rocdate import TAIPEI
from app.models.notify import NotificationCase
from app.models.payments import METHODS, FeeItem, Payment, PaymentProvider
from app.services import audit
from app.services.actors import Actor
from app.services.command import refuse, transaction
from app.services.errors import Conflict, InvalidInput, NotFound, Unavailable
from app.services.payments import providers
from app.services.payments.admin import config_of
from app.services.payments.fees import fees_for_category
from app.services.payments.states import advance
from app.services.portal.person import person_of

NO_CASE = _l("No such case of yours.")
NO_PAYMENT = _l("No such payment of yours.")
NOT_APPLICABLE = _l("This fee does not apply to this case.")
NO_METHOD = _l("This way of paying is not offered at the moment.")
PAID_ALREADY = _l("This fee is paid already.")
CLOSED = _l("This case is no longer open: there is nothing to pay.")
GATEWAY_DOWN = _l(
    "The payment gateway cannot be reached at the moment. Nothing was charged; please try again in a few minutes."
)
METHOD_LABELS = {"card": _l("Credit card"), "chip": _l("Chip financial card"), "account": _l("Bank account")}


@dataclass
class PaymentView:
    id: int
    order_no: str
    case_no: str
    fee_item: str
    agency: str
    amount: int
    currency: str
    method: str
    state: str
    created_at: datetime.datetime
    paid_at: datetime.datetime | None = None
    refunded_at: datetime.datetime | None = None
    redirect_url: str | None = None


@dataclass
class FeeDue:
    fee_item_id: int
    name: str
    agency: str
    amount: int
    due: str
    payable: bool
    payments: list[PaymentView] = field(default_factory=list)


@dataclass
class CaseFees:
    case_no: str
    fees: list[FeeDue]
    methods: list[tuple[str, str]]
    held: bool  # the dispatches wait for a fee due before dispatch


def view_of(p: Payment, redirect_url: str | None = None) -> PaymentView:
    return PaymentView(
        id=p.id,
        order_no=p.order_no,
        case_no=p.case.case_no,
        fee_item=p.fee_item.name,
        agency=p.fee_item.agency.name if p.fee_item.agency else "",
        amount=p.amount,
        currency=p.currency,
        method=p.method,
        state=p.state,
        created_at=p.created_at,
        paid_at=p.paid_at,
        refunded_at=p.refunded_at,
        redirect_url=redirect_url,
    )


def _subject(session, actor: Actor) -> str | None:
    person = person_of(session, actor)  # Forbidden for anyone but a card holder
    return person.subject if person.kind == "citizen" else None


def _my_case(session, actor: Actor, case_no, action: str) -> NotificationCase:
    subject = _subject(session, actor)
    case = None
    if subject and isinstance(case_no, str) and len(case_no) <= 20:
        case = session.scalar(
            select(NotificationCase).where(
                NotificationCase.case_no == case_no, NotificationCase.citizen_id_hash == subject
            )
        )
    if case is None:
        raise refuse(session, NotFound(NO_CASE), actor, action, object_type="NotificationCase")
    return case


def offered_methods(session) -> list[tuple[str, str]]:
    kinds = session.scalars(select(PaymentProvider.kind).where(PaymentProvider.enabled.is_(True))).all()
    methods = {providers.method_of(k) for k in kinds}
    return [(m, str(METHOD_LABELS[m])) for m in METHODS if m in methods]


def _provider_for_method(session, method: str) -> PaymentProvider | None:
    for p in session.scalars(
        select(PaymentProvider).where(PaymentProvider.enabled.is_(True)).order_by(PaymentProvider.id)
    ):
        if providers.method_of(p.kind) == method:
            return p
    return None


def _order_no() -> str:
    """P + Taipei time to the second + 6 random digits: 19 characters, as gateways allow (20 at most)."""
    return "P" + datetime.datetime.now(TAIPEI).strftime("%y%m%d%H%M%S") + f"{secrets.randbelow(10**6):06d}"


def start_payment(session, actor: Actor, case_no: str, fee_item_id: int, method: str) -> PaymentView:
    """Command: the citizen starts paying a fee of their case; returns the payment with the
    gateway's page to go to. Raises NotFound (audited), InvalidInput, Conflict, Unavailable
    (the gateway is down: the payment is marked failed, nothing charged, the citizen may retry)."""
    case = _my_case(session, actor, case_no, "payment.start_refused")
    if method not in METHODS:
        raise InvalidInput(NO_METHOD)
    if case.status != "open":
        raise Conflict(CLOSED)
    fee = session.get(FeeItem, fee_item_id) if isinstance(fee_item_id, int) and 0 < fee_item_id < 2**31 else None
    if fee is None or fee.id not in {f.id for f in fees_for_category(session, case.category_id)}:
        raise InvalidInput(NOT_APPLICABLE)
    paid = session.scalar(
        select(Payment.id).where(Payment.case_id == case.id, Payment.fee_item_id == fee.id, Payment.state == "paid")
    )
    if paid:
        raise Conflict(PAID_ALREADY)
    provider = _provider_for_method(session, method)
    if provider is None:
        raise InvalidInput(NO_METHOD)
    now = datetime.datetime.utcnow()
    with transaction(session):
        payment = Payment(order_no=_order_no(), case=case, fee_item=fee, provider=provider, user_id=actor.user_id,
                          amount=fee.amount, currency="TWD", method=method, state="created", created_at=now)  # fmt: skip
        session.add(payment)
        session.flush()
        audit.record(session, "payment.start", object_type="Payment", object_id=payment.id, actor=actor,
                     detail={"order_no": payment.order_no, "case_no": case.case_no, "amount": fee.amount,
                             "method": method})  # fmt: skip
    cfg = current_app.config
    notify_base = (cfg.get("PAYMENT_NOTIFY_BASE_URL") or cfg["PUBLIC_BASE_URL"]).rstrip("/")
    return_base = cfg["PUBLIC_BASE_URL"].rstrip("/")
    order = providers.Order(
        order_no=payment.order_no,
        amount=payment.amount,
        item_name=fee.name,
        description=f"{case.case_no} {fee.name}",
        notify_url=f"{notify_base}/payments/notify/{provider.code}",
        return_url=f"{return_base}/portal/payments/{payment.id}/return",
        created_at=datetime.datetime.now(TAIPEI).strftime("%Y/%m/%d %H:%M:%S"),
    )
    try:
        started = providers.provider_for(config_of(provider)).checkout(order)
    except providers.ProviderError as exc:
        with transaction(session):
            advance(payment, "fail", datetime.datetime.utcnow())
            audit.record(session, "payment.checkout_failed", object_type="Payment", object_id=payment.id,
                         outcome="error", detail={"reason": exc.reason, "provider": provider.code},
                         actor=actor)  # fmt: skip
        raise Unavailable(GATEWAY_DOWN) from None
    with transaction(session):
        advance(payment, "checkout", datetime.datetime.utcnow())
        payment.provider_trade_no = started.trade_no or None
    return view_of(payment, started.redirect_url)


def my_payment(session, actor: Actor, payment_id: int) -> PaymentView:
    """Command: one of my payments (audited). Raises NotFound (another's: audited), Forbidden."""
    subject = _subject(session, actor)
    payment = None
    if subject and isinstance(payment_id, int) and 0 < payment_id < 2**31:
        payment = session.scalar(
            select(Payment)
            .join(NotificationCase, NotificationCase.id == Payment.case_id)
            .where(Payment.id == payment_id, NotificationCase.citizen_id_hash == subject)
        )
    if payment is None:
        raise refuse(session, NotFound(NO_PAYMENT), actor, "payment.view_refused", object_type="Payment")
    shaped = view_of(payment)
    with transaction(session):
        audit.record(session, "payment.viewed", object_type="Payment", object_id=payment.id, actor=actor)
    return shaped


def case_fees(session, actor: Actor, case_no: str) -> CaseFees | None:
    """The fees of one of my cases with their payments, for the case page (which audited the view);
    None when no fee applies or the case is not the visitor's."""
    try:
        subject = _subject(session, actor)
    except Exception:
        return None
    case = session.scalar(
        select(NotificationCase).where(NotificationCase.case_no == case_no, NotificationCase.citizen_id_hash == subject)
    )
    if case is None:
        return None
    return _fees_of(session, case, payable=case.status == "open")


def staff_case_fees(session, case_id: int) -> CaseFees | None:
    """The fees and payments of a case for the staff who see it (the page checked they may)."""
    case = session.get(NotificationCase, case_id)
    return _fees_of(session, case, payable=False) if case is not None else None


def _fees_of(session, case: NotificationCase, payable: bool) -> CaseFees | None:
    from app.models.payments import DispatchHold

    fees = fees_for_category(session, case.category_id)
    if not fees:
        return None
    payments = session.scalars(
        select(Payment)
        .where(Payment.case_id == case.id)
        .options(selectinload(Payment.fee_item).selectinload(FeeItem.agency), selectinload(Payment.case))
        .order_by(Payment.id)
    ).all()
    found = []
    for fee in fees:
        mine = [view_of(p) for p in payments if p.fee_item_id == fee.id]
        done = any(p.state == "paid" for p in mine)
        found.append(
            FeeDue(
                fee.id, fee.name, fee.agency.name if fee.agency else "", fee.amount, fee.due, payable and not done, mine
            )  # fmt: skip
        )
    held = session.scalar(select(DispatchHold.agency_id).where(DispatchHold.case_id == case.id).limit(1)) is not None
    return CaseFees(case.case_no, found, offered_methods(session), held)
