"""Screens and APIs with which form designers build query forms without code."""

from flask_babel import lazy_gettext as _l
from wtforms import SelectField

from app.connectors.base import OPERATORS
from app.models.queries import (
    DISPLAYS,
    FORMATS,
    INPUT_TYPES,
    MASKS,
    BusinessItem,
    FormInput,
    FormSection,
    QueryForm,
    SectionColumn,
    SectionFilter,
)
from app.services.query import design as forms
from app.views.base import CommandInterface, PlatformModelApi, PlatformModelView, yes_no
from app.web import current_actor

LABELS = {
    "code": _l("Code"),
    "name": _l("Name"),
    "title": _l("Title"),
    "description": _l("Description"),
    "agency": _l("Owner agency"),
    "active": _l("Active"),
    "sort_order": _l("Order"),
    "granted_agencies": _l("Granted agencies"),
    "granted_roles": _l("Granted roles"),
    "business_items": _l("Business items"),
    "restricted": _l("Restricted (shown to the person only after a delay)"),
    "restricted_days": _l("Delay before the person sees it (days)"),
    "inputs": _l("Inputs"),
    "sections": _l("Sections"),
    "form": _l("Form"),
    "label": _l("Label"),
    "type": _l("Type"),
    "required": _l("Required"),
    "pattern": _l("Pattern"),
    "choices": _l("Choices"),
    "max_length": _l("Maximum length"),
    "help_text": _l("Help text"),
    "source": _l("Data source"),
    "target": _l("Target"),
    "order_by": _l("Sort by"),
    "display": _l("Display"),
    "options": _l("Options (JSON)"),
    "filters": _l("Filters"),
    "columns": _l("Output columns"),
    "section": _l("Section"),
    "column": _l("Source column"),
    "op": _l("Operator"),
    "input_name": _l("Input"),
    "constant": _l("Constant"),
    "mask": _l("Mask"),
    "format": _l("Format"),
    "agencies": _l("Visible only to agencies"),
}


class DesignInterface(CommandInterface):
    """FAB's data interface for the design records, whose writes are the
    commands of ``app.services.query.design``."""

    def create(self, item) -> None:
        forms.save(self.session, item)

    def update(self, item) -> None:
        forms.save(self.session, item, existing=True)

    def remove(self, items) -> None:
        forms.remove(self.session, items)


def _select(label, values):
    return SelectField(label, choices=[(v, v or "-") for v in values])


class BusinessItemView(PlatformModelView):
    datamodel = DesignInterface(BusinessItem)
    validator = forms.validate_business_item
    list_title = _l("Business items")
    label_columns = LABELS
    list_columns = ["code", "name", "active"]
    add_columns = edit_columns = show_columns = ["code", "name", "description", "active"]
    search_columns = ["code", "name", "active"]
    formatters_columns = {"active": yes_no}


class SectionFilterView(PlatformModelView):
    datamodel = DesignInterface(SectionFilter)
    validator = forms.validate_filter
    list_title = _l("Filters")
    label_columns = LABELS
    list_columns = ["section", "column", "op", "input_name", "constant"]
    add_columns = edit_columns = show_columns = ["section", "column", "op", "input_name", "constant"]
    search_columns = ["section", "column"]
    add_form_extra_fields = edit_form_extra_fields = {"op": _select(_l("Operator"), OPERATORS)}


class SectionColumnView(PlatformModelView):
    datamodel = DesignInterface(SectionColumn)
    validator = forms.validate_column
    list_title = _l("Output columns")
    label_columns = LABELS
    list_columns = ["section", "sort_order", "column", "label", "mask", "format", "agencies"]
    add_columns = edit_columns = show_columns = [
        "section",
        "sort_order",
        "column",
        "label",
        "mask",
        "format",
        "agencies",
    ]
    search_columns = ["section", "column", "label"]
    add_form_extra_fields = edit_form_extra_fields = {
        "mask": _select(_l("Mask"), MASKS),
        "format": _select(_l("Format"), FORMATS),
    }


