"""FAB glue: our user model, user screens, and audit of sign-in events."""

import hashlib
import hmac

from flask import current_app, request
from flask_appbuilder.security.sqla.manager import SecurityManager

from app.models.org import PlatformUser
from app.services import audit


def _client_ip():
    try:
        return request.remote_addr
    except RuntimeError:
        return None


def _name_digest(username: str) -> str:
    """A keyed digest of a username nobody has: correlates repeated attempts
    without storing what was typed (it may be someone's ID number)."""
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, (username or "").encode(), hashlib.sha256).hexdigest()[:16]


class PlatformSecurityManager(SecurityManager):
    user_model = PlatformUser
    # FAB's user statistics chart loads Google Charts from the internet.
    userstatschartview = None

    def __init__(self, appbuilder):
        from app.views.org import PlatformGroupView, PlatformUserView

        self.userdbmodelview = PlatformUserView
        self.groupmodelview = PlatformGroupView
        super().__init__(appbuilder)

    def register_views(self):
        super().register_views()
        # FAB limits only the login form; the JWT login takes passwords too.
        if not self.is_auth_limited:
            return
        for view in self.appbuilder.baseviews:
            if isinstance(view, self.security_api) and getattr(view, "blueprint", None) is not None:
                self.limiter.limit(self.auth_rate_limit, methods=["POST"])(view.blueprint)

    def _record(self, action, user=None, outcome="ok", detail=None):
        actor = (
            audit.actor_for_user(user, _client_ip())
            if user is not None
            else audit.Actor(id=None, name="anonymous", client_ip=_client_ip())
        )
        session = self.session
        try:
            audit.record(session, action, object_type="User",
                         object_id=user.id if user is not None else None,
                         outcome=outcome, detail=detail, actor=actor)  # fmt: skip
            session.commit()
        except Exception:
            session.rollback()
            raise

    def on_user_login(self, user) -> None:
        self._record("login", user)

    def on_user_login_failed(self, user) -> None:
        self._record("login_failed", user, outcome="refused", detail={"reason": "wrong_password"})

    def on_user_logout(self, user) -> None:
        if user is not None:
            self._record("logout", user)

    def auth_user_db(self, username, password):
        user = super().auth_user_db(username, password)
        if user is None:
            known = self.find_user(username=username) if username else None
            if known is None or not known.is_active:
                # FAB records wrong passwords of known users itself (above);
                # unknown and inactive accounts are recorded here.
                reason = "unknown_user" if known is None else "inactive_user"
                self._record(
                    "login_failed",
                    known,
                    outcome="refused",
                    detail={"reason": reason, "name_digest": _name_digest(username or "")},
                )
        return user
