"""Screens and APIs for agencies and users."""

from flask import flash, g, redirect
from flask_appbuilder.actions import action
from flask_appbuilder.api import expose, safe
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_appbuilder.security.api import SecurityApi
from flask_appbuilder.security.decorators import has_access
from flask_appbuilder.security.views import (
    PermissionViewModelView,
    RoleModelView,
    UserDBModelView,
    UserGroupModelView,
)
from flask_babel import lazy_gettext as _l
from flask_jwt_extended import create_access_token, create_refresh_token, get_jwt, get_jwt_identity, jwt_required
from wtforms import BooleanField, SelectChoice, SelectField

from app.extensions import db
from app.lib.rocdate import format_roc_datetime
from app.models.org import AGENCY_KINDS, Agency, PlatformUser
from app.services import accounts, cards, org, passwords, sessions, signin
from app.services.errors import DomainError, TooManyAttempts
from app.services.roles import role_label, roles_label
from app.views.base import (
    PlatformModelApi,
    PlatformModelView,
    ReadableMixin,
    RelatedLabelsMixin,
    ValidatedMixin,
    yes_no,
)
from app.web import current_actor

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
    label_columns = AGENCY_LABELS
    list_columns = show_columns = ["id", "code", "name", "kind", "email", "active"]
    add_columns = edit_columns = ["code", "name", "kind", "email", "active"]
    search_columns = ["code", "name", "kind", "active"]
    order_columns = ["code", "name"]


USER_EXTRA_LABELS = {
    "card_required": _l("Signs in with certificate card plus password"),
    "agency": _l("Agency"),
    "title": _l("Job title"),
    "phone": _l("Phone"),
}


UNLOCKED = _l("The account was unlocked: it may sign in again at once.")


def _card_required_field():
    """A tick box that may be left unticked (FAB would make a NOT NULL boolean a required field)."""
    return BooleanField(USER_EXTRA_LABELS["card_required"], default=False)


def _check_user_edit(session, user) -> None:
    """The organisation rules, and no edit that deactivates oneself or the last active Admin."""
    with session.no_autoflush:  # building the actor queries; the edit must not be flushed before it is checked
        actor = current_actor()
        org.validate_user(session, user)
        accounts.check_edit(session, actor, user)


class PlatformUserView(RelatedLabelsMixin, ReadableMixin, ValidatedMixin, UserDBModelView):
    """FAB's user screens with agency, title and phone, and our role rules."""

    datamodel = SQLAInterface(PlatformUser)
    validator = _check_user_edit
    page_size = 25
    formatters_columns = {
        "active": yes_no,
        "card_required": yes_no,
        "last_login": format_roc_datetime,
        "created_on": format_roc_datetime,
        "changed_on": format_roc_datetime,
        "roles": roles_label,
    }
    related_labels = {"roles": role_label}
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
        "card_required",
        "password",
        "conf_password",
    ]
    edit_columns = [
        "username", "first_name", "last_name", "agency", "title", "email", "phone", "active", "roles", "card_required",
    ]  # fmt: skip
    show_fieldsets = [
        (_l("User info"), {"fields": ["username", "active", "roles", "agency", "title", "card_required"]}),
        (_l("Personal Info"), {"fields": ["first_name", "last_name", "email", "phone"], "expanded": True}),
        (
            _l("Audit Info"),
            {
                "fields": ["last_login", "login_count", "fail_login_count", "created_on", "changed_on"],
                "expanded": False,
            },
        ),
    ]
    add_form_extra_fields = {**UserDBModelView.add_form_extra_fields, "card_required": _card_required_field()}
    edit_form_extra_fields = {"card_required": _card_required_field()}
    show_template = "org/user_show.html"
    user_show_fieldsets = [
        (_l("User info"), {"fields": ["username", "active", "roles", "agency", "title"]}),
        (_l("Personal Info"), {"fields": ["first_name", "last_name", "email", "phone"], "expanded": True}),
    ]

    def pre_add(self, item):
        passwords.check(item.password, item.username)  # before FAB hashes it
        super().pre_add(item)

    @action("unlock", _l("Unlock sign-in"), _l("Let this account sign in again at once?"), "fa-unlock", multiple=False)
    def unlock(self, item):
        signin.unlock(self.datamodel.session, current_actor(), item.id)
        flash(str(UNLOCKED), "success")
        return redirect(self.get_redirect())

    @expose("/delete/<pk>", methods=["GET", "POST"])
    @has_access
    def delete(self, pk):
        """Delete through the command: a user with history is deactivated instead;
        nobody removes themselves or the last active Admin."""
        if not self.is_get_mutation_allowed():
            return super().delete(pk)
        try:
            flash(accounts.remove(self.datamodel.session, current_actor(), pk), "success")
        except DomainError as exc:
            flash(str(exc), "danger")
        return redirect(self.get_redirect())


def _check_group_edit(session, group) -> None:
    """Separation of duties for the group's members, and no edit that leaves no active Admin."""
    with session.no_autoflush:
        actor = current_actor()
        org.validate_group(session, group)
        accounts.check_group_edit(session, actor, group)


class PlatformGroupView(RelatedLabelsMixin, ValidatedMixin, UserGroupModelView):
    """FAB's user groups, checked for separation of duties like users, and for the last active Admin."""

    related_labels = {"roles": role_label}
    formatters_columns = {"roles": roles_label}
    validator = _check_group_edit
    page_size = 25


