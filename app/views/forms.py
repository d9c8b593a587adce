"""Screens and APIs with which form designers build query forms without code:
the record screens (one per kind of record) and the form designer (a whole
form on one page, ``app.services.query.designer``)."""

from flask import abort, flash, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.api import BaseApi
from flask_appbuilder.api import expose as api_expose
from flask_appbuilder.security.decorators import protect
from flask_babel import lazy_gettext as _l
from marshmallow import ValidationError
from wtforms import SelectChoice, SelectField

from app.extensions import db
from app.models.queries import (
    BusinessItem,
    FormInput,
    FormSection,
    QueryForm,
    SectionColumn,
    SectionFilter,
)
from app.schemas import designer as schemas
from app.schemas.sources import SourceDescriptionSchema
from app.services.errors import Conflict, DomainError, InvalidInput
from app.services.query import design as forms
from app.services.query import designer
from app.services.query.grants import check_granting
from app.services.query.labels import DISPLAY_LABELS, FORMAT_LABELS, INPUT_TYPE_LABELS, MASK_LABELS, OPERATOR_LABELS
from app.services.roles import role_label, roles_label
from app.views.base import CommandInterface, PlatformModelApi, PlatformModelView, json_body, yes_no
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


def county_wide(agency) -> str:
    """A business item's agency, or that it is every agency's."""
    from flask_babel import gettext

    return str(agency) if agency is not None else gettext("County-wide (every agency)")


def _select(label, labels: dict):
    """A list of codes shown in words (the stored value stays the code)."""
    return SelectField(label, choices=[SelectChoice(code, text) for code, text in labels.items()])


def _words(labels: dict):
    def fmt(code) -> str:
        return "" if code is None else str(labels.get(code, code))

    return fmt


class BusinessItemView(PlatformModelView):
    datamodel = DesignInterface(BusinessItem)
    validator = forms.validate_business_item
    list_title = _l("Business items")
    show_title = _l("Business item")
    add_title = _l("Add business item")
    edit_title = _l("Edit business item")
    label_columns = {**LABELS, "agency": _l("Agency")}
    description_columns = {
        "agency": _l(
            "Only this agency's clerks are offered the item at the counter; blank: every agency's (county-wide)."
        )
    }
    list_columns = ["code", "name", "agency", "active"]
    add_columns = edit_columns = show_columns = ["code", "name", "description", "agency", "active"]
    search_columns = ["code", "name", "agency", "active"]
    formatters_columns = {"active": yes_no, "agency": county_wide}


class SectionFilterView(PlatformModelView):
    datamodel = DesignInterface(SectionFilter)
    validator = forms.validate_filter
    list_title = _l("Filters")
    show_title = _l("Section filter")
    add_title = _l("Add filter")
    edit_title = _l("Edit filter")
    label_columns = LABELS
    list_columns = ["section", "column", "op", "input_name", "constant"]
    add_columns = edit_columns = show_columns = ["section", "column", "op", "input_name", "constant"]
    search_columns = ["section", "column"]
    add_form_extra_fields = edit_form_extra_fields = {"op": _select(_l("Operator"), OPERATOR_LABELS)}
    formatters_columns = {"op": _words(OPERATOR_LABELS)}


class SectionColumnView(PlatformModelView):
    datamodel = DesignInterface(SectionColumn)
    validator = forms.validate_column
    list_title = _l("Output columns")
    show_title = _l("Output column")
    add_title = _l("Add output column")
    edit_title = _l("Edit output column")
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
        "mask": _select(_l("Mask"), MASK_LABELS),
        "format": _select(_l("Format"), FORMAT_LABELS),
    }
    formatters_columns = {"mask": _words(MASK_LABELS), "format": _words(FORMAT_LABELS)}


