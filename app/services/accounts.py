"""Accounts: setting passwords, removing users, and the guards that keep the
platform administrable (nobody removes themselves or the last active Admin;
a user with history is deactivated, never deleted)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, exists, func, inspect, or_, select
from werkzeug.security import generate_password_hash

from app.models.org import PlatformUser
from app.services import audit, passwords
from app.services.actors import MANAGE_ACCOUNTS, SYSTEM
from app.services.command import refuse, transaction
from app.services.errors import Conflict, DomainError, Forbidden, NotFound
from app.services.org import effective_role_names

ADMIN_ROLE = "Admin"
# The PostgreSQL advisory lock (transaction-scoped) that serialises every change
# which could take away an active Admin: "ADMN".
ADMIN_LOCK_KEY = 0x41444D4E

NOT_ALLOWED = _l("You may not manage accounts.")
NO_SUCH_USER = _l("No such user.")
NOT_YOURSELF = _l("You cannot delete or deactivate your own account.")
LAST_ADMIN = _l("This is the last active system administrator: the platform would have no administrator left.")
DEACTIVATED = _l("The user has history on the platform, so the account was deactivated instead of deleted.")
DELETED = _l("The user was deleted.")
ROLE_RENAMED = _l("The platform's own roles keep their names: the platform recognises them by name.")
ADMIN_ROLE_FIXED = _l(
    "The system administrator role keeps every permission: it cannot be reduced here, or the platform "
    "could be left with nobody able to administer it."
)
ROLE_KEPT = _l("The platform's own roles cannot be deleted.")
PASSWORD_CHANGED = _l("The password was changed; other sessions of the account have ended.")


def hash_password(password: str) -> str:
    from flask import current_app

    cfg = current_app.config
    return generate_password_hash(
        password,
        method=cfg.get("FAB_PASSWORD_HASH_METHOD", "scrypt"),
        salt_length=cfg.get("FAB_PASSWORD_HASH_SALT_LENGTH", 16),
    )


def set_password(session, actor, user_id, password: str) -> None:
    """Set a user's password (their own, or anyone's with MANAGE_ACCOUNTS or from the CLI): the
    policy applies; every session and token of the user ends (``sessions``), audited.

    Raises InvalidInput (policy), Forbidden, NotFound."""
    user = session.get(PlatformUser, int(user_id)) if str(user_id).isdigit() else None
    own = actor.user_id is not None and user is not None and user.id == actor.user_id
    # The system actor is an operator at the command line (FAB's `flask fab reset-password`).
    if not own and actor is not SYSTEM and not actor.can(MANAGE_ACCOUNTS):
        raise Forbidden(NOT_ALLOWED)
    if user is None:
        raise NotFound(NO_SUCH_USER)
    passwords.check(password, user.username)
    with transaction(session):
        user.password = hash_password(password)
        audit.record(session, "password_change", object_type="User", object_id=user.id,
                     detail={"by": "self" if own else "admin"}, actor=actor)  # fmt: skip


def lock_admins(session) -> None:
    """Serialise the changes that could leave no active Admin: on PostgreSQL a
    transaction-scoped advisory lock, held until the caller's transaction ends
    (a second such change waits, then counts what the first left). SQLite has
    one writer at a time anyway."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(ADMIN_LOCK_KEY)))


def _admin_role():
    from flask_appbuilder.security.sqla.models import Group, Role

    holds = PlatformUser.roles.any(Role.name == ADMIN_ROLE)
    through_group = PlatformUser.groups.any(Group.roles.any(Role.name == ADMIN_ROLE))
    return Group, Role, holds, through_group


def active_admin_ids(session) -> set[int]:
    """The active users holding the Admin role, directly or through a FAB user
    group, as the database has them (call ``lock_admins`` first to act on it)."""
    _, _, holds, through_group = _admin_role()
    with session.no_autoflush:
        return set(
            session.scalars(select(PlatformUser.id).where(PlatformUser.active.is_(True), or_(holds, through_group)))
        )


def _is_active_admin(user: PlatformUser) -> bool:
    """As the object stands in memory (an edit not yet saved): active, and Admin directly or through a group."""
    return bool(user.active) and ADMIN_ROLE in effective_role_names(user)


def _refuse(session, actor, error: DomainError, operation: str, rule: str, object_type: str, object_id):
    """The refusal of an account change, audited in a transaction of its own (what was begun is rolled back)."""
    detail = {"operation": operation, "rule": rule}
    return refuse(session, error, actor, "account_refused", object_type=object_type, object_id=object_id,
                  detail=detail)  # fmt: skip


def check_edit(session, actor, user: PlatformUser) -> None:
    """An edit of a user (screen or API) may not deactivate the editor themselves,
    nor leave the platform without an active Admin (counting Admins through
    groups; serialised with ``lock_admins``). Raises Conflict, the refusal audited."""
    if user.id is None:
        return
    active = inspect(user).attrs.active.history
    deactivated = active.has_changes() and not user.active
    if deactivated and actor.user_id == user.id:
        raise _refuse(session, actor, Conflict(NOT_YOURSELF), "edit", "self", "User", user.id)
    with session.no_autoflush:
        lock_admins(session)
        admins = active_admin_ids(session)
        last = user.id in admins and not _is_active_admin(user) and not (admins - {user.id})
    if last:
        raise _refuse(session, actor, Conflict(LAST_ADMIN), "edit", "last_admin", "User", user.id)


