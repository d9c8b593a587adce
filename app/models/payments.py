"""Online payment of fees (規費): fee items, payment providers, payments, the
notifications the providers sent, dispatches held until a fee is paid, and the
reconciliations of the providers' daily settlement files."""

import datetime

from flask_appbuilder import Model
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import relationship

from app.lib.fieldcrypt import EncryptedText
from app.models.notify import NotificationCase, NotificationCategory
from app.models.org import Agency, PlatformUser

FEE_DUE = ("before_dispatch", "after_approval")  # 派送前繳納 / 核准後繳納
METHODS = ("card", "chip", "account")  # 信用卡 / 晶片金融卡 / 存款帳戶
PAYMENT_STATES = ("created", "pending", "paid", "failed", "expired", "refunded")
# The payment's lifecycle as data: (state, event) -> next state. Anything else is refused.
TRANSITIONS = {
    ("created", "checkout"): "pending",
    ("created", "fail"): "failed",
    ("pending", "pay"): "paid",
    ("pending", "fail"): "failed",
    ("pending", "expire"): "expired",
    # the gateway took the money after the platform gave up waiting: its word counts
    ("expired", "pay"): "paid",
    ("paid", "refund"): "refunded",
}

fee_item_category = Table(
    "fee_item_category",
    Model.metadata,
    Column("fee_item_id", Integer, ForeignKey("fee_item.id", ondelete="CASCADE"), primary_key=True),
    Column("category_id", Integer, ForeignKey("notification_category.id", ondelete="CASCADE"), primary_key=True),
)


class FeeItem(Model):
    """規費: what a citizen pays for an application of the given categories, to which agency, and when."""

    __tablename__ = "fee_item"

    id = Column(Integer, primary_key=True)
    code = Column(String(40), unique=True, nullable=False)
    name = Column(String(100), nullable=False)
    amount = Column(Integer, nullable=False)  # NT$, whole dollars
    agency_id = Column(Integer, ForeignKey("agency.id"), nullable=False)  # the collecting agency
    agency = relationship(Agency)
    categories = relationship(NotificationCategory, secondary=fee_item_category)
    due = Column(String(20), nullable=False, default="before_dispatch")
    refundable = Column(Boolean, nullable=False, default=True)
    active = Column(Boolean, nullable=False, default=True)

    def __repr__(self) -> str:
        return self.name


class PaymentProvider(Model):
    """A merchant account at a payment gateway, one registry kind (card, chip, account) each."""

    __tablename__ = "payment_provider"

    id = Column(Integer, primary_key=True)
    code = Column(String(40), unique=True, nullable=False)  # in the notification address
    name = Column(String(100), nullable=False)
    kind = Column(String(20), nullable=False)  # a kind of app.services.payments.providers
    url = Column(String(500), nullable=False)  # the gateway's base URL
    merchant_id = Column(String(40), nullable=False)
    merchant_key = Column(EncryptedText)  # HashKey: Fernet-encrypted at rest, never shown
    merchant_iv = Column(EncryptedText)  # HashIV: likewise
    timeout = Column(Float, nullable=False, default=10.0)
    enabled = Column(Boolean, nullable=False, default=True)
    last_checked_at = Column(DateTime)
    last_ok = Column(Boolean)
    last_error = Column(String(500))

    def __repr__(self) -> str:
        return self.name


