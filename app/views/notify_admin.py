"""Administrators' screens and API for notification categories and their e-mails."""

from flask_appbuilder.models.sqla.filters import FilterEqual
from flask_babel import lazy_gettext as _l
from wtforms import SelectField
from wtforms.fields.choices import SelectChoice

from app.models.notify import STAGES, MailTemplate, NotificationCategory
from app.services import notify
from app.views.base import CommandInterface, PlatformModelApi, PlatformModelView, yes_no

KIND_LABELS = {"citizen": _l("Citizen application"), "agency": _l("Agency notification")}
LABELS = {
    "main_item": _l("Main item"),
    "sub_item": _l("Sub item"),
    "kind": _l("Kind"),
    "notifying_agencies": _l("Notifying agencies"),
    "default_receivers": _l("Default receiving agencies"),
    "consent_required": _l("Consent scan required"),
    "due_days": _l("Due days"),
    "description": _l("Description"),
    "active": _l("Active"),
    "templates": _l("E-mail templates"),
    "category": _l("Category"),
    "stage": _l("Stage"),
    "subject": _l("Subject"),
    "body": _l("Body"),
    "questionnaire": _l("Satisfaction questionnaire"),
}
COLUMNS = [
    "main_item",
    "sub_item",
    "kind",
    "notifying_agencies",
    "default_receivers",
    "consent_required",
    "due_days",
    "questionnaire",
    "description",
    "active",
]


class MailTemplateView(PlatformModelView):
    datamodel = CommandInterface(MailTemplate)
    validator = notify.validate_template
    list_title = _l("E-mail templates")
    label_columns = LABELS
    description_columns = {
        "body": _l(
            "Placeholders: {case_no} {category} {citizen_name} {notifier} {receivers} {agency} {date} {due} "
            "{result} {control}; in the completion e-mail {survey} places the questionnaire link "
            "(added at the end otherwise)."
        ),
    }
    list_columns = ["category", "stage", "subject"]
    add_columns = edit_columns = show_columns = ["category", "stage", "subject", "body"]
    search_columns = ["category", "stage"]
    add_form_extra_fields = edit_form_extra_fields = {
        "stage": SelectField(_l("Stage"), choices=[SelectChoice(s, s) for s in STAGES])
    }


class NotificationCategoryView(PlatformModelView):
    datamodel = CommandInterface(NotificationCategory)
    validator = notify.validate_category
    list_title = _l("Notification categories")
    show_title = _l("Notification category")
    add_title = _l("Add notification category")
    edit_title = _l("Edit notification category")
    label_columns = LABELS
    list_columns = ["main_item", "sub_item", "kind", "default_receivers", "consent_required", "due_days", "active"]
    add_columns = edit_columns = show_columns = COLUMNS
    search_columns = ["main_item", "sub_item", "kind", "active"]
    related_views = [MailTemplateView]
    formatters_columns = {"kind": lambda k: str(KIND_LABELS.get(k, k)), "consent_required": yes_no, "active": yes_no}
    add_form_extra_fields = edit_form_extra_fields = {
        "kind": SelectField(_l("Kind"), choices=[SelectChoice(k, v) for k, v in KIND_LABELS.items()]),
    }
    # Only a questionnaire's current version can be chosen (old ones keep their answers).
    add_form_query_rel_fields = edit_form_query_rel_fields = {"questionnaire": [["is_current", FilterEqual, True]]}


class NotificationCategoryApi(PlatformModelApi):
    resource_name = "notification-categories"
    datamodel = CommandInterface(NotificationCategory)
    validator = notify.validate_category
    list_columns = show_columns = ["id", *COLUMNS]
    add_columns = edit_columns = COLUMNS
    search_columns = ["main_item", "sub_item", "kind", "active"]


class MailTemplateApi(PlatformModelApi):
    resource_name = "mail-templates"
    datamodel = CommandInterface(MailTemplate)
    validator = notify.validate_template
    list_columns = show_columns = ["id", "category", "stage", "subject", "body"]
    add_columns = edit_columns = ["category", "stage", "subject", "body"]
    search_columns = ["category", "stage"]


def register(appbuilder) -> None:
    appbuilder.add_view(
        NotificationCategoryView,
        "Notification categories",
        label=_l("Notification categories"),
        icon="fa-tags",
        category="Notification setup",
        category_label=_l("Notification setup"),
        category_icon="fa-bullhorn",
    )
    appbuilder.add_view_no_menu(MailTemplateView)
    appbuilder.add_api(NotificationCategoryApi)
    appbuilder.add_api(MailTemplateApi)
