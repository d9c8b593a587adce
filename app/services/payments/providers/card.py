"""Credit cards through a gateway's hosted payment page: card numbers never touch the platform."""

from flask_babel import lazy_gettext as _l

from app.services.payments.providers import register
from app.services.payments.providers.gateway import GatewayProvider


@register
class CardGateway(GatewayProvider):
    kind = "card_gateway"
    label = _l("Credit card (gateway's hosted payment page)")
    method = "card"
    choose_payment = "Credit"
