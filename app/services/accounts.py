"""Accounts: setting passwords, removing users, and the guards that keep the
platform administrable (nobody removes themselves or the last active Admin;
a user with history is deactivated, never deleted)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from sqlalchemy import exists, inspect, select
from werkzeug.security import generate_password_hash

from app.models.org import PlatformUser
from app.services import audit, passwords
from app.services.actors import MANAGE_ACCOUNTS, SYSTEM
from app.services.command import transaction
from app.services.errors import Conflict, Forbidden, NotFound

ADMIN_ROLE = "Admin"

NOT_ALLOWED = _l("You may not manage accounts.")
NO_SUCH_USER = _l("No such user.")
NOT_YOURSELF = _l("You cannot delete or deactivate your own account.")
LAST_ADMIN = _l("This is the last active system administrator: the platform would have no administrator left.")
DEACTIVATED = _l("The user has history on the platform, so the account was deactivated instead of deleted.")
DELETED = _l("The user was deleted.")
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


def _active_admin_ids(session) -> set[int]:
    from flask_appbuilder.security.sqla.models import Role

    with session.no_autoflush:
        return set(
            session.scalars(
                select(PlatformUser.id)
                .where(PlatformUser.active.is_(True))
                .where(PlatformUser.roles.any(Role.name == ADMIN_ROLE))
            )
        )


def _is_active_admin(user: PlatformUser) -> bool:
    return bool(user.active) and any(r.name == ADMIN_ROLE for r in user.roles or [])


def check_edit(session, actor, user: PlatformUser) -> None:
    """An edit of a user (screen or API) may not deactivate the editor themselves,
    nor leave the platform without an active Admin. Raises Conflict."""
    if user.id is None:
        return
    active = inspect(user).attrs.active.history
    deactivated = active.has_changes() and not user.active
    if deactivated and actor.user_id == user.id:
        raise Conflict(NOT_YOURSELF)
    admins = _active_admin_ids(session)
    if user.id in admins and not _is_active_admin(user) and not (admins - {user.id}):
        raise Conflict(LAST_ADMIN)


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
    themselves or the last active Admin. Raises Forbidden, NotFound, Conflict."""
    if not actor.can(MANAGE_ACCOUNTS):
        raise Forbidden(NOT_ALLOWED)
    user = session.get(PlatformUser, int(user_id)) if str(user_id).isdigit() else None
    if user is None:
        raise NotFound(NO_SUCH_USER)
    if actor.user_id == user.id:
        raise Conflict(NOT_YOURSELF)
    if _is_active_admin(user) and not (_active_admin_ids(session) - {user.id}):
        raise Conflict(LAST_ADMIN)
    with transaction(session):
        if has_history(session, user.id):
            user.active = False
            audit.record(session, "deactivate", object_type="User", object_id=user.id,
                         detail={"reason": "has_history"}, actor=actor)  # fmt: skip
            return str(DEACTIVATED)
        session.delete(user)
    return str(DELETED)
