"""Organisation rules: agencies and users."""

from __future__ import annotations

import re

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from app.models.org import AGENCY_KINDS, Agency, PlatformUser
from app.services import audit
from app.services.command import command
from app.services.errors import InvalidInput
from app.services.roles import check_separation_of_duties

_CODE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{1,19}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Roles whose work is always on behalf of one agency.
AGENCY_ROLES = {"Clerk", "Notifier", "Supervisor", "Handler", "Transferor"}


def validate_agency(session, agency: Agency) -> None:
    """Raise InvalidInput for a malformed or duplicate agency."""
    agency.code = (agency.code or "").strip().upper()
    agency.name = (agency.name or "").strip()
    if not _CODE.match(agency.code):
        raise InvalidInput(_l("Agency code must be 2-20 letters, digits, '-' or '_'."))
    if not agency.name:
        raise InvalidInput(_l("Agency name is required."))
    if agency.kind not in AGENCY_KINDS:
        raise InvalidInput(_l("Unknown agency kind."))
    if agency.email and not _EMAIL.match(agency.email):
        raise InvalidInput(_l("The e-mail address is not valid."))
    for column, value, message in (
        (Agency.code, agency.code, _l("Agency code %(value)s is already used by another agency.")),
        (Agency.name, agency.name, _l("Agency name %(value)s is already used by another agency.")),
    ):
        with session.no_autoflush:
            clash = session.execute(
                select(Agency.id).where(func.upper(column) == value.upper(), Agency.id != (agency.id or -1))
            ).first()
        if clash:
            raise InvalidInput(message, value=value)


@command
def record_sign_in_event(session, actor, action: str, user_id: int | None, outcome: str = "ok", detail=None) -> None:
    """Sign-in, failed sign-in and sign-out, audited in a transaction of their own."""
    audit.record(session, action, object_type="User", object_id=user_id, outcome=outcome, detail=detail, actor=actor)


def effective_role_names(user: PlatformUser) -> set[str]:
    """Roles held directly and through FAB user groups."""
    names = {r.name for r in (user.roles or [])}
    for group in getattr(user, "groups", None) or []:
        names |= {r.name for r in (group.roles or [])}
    return names


def validate_user(session, user: PlatformUser) -> None:
    """Separation of duties, and an agency for roles that act for one."""
    names = effective_role_names(user)
    check_separation_of_duties(names)
    if names & AGENCY_ROLES and user.agency is None and user.agency_id is None:
        raise InvalidInput(
            _l(
                "Users with an agency role (clerk, notifier, supervisor, handler, transfer officer) must belong to an agency."
            )
        )
    if user.email and not _EMAIL.match(user.email):
        raise InvalidInput(_l("The e-mail address is not valid."))


def validate_group(session, group) -> None:
    """A group's roles must not put any member in two incompatible roles."""
    group_roles = {r.name for r in (group.roles or [])}
    for user in group.users or []:
        names = {r.name for r in (user.roles or [])} | group_roles
        for other in user.groups or []:
            if other is not group:
                names |= {r.name for r in (other.roles or [])}
        check_separation_of_duties(names)


def _guard_roles(session, flush_context, instances) -> None:
    """Last line of defence for separation of duties, whatever path changed
    a user's roles or a group's roles (screens, APIs, commands)."""
    from flask_appbuilder.security.sqla.models import Group

    users = set()
    for obj in (*session.new, *session.dirty):
        if isinstance(obj, PlatformUser):
            users.add(obj)
        elif isinstance(obj, Group):
            users.update(obj.users or [])
    for user in users:
        check_separation_of_duties(effective_role_names(user))


def install_role_guard(session) -> None:
    from sqlalchemy import event

    if not event.contains(session, "before_flush", _guard_roles):
        event.listen(session, "before_flush", _guard_roles)


def agency_names(session) -> dict[str, str]:
    """Every agency's name by its code (a handful of rows): what screens show instead of codes."""
    return dict(session.execute(select(Agency.code, Agency.name)).all())
