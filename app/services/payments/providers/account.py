"""存款帳戶: a debit of the payer's bank account authorised on the gateway's page."""

from flask_babel import lazy_gettext as _l

from app.services.payments.providers import register
from app.services.payments.providers.gateway import GatewayProvider


@register
class BankAccount(GatewayProvider):
    kind = "bank_account"
    label = _l("Bank account debit")
    method = "account"
    choose_payment = "AccountDebit"
