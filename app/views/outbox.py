"""The administrator's view of the mail queue."""

from flask import redirect
from flask_appbuilder import ModelView, action
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _l

from app.lib.identifiers import mask_id
from app.lib.rocdate import format_roc_datetime
from app.models.outbox import OutboxMessage
from app.services import outbox
from app.views.base import ReadableMixin, SearchInWordsMixin
from app.web import current_actor

STATUS_LABELS = {
    "queued": _l("Queued"),
    "sending": _l("Sending"),
    "sent": _l("Sent"),
    "failed": _l("Failed"),
    "merged": _l("Sent with another message"),
}


def _mask_email(value: str) -> str:
    if not value or "@" not in value:
        return mask_id(value or "")
    local, _, domain = value.partition("@")
    return f"{local[:1]}***@{domain}"


class OutboxView(SearchInWordsMixin, ReadableMixin, ModelView):
    datamodel = SQLAInterface(OutboxMessage)
    base_permissions = ["can_list", "can_show"]
    list_title = _l("Mail queue")
    show_title = _l("Mail message")
    label_columns = {
        "id": _l("No."),
        "created_at": _l("Created"),
        "recipient": _l("Recipient"),
        "subject": _l("Subject"),
        "topic": _l("Topic"),
        "status": _l("Status"),
        "attempts": _l("Attempts"),
        "next_attempt_at": _l("Next attempt"),
        "sent_at": _l("Sent at"),
        "last_error": _l("Last error"),
        "merged_into": _l("Sent in message No."),
    }
    # The body may name a citizen: administrators see the envelope, not the letter.
    list_columns = ["id", "created_at", "recipient", "subject", "status", "attempts", "next_attempt_at", "last_error"]
    show_columns = [
        "id",
        "created_at",
        "recipient",
        "subject",
        "topic",
        "status",
        "attempts",
        "next_attempt_at",
        "sent_at",
        "last_error",
        "merged_into",
    ]
    search_columns = ["status", "topic", "created_at", "sent_at"]
    search_choices = {"status": STATUS_LABELS}
    base_order = ("id", "desc")
    page_size = 50
    formatters_columns = {
        "created_at": format_roc_datetime,
        "next_attempt_at": format_roc_datetime,
        "sent_at": format_roc_datetime,
        "recipient": _mask_email,
        "status": lambda s: str(STATUS_LABELS.get(s, s)),
    }

    @action("requeue", _l("Requeue"), _l("Put the selected failed messages back in the queue?"), "fa-repeat")
    def requeue(self, items):
        items = items if isinstance(items, list) else [items]
        outbox.requeue(self.datamodel.session, current_actor(), [item.id for item in items])
        self.update_redirect()
        return redirect(self.get_redirect())


def register(appbuilder) -> None:
    appbuilder.add_view(
        OutboxView,
        "Mail queue",
        label=_l("Mail queue"),
        icon="fa-envelope",
        category="System",
        category_label=_l("System"),
        category_icon="fa-cogs",
    )
