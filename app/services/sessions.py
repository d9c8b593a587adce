"""Sessions that end: signed-in browsers and API tokens.

A browser's cookie holds a random session id; the server keeps its SHA-256 in
``user_session`` and answers, on every request, whether it still holds: not
logged out, not idle longer than SESSION_IDLE_MINUTES, not older than
SESSION_MAX_HOURS, and made under the user's current ``credential_epoch``.
The epoch is bumped (``install_revocation_hook``) whenever a password changes,
an account is deactivated or loses a role, whatever path made the change:
every session and every API token (whose ``ep`` claim carries the epoch) of
that user is refused from then on. A refresh token is spent when used
(``spent_token``); presented again, it revokes the whole family.
"""

from __future__ import annotations

import datetime
import hashlib
import secrets

from flask import current_app
from sqlalchemy import delete, event, inspect, select, update
from sqlalchemy.exc import IntegrityError

from app.extensions import platform_bind
from app.lib.ttlcache import TTLCache
from app.models.org import PlatformUser, SpentToken, UserSession
from app.services import audit
from app.services.command import transaction


def _now() -> datetime.datetime:
    return datetime.datetime.utcnow()


def _hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def _epoch(session, user_id) -> int | None:
    return session.scalar(select(PlatformUser.credential_epoch).where(PlatformUser.id == user_id))


# --- browser sessions ---------------------------------------------------------


def start(session, user_id: int, card_binding_id: int | None = None) -> str:
    """A new browser session for the user who just signed in: its id, for the cookie only.
    One signed in with a certificate card keeps the card, for its rechecks (``cards.recheck``)."""
    sid = secrets.token_urlsafe(32)
    now = _now()
    with transaction(session):
        epoch = _epoch(session, user_id) or 0
        session.add(
            UserSession(
                sid_hash=_hash(sid), user_id=user_id, epoch=epoch, created_at=now, last_seen_at=now,
                card_binding_id=card_binding_id, card_checked_at=now if card_binding_id else None,
            )
        )  # fmt: skip
    return sid


def holds(session, sid: str | None, user_id, recheck_card=None) -> bool:
    """Whether the browser session ``sid`` of ``user_id`` is still good; it is
    touched (at most every SESSION_TOUCH_SECONDS), or ended when it ran out.

    A session signed in with a certificate card has its card rechecked by
    ``recheck_card(card_binding_id, user_id) -> bool`` when its last check is
    CERT_RECHECK_MINUTES old (``app.services.cards.recheck``); a card no longer
    good ends it (``card_refused``)."""
    if not sid or user_id is None:
        return False
    cfg = current_app.config
    row = session.execute(
        select(UserSession, PlatformUser.credential_epoch, PlatformUser.active)
        .join(PlatformUser, PlatformUser.id == UserSession.user_id)
        .where(UserSession.sid_hash == _hash(sid))
    ).first()
    if row is None:
        return False
    record, epoch, active = row
    if record.ended_at is not None or str(record.user_id) != str(user_id):
        return False
    now = _now()
    reason = None
    if not active or record.epoch != epoch:
        reason = "revoked"
    elif now - record.created_at > datetime.timedelta(hours=float(cfg["SESSION_MAX_HOURS"])):
        reason = "expired"
    elif now - record.last_seen_at > datetime.timedelta(minutes=float(cfg["SESSION_IDLE_MINUTES"])):
        reason = "idle"
    # Flask-Login may first ask inside a view that has begun its own work: the
    # bookkeeping below commits, so it waits for a request that has nothing pending.
    clean = not (session.new or session.dirty or session.deleted)
    if reason is not None:
        if clean:
            _end_rows(session, [record.id], reason, now)
        return False
    values = {}
    recheck_due = datetime.timedelta(minutes=float(cfg["CERT_RECHECK_MINUTES"]))
    if clean and recheck_card is not None and record.card_checked_at is not None:
        if now - record.card_checked_at >= recheck_due:
            card, owner = record.card_binding_id, record.user_id
            if not recheck_card(card, owner):
                _end_rows(session, [record.id], "card_refused", now)
                return False
            values["card_checked_at"] = now
    touch = datetime.timedelta(seconds=float(cfg["SESSION_TOUCH_SECONDS"]))
    if clean and now - record.last_seen_at > touch:
        values["last_seen_at"] = now
    if values:
        with transaction(session):
            session.execute(update(UserSession).where(UserSession.id == record.id).values(**values))
    return True