def check_group_edit(session, actor, group) -> None:
    """An edit of a FAB user group (its roles or its members) may not leave the
    platform without an active Admin. Raises Conflict, the refusal audited."""
    from flask_appbuilder.security.sqla.models import assoc_user_group

    if group.id is None:
        return
    Group, Role, holds, _ = _admin_role()
    with session.no_autoflush:
        lock_admins(session)
        admins = active_admin_ids(session)
        members_before = set(
            session.scalars(select(assoc_user_group.c.user_id).where(assoc_user_group.c.group_id == group.id))
        )
        affected = admins & members_before
        if not affected or admins - affected:
            return
        group_admin = ADMIN_ROLE in {r.name for r in group.roles or []}
        members_after = {u.id: u for u in group.users or [] if u.id is not None}
        elsewhere = PlatformUser.groups.any(and_(Group.id != group.id, Group.roles.any(Role.name == ADMIN_ROLE)))
        stay = set(
            session.scalars(
                select(PlatformUser.id).where(
                    PlatformUser.id.in_(sorted(affected)), PlatformUser.active.is_(True), or_(holds, elsewhere)
                )
            )
        )
        if group_admin:
            stay |= {uid for uid, u in members_after.items() if u.active}
    if not stay:
        raise _refuse(session, actor, Conflict(LAST_ADMIN), "group_edit", "last_admin", "Group", group.id)


def _history_checks(user_id: int):
    """One EXISTS per place a user leaves history: any column referring to the
    user (cases, dispatches, transfers, notes...), the audit trail and the query log."""
    from flask_appbuilder import Model

    from app.models.audit import AuditEvent
    from app.models.queries import QueryLog

    checks = [
        exists().where(AuditEvent.actor_id == user_id),
        exists().where(QueryLog.user_id == user_id),
    ]
    skip = {"ab_user", "ab_user_role", "ab_user_group", "user_session", "spent_token", "staff_certificate"}
    for table in Model.metadata.sorted_tables:
        if table.name in skip:
            continue
        for column in table.columns:
            if any(fk.target_fullname == "ab_user.id" for fk in column.foreign_keys):
                checks.append(exists().where(column == user_id))
    return checks


def has_history(session, user_id: int) -> bool:
    return any(session.scalar(select(check)) for check in _history_checks(user_id))


def remove(session, actor, user_id) -> str:
    """Delete a user, or deactivate them when they have history (their acts
    must keep naming them). Returns the message saying which. Nobody removes
    themselves or the last active Admin (counting Admins through groups;
    serialised with ``lock_admins``). Raises Forbidden, NotFound, Conflict;
    the refusals audited."""
    target = int(user_id) if str(user_id).isdigit() else None
    if not actor.can(MANAGE_ACCOUNTS):
        raise _refuse(session, actor, Forbidden(NOT_ALLOWED), "delete", "not_allowed", "User", target)
    user = session.get(PlatformUser, target) if target is not None else None
    if user is None:
        raise NotFound(NO_SUCH_USER)
    if actor.user_id == user.id:
        raise _refuse(session, actor, Conflict(NOT_YOURSELF), "delete", "self", "User", user.id)
    lock_admins(session)
    admins = active_admin_ids(session)
    if user.id in admins and not (admins - {user.id}):
        raise _refuse(session, actor, Conflict(LAST_ADMIN), "delete", "last_admin", "User", user.id)
    with transaction(session):
        if has_history(session, user.id):
            user.active = False
            audit.record(session, "deactivate", object_type="User", object_id=user.id,
                         detail={"reason": "has_history"}, actor=actor)  # fmt: skip
            return str(DEACTIVATED)
        session.delete(user)
    return str(DELETED)


def check_role_edit(session, actor, role) -> None:
    """An edit of a role on FAB's role screen: the platform's own roles keep
    their names (rules find them by name), and the Admin role loses no
    permission (FAB gives it each new permission, but never gives one back).
    Raises Conflict, the refusal audited."""
    from flask_appbuilder.security.sqla.models import Role

    from app.services.roles import ROLE_LABELS

    if role.id is None:
        return
    state = inspect(role)
    renamed = state.attrs.name.history  # the caller keeps the edit unflushed until it is checked
    if renamed.deleted:
        old_name = renamed.deleted[0]
    else:
        with session.no_autoflush:
            old_name = session.scalar(select(Role.name).where(Role.id == role.id))
    if role.name != old_name and old_name in ROLE_LABELS:
        raise _refuse(session, actor, Conflict(ROLE_RENAMED), "role_edit", "rename", "Role", role.id)
    if old_name == ADMIN_ROLE and state.attrs.permissions.history.deleted:
        raise _refuse(session, actor, Conflict(ADMIN_ROLE_FIXED), "role_edit", "admin_permissions", "Role", role.id)


def check_role_delete(session, actor, role) -> None:
    """The platform's own roles are never deleted (even without members). Raises Conflict, audited."""
    from app.services.roles import ROLE_LABELS

    if role.name in ROLE_LABELS:
        raise _refuse(session, actor, Conflict(ROLE_KEPT), "role_delete", "platform_role", "Role", role.id)