class FormSectionView(PlatformModelView):
    datamodel = DesignInterface(FormSection)
    validator = forms.validate_section
    list_title = _l("Sections")
    show_title = _l("Form section")
    add_title = _l("Add form section")
    edit_title = _l("Edit form section")
    label_columns = LABELS
    list_columns = ["form", "sort_order", "title", "source", "target", "display"]
    add_columns = edit_columns = ["form", "sort_order", "title", "source", "target", "order_by", "display", "options"]
    show_columns = add_columns
    search_columns = ["form", "title", "source", "target"]
    related_views = [SectionFilterView, SectionColumnView]
    add_form_extra_fields = edit_form_extra_fields = {"display": _select(_l("Display"), DISPLAY_LABELS)}
    formatters_columns = {"display": _words(DISPLAY_LABELS)}


class FormInputView(PlatformModelView):
    datamodel = DesignInterface(FormInput)
    validator = forms.validate_input
    list_title = _l("Inputs")
    show_title = _l("Form input")
    add_title = _l("Add form input")
    edit_title = _l("Edit form input")
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
    formatters_columns = {"required": yes_no, "type": _words(INPUT_TYPE_LABELS)}
    add_form_extra_fields = edit_form_extra_fields = {"type": _select(_l("Type"), INPUT_TYPE_LABELS)}


def _validate_form(session, form) -> None:
    """The form's rules, who may mark it restricted (the Admin), and that a form granted here
    for the first time passed a designer test as it stands (the designer's own rule)."""
    forms.validate_form(session, form)
    forms.check_restriction(session, current_actor(), form)
    check_granting(session, form)


class QueryFormView(PlatformModelView):
    datamodel = DesignInterface(QueryForm)
    validator = _validate_form
    list_title = _l("Query forms")
    list_template = "query/form_list.html"  # FAB's, with the way to the form designer
    show_template = "query/form_show.html"
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
    formatters_columns = {"active": yes_no, "restricted": yes_no, "granted_roles": roles_label}
    related_labels = {"granted_roles": role_label}
    description_columns = {
        "granted_agencies": _l("A form is granted only after it was tried in the form designer as it stands."),
        "granted_roles": _l("A form is granted only after it was tried in the form designer as it stands."),
    }