def _end_rows(session, ids, reason: str, now) -> None:
    with transaction(session):
        session.execute(
            update(UserSession)
            .where(UserSession.id.in_(ids), UserSession.ended_at.is_(None))
            .values(ended_at=now, end_reason=reason)
        )


def end(session, sid: str | None) -> None:
    """Logout: the browser session is over; its cookie, replayed, opens nothing."""
    if not sid:
        return
    with transaction(session):
        session.execute(
            update(UserSession)
            .where(UserSession.sid_hash == _hash(sid), UserSession.ended_at.is_(None))
            .values(ended_at=_now(), end_reason="logout")
        )


def keep(session, sid: str | None, user_id: int) -> None:
    """Carry the current browser session over to the user's new epoch (after they changed their own password)."""
    if not sid:
        return
    with transaction(session):
        session.execute(
            update(UserSession)
            .where(UserSession.sid_hash == _hash(sid), UserSession.user_id == user_id, UserSession.ended_at.is_(None))
            .values(epoch=select(PlatformUser.credential_epoch).where(PlatformUser.id == user_id).scalar_subquery())
        )


# --- API tokens ---------------------------------------------------------------


def token_claims(session, user_id, signed_in_at: int | None = None) -> dict:
    """Claims every token of the user carries: the credential epoch and when the user signed in."""
    epoch = _epoch(session, int(user_id)) if str(user_id).isdigit() else None
    at = signed_in_at if signed_in_at is not None else int(_now().replace(tzinfo=datetime.UTC).timestamp())
    return {"ep": epoch if epoch is not None else -1, "sat": at}


# (database, user id) -> (credential epoch, active): what a token is checked
# against, read from the database at most every TOKEN_CHECK_SECONDS per
# process. A change made by this process forgets its entries as it commits.
_credentials = TTLCache()


def _credentials_of(session, user_id: int) -> tuple[int | None, bool] | None:
    """The user's credential epoch and whether the account is active (None: no such user).

    Read on a connection of its own in autocommit, not in the request's
    session: a token check leaves no transaction behind for the request's
    command to commit."""
    bind = platform_bind(session)

    def read() -> tuple[int | None, bool] | None:
        with bind.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            row = conn.execute(
                select(PlatformUser.credential_epoch, PlatformUser.active).where(PlatformUser.id == user_id)
            ).first()
        return None if row is None else (row.credential_epoch, bool(row.active))

    return _credentials.get((id(bind), user_id), float(current_app.config["TOKEN_CHECK_SECONDS"]), read)


def _forget(session, user_ids) -> None:
    bind = platform_bind(session)
    _credentials.forget(*((id(bind), user_id) for user_id in user_ids))


def token_revoked(session, payload: dict) -> bool:
    """A token is refused when its user is gone or inactive, its epoch is old,
    its sign-in is older than SESSION_MAX_HOURS, or (a refresh token) it was spent.

    The epoch and the active flag are those of at most TOKEN_CHECK_SECONDS ago
    (the database is not read on every API call): a revocation made on this
    process holds at once, one made on another host within that time."""
    sub = str(payload.get("sub", ""))
    if not sub.isdigit():
        return True
    if payload.get("type") == "refresh":
        _forget(session, [int(sub)])  # a refresh always reads the database
    found = _credentials_of(session, int(sub))
    if found is None or not found[1] or payload.get("ep") != found[0]:
        return True
    max_age = float(current_app.config["SESSION_MAX_HOURS"]) * 3600
    if _now().replace(tzinfo=datetime.UTC).timestamp() - float(payload.get("sat", 0)) > max_age:
        return True
    if payload.get("type") == "refresh":
        if session.get(SpentToken, str(payload.get("jti"))) is not None:
            revoke_all(session, int(sub), "refresh_token_reused")
            return True
    return False


