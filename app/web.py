"""Request-level wiring: who is acting, security headers, error pages, filters."""

import datetime

from flask import current_app, flash, g, jsonify, redirect, request
from flask.sessions import SecureCookieSessionInterface
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from marshmallow import ValidationError
from sqlalchemy.exc import OperationalError

from app.lib.rocdate import format_roc, format_roc_datetime
from app.services import actors, audit
from app.services.actors import Actor
from app.services.errors import DomainError

CSP = (
    "default-src 'self'; "
    # FAB's own templates carry inline scripts and styles; nothing loads from elsewhere.
    "script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


def current_actor() -> Actor:
    """Who is acting in this request (session or JWT): built once, kept on ``g``."""
    if not request:
        return actors.SYSTEM
    cached = g.get("actor")
    if cached is not None:
        return cached
    user = current_app.appbuilder.sm.current_user
    if user is None and current_user and getattr(current_user, "is_authenticated", False):
        user = current_user
    if user is None or not getattr(user, "is_authenticated", True):
        return actors.anonymous(request.remote_addr)
    from app.extensions import db

    g.actor = actors.for_user(user, request.remote_addr, permissions=_capabilities(db.session, user))
    return g.actor


def _capabilities(session, user) -> frozenset[str]:
    """The user's Platform capabilities, cached as FAB's permission answers are."""
    role_ids = tuple(sorted(r.id for r in user.roles))
    return current_app.appbuilder.sm.cached_capabilities(role_ids, lambda: actors.capabilities_of(session, role_ids))


_UPLOAD_PATHS = ("/api/v1/transfers/", "/transfer/case/")


def transfer_upload_limit() -> None:
    """Encrypted transfer files may be far larger than MAX_CONTENT_LENGTH (streamed to disk).

    Registered before CSRF protection, which otherwise reads the body with the
    application-wide limit first.
    """
    if request.method in ("PUT", "POST") and request.path.startswith(_UPLOAD_PATHS):
        if request.path.endswith(("/payload", "/result")):
            request.max_content_length = current_app.config["TRANSFER_MAX_BYTES"]


def _security_headers(response):
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def _domain_error(exc: DomainError):
    from app.extensions import db

    db.session.rollback()
    if request.path.startswith("/api/") or request.is_json:
        return jsonify(message=str(exc)), exc.status
    flash(str(exc), "danger")
    return redirect(request.referrer or "/")


INVALID = _l("The request is not valid; nothing was changed.")


def _invalid_input(exc: ValidationError):
    """A body or query that fails its marshmallow schema: 400 with the fields' messages."""
    if request.path.startswith("/api/") or request.is_json:
        return jsonify(message=str(INVALID), errors=exc.normalized_messages()), 400
    flash(str(INVALID), "danger")
    return redirect(request.referrer or "/")


_wtforms_catalogues: dict = {}


def _wtforms_translations():
    """WTForms' own messages ("This field is required.") in the user's language.

    Babel calls Taiwan's locale zh_Hant_TW, under which gettext finds only
    WTForms' Simplified Chinese catalogue; Flask-WTF first looks for
    ``request.wtforms_translations``, so we hand it the zh_TW one.
    """
    if request.path.startswith("/api/"):  # the APIs take JSON through marshmallow, no WTForms
        return
    from babel import support
    from flask_babel import get_locale
    from wtforms.i18n import messages_path

    locale = get_locale()
    if locale is None:
        return
    key = f"{locale.language}_{locale.territory}" if locale.territory else locale.language
    if key not in _wtforms_catalogues:
        _wtforms_catalogues[key] = support.Translations.load(messages_path(), [key], domain="wtforms")
    request.wtforms_translations = _wtforms_catalogues[key]


DB_DOWN = _l("The platform database cannot be reached at the moment. Please try again later; nothing was changed.")


def _database_down(exc):
    """A dead platform database: a clear message, never the SQL or its parameters."""
    from flask import render_template_string

    from app.extensions import db

    try:
        db.session.rollback()
    except Exception:
        pass
    current_app.logger.error("platform database unavailable: %s", type(exc).__name__)
    if request.path.startswith("/api/"):
        return jsonify(message=str(DB_DOWN)), 503
    page = "<!doctype html><meta charset=utf-8><title>503</title><h1>503</h1><p>{{ msg }}</p>"
    return render_template_string(page, msg=str(DB_DOWN)), 503


def _note_platform_db_error(context) -> None:
    """FAB's APIs turn every exception into a bare 500; remember that the
    platform database was the cause, so the response can say so (503)."""
    if isinstance(context.sqlalchemy_exception, OperationalError) or context.is_disconnect:
        try:
            g.platform_db_down = True
        except RuntimeError:  # outside a request (CLI): nothing to rewrite
            pass


def _rewrite_db_down(response):
    if response.status_code == 500 and g.get("platform_db_down") and request.path.startswith("/api/"):
        replacement = jsonify(message=str(DB_DOWN))
        replacement.status_code = 503
        return replacement
    return response


def bearer_api_call(request) -> bool:
    """An API call that signs in with a bearer token (no cookie session)."""
    return request.path.startswith("/api/") and request.headers.get("Authorization", "").startswith("Bearer ")


class _SessionInterface(SecureCookieSessionInterface):
    """No cookie session for API calls that carry a bearer token.

    Flask-Login and the locale selector touch the session on every request;
    an API client signs in with its token on every call and never sends the
    cookie back, so signing and setting one per call is work for nothing.
    """

    def open_session(self, app, request):
        # The token is the caller's identity: a cookie sent along is not read
        # (and building its signing serializer is work for nothing).
        if bearer_api_call(request):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app, session, response) -> None:
        if bearer_api_call(request):
            return
        super().save_session(app, session, response)


def register(app) -> None:
    from flask_babel import get_locale
    from sqlalchemy import event

    from app.extensions import db

    app.session_interface = _SessionInterface()
    audit.set_actor_provider(current_actor)
    app.after_request(_security_headers)
    app.after_request(_rewrite_db_down)
    with app.app_context():
        event.listen(db.engine, "handle_error", _note_platform_db_error)
    app.before_request(_wtforms_translations)
    app.register_error_handler(DomainError, _domain_error)
    app.register_error_handler(ValidationError, _invalid_input)
    app.register_error_handler(OperationalError, _database_down)
    app.add_template_filter(format_roc, "roc_date")
    app.add_template_filter(format_roc_datetime, "roc_datetime")

    @app.context_processor
    def _context():
        return {"today": datetime.date.today(), "locale": str(get_locale())}