class Payment(Model):
    __tablename__ = "payment"
    __table_args__ = (
        UniqueConstraint("provider_id", "provider_trade_no", name="uq_payment_provider_trade"),
        Index("ix_payment_state_created", "state", "created_at"),
    )

    id = Column(Integer, primary_key=True)
    order_no = Column(String(20), unique=True, nullable=False)  # MerchantTradeNo
    case_id = Column(Integer, ForeignKey("notification_case.id", ondelete="CASCADE"), nullable=False, index=True)
    case = relationship(NotificationCase)
    fee_item_id = Column(Integer, ForeignKey("fee_item.id"), nullable=False)
    fee_item = relationship(FeeItem)
    provider_id = Column(Integer, ForeignKey("payment_provider.id"), nullable=False)
    provider = relationship(PaymentProvider)
    user_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))  # the payer's account
    user = relationship(PlatformUser)
    amount = Column(Integer, nullable=False)
    currency = Column(String(3), nullable=False, default="TWD")
    method = Column(String(10), nullable=False)
    state = Column(String(10), nullable=False, default="created")
    provider_trade_no = Column(String(40))
    created_at = Column(DateTime, nullable=False, default=datetime.datetime.utcnow)
    pending_at = Column(DateTime)
    paid_at = Column(DateTime, index=True)
    failed_at = Column(DateTime)
    expired_at = Column(DateTime)
    refund_requested_at = Column(DateTime)
    refunded_at = Column(DateTime, index=True)
    last_queried_at = Column(DateTime)
    settled_by = Column(String(10))  # notify | query: what made it paid
    # 電子收據: issued with the payment (R + the order number), checkable at /verify/<code>
    receipt_no = Column(String(20), unique=True)
    verification_code = Column(String(24), unique=True)


class PaymentNotification(Model):
    """Every notification a provider posted, kept: what was decided and why (replays, audits)."""

    __tablename__ = "payment_notification"

    id = Column(Integer, primary_key=True)
    provider_id = Column(Integer, ForeignKey("payment_provider.id", ondelete="SET NULL"))
    payment_id = Column(Integer, ForeignKey("payment.id", ondelete="SET NULL"), index=True)
    order_no = Column(String(40))
    trade_no = Column(String(40))
    amount = Column(String(20))
    rtn_code = Column(String(10))
    outcome = Column(String(10), nullable=False)  # accepted | duplicate | refused
    reason = Column(String(40))  # check_value, merchant, unknown_order, amount, currency, replay, provider...
    received_at = Column(DateTime, nullable=False, default=datetime.datetime.utcnow)
    client_ip = Column(String(45))


class DispatchHold(Model):
    """A receiving agency's dispatch waiting for a fee due before dispatch: made when it is paid."""

    __tablename__ = "dispatch_hold"

    case_id = Column(Integer, ForeignKey("notification_case.id", ondelete="CASCADE"), primary_key=True)
    agency_id = Column(Integer, ForeignKey("agency.id", ondelete="CASCADE"), primary_key=True)


class Reconciliation(Model):
    """One settlement file compared with the platform's payments; its mismatches are listed for finance staff."""

    __tablename__ = "payment_reconciliation"

    id = Column(Integer, primary_key=True)
    provider_id = Column(Integer, ForeignKey("payment_provider.id", ondelete="CASCADE"), nullable=False)
    provider = relationship(PaymentProvider)
    day = Column(Date, nullable=False)
    file_sha256 = Column(String(64), nullable=False)
    rows = Column(Integer, nullable=False, default=0)
    matched = Column(Integer, nullable=False, default=0)
    mismatched = Column(Integer, nullable=False, default=0)
    run_at = Column(DateTime, nullable=False, default=datetime.datetime.utcnow)
    run_by = Column(String(128))
    mismatches = relationship("ReconciliationMismatch", back_populates="reconciliation", cascade="all, delete-orphan")


class ReconciliationMismatch(Model):
    __tablename__ = "payment_mismatch"

    id = Column(Integer, primary_key=True)
    reconciliation_id = Column(
        Integer, ForeignKey("payment_reconciliation.id", ondelete="CASCADE"), nullable=False, index=True
    )
    reconciliation = relationship(Reconciliation, back_populates="mismatches")
    # missing_in_file | unknown_to_platform | amount | state
    kind = Column(String(20), nullable=False)
    order_no = Column(String(40), nullable=False)
    platform_amount = Column(Integer)
    file_amount = Column(Integer)
    platform_state = Column(String(10))
    file_state = Column(String(10))
    note = Column(Text)