def _check_role_edit(session, role) -> None:
    with session.no_autoflush:
        accounts.check_role_edit(session, current_actor(), role)


class PlatformRoleView(ValidatedMixin, RoleModelView):
    """FAB's role screens: the platform's own roles keep their names and are
    never deleted, and the Admin role keeps every permission."""

    # the permissions stay those of FAB's role screen
    class_permission_name = "RoleModelView"
    validator = _check_role_edit
    # the stored name beside its words: other programs and the API name roles by it
    formatters_columns = {"name": lambda name: name if role_label(name) == name else f"{role_label(name)}（{name}）"}

    @expose("/edit/<pk>", methods=["GET", "POST"])
    @has_access
    def edit(self, pk):
        """FAB's edit, with nothing of the edit flushed before it is checked (assigning the
        permissions loads the old ones, which would otherwise flush the new name first)."""
        with self.datamodel.session.no_autoflush:
            return super().edit(pk)

    def pre_delete(self, item):
        accounts.check_role_delete(self.datamodel.session, current_actor(), item)
        super().pre_delete(item)


class PlatformPermissionViewView(RelatedLabelsMixin, PermissionViewModelView):
    """FAB's list of permissions on views, its role filter in words."""

    # the permissions stay those of FAB's screen
    class_permission_name = "PermissionViewModelView"
    label_columns = {**PermissionViewModelView.label_columns, "role": _l("Role")}
    related_labels = {"role": role_label}


class UserApi(PlatformModelApi):
    """Users over REST: agency, title, phone and roles; never the password hash."""

    resource_name = "users"
    datamodel = SQLAInterface(PlatformUser)
    validator = _check_user_edit
    label_columns = {
        **UserDBModelView.label_columns,
        **USER_EXTRA_LABELS,
        "agency.code": _l("Agency code"),
        "agency.name": _l("Agency name"),
        "roles.name": _l("Roles"),
        "card_required": _l("Certificate card required"),
    }
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
        "card_required",
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
        "card_required",
    ]
    add_columns = [*edit_columns, "password"]
    search_columns = ["username", "first_name", "last_name", "email", "agency", "active", "roles"]
    order_columns = ["username", "last_login"]

    def pre_add(self, item):
        super().pre_add(item)
        passwords.check(item.password, item.username)
        item.password = accounts.hash_password(item.password)

    def delete_headless(self, pk):
        """Delete through the command: a user with history is deactivated instead (the answer says so)."""
        try:
            message = accounts.remove(db.session, current_actor(), pk)
        except DomainError as exc:
            return self.response(exc.status, message=str(exc))
        return self.response(200, message=message)


class PlatformSecurityApi(SecurityApi):
    """FAB's sign-in API: one failure limit with the login form (429 while an
    account or address waits), and refresh tokens spent when used."""

    responses = {
        **SecurityApi.responses,
        "tokens": {
            "description": "The access token, and the refresh token when one was asked for",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {"access_token": {"type": "string"}, "refresh_token": {"type": "string"}},
                    }
                }
            },
        },
    }

    @expose("/login", methods=["POST"])
    @safe
    def login(self):
        """Sign in and get a JWT access token (and a refresh token with ``refresh: true``)
        ---
        post:
          description: >-
            Authenticate and get a JWT access and, optionally, refresh token.
            After repeated failures the account name or address waits (429).
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    username:
                      type: string
                    password:
                      type: string
                    provider:
                      type: string
                      enum:
                      - db
                    refresh:
                      type: boolean
          responses:
            200:
              $ref: '#/components/responses/tokens'
            400:
              $ref: '#/components/responses/400'
            401:
              $ref: '#/components/responses/401'
            429:
              description: Too many failed sign-ins; try again after Retry-After seconds
            500:
              $ref: '#/components/responses/500'
        """
        answer = super().login()
        refusal = g.pop("sign_in_refusal", None)
        if refusal is None:
            return answer
        response = self.response(refusal.status, message=str(refusal))
        if isinstance(refusal, TooManyAttempts):
            response.headers["Retry-After"] = str(refusal.retry_after)
        return response

    @expose("/refresh", methods=["POST"])
    @jwt_required(refresh=True)
    @safe
    def refresh(self):
        """A new access token and a new refresh token; the one presented is spent
        ---
        post:
          description: >-
            Spend the refresh token for a new access token and a new refresh token.
            A spent refresh token presented again ends every token of the account.
          responses:
            200:
              $ref: '#/components/responses/tokens'
            401:
              $ref: '#/components/responses/401'
            500:
              $ref: '#/components/responses/500'
          security:
            - jwt_refresh: []
        """
        payload = get_jwt()
        if not sessions.spend(db.session, payload):
            return self.response_401()
        identity, signed_in_at = get_jwt_identity(), int(payload.get("sat", 0))
        claims = {"sat": signed_in_at}
        if payload.get("card") is not None:
            # signed in with a certificate card: the card is rechecked at every refresh
            if not cards.recheck.token_card_good(db.session, payload["card"], identity):
                return self.response_401()
            claims["card"] = payload["card"]
        return self.response(
            200,
            access_token=create_access_token(identity=identity, fresh=False, additional_claims=claims),
            refresh_token=create_refresh_token(
                identity=identity, additional_claims=claims, expires_delta=sessions.refresh_lifetime(signed_in_at)
            ),
        )


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
