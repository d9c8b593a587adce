"""FAB glue: our user model, user screens, and audit of sign-in events."""

import hashlib
import hmac

from flask import current_app, g, jsonify, request
from flask import session as cookie_session
from flask_appbuilder.security.sqla.manager import SecurityManager
from flask_appbuilder.security.views import AuthDBView
from flask_babel import lazy_gettext as _l
from flask_jwt_extended import current_user as current_user_jwt
from flask_login import user_logged_in

from app.lib.ttlcache import TTLCache
from app.models.org import PlatformUser
from app.services import accounts, actors, cards, org, sessions, signin
from app.services.errors import TooManyAttempts
from app.web import bearer_api_call, current_actor

# The browser session's id in the (signed) cookie; the server keeps its hash (app.services.sessions).
SESSION_ID = "_platform_sid"
SIGNED_OUT = _l("Your sign-in has ended (signed out, expired, or the password or roles changed). Please sign in again.")


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


class PlatformAuthDBView(AuthDBView):
    """FAB's password sign-in page, with the way to the certificate card sign-in."""

    login_template = "platform/login_db.html"


class PlatformSecurityManager(SecurityManager):
    user_model = PlatformUser
    authdbview = PlatformAuthDBView
    # FAB's user statistics chart loads Google Charts from the internet.
    userstatschartview = None

    def __init__(self, appbuilder):
        from app.views.org import (
            PlatformGroupView,
            PlatformPermissionViewView,
            PlatformRoleView,
            PlatformSecurityApi,
            PlatformUserView,
        )

        # Answers of permission checks and API users, kept PERMISSION_CACHE_SECONDS:
        # FAB asks the database on every request otherwise.
        self._permission_cache = TTLCache()

        self.userdbmodelview = PlatformUserView
        self.groupmodelview = PlatformGroupView
        self.rolemodelview = PlatformRoleView
        self.permissionviewmodelview = PlatformPermissionViewView
        self.security_api = PlatformSecurityApi
        super().__init__(appbuilder)

    # --- sessions and tokens that end (app.services.sessions) ---------------------

    def create_login_manager(self, app):
        manager = super().create_login_manager(app)
        # FAB hands a proxy of the app here: listen to every sender, act for our own.
        user_logged_in.connect(self._session_started)
        return manager

    def _session_started(self, sender, user=None, **extra) -> None:
        """A browser signed in (FAB's login form called Flask-Login's login_user)."""
        appbuilder = getattr(sender, "appbuilder", None)
        if appbuilder is None or appbuilder.sm is not self or user is None:
            return
        # A card sign-in (app.views.cards) names the card its session is rechecked with.
        card = g.pop("card_binding_id", None)
        cookie_session[SESSION_ID] = sessions.start(self.session, user.id, card_binding_id=card)

    def load_user(self, pk):
        """The signed-in browser's user, while its server-side session holds (and, signed
        in with a card, while the card passes its periodic recheck)."""
        sid = cookie_session.get(SESSION_ID)
        if not sessions.holds(self.session, sid, pk, recheck_card=self._card_still_good):
            cookie_session.pop(SESSION_ID, None)
            return None
        return super().load_user(pk)

    def _card_still_good(self, binding_id, user_id) -> bool:
        return cards.recheck.card_good(self.session, binding_id, user_id)

    def create_jwt_manager(self, app):
        manager = super().create_jwt_manager(app)
        manager.additional_claims_loader(self._token_claims)
        manager.token_in_blocklist_loader(self._token_revoked)
        manager.revoked_token_loader(self._revoked_answer)
        return manager

    def _token_claims(self, identity) -> dict:
        return sessions.token_claims(self.session, identity)

    def _token_revoked(self, _jwt_header, jwt_payload) -> bool:
        return sessions.token_revoked(self.session, jwt_payload)

    def _revoked_answer(self, _jwt_header, _jwt_payload):
        return jsonify(message=str(SIGNED_OUT)), 401

    def reset_password(self, userid, password):
        """FAB's reset screens (an Admin's, and "reset my password") set passwords
        through the command: the policy, the end of the user's other sessions and
        tokens, the audit. Changing one's own keeps the browser doing it signed in."""
        actor = current_actor()
        accounts.set_password(self.session, actor, userid, password)
        if str(actor.user_id) == str(userid):
            sessions.keep(self.session, cookie_session.get(SESSION_ID), actor.user_id)

    def register_views(self):
        super().register_views()
        # FAB limits only the login form; the JWT login takes passwords too: one
        # burst limit per address for both doors (a shared scope), besides the
        # failure counters of app.services.signin.
        if not self.is_auth_limited:
            return
        shared = self.limiter.shared_limit(self.auth_rate_limit, scope="sign-in", methods=["POST"])
        for view in self.appbuilder.baseviews:
            if view is self.auth_view or isinstance(view, self.security_api):
                if getattr(view, "blueprint", None) is not None:
                    shared(view.blueprint)

    def limit_sign_in(self, view) -> None:
        """Another sign-in door (the certificate card's page and API) under the same burst limit."""
        if self.is_auth_limited and getattr(view, "blueprint", None) is not None:
            self.limiter.shared_limit(self.auth_rate_limit, scope="sign-in", methods=["POST"])(view.blueprint)

    def _token_call(self) -> bool:
        """A JWT bearer-token API call: it opens no cookie session (``app.web``)
        and FAB never sets a remember-me cookie, so Flask-Login's user lookup
        always finds nobody there and the token's user is the caller. (A FAB
        API key, when enabled, is FAB's to check.)"""
        if not bearer_api_call(request):
            return False
        return not (current_app.config.get("FAB_API_KEY_ENABLED") and self.extract_api_key_from_request() is not None)

    def has_access(self, permission_name, view_name) -> bool:
        """FAB's check, less Flask-Login's lookup on a token call: the token's
        user's roles (direct and through groups) hold the permission, or it is public."""
        if self._token_call():
            if current_user_jwt and current_user_jwt.is_active:
                role_ids = [role.id for role in self.get_user_roles(current_user_jwt)]
                return bool(role_ids) and self.exist_permission_on_roles(view_name, permission_name, role_ids)
            return self.is_item_public(permission_name, view_name)
        return super().has_access(permission_name, view_name)

    @property
    def current_user(self):
        """FAB's current user, less Flask-Login's lookup on a token call."""
        if self._token_call():
            return current_user_jwt or None
        return super().current_user

    def get_user_by_id(self, pk):
        """The signed-in user with roles, groups and agency in one query (FAB
        would load each lazily on every request)."""
        from sqlalchemy import select
        from sqlalchemy.orm import joinedload

        return (
            self.session.execute(
                select(self.user_model)
                .where(self.user_model.id == pk)
                .options(
                    joinedload(self.user_model.agency),
                    joinedload(self.user_model.roles),
                    joinedload(self.user_model.groups).joinedload(self.group_model.roles),
                )
            )
            .unique()
            .scalar_one_or_none()
        )

    def load_user_jwt(self, _jwt_header, jwt_data):
        """The API caller, kept PERMISSION_CACHE_SECONDS per process like the permission answers.

        Loading the user with roles and agency is a database round trip on every
        API call otherwise. The cached user is detached from any session (read
        only: the views build their Actor from it), so one request's commit
        cannot expire it under another. A deactivated account or a role change
        takes effect within the same few seconds as a permission change.
        """
        ttl = self._ttl()
        identity = jwt_data["sub"]
        if ttl <= 0:
            user = self.get_user_by_id(int(identity)) if str(identity).isdigit() else None
        else:
            user = self._permission_cache.get(("jwt-user", str(identity)), ttl, lambda: self._detached_user(identity))
        if user is not None and user.is_active:
            g.user = user
            return user
        return None

    def _detached_user(self, pk):
        user = self.get_user_by_id(int(pk)) if str(pk).isdigit() else None
        if user is not None:
            group_roles = [role for group in user.groups for role in group.roles]
            for obj in (user, *user.roles, *user.groups, *group_roles, user.agency):
                if obj is not None and obj in self.session:
                    self.session.expunge(obj)
        return user

    # --- permission checks, cached briefly -------------------------------------

    def cached_capabilities(self, role_ids: tuple, compute):
        """The Platform capabilities of a set of roles (``app.services.actors``)."""
        ttl = self._ttl()
        return compute() if ttl <= 0 else self._permission_cache.get(("capabilities", role_ids), ttl, compute)

    def forget_cached_permissions(self) -> None:
        """Drop every cached permission answer and API user (a role or account change takes effect at once)."""
        self._permission_cache.clear()

    def _ttl(self) -> float:
        return float(current_app.config.get("PERMISSION_CACHE_SECONDS", 10))

    def is_item_public(self, permission_name, view_name):
        ttl = self._ttl()
        if ttl <= 0:
            return super().is_item_public(permission_name, view_name)
        public = self._permission_cache.get(
            "public", ttl, lambda: {(p.view_menu.name, p.permission.name) for p in self.get_public_permissions()}
        )
        return (view_name, permission_name) in public

    def exist_permission_on_roles(self, view_name, permission_name, role_ids):
        ttl = self._ttl()
        if ttl <= 0:
            return super().exist_permission_on_roles(view_name, permission_name, role_ids)
        key = (view_name, permission_name, tuple(sorted(role_ids)))
        return self._permission_cache.get(
            key,
            ttl,
            lambda: super(PlatformSecurityManager, self).exist_permission_on_roles(
                view_name, permission_name, role_ids
            ),
        )

    def _record(self, action, user=None, outcome="ok", detail=None):
        actor = (
            actors.for_user(user, _client_ip(), session=self.session)
            if user is not None
            else actors.anonymous(_client_ip())
        )
        org.record_sign_in_event(
            self.session, actor, action, user.id if user is not None else None, outcome=outcome, detail=detail
        )

    def on_user_login(self, user) -> None:
        self._record("login", user)

    def on_user_login_failed(self, user) -> None:
        self._record("login_failed", user, outcome="refused", detail={"reason": "wrong_password"})

    def on_user_logout(self, user) -> None:
        sessions.end(self.session, cookie_session.pop(SESSION_ID, None))
        if user is not None:
            self._record("logout", user)

    def auth_user_db(self, username, password):
        """FAB's password check, behind one limit for the form and the API
        (``app.services.signin``): while the account name or the address waits,
        the password is not looked at and the answer says to try later."""
        if not username:
            return super().auth_user_db(username, password)
        known = self.find_user(username=username) or self.find_user(email=username)
        known_id = known.id if known is not None else None
        keys = [signin.account_key(username, known_id), signin.address_key(_client_ip())]
        actor = actors.for_user(known, _client_ip(), session=self.session) if known else actors.anonymous(_client_ip())
        try:
            signin.check(self.session, keys, actor, known_id)
        except TooManyAttempts as refusal:
            if request.path.startswith("/api/"):
                g.sign_in_refusal = refusal  # PlatformSecurityApi answers 429 with it
                return None
            raise  # the login page shows it (app.web)
        user = super().auth_user_db(username, password)
        if user is not None:
            signin.clear(self.session, keys[:1])
            if cards.requires_card(self.session, user):
                # certificate plus password: the password alone opens nothing (audited)
                self._record("login_failed", user, outcome="refused", detail={"reason": "card_required"})
                refusal = cards.CardRequired(cards.CARD_NEEDED)
                if request.path.startswith("/api/"):
                    g.sign_in_refusal = refusal
                    return None
                raise refusal
            return user
        signin.note_failure(self.session, keys, actor, known_id)
        if known is None or not known.is_active:
            # FAB records wrong passwords of known users itself (on_user_login_failed);
            # unknown and inactive accounts are recorded here.
            reason = "unknown_user" if known is None else "inactive_user"
            self._record(
                "login_failed",
                known,
                outcome="refused",
                detail={"reason": reason, "name_digest": _name_digest(username or "")},
            )
        return None