def spend(session, payload: dict) -> bool:
    """Spend a refresh token (once: a second spender, even a concurrent one, gets False)."""
    expires = datetime.datetime.fromtimestamp(int(payload["exp"]), datetime.UTC).replace(tzinfo=None)
    try:
        with transaction(session):
            session.add(SpentToken(jti=str(payload["jti"]), user_id=int(payload["sub"]), expires_at=expires))
            # Spent tokens past their expiry need no keeping.
            session.execute(delete(SpentToken).where(SpentToken.expires_at < _now()))
    except IntegrityError:
        revoke_all(session, int(payload["sub"]), "refresh_token_reused")
        return False
    return True


def refresh_lifetime(signed_in_at: int) -> datetime.timedelta:
    """A rotated refresh token lives its configured time, but never past the sign-in's absolute lifetime."""
    cfg = current_app.config
    now = _now().replace(tzinfo=datetime.UTC).timestamp()
    left = signed_in_at + float(cfg["SESSION_MAX_HOURS"]) * 3600 - now
    return min(cfg["JWT_REFRESH_TOKEN_EXPIRES"], datetime.timedelta(seconds=max(1.0, left)))


def revoke_all(session, user_id: int, reason: str) -> None:
    """End every session and token of the user (a new epoch), audited as ``revoke_sessions``."""
    from app.services.actors import SYSTEM

    with transaction(session):
        session.execute(
            update(PlatformUser)
            .where(PlatformUser.id == user_id)
            .values(credential_epoch=PlatformUser.credential_epoch + 1)
        )
        audit.record(session, "revoke_sessions", object_type="User", object_id=user_id, outcome="ok",
                     detail={"reason": reason}, actor=audit.current_actor() or SYSTEM)  # fmt: skip
    _forget(session, [user_id])


# --- the epoch follows the credentials ------------------------------------------


def _changes_credentials(user: PlatformUser) -> bool:
    state = inspect(user)
    if state.attrs.password.history.has_changes():
        return True
    active = state.attrs.active.history
    if active.has_changes() and not user.active:
        return True
    required = state.attrs.card_required.history
    if required.has_changes() and user.card_required:
        return True  # from now on certificate card plus password: password sessions end
    # a role held directly, or through a group left
    return bool(state.attrs.roles.history.deleted or state.attrs.groups.history.deleted)


def _bump_epochs(session, flush_context, instances) -> None:
    from flask_appbuilder.security.sqla.models import Group

    bumped, members, touched = set(), set(), set()
    for obj in session.dirty:
        if isinstance(obj, PlatformUser) and inspect(obj).attrs.active.history.has_changes():
            touched.add(obj.id)  # reactivated too: token checks must read it anew
        if isinstance(obj, PlatformUser) and _changes_credentials(obj):
            obj.credential_epoch = (obj.credential_epoch or 0) + 1
            bumped.add(obj.id)
        elif isinstance(obj, Group) and inspect(obj).attrs.roles.history.deleted:
            members.update(user.id for user in obj.users or [])  # a group losing a role: its members lose it
    members -= bumped
    session.info.setdefault("credentials_changed", set()).update(bumped | members | touched)
    if members:
        # FAB's Group.users holds its own User class: bump the members by id.
        session.connection().execute(
            update(PlatformUser)
            .where(PlatformUser.id.in_(sorted(members)))
            .values(credential_epoch=PlatformUser.credential_epoch + 1)
        )


def install_revocation_hook(session) -> None:
    """Whatever path changes a password, deactivates an account or removes a role
    (screens, APIs, commands), the user's sessions and tokens end with it."""
    if not event.contains(session, "before_flush", _bump_epochs):
        event.listen(session, "before_flush", _bump_epochs)
        event.listen(session, "after_commit", _forget_changed)
        event.listen(session, "after_rollback", _drop_changed)


def _forget_changed(session) -> None:
    """This process changed credentials: its token checks read them anew at once."""
    changed = session.info.pop("credentials_changed", None)
    if changed:
        _forget(session, changed)


def _drop_changed(session) -> None:
    session.info.pop("credentials_changed", None)
