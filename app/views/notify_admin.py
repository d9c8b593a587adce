"""Administrators' screens and API for notification categories and their e-mails."""

from flask_appbuilder.models.sqla.filters import FilterEqual
from flask_babel import lazy_gettext as _l
from wtforms import SelectField, SelectMultipleField
from wtforms.fields.choices import SelectChoice
from wtforms.widgets import CheckboxInput, ListWidget

from app.models.notify import (
    ATTACHMENT_TYPES,
    CITIZEN_MAIL_STAGES,
    DEFAULT_CITIZEN_MAIL_STAGES,
    FIELD_TYPES,
    STAGES,
    WEB_APPLICANTS,
    CategoryAttachment,
    CategoryField,
    MailTemplate,
    NotificationCategory,
)
from app.services import notify
from app.views.base import CommandInterface, PlatformModelApi, PlatformModelView, yes_no

KIND_LABELS = {"citizen": _l("Citizen application"), "agency": _l("Agency notification")}
APPLICANT_LABELS = {
    "citizen": _l("Citizens (citizen certificate)"),
    "business": _l("Businesses (business certificate)"),
}
FIELD_TYPE_LABELS = {"text": _l("Text"), "textarea": _l("Long text"), "date": _l("Date"), "number": _l("Number")}
assert set(APPLICANT_LABELS) == set(WEB_APPLICANTS) and set(FIELD_TYPE_LABELS) == set(FIELD_TYPES)
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
    "web_open": _l("Open to web applications"),
    "web_agency": _l("Web-notifying agency"),
    "web_applicant": _l("Who applies on the web"),
    "web_fields": _l("Application fields"),
    "web_attachments": _l("Application attachments"),
    "position": _l("Order"),
    "name": _l("Key"),
    "label": _l("Label"),
    "label_en": _l("Label (English)"),
    "type": _l("Type"),
    "old_new": _l("Old and new value"),
    "required": _l("Required"),
    "max_length": _l("Maximum length"),
    "help": _l("Help text"),
    "types": _l("Accepted file types"),
    "citizen_mail_stages": _l("Stages that e-mail the citizen"),
}
CITIZEN_STAGE_LABELS = {
    "registered": _l("Case registered"),
    "dispatched": _l("Sent to the receiving agencies"),
    "accepted": _l("An agency accepted the case"),
    "dispatch_closed": _l("An agency finished its part"),
    "completed": _l("Every agency finished (with the questionnaire link)"),
}
assert set(CITIZEN_STAGE_LABELS) == set(CITIZEN_MAIL_STAGES)
# Every mail template's stage: the citizen's, and the agencies' own mails.
MAIL_STAGE_LABELS = {
    **CITIZEN_STAGE_LABELS,
    "notifier_dispatch_closed": _l("To the notifying agency: an agency finished its part"),
    "receiver_dispatched": _l("To a receiving agency: a case was sent to it"),
}
assert set(MAIL_STAGE_LABELS) == set(STAGES)


