"""Who acts: one type for every command, built once per request by the web layer.

A command decides with ``actor.can(capability)``: platform-wide capabilities
are FAB permissions on the ``Platform`` view menu (``app.services.roles``
gives them to roles), so an administrator can grant or withdraw them on the
role screens like any other permission. Role names are shown, never decided on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

# The view menu holding the platform-wide capabilities, and the capabilities.
PLATFORM = "Platform"
ALL_AGENCIES = "all_agencies"  # see and act on the records of every agency (cases, transfers, reports)
ALL_FORMS = "all_forms"  # run any active query form, granted or not
READ_ALL_QUERIES = "read_all_queries"  # read every agency's query history and reopen its results
WEEKLY_ALL_AGENCIES = "weekly_all_agencies"  # the weekly query log of every agency, not only one's own
MANAGE_ACCOUNTS = "manage_accounts"  # set others' passwords, unlock, deactivate and delete accounts
CAPABILITIES = (ALL_AGENCIES, ALL_FORMS, READ_ALL_QUERIES, WEEKLY_ALL_AGENCIES, MANAGE_ACCOUNTS)


@dataclass(frozen=True)
class Actor:
    """A signed-in user (or the system) with agency, roles and capabilities."""

    user_id: int | None
    username: str
    agency_id: int | None = None
    agency_code: str | None = None
    agency_name: str | None = None
    roles: frozenset[str] = field(default_factory=frozenset)
    permissions: frozenset[str] = field(default_factory=frozenset)
    client_ip: str | None = None

    def can(self, capability: str) -> bool:
        return capability in self.permissions

    @property
    def signed_in(self) -> bool:
        return self.user_id is not None

    def same_agency(self, agency_id: int | None) -> bool:
        return agency_id is not None and agency_id == self.agency_id


SYSTEM = Actor(user_id=None, username="system")
# The operator at the server's shell (the `flask ...` maintenance commands):
# whoever can run them can read the database anyway; they act on every agency.
OPERATOR = Actor(user_id=None, username="operator", permissions=frozenset({ALL_AGENCIES}))


def anonymous(client_ip: str | None = None) -> Actor:
    return Actor(user_id=None, username="anonymous", client_ip=client_ip)


def capabilities_of(session, role_ids) -> frozenset[str]:
    """The Platform capabilities the given roles hold (one query)."""
    from flask_appbuilder.security.sqla.models import (
        Permission,
        PermissionView,
        ViewMenu,
        assoc_permissionview_role,
    )

    role_ids = list(role_ids)
    if not role_ids:
        return frozenset()
    stmt = (
        select(Permission.name)
        .join(PermissionView, PermissionView.permission_id == Permission.id)
        .join(ViewMenu, ViewMenu.id == PermissionView.view_menu_id)
        .join(assoc_permissionview_role, assoc_permissionview_role.c.permission_view_id == PermissionView.id)
        .where(ViewMenu.name == PLATFORM, assoc_permissionview_role.c.role_id.in_(role_ids))
    )
    return frozenset(session.execute(stmt).scalars())


def for_user(user, client_ip: str | None = None, permissions: frozenset[str] | None = None, session=None) -> Actor:
    """The actor for a user; capabilities are read with ``session`` unless given."""
    agency = getattr(user, "agency", None)
    roles = list(getattr(user, "roles", None) or [])
    if permissions is None:
        permissions = capabilities_of(session, [r.id for r in roles]) if session is not None else frozenset()
    return Actor(
        user_id=user.id,
        username=user.username,
        agency_id=agency.id if agency is not None else None,
        agency_code=agency.code if agency is not None else None,
        agency_name=agency.name if agency is not None else None,
        roles=frozenset(r.name for r in roles),
        permissions=frozenset(permissions),
        client_ip=client_ip,
    )
