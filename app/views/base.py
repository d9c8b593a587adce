"""Shared behaviour of our FAB screens and APIs: parse a request through its schema,
validate through a service, and turn domain errors into clear messages."""

from flask import jsonify, request
from flask_appbuilder import ModelRestApi, ModelView
from flask_appbuilder.exceptions import DatabaseException
from flask_appbuilder.fieldwidgets import Select2Widget
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _l
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from wtforms import SelectChoice, SelectField

from app.services import command
from app.services.errors import DomainError
from app.views.openapi import StrictModel2SchemaConverter


def yes_no(value) -> str:
    """Booleans as 是/否 (Yes/No) in lists and detail pages."""
    from flask_babel import gettext

    return gettext("Yes") if value else gettext("No")


def agency_name(code) -> str:
    """An agency code as its name (read once per request); an unknown code as itself."""
    from flask import g

    from app.extensions import db
    from app.services.org import agency_names

    if not code:
        return ""
    names = getattr(g, "agency_names", None)
    if names is None:
        names = g.agency_names = agency_names(db.session)
    return names.get(code, code)


def json_body(schema, optional: bool = False):
    """The request's JSON body loaded through ``schema`` (a ValidationError is answered 400 by
    app.web). A body that is absent or not JSON loads as None, which the schema refuses;
    ``optional``: an absent body loads as an empty object."""
    if optional and not request.get_data(cache=True):
        return schema.load({})
    return schema.load(request.get_json(silent=True))


def form_body(schema, names):
    """The posted form's fields ``names`` (an absent one as "") loaded through ``schema``."""
    return schema.load({name: request.form.get(name, "") for name in names})


def json_answer(schema, value, status: int = 200):
    """``value`` dumped through ``schema``, as a JSON answer with ``status``."""
    answer = jsonify(schema.dump(value))
    answer.status_code = status
    return answer


CONFLICT = _l("This record conflicts with an existing one (a duplicate code, name or e-mail).")


class ValidatedMixin:
    #: service function(session, item) raising DomainError
    validator = None

    def _validate(self, item):
        if self.validator is not None:
            type(self).validator(self.datamodel.session, item)

    def pre_add(self, item):
        self._validate(item)
        super().pre_add(item)

    def pre_update(self, item):
        self._validate(item)
        super().pre_update(item)


def readable(value):
    """What a clerk should see for empty values and lists (not "None", not "[a, b]")."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple, set)):
        return "、".join(str(v) for v in value)
    return value


class CommandInterface(SQLAInterface):
    """FAB's data interface whose writes are commands (which own the
    transaction) instead of FAB committing: ``create``, ``update`` and
    ``remove``. Here they are the generic configuration records' commands
    (``command.save_record``, ``command.remove_records``); the query-form
    designer's and the data sources' interfaces name their capability's
    commands instead. Errors reach FAB as its own interface raises them (a
    database error on add; DatabaseException on edit and delete), so its
    screens and APIs answer as they always do."""

    def create(self, item) -> None:
        command.save_record(self.session, item)

    def update(self, item) -> None:
        command.save_record(self.session, item)

    def remove(self, items) -> None:
        command.remove_records(self.session, items)

    def add(self, item, commit: bool = True) -> None:
        self.create(item)

    def edit(self, item, commit: bool = True) -> None:
        try:
            self.update(item)
        except SQLAlchemyError as exc:
            raise DatabaseException from exc

    def delete(self, item, commit: bool = True) -> None:
        self.delete_all([item])

    def delete_all(self, items) -> None:
        try:
            self.remove(items)
        except SQLAlchemyError as exc:
            raise DatabaseException from exc


class ReadableMixin:
    """Every listed or shown column without its own formatter goes through ``readable``."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        formatters = dict(self.formatters_columns or {})
        for column in [*(self.list_columns or []), *(self.show_columns or [])]:
            formatters.setdefault(column, readable)
        self.formatters_columns = formatters