class StagesField(SelectMultipleField):
    """The stages as labelled checkboxes, kept as the comma-separated column."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()

    def process_data(self, value):
        self.data = [s for s in value.split(",") if s] if isinstance(value, str) else list(value or [])

    def populate_obj(self, obj, name):
        setattr(obj, name, ",".join(s for s in CITIZEN_MAIL_STAGES if s in (self.data or [])))


def _stage_names(value) -> str:
    return "、".join(str(CITIZEN_STAGE_LABELS.get(s, s)) for s in (value or "").split(",") if s)


WEB_COLUMNS = ["web_open", "web_agency", "web_applicant"]
COLUMNS = [
    "main_item",
    "sub_item",
    "kind",
    "notifying_agencies",
    "default_receivers",
    "consent_required",
    "due_days",
    "questionnaire",
    "citizen_mail_stages",
    "description",
    "active",
    *WEB_COLUMNS,
]


class MailTemplateView(PlatformModelView):
    datamodel = CommandInterface(MailTemplate)
    validator = notify.validate_template
    list_title = _l("E-mail templates")
    show_title = _l("E-mail template")
    add_title = _l("Add e-mail template")
    edit_title = _l("Edit e-mail template")
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
        "stage": SelectField(_l("Stage"), choices=[SelectChoice(s, MAIL_STAGE_LABELS[s]) for s in STAGES])
    }
    formatters_columns = {"stage": lambda s: str(MAIL_STAGE_LABELS.get(s, s or ""))}


class CategoryFieldView(PlatformModelView):
    datamodel = CommandInterface(CategoryField)
    validator = notify.validate_category_field
    list_title = _l("Application fields")
    show_title = _l("Application field")
    add_title = _l("Add application field")
    edit_title = _l("Edit application field")
    label_columns = LABELS
    description_columns = {
        "name": _l("Lower-case letters, digits and _ (the key in the signed application), e.g. address."),
        "old_new": _l("Ask for the old and the new value (e.g. an address change's old and new address)."),
    }
    list_columns = ["category", "position", "label", "type", "old_new", "required"]
    add_columns = edit_columns = show_columns = [
        "category", "position", "name", "label", "label_en", "type", "old_new", "required", "max_length", "help",
    ]  # fmt: skip
    search_columns = ["category", "name"]
    formatters_columns = {"old_new": yes_no, "required": yes_no, "type": lambda t: str(FIELD_TYPE_LABELS.get(t, t))}
    add_form_extra_fields = edit_form_extra_fields = {
        "type": SelectField(_l("Type"), choices=[SelectChoice(k, v) for k, v in FIELD_TYPE_LABELS.items()]),
    }


class CategoryAttachmentView(PlatformModelView):
    datamodel = CommandInterface(CategoryAttachment)
    validator = notify.validate_category_attachment
    list_title = _l("Application attachments")
    show_title = _l("Application attachment")
    add_title = _l("Add application attachment")
    edit_title = _l("Edit application attachment")
    label_columns = LABELS
    description_columns = {
        "types": _l("Comma-separated, of: %(types)s", types=", ".join(ATTACHMENT_TYPES)),
        "name": _l("Lower-case letters, digits and _ (the key in the signed application), e.g. lease."),
    }
    list_columns = ["category", "position", "label", "types", "required"]
    add_columns = edit_columns = show_columns = [
        "category",
        "position",
        "name",
        "label",
        "label_en",
        "types",
        "required",
    ]
    search_columns = ["category", "name"]
    formatters_columns = {"required": yes_no}


class NotificationCategoryView(PlatformModelView):
    datamodel = CommandInterface(NotificationCategory)
    validator = notify.validate_category
    list_title = _l("Notification categories")
    show_title = _l("Notification category")
    add_title = _l("Add notification category")
    edit_title = _l("Edit notification category")
    label_columns = LABELS
    list_columns = ["main_item", "sub_item", "kind", "default_receivers", "consent_required", "due_days", "web_open",
                    "active"]  # fmt: skip
    add_columns = edit_columns = show_columns = COLUMNS
    search_columns = ["main_item", "sub_item", "kind", "active"]
    related_views = [MailTemplateView, CategoryFieldView, CategoryAttachmentView]
    description_columns = {
        "web_open": _l("Citizens or businesses may apply for it on the portal, signing with their card."),
        "web_agency": _l("The agency recorded as the notifier of the applications made on the web."),
        "citizen_mail_stages": _l(
            "The agencies' progress (sent, accepted, finished) queued within CITIZEN_MAIL_WINDOW_MINUTES "
            "(10 by default) goes to the citizen as one e-mail; the citizen may turn some off on the portal."
        ),
    }
    formatters_columns = {
        "kind": lambda k: str(KIND_LABELS.get(k, k)),
        "consent_required": yes_no,
        "active": yes_no,
        "web_open": yes_no,
        "web_applicant": lambda k: str(APPLICANT_LABELS.get(k, k)),
        "citizen_mail_stages": _stage_names,
    }
    add_form_extra_fields = edit_form_extra_fields = {
        "kind": SelectField(_l("Kind"), choices=[SelectChoice(k, v) for k, v in KIND_LABELS.items()]),
        "citizen_mail_stages": StagesField(
            _l("Stages that e-mail the citizen"),
            choices=[SelectChoice(k, v) for k, v in CITIZEN_STAGE_LABELS.items()],
            default=DEFAULT_CITIZEN_MAIL_STAGES.split(","),
        ),
        "web_applicant": SelectField(
            _l("Who applies on the web"), choices=[SelectChoice(k, v) for k, v in APPLICANT_LABELS.items()]
        ),
    }
    # Only a questionnaire's current version can be chosen (old ones keep their answers).
    add_form_query_rel_fields = edit_form_query_rel_fields = {"questionnaire": [["is_current", FilterEqual, True]]}


class NotificationCategoryApi(PlatformModelApi):
    resource_name = "notification-categories"
    datamodel = CommandInterface(NotificationCategory)
    validator = notify.validate_category
    label_columns = LABELS
    list_columns = show_columns = ["id", *COLUMNS]
    add_columns = edit_columns = COLUMNS
    search_columns = ["main_item", "sub_item", "kind", "active"]


class CategoryFieldApi(PlatformModelApi):
    resource_name = "category-fields"
    datamodel = CommandInterface(CategoryField)
    validator = notify.validate_category_field
    label_columns = LABELS
    list_columns = show_columns = ["id", *CategoryFieldView.add_columns]
    add_columns = edit_columns = CategoryFieldView.add_columns
    search_columns = ["category", "name"]


class CategoryAttachmentApi(PlatformModelApi):
    resource_name = "category-attachments"
    datamodel = CommandInterface(CategoryAttachment)
    validator = notify.validate_category_attachment
    label_columns = LABELS
    list_columns = show_columns = ["id", *CategoryAttachmentView.add_columns]
    add_columns = edit_columns = CategoryAttachmentView.add_columns
    search_columns = ["category", "name"]


class MailTemplateApi(PlatformModelApi):
    resource_name = "mail-templates"
    datamodel = CommandInterface(MailTemplate)
    validator = notify.validate_template
    label_columns = LABELS
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
    appbuilder.add_view_no_menu(CategoryFieldView)
    appbuilder.add_view_no_menu(CategoryAttachmentView)
    appbuilder.add_api(NotificationCategoryApi)
    appbuilder.add_api(MailTemplateApi)
    appbuilder.add_api(CategoryFieldApi)
    appbuilder.add_api(CategoryAttachmentApi)
