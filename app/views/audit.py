"""The auditor's screen and API over the audit trail (read-only)."""

from flask_appbuilder import ModelRestApi, ModelView
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _l

from app.lib.rocdate import format_roc_datetime
from app.models.audit import AuditEvent
from app.services.audit.labels import ACTIONS, OBJECT_TYPES, OUTCOMES, action_label, object_type_label, outcome_label
from app.views.base import ReadableMixin, SearchInWordsMixin, agency_name

LABELS = {
    "seq": _l("No."),
    "at": _l("Time"),
    "actor": _l("Account"),
    "agency_code": _l("Agency"),
    "client_ip": _l("Client IP"),
    "action": _l("Action"),
    "object_type": _l("Object type"),
    "object_id": _l("Object ID"),
    "fields": _l("Changed fields"),
    "outcome": _l("Outcome"),
    "detail": _l("Detail"),
    "prev_hash": _l("Previous hash"),
    "hash": _l("Hash"),
}


def _blank(value):
    return "" if value is None else value


class AuditEventView(SearchInWordsMixin, ReadableMixin, ModelView):
    datamodel = SQLAInterface(AuditEvent)
    base_permissions = ["can_list", "can_show"]
    list_title = _l("Audit trail")
    show_title = _l("Audit event")
    label_columns = LABELS
    list_columns = ["seq", "at", "actor", "agency_code", "client_ip", "action", "object_type", "object_id", "outcome"]
    show_columns = [*list_columns, "fields", "detail", "prev_hash", "hash"]
    search_columns = ["at", "actor", "agency_code", "client_ip", "action", "object_type", "object_id", "outcome"]
    search_choices = {"action": ACTIONS, "object_type": OBJECT_TYPES, "outcome": OUTCOMES}
    order_columns = ["seq", "at", "actor", "action"]
    base_order = ("seq", "desc")
    page_size = 50
    formatters_columns = {
        "at": format_roc_datetime,
        "action": action_label,
        "outcome": outcome_label,
        "agency_code": agency_name,
        "client_ip": _blank,
        "object_id": _blank,
        "object_type": object_type_label,
        "fields": _blank,
        "detail": _blank,
    }


class AuditEventApi(ModelRestApi):
    resource_name = "audit/events"
    datamodel = SQLAInterface(AuditEvent)
    base_permissions = ["can_get", "can_info"]
    label_columns = {**LABELS, "actor_id": _l("Account ID")}
    list_columns = show_columns = [
        "seq",
        "at",
        "actor_id",
        "actor",
        "agency_code",
        "client_ip",
        "action",
        "object_type",
        "object_id",
        "fields",
        "outcome",
        "detail",
        "prev_hash",
        "hash",
    ]
    search_columns = ["at", "actor", "agency_code", "action", "object_type", "object_id", "outcome"]
    order_columns = ["seq", "at"]
    base_order = ("seq", "desc")
    page_size = 50


def register(appbuilder) -> None:
    appbuilder.add_view(
        AuditEventView,
        "Audit trail",
        label=_l("Audit trail"),
        icon="fa-shield",
        category="Audit",
        category_label=_l("Audit"),
        category_icon="fa-search",
    )
    appbuilder.add_api(AuditEventApi)
