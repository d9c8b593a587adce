"""晶片金融卡: a chip financial card read on the payer's card reader on the gateway's page (WebATM)."""

from flask_babel import lazy_gettext as _l

from app.services.payments.providers import register
from app.services.payments.providers.gateway import GatewayProvider


@register
class ChipCard(GatewayProvider):
    kind = "chip_card"
    label = _l("Chip financial card (WebATM)")
    method = "chip"
    choose_payment = "WebATM"