class UncheckableMixin:
    """A NOT NULL boolean is a checkbox that may be left unticked (FAB would make it required).

    Unticked means False, which the column holds fine; "required" would make
    "not active" or "no FTP" impossible to save.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)  # builds add_form and edit_form (FAB's public attributes)
        from wtforms import BooleanField
        from wtforms.validators import DataRequired, InputRequired

        for form in (self.add_form, self.edit_form):
            for name in dir(form):
                field = getattr(form, name, None)
                if getattr(field, "field_class", None) is BooleanField:
                    validators = field.kwargs.get("validators") or []
                    required = (DataRequired, InputRequired)
                    field.kwargs["validators"] = [v for v in validators if not isinstance(v, required)]


NO_CHOICE = _l("(none)")


class RelatedLabelsMixin:
    """Related records offered in a select list read through a function
    (``related_labels``: field -> function of the record), e.g. roles in words,
    in the add and edit forms and in the list's search filters; an optional
    relation's empty choice reads "(none)", not FAB's "__None"."""

    related_labels: dict = {}

    def __init__(self, **kwargs):
        super().__init__(**kwargs)  # builds add_form, edit_form and search_form (FAB's public attributes)
        for form in (self.add_form, self.edit_form, self.search_form):
            if form is None:
                continue
            for name, label in self.related_labels.items():
                field = getattr(form, name, None)
                if field is not None and hasattr(field, "kwargs"):
                    field.kwargs["get_label"] = label
            for name in dir(form):
                field = getattr(form, name, None)
                if getattr(field, "kwargs", None) and field.kwargs.get("allow_blank"):
                    field.kwargs.setdefault("blank_text", NO_CHOICE)


class SearchInWordsMixin:
    """A list's search filter on a column of codes (a kind, a status) offers the codes in
    words: the choices of the select field the add and edit forms use for the column, or
    ``search_choices`` (column -> {code: label}), in FAB's select2 list like its other filters.
    The filter still compares the code (choose "equal to" for an exact match)."""

    search_choices: dict = {}

    def __init__(self, **kwargs):
        extra = dict(self.search_form_extra_fields or {})
        forms = (self.add_form_extra_fields or {}, self.edit_form_extra_fields or {})
        labels = self.label_columns or {}
        for column in self.search_columns or ():
            field = next((f[column] for f in forms if column in f), None)
            if column in extra or field is None or field.field_class is not SelectField:
                continue
            if field.kwargs.get("choices") is not None:
                extra[column] = SelectField(labels.get(column, column), choices=field.kwargs["choices"],
                                            widget=Select2Widget())  # fmt: skip
        for column, words in self.search_choices.items():
            choices = [SelectChoice(code, text) for code, text in words.items()]
            extra[column] = SelectField(labels.get(column, column), choices=choices, widget=Select2Widget())
        self.search_form_extra_fields = extra or None
        super().__init__(**kwargs)  # FAB builds the search form with the extra fields


class PlatformModelView(
    SearchInWordsMixin, RelatedLabelsMixin, ReadableMixin, UncheckableMixin, ValidatedMixin, ModelView
):
    page_size = 25


class PlatformModelApi(ValidatedMixin, ModelRestApi):
    page_size = 25
    max_page_size = 100
    # related records by id only (FAB would build a record from an object's keys)
    model2schemaconverter = StrictModel2SchemaConverter

    def _guard(self, call, *args, **kwargs):
        """A validator's refusal is its status; a duplicate is 409 (FAB's interface
        has already rolled its write back; the validators refuse before writing)."""
        try:
            return call(*args, **kwargs)
        except DomainError as exc:
            return self.response(exc.status, message=str(exc))
        except IntegrityError:
            return self.response(409, message=str(CONFLICT))

    def post_headless(self):
        return self._guard(super().post_headless)

    def put_headless(self, pk):
        return self._guard(super().put_headless, pk)

    def delete_headless(self, pk):
        return self._guard(super().delete_headless, pk)
