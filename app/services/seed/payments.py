"""Demo payments: one provider of each kind on the gateway simulator (PAYGATE_URL), and a
fee of NT$150 due before dispatch on a demo category of online address changes."""

from __future__ import annotations

from sqlalchemy import select

# ECPay's public test merchant; the simulator answers to them (python -m app.simulators.paygate)
DEMO_MERCHANT = ("3002607", "pwFHCqoQZGmho4w6", "EkRm7iFT261dpevs")
PROVIDERS = [("demo-card", "示範金流（信用卡）", "card_gateway"), ("demo-chip", "示範金流（晶片金融卡）", "chip_card"),
             ("demo-account", "示範金流（存款帳戶）", "bank_account")]  # fmt: skip
CATEGORY = ("線上申辦", "地址變更（線上繳費）")


def seed_payments(session, agencies: dict, paygate_url: str) -> list[str]:
    from app.models.notify import NotificationCategory
    from app.models.payments import FeeItem, PaymentProvider

    made = []
    have = set(session.scalars(select(PaymentProvider.code)))
    merchant, key, iv = DEMO_MERCHANT
    for code, name, kind in PROVIDERS:
        if code not in have:
            session.add(PaymentProvider(code=code, name=name, kind=kind, url=paygate_url, merchant_id=merchant,
                                        merchant_key=key, merchant_iv=iv, timeout=10, enabled=True))  # fmt: skip
            made.append(code)
    category = session.scalar(
        select(NotificationCategory).where(
            NotificationCategory.main_item == CATEGORY[0], NotificationCategory.sub_item == CATEGORY[1]
        )
    )
    if category is None:
        category = NotificationCategory(main_item=CATEGORY[0], sub_item=CATEGORY[1], kind="citizen",
                                        consent_required=False, due_days=7, active=True,
                                        notifying_agencies=[agencies["HH-EAST"], agencies["HH-WEST"]],
                                        default_receivers=[agencies["LAND"], agencies["TAX"], agencies["MOTOR"]])  # fmt: skip
        session.add(category)
    if session.scalar(select(FeeItem.id).where(FeeItem.code == "HH-ADDR-ONLINE")) is None:
        session.add(FeeItem(code="HH-ADDR-ONLINE", name="住址變更登記規費（示範）", amount=150,
                            agency=agencies["HH-EAST"], categories=[category], due="before_dispatch",
                            refundable=True))  # fmt: skip
        made.append("HH-ADDR-ONLINE")
    session.commit()
    return made
