"""Administrators' screens: transfer items, and the registry of staff certificates."""

from flask import flash, redirect
from flask_appbuilder.actions import action
from flask_babel import gettext
from flask_babel import lazy_gettext as _l

from app.lib.rocdate import format_roc
from app.models.transfer import StaffCertificate, TransferItem
from app.services import transfer
from app.services.transfer import pki
from app.views.base import CommandInterface, PlatformModelApi, PlatformModelView, yes_no
from app.web import current_actor

LABELS = {
    "sending_agency": _l("Sending agency"),
    "receiving_agency": _l("Receiving agency"),
    "description": _l("Description"),
    "ftp_allowed": _l("FTP allowed"),
    "active": _l("Active"),
    "user": _l("User"),
    "serial": _l("Serial number"),
    "issuer": _l("Issuer"),
    "subject": _l("Certificate holder"),
    "not_before": _l("Valid from"),
    "not_after": _l("Valid until"),
    "fingerprint": _l("SHA-256 fingerprint"),
    "usage": _l("Key usage"),
    "status": _l("Status"),
    "status_reason": _l("Reason"),
    "uploaded_at": _l("Uploaded at"),
    "checked_at": _l("Last checked"),
}
ITEM_COLUMNS = ["sending_agency", "receiving_agency", "description", "ftp_allowed", "active"]


def validate_item(session, item: TransferItem) -> None:
    transfer.validate_item(session, item)


class TransferItemView(PlatformModelView):
    datamodel = CommandInterface(TransferItem)
    validator = validate_item
    list_title = _l("Transfer items")
    show_title = _l("Transfer item")
    add_title = _l("Add transfer item")
    edit_title = _l("Edit transfer item")
    label_columns = LABELS
    list_columns = add_columns = edit_columns = show_columns = ITEM_COLUMNS
    search_columns = ["sending_agency", "receiving_agency", "description", "active"]
    formatters_columns = {"ftp_allowed": yes_no, "active": yes_no}


class TransferItemApi(PlatformModelApi):
    resource_name = "transfer-items"
    datamodel = CommandInterface(TransferItem)
    validator = validate_item
    label_columns = LABELS
    list_columns = show_columns = ["id", *ITEM_COLUMNS]
    add_columns = edit_columns = ITEM_COLUMNS
    search_columns = ["sending_agency", "receiving_agency", "description", "active"]


def _usage(value) -> str:
    return "、".join(str(pki.USAGE_LABELS.get(u, u)) for u in (value or "").split(",") if u)


class StaffCertificateView(PlatformModelView):
    """Read-only: certificates come in through their owners' upload, checked."""

    datamodel = CommandInterface(StaffCertificate)
    list_title = _l("Staff certificates")
    show_title = _l("Staff certificate")
    label_columns = LABELS
    base_permissions = ["can_list", "can_show"]
    list_columns = ["user", "subject", "serial", "not_after", "usage", "status"]
    show_columns = [
        "user",
        "subject",
        "issuer",
        "serial",
        "not_before",
        "not_after",
        "fingerprint",
        "usage",
        "status",
        "status_reason",
        "uploaded_at",
        "checked_at",
    ]
    search_columns = ["user", "subject", "serial", "status"]
    search_choices = {"status": pki.STATUS_LABELS}
    formatters_columns = {
        "usage": _usage,
        "status": lambda s: str(pki.STATUS_LABELS.get(s, s)),
        "not_before": lambda d: format_roc(d),
        "not_after": lambda d: format_roc(d),
    }

    @action("recheck", _l("Re-check against today's date and CRLs"), icon="fa-refresh", single=False)
    def recheck(self, items):
        items = items if isinstance(items, list) else [items]
        counts = transfer.recheck_certificates(self.datamodel.session, current_actor(), items)
        text = gettext(
            "Checked: %(valid)s valid, %(expired)s expired, %(revoked)s revoked, %(invalid)s no longer trusted.",
            **counts,
        )
        flash(text, "info")
        return redirect(self.get_redirect())


def register(appbuilder) -> None:
    appbuilder.add_view(
        TransferItemView,
        "Transfer items",
        label=_l("Transfer items"),
        icon="fa-list",
        category="Transfer setup",
        category_label=_l("Transfer setup"),
        category_icon="fa-key",
    )
    appbuilder.add_view(
        StaffCertificateView,
        "Staff certificates",
        label=_l("Staff certificates"),
        icon="fa-id-card",
        category="Transfer setup",
    )
    appbuilder.add_api(TransferItemApi)
