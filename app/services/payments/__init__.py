"""Online payment of fees (規費): the commands.

``admin``: providers and fee items (save, delete, test a provider); ``checkout``:
the citizen starts a payment and reads it, and what the case pages show;
``notices``: the providers' notifications (verified, applied once);
``settle``: the query worker (pending payments); ``refunds``; ``reconcile``: the
daily settlement file; ``fees``: which fees apply; ``providers``: the registry of provider kinds.
"""

from app.services.payments.admin import (  # noqa: F401
    ProviderTest,
    config_of,
    delete_fee_item,
    delete_provider,
    save_fee_item,
    save_provider,
    test_provider,
)
from app.services.payments.checkout import (  # noqa: F401
    METHOD_LABELS,
    CaseFees,
    FeeDue,
    PaymentView,
    case_fees,
    my_payment,
    staff_case_fees,
    start_payment,
)
from app.services.payments.collections import CollectionRow, collections, collections_xlsx  # noqa: F401
from app.services.payments.notices import ACK, Answer, handle_notification  # noqa: F401
from app.services.payments.reconcile import (  # noqa: F401
    fetch_and_reconcile,
    reconcile,
    reconcile_day,
    reconcile_due,
    settling_providers,
)
from app.services.payments.refunds import refund_payments, refunds_on_refusal, request_refunds  # noqa: F401
from app.services.payments.settle import run, settle_pending  # noqa: F401
