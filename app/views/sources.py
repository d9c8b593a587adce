"""Screens and API for data sources (administrators).

They parse and render only: saving, deleting and testing a source are the
commands of ``app.services.sources`` (each owns its transaction and audit),
reached through FAB's public data-model methods (``SourceInterface``); the API
loads and dumps through ``app.schemas.sources.SourceSchema``, which never
dumps the secret.
"""

from flask import flash, redirect
from flask_appbuilder import action
from flask_appbuilder.api import expose, permission_name, protect
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from wtforms import PasswordField, SelectChoice, SelectField

from app import connectors
from app.lib.rocdate import format_roc_datetime
from app.models.sources import DataSource
from app.schemas.sources import ConnectionTestSchema, SourceDescriptionSchema, SourceSchema, check_screen_item
from app.services import sources
from app.views.base import CommandInterface, PlatformModelApi, PlatformModelView, yes_no
from app.web import current_actor

LABELS = {
    "code": _l("Source code"),
    "name": _l("Source name"),
    "kind": _l("Source kind"),
    "agency": _l("Agency"),
    "host": _l("Host / IP"),
    "port": _l("Port"),
    "database": _l("Database / service name"),
    "path": _l("File path"),
    "url": _l("URL"),
    "account": _l("Account"),
    "secret": _l("Password / secret"),
    "timeout": _l("Timeout (seconds)"),
    "row_cap": _l("Row cap"),
    "pool_size": _l("Pool size"),
    "options": _l("Options (JSON)"),
    "enabled": _l("Enabled"),
    "last_checked_at": _l("Last checked"),
    "last_ok": _l("Last check succeeded"),
    "last_latency_ms": _l("Latency (ms)"),
    "last_error": _l("Last error"),
}
EDIT_COLUMNS = [
    "code",
    "name",
    "kind",
    "agency",
    "host",
    "port",
    "database",
    "path",
    "url",
    "account",
    "secret",
    "timeout",
    "row_cap",
    "pool_size",
    "options",
    "enabled",
]


def _secret_field():
    # The stored secret is never sent back to the browser; leave empty to keep it.
    return PasswordField(_l("Password / secret"), description=_l("Leave empty to keep the stored secret."))


def _kind_choices() -> list[SelectChoice]:
    """The registered connector kinds, asked for each time the form is drawn."""
    return [SelectChoice(value=kind, label=label) for kind, label in connectors.choices()]


class SourceInterface(CommandInterface):
    """FAB's data model for sources, whose writes are the sources' commands."""

    def create(self, item) -> None:
        sources.create_source(self.session, current_actor(), item)

    def update(self, item) -> None:
        sources.update_source(self.session, current_actor(), item)

    def remove(self, items) -> None:
        for item in items:  # the screen and the API delete one at a time
            sources.delete_source(self.session, current_actor(), item)


class DataSourceView(PlatformModelView):
    datamodel = SourceInterface(DataSource)
    validator = check_screen_item  # the form's values through the API's schema, before the command
    list_title = _l("Data sources")
    show_title = _l("Data source")
    add_title = _l("Add data source")
    edit_title = _l("Edit data source")
    label_columns = LABELS
    list_columns = ["code", "name", "kind", "agency", "enabled", "last_ok", "last_latency_ms", "last_checked_at"]
    show_columns = [c for c in EDIT_COLUMNS if c != "secret"] + [
        "last_checked_at",
        "last_ok",
        "last_latency_ms",
        "last_error",
    ]
    add_columns = edit_columns = EDIT_COLUMNS
    description_columns = {
        "options": _l(
            'Text files: the character set is part of the configuration, "encoding": "utf-8", "big5" or '
            '"cp950" (a Big5 file cannot hold rare characters beyond Big5; a line that has one is named '
            "with its column when the file is read)."
        ),
    }
    search_columns = ["code", "name", "kind", "agency", "enabled"]
    formatters_columns = {
        "kind": lambda k: str(connectors.label_of(k)),
        "enabled": yes_no,
        "last_ok": lambda v: "" if v is None else yes_no(v),
        "last_checked_at": format_roc_datetime,
    }
    add_form_extra_fields = edit_form_extra_fields = {
        "kind": SelectField(_l("Source kind"), choices=_kind_choices),
        "secret": _secret_field(),
    }

    def prefill_form(self, form, pk):
        form.secret.data = ""

    @action("test_connection", _l("Test connection"), None, "fa-plug", multiple=False)
    def test_connection(self, item):
        item = item[0] if isinstance(item, list) else item
        tested = sources.test_connection(self.datamodel.session, current_actor(), item)
        if tested.ok:
            flash(gettext("Connected to %(name)s in %(ms)s ms.", name=item.name, ms=tested.latency_ms), "success")
        else:
            flash(gettext("Could not connect to %(name)s: %(reason)s", name=item.name, reason=tested.message), "danger")
        return redirect(self.get_redirect())


