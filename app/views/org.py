"""Screens and APIs for agencies and users."""

from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_appbuilder.security.views import UserDBModelView, UserGroupModelView
from flask_babel import lazy_gettext as _l
from werkzeug.security import generate_password_hash
from wtforms import SelectChoice, SelectField

from app.lib.rocdate import format_roc_datetime
from app.models.org import AGENCY_KINDS, Agency, PlatformUser
from app.services import org
from app.services.roles import ROLE_LABELS
from app.views.base import PlatformModelApi, PlatformModelView, ReadableMixin, ValidatedMixin, yes_no

AGENCY_LABELS = {
    "code": _l("Agency code"),
    "name": _l("Agency name"),
    "kind": _l("Agency kind"),
    "kind_label": _l("Agency kind"),
    "email": _l("E-mail"),
    "active": _l("Active"),
}


def _kind_field():
    return SelectField(_l("Agency kind"), choices=[SelectChoice(value=k, label=v) for k, v in AGENCY_KINDS.items()])


class AgencyView(PlatformModelView):
    datamodel = SQLAInterface(Agency)
    validator = org.validate_agency
    list_title = _l("Agencies")
    show_title = _l("Agency")
    add_title = _l("Add agency")
    edit_title = _l("Edit agency")
    label_columns = AGENCY_LABELS
    list_columns = ["code", "name", "kind_label", "email", "active"]
    show_columns = ["code", "name", "kind_label", "email", "active"]
    add_columns = edit_columns = ["code", "name", "kind", "email", "active"]
    search_columns = ["code", "name", "kind", "active"]
    order_columns = ["code", "name"]
    base_order = ("code", "asc")
    formatters_columns = {"active": yes_no}
    add_form_extra_fields = {"kind": _kind_field()}
    edit_form_extra_fields = {"kind": _kind_field()}


class AgencyApi(PlatformModelApi):
    resource_name = "agencies"
    datamodel = SQLAInterface(Agency)
    validator = org.validate_agency
    list_columns = show_columns = ["id", "code", "name", "kind", "email", "active"]
    add_columns = edit_columns = ["code", "name", "kind", "email", "active"]
    search_columns = ["code", "name", "kind", "active"]
    order_columns = ["code", "name"]


USER_EXTRA_LABELS = {
    "agency": _l("Agency"),
    "title": _l("Job title"),
    "phone": _l("Phone"),
}


class PlatformUserView(ReadableMixin, ValidatedMixin, UserDBModelView):
    """FAB's user screens with agency, title and phone, and our role rules."""

    datamodel = SQLAInterface(PlatformUser)
    validator = org.validate_user
    page_size = 25
    formatters_columns = {
        "active": yes_no,
        "last_login": format_roc_datetime,
        "created_on": format_roc_datetime,
        "changed_on": format_roc_datetime,
        "roles": lambda roles: "、".join(str(ROLE_LABELS.get(r.name, r.name)) for r in roles or []),
    }
    label_columns = {**UserDBModelView.label_columns, **USER_EXTRA_LABELS}
    list_columns = ["username", "last_name", "first_name", "agency", "title", "active", "roles"]
    search_columns = ["username", "first_name", "last_name", "email", "agency", "active", "roles"]
    add_columns = [
        "username",
        "first_name",
        "last_name",
        "agency",
        "title",
        "email",
        "phone",
        "active",
        "roles",
        "password",
        "conf_password",
    ]
    edit_columns = ["username", "first_name", "last_name", "agency", "title", "email", "phone", "active", "roles"]
    show_fieldsets = [
        (_l("User info"), {"fields": ["username", "active", "roles", "agency", "title"]}),
        (_l("Personal Info"), {"fields": ["first_name", "last_name", "email", "phone"], "expanded": True}),
        (
            _l("Audit Info"),
            {
                "fields": ["last_login", "login_count", "fail_login_count", "created_on", "changed_on"],
                "expanded": False,
            },
        ),
    ]
    user_show_fieldsets = [
        (_l("User info"), {"fields": ["username", "active", "roles", "agency", "title"]}),
        (_l("Personal Info"), {"fields": ["first_name", "last_name", "email", "phone"], "expanded": True}),
    ]


class PlatformGroupView(ValidatedMixin, UserGroupModelView):
    """FAB's user groups, checked for separation of duties like users."""

    validator = org.validate_group
    page_size = 25


class UserApi(PlatformModelApi):
    """Users over REST: agency, title, phone and roles; never the password hash."""

    resource_name = "users"
    datamodel = SQLAInterface(PlatformUser)
    validator = org.validate_user
    list_columns = show_columns = [
        "id",
        "username",
        "first_name",
        "last_name",
        "email",
        "phone",
        "title",
        "active",
        "agency.code",
        "agency.name",
        "roles.name",
        "last_login",
    ]
    edit_columns = [
        "username",
        "first_name",
        "last_name",
        "email",
        "phone",
        "title",
        "active",
        "agency",
        "roles",
    ]
    add_columns = [*edit_columns, "password"]
    search_columns = ["username", "first_name", "last_name", "email", "agency", "active", "roles"]
    order_columns = ["username", "last_login"]

    def pre_add(self, item):
        super().pre_add(item)
        if item.password:
            item.password = generate_password_hash(item.password)


def register(appbuilder) -> None:
    appbuilder.add_view(
        AgencyView,
        "Agencies",
        label=_l("Agencies"),
        icon="fa-building",
        category="Organisation",
        category_label=_l("Organisation"),
        category_icon="fa-sitemap",
    )
    appbuilder.add_api(AgencyApi)
    appbuilder.add_api(UserApi)