class FormSectionView(PlatformModelView):
    datamodel = DesignInterface(FormSection)
    validator = forms.validate_section
    list_title = _l("Sections")
    label_columns = LABELS
    list_columns = ["form", "sort_order", "title", "source", "target", "display"]
    add_columns = edit_columns = ["form", "sort_order", "title", "source", "target", "order_by", "display", "options"]
    show_columns = add_columns
    search_columns = ["form", "title", "source", "target"]
    related_views = [SectionFilterView, SectionColumnView]
    add_form_extra_fields = edit_form_extra_fields = {"display": _select(_l("Display"), DISPLAYS)}


class FormInputView(PlatformModelView):
    datamodel = DesignInterface(FormInput)
    validator = forms.validate_input
    list_title = _l("Inputs")
    label_columns = LABELS
    list_columns = ["form", "sort_order", "name", "label", "type", "required"]
    add_columns = edit_columns = show_columns = [
        "form",
        "sort_order",
        "name",
        "label",
        "type",
        "required",
        "pattern",
        "choices",
        "max_length",
        "help_text",
    ]
    search_columns = ["form", "name", "label", "type"]
    formatters_columns = {"required": yes_no}
    add_form_extra_fields = edit_form_extra_fields = {"type": _select(_l("Type"), INPUT_TYPES)}


def _validate_form(session, form) -> None:
    """The form's rules, and who may mark it restricted (the Admin)."""
    forms.validate_form(session, form)
    forms.check_restriction(session, current_actor(), form)


class QueryFormView(PlatformModelView):
    datamodel = DesignInterface(QueryForm)
    validator = _validate_form
    list_title = _l("Query forms")
    show_title = _l("Query form")
    add_title = _l("Add query form")
    edit_title = _l("Edit query form")
    label_columns = LABELS
    list_columns = ["code", "title", "agency", "active", "sort_order"]
    add_columns = edit_columns = [
        "code",
        "title",
        "description",
        "agency",
        "active",
        "sort_order",
        "granted_agencies",
        "granted_roles",
        "business_items",
        "restricted",
        "restricted_days",
    ]
    show_columns = add_columns
    search_columns = ["code", "title", "agency", "active"]
    related_views = [FormInputView, FormSectionView]
    formatters_columns = {"active": yes_no, "restricted": yes_no}


def _api(model, name, validator, columns, search):
    return type(
        f"{model.__name__}Api",
        (PlatformModelApi,),
        {
            "resource_name": name,
            "datamodel": DesignInterface(model),
            "validator": validator,
            "list_columns": ["id", *columns],
            "show_columns": ["id", *columns],
            "add_columns": columns,
            "edit_columns": columns,
            "search_columns": search,
        },
    )


APIS = [
    _api(
        BusinessItem,
        "business-items",
        forms.validate_business_item,
        ["code", "name", "description", "active"],
        ["code", "name"],
    ),
    _api(
        QueryForm,
        "query-forms",
        _validate_form,
        [
            "code",
            "title",
            "description",
            "agency",
            "active",
            "sort_order",
            "granted_agencies",
            "granted_roles",
            "business_items",
            "restricted",
            "restricted_days",
        ],
        ["code", "title"],
    ),
    _api(
        FormInput,
        "form-inputs",
        forms.validate_input,
        ["form", "sort_order", "name", "label", "type", "required", "pattern", "choices", "max_length", "help_text"],
        ["form", "name"],
    ),
    _api(
        FormSection,
        "form-sections",
        forms.validate_section,
        ["form", "sort_order", "title", "source", "target", "order_by", "display", "options"],
        ["form", "title"],
    ),
    _api(
        SectionFilter,
        "section-filters",
        forms.validate_filter,
        ["section", "column", "op", "input_name", "constant"],
        ["section", "column"],
    ),
    _api(
        SectionColumn,
        "section-columns",
        forms.validate_column,
        ["section", "sort_order", "column", "label", "mask", "format", "agencies"],
        ["section", "column"],
    ),
]


def register(appbuilder) -> None:
    category = {"category": "Query setup", "category_label": _l("Query setup"), "category_icon": "fa-wrench"}
    appbuilder.add_view(QueryFormView, "Query forms", label=_l("Query forms"), icon="fa-list-alt", **category)
    appbuilder.add_view(BusinessItemView, "Business items", label=_l("Business items"), icon="fa-tags", **category)
    for view in (FormInputView, FormSectionView, SectionFilterView, SectionColumnView):
        appbuilder.add_view_no_menu(view)
    for api in APIS:
        appbuilder.add_api(api)
