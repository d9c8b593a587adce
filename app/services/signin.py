"""Failed sign-ins: one limit for the form and the API, per account name and per
client address, with a wait that doubles for each failure past the threshold.

The counters are kept under keyed digests (``account:<hmac>``, ``address:<hmac>``),
never what was typed (a mistyped name may be someone's ID number), in the
platform database, or in Redis when LOGIN_THROTTLE_STORAGE_URI names one.
Unknown names are counted like accounts, so a lock tells nothing about who exists.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import math
from dataclasses import dataclass

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, select

from app.lib import metrics
from app.models.org import LoginThrottle
from app.services import audit
from app.services.actors import MANAGE_ACCOUNTS
from app.services.command import transaction
from app.services.errors import Forbidden, NotFound, TooManyAttempts

LOCKED = _l(
    "Too many failed sign-ins: please try again later (in about %(minutes)s minutes), "
    "or ask an administrator to unlock the account."
)
NOT_ALLOWED = _l("You may not manage accounts.")
NO_SUCH_USER = _l("No such user.")


@dataclass(frozen=True)
class State:
    key: str
    failures: int
    locked_until: datetime.datetime | None


def _digest(kind: str, value: str) -> str:
    secret = current_app.config["SECRET_KEY"].encode()
    return f"{kind}:" + hmac.new(secret, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def account_key(username: str, user_id: int | None = None) -> str:
    """A known account counts by its id (whether reached by name or e-mail), an unknown name by its digest."""
    if user_id is not None:
        return f"account:user-{user_id}"
    return _digest("account", (username or "").strip().casefold())


def address_key(address: str | None) -> str:
    return _digest("address", address or "")


def _now() -> datetime.datetime:
    return datetime.datetime.utcnow()


def _threshold(key: str) -> int:
    cfg = current_app.config
    return int(
        cfg["LOGIN_ADDRESS_LOCK_AFTER_FAILURES"] if key.startswith("address:") else cfg["LOGIN_LOCK_AFTER_FAILURES"]
    )


def _wait(failures: int, threshold: int) -> datetime.timedelta | None:
    if failures < threshold:
        return None
    cfg = current_app.config
    base, ceiling = float(cfg["LOGIN_LOCK_SECONDS"]), float(cfg["LOGIN_LOCK_MAX_SECONDS"])
    exponent = min(failures - threshold, 40)
    return datetime.timedelta(seconds=min(base * 2**exponent, ceiling))


def _memory() -> datetime.timedelta:
    return datetime.timedelta(seconds=float(current_app.config["LOGIN_FAILURE_MEMORY_SECONDS"]))


# --- storage: the platform database, or Redis --------------------------------


class _Database:
    def __init__(self, session):
        self.session = session

    def locked_until(self, keys, now):
        rows = self.session.scalars(select(LoginThrottle).where(LoginThrottle.key.in_(keys))).all()
        return [row.locked_until for row in rows if row.locked_until and now - row.last_failure_at <= _memory()]

    def fail(self, key, now) -> State:
        with transaction(self.session):
            row = self.session.scalar(select(LoginThrottle).where(LoginThrottle.key == key).with_for_update())
            if row is None:
                row = LoginThrottle(key=key, failures=0, last_failure_at=now)
                self.session.add(row)
            elif now - row.last_failure_at > _memory():
                row.failures, row.locked_until = 0, None
            row.failures += 1
            row.last_failure_at = now
            wait = _wait(row.failures, _threshold(key))
            row.locked_until = now + wait if wait else None
            return State(key, row.failures, row.locked_until)

    def clear(self, keys) -> None:
        with transaction(self.session):
            self.session.execute(delete(LoginThrottle).where(LoginThrottle.key.in_(keys)))


class _Redis:
    """One hash per key (failures, locked_until as a Unix time), expiring
    LOGIN_FAILURE_MEMORY_SECONDS after its last failure."""

    _clients: dict = {}

    def __init__(self, uri: str):
        client = self._clients.get(uri)
        if client is None:
            import redis

            # A Redis that stopped answering fails the sign-in in 2 s (refused, 503), never waits on.
            client = self._clients[uri] = redis.Redis.from_url(uri, socket_connect_timeout=2, socket_timeout=2)
        self.client = client

    @staticmethod
    def _name(key):
        return f"platform:login:{key}"

    def locked_until(self, keys, now):
        found = []
        for key in keys:
            value = self.client.hget(self._name(key), "locked_until")
            if value:
                found.append(datetime.datetime.fromtimestamp(float(value), datetime.UTC).replace(tzinfo=None))
        return found

    def fail(self, key, now) -> State:
        name = self._name(key)
        pipe = self.client.pipeline()
        pipe.hincrby(name, "failures", 1)
        pipe.expire(name, max(1, math.ceil(_memory().total_seconds())))
        failures = int(pipe.execute()[0])
        wait = _wait(failures, _threshold(key))
        if wait is None:
            return State(key, failures, None)
        until = now + wait
        self.client.hset(name, "locked_until", until.replace(tzinfo=datetime.UTC).timestamp())
        return State(key, failures, until)

    def clear(self, keys) -> None:
        self.client.delete(*[self._name(key) for key in keys])


def _store(session):
    uri = current_app.config.get("LOGIN_THROTTLE_STORAGE_URI") or ""
    return _Redis(uri) if uri.startswith(("redis://", "rediss://", "unix://")) else _Database(session)


# --- the rules ---------------------------------------------------------------


def locked(session, keys, now: datetime.datetime | None = None) -> datetime.datetime | None:
    """Until when any of ``keys`` must wait, or None."""
    now = now or _now()
    waits = [until for until in _store(session).locked_until(list(keys), now) if until > now]
    return max(waits) if waits else None


def check(session, keys, actor, user_id: int | None) -> None:
    """Raise TooManyAttempts (audited as ``login_refused``) while any key waits.
    The password is not even looked at meanwhile."""
    until = locked(session, keys)
    if until is None:
        return
    seconds = max(1, math.ceil((until - _now()).total_seconds()))
    with transaction(session):
        audit.record(session, "login_refused", object_type="User", object_id=user_id, outcome="refused",
                     detail={"reason": "locked", "retry_after": seconds}, actor=actor)  # fmt: skip
    raise TooManyAttempts(LOCKED, retry_after=seconds, minutes=max(1, math.ceil(seconds / 60)))


def record_failure(session, keys, now: datetime.datetime | None = None) -> list[State]:
    """Count a failed sign-in against every key; the states after it."""
    now = now or _now()
    store = _store(session)
    return [store.fail(key, now) for key in keys]


def note_failure(session, keys, actor, user_id: int | None) -> None:
    """A failed sign-in: counted, and a lock it starts audited (``account_locked``)."""
    states = record_failure(session, keys)
    metrics.count_signin_failure(tuple(s.key.split(":", 1)[0] for s in states if s.locked_until is not None))
    for state in states:
        if state.locked_until is not None:
            kind = state.key.split(":", 1)[0]
            with transaction(session):
                audit.record(session, "account_locked", object_type="User", object_id=user_id, outcome="refused",
                             detail={"scope": kind, "failures": state.failures,
                                     "until": state.locked_until.isoformat(timespec="seconds")},
                             actor=actor)  # fmt: skip


def clear(session, keys) -> None:
    _store(session).clear(list(keys))


def unlock(session, actor, user_id: int) -> None:
    """An administrator lifts an account's wait (audited ``unlock``)."""
    from app.models.org import PlatformUser

    if not actor.can(MANAGE_ACCOUNTS):
        raise Forbidden(NOT_ALLOWED)
    user = session.get(PlatformUser, user_id)
    if user is None:
        raise NotFound(NO_SUCH_USER)
    clear(session, [account_key(user.username, user.id)])
    with transaction(session):
        audit.record(session, "unlock", object_type="User", object_id=user_id, actor=actor)