def _api(model, name, validator, columns, search):
    return type(
        f"{model.__name__}Api",
        (PlatformModelApi,),
        {
            "resource_name": name,
            "datamodel": DesignInterface(model),
            "label_columns": {**LABELS, "agency": _l("Agency")} if model is BusinessItem else LABELS,
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
        ["code", "name", "description", "agency", "active"],
        ["code", "name", "agency"],
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


# --- the form designer: a whole form on one page --------------------------------

BLANK_SECTION = {"title": "", "source": None, "target": "", "order_by": "", "display": "table", "options": "",
                 "filters": [], "columns": []}  # fmt: skip
BLANK_FORM = {"code": "", "title": "", "description": "", "agency": None, "active": True, "sort_order": 0,
              "granted_agencies": [], "granted_roles": [], "business_items": [], "inputs": [],
              "sections": [dict(BLANK_SECTION)]}  # fmt: skip


def _problems(messages, path: str = "") -> list[str]:
    """marshmallow's messages as lines "where: what" (the page shows them above the form)."""
    if isinstance(messages, dict):
        return [line for key, value in messages.items() for line in _problems(value, f"{path}{key}.")]
    if isinstance(messages, (list, tuple)) and messages and all(isinstance(m, str) for m in messages):
        return [f"{path.rstrip('.')}: {'; '.join(messages)}"]
    if isinstance(messages, (list, tuple)):
        return [line for value in messages for line in _problems(value, path)]
    return [f"{path.rstrip('.')}: {messages}"]


def _offers(draft: dict, described: dict) -> list[dict]:
    """Per section of the draft: what its source offers, and the entity its target names."""
    offers = []
    for section in draft["sections"]:
        found = described.get(section.get("source"))
        entities = list(found.entities) if found is not None and found.ok else []
        entity = next((e for e in entities if e.target == (section.get("target") or "")), None)
        offers.append({"described": found, "entities": entities, "entity": entity})
    return offers


class FormDesignerView(BaseView):
    """設計表單: a whole query form on one page, its sources described beside it, tried before it is granted."""

    route_base = "/formdesigner"
    default_view = "new"
    method_permission_name = {"new": "design", "edit": "design"}

    @expose("/", methods=["GET", "POST"])
    @has_access
    def new(self):
        return self._page(None)

    @expose("/<int:form_id>", methods=["GET", "POST"])
    @has_access
    def edit(self, form_id):
        return self._page(form_id)

    def _page(self, form_id):
        who, session = current_actor(), db.session
        params, adding, action, problems, run, notes = {}, {}, "", [], None, ()
        if request.method == "GET":
            try:
                draft = designer.definition(session, form_id) if form_id else dict(BLANK_FORM)
            except DomainError as exc:
                abort(exc.status)
        else:
            draft, params, adding = schemas.split_page_form(request.form)
            action = request.form.get("action", "refresh")
        for index, columns in adding.items():  # columns picked from the source's description
            draft["sections"][index]["columns"] += [{"column": c, "label": c} for c in columns]
        if action == "add_section" or not draft["sections"]:
            draft["sections"].append(dict(BLANK_SECTION))
        if action in ("save", "try"):
            try:
                data = schemas.FormDesignSchema().load(draft)
                if action == "save":
                    saved = designer.save_form(session, who, data, form_id)
                    flash(str(_l("The form %(code)s was saved.")) % {"code": saved.code}, "success")
                    for note in saved.notes:
                        flash(note, "warning")
                    return redirect(url_for("FormDesignerView.edit", form_id=saved.id))
                run = designer.try_form(session, who, data, params)
                notes = run.notes
            except ValidationError as exc:
                problems = _problems(exc.messages)
            except (InvalidInput, Conflict) as exc:  # shown above the form, which keeps what was typed
                problems = [str(exc)]
            except DomainError as exc:
                abort(exc.status)
        described = designer.catalogue(session, draft)
        return self.render_template(
            "query/designer.html",
            draft=draft,
            form_id=form_id,
            offers=_offers(draft, described),
            choices=designer.choices(session),
            params=params,
            problems=problems,
            notes=notes,
            run=run,
            kinds={
                "types": INPUT_TYPE_LABELS,
                "ops": OPERATOR_LABELS,
                "displays": DISPLAY_LABELS,
                "masks": MASK_LABELS,
                "formats": FORMAT_LABELS,
            },
        )


class FormDesignerApi(BaseApi):
    """The form designer's REST counterpart: a whole form as one document."""

    resource_name = "form-designer"
    openapi_spec_tag = "Form designer"
    openapi_spec_component_schemas = (
        schemas.FormDesignSchema,
        schemas.DesignDefinitionSchema,
        schemas.DesignSavedSchema,
        schemas.DesignTrySchema,
        schemas.DesignTryAnswerSchema,
        SourceDescriptionSchema,
    )
    method_permission_name = {"describe": "get", "definition": "get", "create": "post", "replace": "put",
                              "try_it": "try"}  # fmt: skip

    @api_expose("/sources/<int:pk>", methods=["GET"])
    @protect()
    def describe(self, pk):
        """What a source offers a form's sections: its tables, views, file, resources or transactions and columns.
        ---
        get:
          summary: Describe a data source for the form designer
          parameters:
          - in: path
            name: pk
            required: true
            schema: {type: integer, minimum: 1, maximum: 9223372036854775807}
          responses:
            200:
              description: The source's entities, or why it could not say (an unreachable source is a result)
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/SourceDescriptionSchema'
            401:
              $ref: '#/components/responses/401'
            404:
              $ref: '#/components/responses/404'
        """
        return self.response(200, **SourceDescriptionSchema().dump(designer.describe(db.session, pk)))

    @api_expose("/<int:pk>", methods=["GET"])
    @protect()
    def definition(self, pk):
        """A stored query form as one document.
        ---
        get:
          summary: A query form as the designer edits it
          parameters:
          - in: path
            name: pk
            required: true
            schema: {type: integer, minimum: 1, maximum: 9223372036854775807}
          responses:
            200:
              description: The whole form
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/DesignDefinitionSchema'
            401:
              $ref: '#/components/responses/401'
            404:
              $ref: '#/components/responses/404'
        """
        draft = designer.definition(db.session, pk)
        return self.response(200, **schemas.DesignDefinitionSchema().dump({"id": pk, "result": draft}))

    @api_expose("/", methods=["POST"])
    @protect()
    def create(self):
        """Save a new query form whole (inputs, sections, filters, columns, grants), checked against its sources.
        ---
        post:
          summary: Save a new query form in one go
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  $ref: '#/components/schemas/FormDesignSchema'
          responses:
            201:
              description: Saved; notes name the sections whose columns the source could not let be checked
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/DesignSavedSchema'
            400:
              $ref: '#/components/responses/400'
            401:
              $ref: '#/components/responses/401'
            409:
              description: Another form has the code
        """
        data = json_body(schemas.FormDesignSchema())
        saved = designer.save_form(db.session, current_actor(), data)
        return self.response(201, **schemas.DesignSavedSchema().dump(saved))

    @api_expose("/<int:pk>", methods=["PUT"])
    @protect()
    def replace(self, pk):
        """Replace a query form whole; nothing changes when any check fails.
        ---
        put:
          summary: Replace a query form in one go
          parameters:
          - in: path
            name: pk
            required: true
            schema: {type: integer, minimum: 1, maximum: 9223372036854775807}
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  $ref: '#/components/schemas/FormDesignSchema'
          responses:
            200:
              description: Saved
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/DesignSavedSchema'
            400:
              $ref: '#/components/responses/400'
            401:
              $ref: '#/components/responses/401'
            403:
              $ref: '#/components/responses/403'
            404:
              $ref: '#/components/responses/404'
            409:
              description: Another form has the code
        """
        data = json_body(schemas.FormDesignSchema())
        saved = designer.save_form(db.session, current_actor(), data, pk)
        return self.response(200, **schemas.DesignSavedSchema().dump(saved))

    @api_expose("/try", methods=["POST"])
    @protect()
    def try_it(self):
        """Try a draft with sample input: the result is shown, audited as a designer test, never stored.
        ---
        post:
          summary: Try a query form before granting it
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  $ref: '#/components/schemas/DesignTrySchema'
          responses:
            200:
              description: Each section as the designer sees it
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/DesignTryAnswerSchema'
            400:
              $ref: '#/components/responses/400'
            401:
              $ref: '#/components/responses/401'
        """
        data = json_body(schemas.DesignTrySchema())
        run = designer.try_form(db.session, current_actor(), data["form"], data["params"])
        return self.response(200, **schemas.try_answer(run))


def register(appbuilder) -> None:
    category = {"category": "Query setup", "category_label": _l("Query setup"), "category_icon": "fa-wrench"}
    appbuilder.add_view(QueryFormView, "Query forms", label=_l("Query forms"), icon="fa-list-alt", **category)
    appbuilder.add_view(FormDesignerView, "Form designer", label=_l("Form designer"), icon="fa-magic",
                        href="/formdesigner/", **category)  # fmt: skip
    appbuilder.add_api(FormDesignerApi)
    appbuilder.add_view(BusinessItemView, "Business items", label=_l("Business items"), icon="fa-tags", **category)
    for view in (FormInputView, FormSectionView, SectionFilterView, SectionColumnView):
        appbuilder.add_view_no_menu(view)
    for api in APIS:
        appbuilder.add_api(api)
