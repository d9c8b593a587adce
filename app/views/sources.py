"""Screens and API for data sources (administrators)."""

from flask import flash, redirect
from flask_appbuilder import action
from flask_appbuilder.api import expose, protect, safe
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from wtforms import PasswordField, SelectField

from app import connectors
from app.lib.rocdate import format_roc_datetime
from app.models.sources import DataSource
from app.services import sources
from app.views.base import PlatformModelApi, PlatformModelView, yes_no

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


class DataSourceView(PlatformModelView):
    datamodel = SQLAInterface(DataSource)
    validator = sources.validate_source
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
    search_columns = ["code", "name", "kind", "agency", "enabled"]
    formatters_columns = {
        "kind": lambda k: str(connectors.label_of(k)),
        "enabled": yes_no,
        "last_ok": lambda v: "" if v is None else yes_no(v),
        "last_checked_at": format_roc_datetime,
    }
    add_form_extra_fields = edit_form_extra_fields = {
        "kind": SelectField(_l("Source kind"), choices=connectors.choices),
        "secret": _secret_field(),
    }

    def prefill_form(self, form, pk):
        form.secret.data = ""

    def pre_update(self, item):
        sources.keep_stored_secret(item)
        super().pre_update(item)

    @action("test_connection", _l("Test connection"), None, "fa-plug", multiple=False)
    def test_connection(self, item):
        item = item[0] if isinstance(item, list) else item
        ok, ms, message = sources.test_connection(self.datamodel.session, item)
        if ok:
            flash(gettext("Connected to %(name)s in %(ms)s ms.", name=item.name, ms=ms), "success")
        else:
            flash(gettext("Could not connect to %(name)s: %(reason)s", name=item.name, reason=message), "danger")
        return redirect(self.get_redirect())


class DataSourceApi(PlatformModelApi):
    resource_name = "sources"
    datamodel = SQLAInterface(DataSource)
    validator = sources.validate_source
    list_columns = show_columns = [
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
    add_columns = edit_columns = EDIT_COLUMNS
    search_columns = ["code", "name", "kind", "enabled"]

    def _init_model_schemas(self) -> None:
        super()._init_model_schemas()
        # The secret is written, never read back: FAB answers a POST or PUT
        # with the saved record through the same schema that loaded it.
        for schema in (self.add_model_schema, self.edit_model_schema):
            schema.dump_fields.pop("secret", None)

    def _merge_update_item(self, model_item, data):
        """FAB fills what a PUT leaves out from the stored record as its schema
        dumps it, which the secret is not: a PUT without one leaves it alone."""
        stored = self.edit_model_schema.dump(model_item, many=False)
        for column in self.edit_columns:
            if column not in data and column in stored:
                data[column] = stored[column]
        return data

    def pre_update(self, item):
        sources.keep_stored_secret(item)
        super().pre_update(item)

    @expose("/<int:pk>/test", methods=["POST"])
    @protect()
    @safe
    def test(self, pk):
        """Test connection: success and latency, or the error in plain words."""
        item = self.datamodel.get(pk)
        if item is None:
            return self.response_404()
        ok, ms, message = sources.test_connection(self.datamodel.session, item)
        return self.response(200, ok=ok, latency_ms=ms, message=message)


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