class DataSourceApi(PlatformModelApi):
    resource_name = "sources"
    datamodel = SourceInterface(DataSource)
    label_columns = {**LABELS, "agency.code": _l("Agency code")}
    list_columns = [
        "id",
        "code",
        "name",
        "kind",
        "agency.code",
        "host",
        "port",
        "database",
        "path",
        "url",
        "account",
        "timeout",
        "row_cap",
        "pool_size",
        "options",
        "enabled",
        "last_checked_at",
        "last_ok",
        "last_latency_ms",
        "last_error",
    ]
    show_columns = list_columns
    add_columns = EDIT_COLUMNS
    # FAB fills what a PUT leaves out from the record as the schema dumps it:
    # never the secret, which a PUT without one therefore leaves alone.
    edit_columns = [c for c in EDIT_COLUMNS if c != "secret"]
    search_columns = ["code", "name", "kind", "enabled"]
    # One schema; three instances, as FAB and the OpenAPI document name each use apart.
    add_model_schema = SourceSchema()
    edit_model_schema = SourceSchema(partial=True)  # FAB completes a PUT from the stored record
    show_model_schema = SourceSchema(only=SourceSchema.SHOWN)
    openapi_spec_component_schemas = (ConnectionTestSchema, SourceDescriptionSchema)

    @expose("/<int:pk>/test", methods=["POST"])
    @protect()
    def test(self, pk):
        """Test a source's connection: success and latency, or why not in plain words (recorded and audited).
        ---
        post:
          summary: Test a data source's connection
          parameters:
          - pk
          responses:
            200:
              description: The test's outcome (a failed connection is a result, not an error)
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/ConnectionTestSchema'
            401:
              $ref: '#/components/responses/401'
            403:
              $ref: '#/components/responses/403'
            404:
              $ref: '#/components/responses/404'
        """
        item = self.datamodel.get(pk)
        if item is None:
            return self.response_404()
        tested = sources.test_connection(self.datamodel.session, current_actor(), item)
        return self.response(200, **ConnectionTestSchema().dump(tested))

    @expose("/<int:pk>/describe", methods=["GET"])
    @protect()
    @permission_name("get")
    def describe(self, pk):
        """What a source offers the form designer: its tables, views, file, resources or transactions and columns.
        ---
        get:
          summary: Describe what a data source offers
          parameters:
          - pk
          responses:
            200:
              description: The source's entities, or why it could not say (an unreachable source is a result)
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/SourceDescriptionSchema'
            401:
              $ref: '#/components/responses/401'
            403:
              $ref: '#/components/responses/403'
            404:
              $ref: '#/components/responses/404'
        """
        item = self.datamodel.get(pk)
        if item is None:
            return self.response_404()
        return self.response(200, **SourceDescriptionSchema().dump(sources.describe_source(item)))


def register(appbuilder) -> None:
    appbuilder.add_view(
        DataSourceView,
        "Data sources",
        label=_l("Data sources"),
        icon="fa-database",
        category="Query setup",
        category_label=_l("Query setup"),
        category_icon="fa-wrench",
    )
    appbuilder.add_api(DataSourceApi)
