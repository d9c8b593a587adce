"""Request-level wiring: who is acting, security headers, error pages, filters."""

import datetime
import json
import math
import re
import secrets
import time
from pathlib import Path

from flask import Request, Response, current_app, flash, g, jsonify, redirect, request
from flask.json.provider import DefaultJSONProvider
from flask.sessions import SecureCookieSessionInterface
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from marshmallow import ValidationError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import BadRequest, HTTPException, RequestEntityTooLarge
from werkzeug.routing import IntegerConverter

from app.lib import metrics
from app.lib.rocdate import format_roc, format_roc_datetime
from app.services import actors, audit
from app.services.actors import Actor
from app.services.errors import DomainError
from app.services.query import figures

# Scripts: files of our own origin, and inline scripts only with this response's nonce
# (FAB's templates put `nonce="{{ csp_nonce() }}"` on theirs; no inline event handler
# runs). Styles may still be inline (FAB's templates and widgets use style attributes).
# Nothing loads from elsewhere.
CSP = (
    "default-src 'self'; "
    "script-src 'self'{nonce}; "
    "style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


def csp_nonce() -> str:
    """This response's nonce for inline scripts, made on first use (a template global:
    FAB's base templates call ``csp_nonce()`` when it is defined)."""
    nonce = g.get("csp_nonce")
    if nonce is None:
        nonce = g.csp_nonce = secrets.token_urlsafe(18)
    return nonce


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


def https_only():
    """With HTTPS_ONLY, a request that reached the app over plain HTTP is sent to the
    same path and query at PUBLIC_BASE_URL (301; 308 keeps the method and body of
    anything but GET and HEAD). The target is the configured address, never the
    request's Host header."""
    if not current_app.config.get("HTTPS_ONLY") or request.is_secure or probe_call(request):
        return None
    base = current_app.config.get("PUBLIC_BASE_URL", "").rstrip("/")
    if not base.startswith("https://"):
        return None
    query = request.query_string.decode("latin-1")
    target = base + request.path + (f"?{query}" if query else "")
    return redirect(target, 301 if request.method in ("GET", "HEAD") else 308)


def forwarded_client_certificate() -> bytes | None:
    """The client certificate (DER) that a proxy in TRUSTED_PROXIES verified and
    forwarded with this request (CLIENT_CERT_HEADER); None from anyone else."""
    from app.lib import proxies

    config = current_app.config
    return proxies.forwarded_client_certificate(
        request.environ.get(proxies.PEER_ADDR, request.remote_addr),
        request.headers,
        _trusted_networks(),
        config.get("CLIENT_CERT_HEADER"),
        config.get("CLIENT_VERIFY_HEADER"),
    )


def _trusted_networks():
    from app.lib import proxies

    cached = current_app.extensions.get("platform_trusted_proxies")
    if cached is None:
        cached = proxies.parse_networks(current_app.config.get("TRUSTED_PROXIES") or ())
        current_app.extensions["platform_trusted_proxies"] = cached
    return cached


def _security_headers(response):
    nonce = g.get("csp_nonce")  # only a page that rendered an inline script asked for one
    response.headers.setdefault("Content-Security-Policy", CSP.format(nonce=f" 'nonce-{nonce}'" if nonce else ""))
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")
    max_age = current_app.config.get("HSTS_MAX_AGE") or 0
    if request.is_secure and max_age > 0:  # over plain HTTP a browser ignores it, and anyone could have sent it
        subdomains = "; includeSubDomains" if current_app.config.get("HSTS_INCLUDE_SUBDOMAINS") else ""
        response.headers.setdefault("Strict-Transport-Security", f"max-age={int(max_age)}{subdomains}")
    return response


def _domain_error(exc: DomainError):
    # The command that raised it has rolled back its transaction (app.services.command);
    # whatever else the request's session holds is discarded when the request ends.
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


# --- malformed input: refused with a clear 4xx before any view runs ------------

MAX_INT64 = 2**63 - 1
# Nesting deeper than this is no body any of our APIs takes; Python's parser would
# otherwise recurse until it fails (a 500).
JSON_MAX_DEPTH = 64
# FAB's list screens offer page sizes up to 100.
LIST_MAX_PAGE_SIZE = 100
LIST_MAX_PAGE = 10**7

MALFORMED_JSON = _l("The request body is not valid JSON.")
TOO_DEEP = _l("The request body is nested too deeply.")
BAD_TEXT = _l("The request body holds text that is not valid Unicode.")
BAD_NUMBER = _l("The request body holds a number out of range.")
TOO_LARGE = _l("The request is too large; nothing was changed.")
BAD_QUERY = _l("The list query (q) is not valid.")
BAD_LIST_ARGS = _l("The page, page size or sort column of this list is not valid.")
INTERNAL = _l("The platform could not complete this request. Please try again later.")
NOT_FOUND = _l("No such page or record.")
NOT_ALLOWED = _l("This method is not allowed here.")


class BoundedIntConverter(IntegerConverter):
    """``<int:...>`` in a path: a number that no 64-bit column holds matches no route (404)."""

    def __init__(self, map, fixed_digits=0, min=None, max=MAX_INT64, signed=False):
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


def install_converters(app) -> None:
    """Before any route is added (AppBuilder adds them): ``int`` is bounded to 64 bits."""
    app.url_map.converters["int"] = BoundedIntConverter


class MalformedJSON(ValueError):
    """A JSON body the platform refuses; ``message`` says why, in the caller's language."""

    def __init__(self, message):
        super().__init__(str(message))
        self.message = message


def _int64(text: str) -> int:
    value = int(text)
    if not -MAX_INT64 - 1 <= value <= MAX_INT64:
        raise MalformedJSON(BAD_NUMBER)
    return value


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise MalformedJSON(BAD_NUMBER)
    return value


def _no_constant(text: str):
    raise MalformedJSON(BAD_NUMBER)  # NaN, Infinity, -Infinity are not JSON


_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.S)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_depth(text: str) -> None:
    if text.count("[") + text.count("{") <= JSON_MAX_DEPTH:
        return
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > JSON_MAX_DEPTH:
                raise MalformedJSON(TOO_DEEP)
        elif token in "]}":
            depth -= 1


def _has_lone_surrogate(value) -> bool:
    if isinstance(value, str):
        return _LONE_SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON, reading strictly: bounded nesting, 64-bit integers, finite
    numbers and valid Unicode (no lone surrogate such as ``"\\ud800"``). Anything
    else raises ``MalformedJSON`` (a ValueError: Flask answers 400)."""

    def loads(self, s, **kwargs):
        if isinstance(s, (bytes, bytearray)):
            s = s.decode(json.detect_encoding(s))
        _check_depth(s)
        kwargs.setdefault("parse_int", _int64)
        kwargs.setdefault("parse_float", _finite)
        kwargs.setdefault("parse_constant", _no_constant)
        value = json.loads(s, **kwargs)
        if _SURROGATE_ESCAPE.search(s) and _has_lone_surrogate(value):
            raise MalformedJSON(BAD_TEXT)
        return value


class MalformedRequest(BadRequest):
    """A 400 whose description is already in the caller's language."""


class PlatformRequest(Request):
    def on_json_loading_failed(self, e):
        message = e.message if isinstance(e, MalformedJSON) else MALFORMED_JSON
        raise MalformedRequest(description=str(message)) from e


def _parse_json_body() -> None:
    """Read a JSON body once, strictly, before any view: the views find it parsed
    (``request.get_json()`` caches it), and a malformed one never reaches them."""
    if request.method in ("POST", "PUT", "PATCH", "DELETE") and request.is_json:
        if request.content_length or request.headers.get("Transfer-Encoding"):
            request.get_json()


def _check_path_ids() -> None:
    """FAB routes its record pages and its API's PUT/DELETE by ``<pk>`` as text:
    a number no 64-bit key holds is no such record (404), not a database error."""
    from flask import abort

    pk = (request.view_args or {}).get("pk")
    if isinstance(pk, str) and pk.lstrip("-").isdigit() and not -MAX_INT64 - 1 <= int(pk[:40]) <= MAX_INT64:
        abort(404)


_LIST_ARG = re.compile(r"^(?:_?(page|psize)_|_(oc|od)_)(.+)$")


def _list_views() -> dict:
    views = current_app.extensions.get("platform_list_views")
    if views is None:
        views = {type(v).__name__: v for v in current_app.appbuilder.baseviews}
        current_app.extensions["platform_list_views"] = views
    return views


def _check_list_args() -> None:
    """FAB's list parameters on screens (page, page size, sort column) are read
    with ``int()`` and used as given: refuse what FAB would fail on or load
    without bound (a 400 page), before the list view runs."""
    if request.path.startswith("/api/") or not request.args:
        return
    for name, value in request.args.items(multi=True):
        if "page_" not in name and "psize_" not in name and not name.startswith(("_oc_", "_od_")):
            continue
        match = _LIST_ARG.match(name)
        kind = match.group(1) or match.group(2) if match else "page"
        if kind in ("page", "psize"):
            limit = LIST_MAX_PAGE if kind == "page" else LIST_MAX_PAGE_SIZE
            low = 0 if kind == "page" else 1
            if not re.fullmatch(r"\d{1,12}", value.strip()) or not low <= int(value) <= limit:
                raise MalformedRequest(description=str(BAD_LIST_ARGS))
        elif kind == "oc":
            view = _list_views().get(match.group(3))
            allowed = getattr(view, "order_columns", None) if view is not None else None
            if allowed is not None and value not in allowed:
                raise MalformedRequest(description=str(BAD_LIST_ARGS))
        elif kind == "od" and value not in ("asc", "desc"):
            raise MalformedRequest(description=str(BAD_LIST_ARGS))


def _out_of_range(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return not -MAX_INT64 - 1 <= value <= MAX_INT64
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_out_of_range(v) for v in value.values())
    if isinstance(value, list):
        return any(_out_of_range(v) for v in value)
    return False


def _check_api_query() -> None:
    """FAB's list query ``?q=(...)`` (Rison) on the APIs: unreadable, or numbers no
    column holds, or a page beyond any list: a 400 in the caller's language (FAB
    would answer in English, or fail in the database). FAB clamps the page size."""
    if not request.path.startswith("/api/") or "q" not in request.args:
        return
    import prison

    try:
        query = prison.loads(request.args["q"])
    except Exception:
        raise MalformedRequest(description=str(BAD_QUERY)) from None
    if not isinstance(query, dict) or _out_of_range(query):
        raise MalformedRequest(description=str(BAD_QUERY))
    for key, limit in (("page", LIST_MAX_PAGE), ("page_size", MAX_INT64)):
        value = query.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or abs(value) > limit):
            raise MalformedRequest(description=str(BAD_QUERY))
    if "order_direction" in query and query["order_direction"] not in ("asc", "desc"):
        raise MalformedRequest(description=str(BAD_QUERY))
    if "order_column" in query:
        api = _list_views().get(request.blueprint)
        allowed = getattr(api, "order_columns", None) if api is not None else None
        if allowed is not None and query["order_column"] not in allowed:
            raise MalformedRequest(description=str(BAD_QUERY))


def _refusal_page(code: int, message):
    from app import errorpages

    return errorpages.page(code, message)


def _bad_request(exc: BadRequest):
    """400 on /api/ as JSON in the caller's language; our own refusals as a page elsewhere."""
    if request.path.startswith("/api/"):
        message = exc.description if isinstance(exc, MalformedRequest) else INVALID
        return jsonify(message=str(message)), 400
    if isinstance(exc, MalformedRequest):
        return _refusal_page(400, exc.description)
    return exc


def _too_large(exc: RequestEntityTooLarge):
    if request.path.startswith("/api/"):
        return jsonify(message=str(TOO_LARGE)), 413
    return _refusal_page(413, TOO_LARGE)


def _unexpected(exc: Exception):
    """Whatever else escapes an API call: a JSON 500 without details (only the type is logged)."""
    if isinstance(exc, HTTPException):
        if request.path.startswith("/api/") and exc.code in (404, 405):
            response = exc.get_response()
            response.set_data(json.dumps({"message": str(NOT_FOUND if exc.code == 404 else NOT_ALLOWED)}))
            response.content_type = "application/json"
            return response
        if exc.code is None or exc.code < 400 or request.path.startswith("/api/"):
            return exc
        from app import errorpages

        response = exc.get_response()  # keeps what the exception adds (Allow, Retry-After...)
        body, code = errorpages.page(exc.code)
        response.set_data(body)
        response.content_type = "text/html; charset=utf-8"
        return response
    if not request.path.startswith("/api/"):
        from app import errorpages

        current_app.logger.error("unhandled error on %s %s: %s", request.method, request.path, type(exc).__name__)
        propagate = current_app.config.get("PROPAGATE_EXCEPTIONS")
        if propagate is None:  # Flask's own rule: tests and debug see the fault itself
            propagate = current_app.testing or current_app.debug
        if propagate:
            raise exc
        return errorpages.page(500)
    current_app.logger.error("unhandled error on %s %s: %s", request.method, request.path, type(exc).__name__)
    return jsonify(message=str(INTERNAL)), 500


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
    from flask import render_template

    # The request's session is discarded when the request ends (Flask-SQLAlchemy).
    current_app.logger.error("platform database unavailable: %s", type(exc).__name__)
    if request.path.startswith("/api/"):
        return jsonify(message=str(DB_DOWN)), 503
    from app.errorpages import TITLES

    context = {"code": 503, "title": str(TITLES[503]), "message": str(DB_DOWN), "home": "/"}
    return render_template("errors/plain.html", **context), 503


SHARED_STORE_DOWN = _l(
    "A service the platform's hosts share (the sign-in and rate-limit store) cannot be reached, so this "
    "request was refused. Please try again in a minute; nothing was changed."
)


def _shared_store_down(exc):
    """Redis (the rate limits', the sign-in counters') is down: refuse with 503, never let the
    request through unlimited (docs/operations.md, "Several hosts")."""
    current_app.logger.error("shared store unavailable: %s", type(exc).__name__)
    if request.path.startswith("/api/"):
        response = jsonify(message=str(SHARED_STORE_DOWN))
        response.status_code = 503
    else:
        from app import errorpages

        body, code = errorpages.page(503, SHARED_STORE_DOWN)
        response = current_app.make_response((body, code))
    response.headers["Retry-After"] = "30"
    return response


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


# Health probes and metrics scrapes (app.views.health): machines, every few seconds.
PROBE_PATHS = ("/health/", "/metrics")


def probe_call(request) -> bool:
    """A health probe or a metrics scrape: no session, no HTTPS redirect."""
    return request.path.startswith(PROBE_PATHS)


def _start_clock() -> None:
    request.environ[_STARTED] = time.perf_counter()


def _count_request(response):
    """Each answer by its URL rule (never the raw path), method and status, and its time."""
    started = request.environ.get(_STARTED)
    if started is not None:
        rule = request.url_rule.rule if request.url_rule is not None else None
        metrics.observe_request(rule, request.method, response.status_code, time.perf_counter() - started)
    return response


_STARTED = "platform.started"


class _SessionInterface(SecureCookieSessionInterface):
    """No cookie session for API calls that carry a bearer token.

    Flask-Login and the locale selector touch the session on every request;
    an API client signs in with its token on every call and never sends the
    cookie back, so signing and setting one per call is work for nothing.
    """

    def open_session(self, app, request):
        # The token is the caller's identity: a cookie sent along is not read
        # (and building its signing serializer is work for nothing).
        if bearer_api_call(request) or probe_call(request):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app, session, response) -> None:
        if bearer_api_call(request) or probe_call(request):
            return
        super().save_session(app, session, response)

    def get_cookie_secure(self, app) -> bool:
        """Secure whenever the browser asked over HTTPS (directly or through a trusted
        proxy), and always with SESSION_COOKIE_SECURE or HTTPS_ONLY."""
        if super().get_cookie_secure(app) or app.config.get("HTTPS_ONLY"):
            return True
        return bool(request) and request.is_secure


def register(app) -> None:
    from flask_babel import get_locale
    from sqlalchemy import event

    from app.extensions import db

    app.session_interface = _SessionInterface()
    app.request_class = PlatformRequest
    app.json = StrictJSONProvider(app)
    audit.set_actor_provider(current_actor)
    # The clock starts before every other hook; the count is taken after every
    # other one (after_request hooks run last registered first), on the final status.
    app.before_request_funcs.setdefault(None, []).insert(0, _start_clock)
    app.after_request(_count_request)
    app.after_request(_security_headers)
    app.after_request(_rewrite_db_down)
    with app.app_context():
        event.listen(db.engine, "handle_error", _note_platform_db_error)
    app.before_request(_wtforms_translations)
    app.before_request(_check_path_ids)
    app.before_request(_parse_json_body)
    app.before_request(_check_list_args)
    app.before_request(_check_api_query)
    app.register_error_handler(DomainError, _domain_error)
    app.register_error_handler(ValidationError, _invalid_input)
    app.register_error_handler(OperationalError, _database_down)
    from limits.errors import StorageError
    from redis.exceptions import RedisError

    app.register_error_handler(RedisError, _shared_store_down)
    app.register_error_handler(StorageError, _shared_store_down)
    app.register_error_handler(BadRequest, _bad_request)
    app.register_error_handler(RequestEntityTooLarge, _too_large)
    app.register_error_handler(Exception, _unexpected)
    app.jinja_env.globals["csp_nonce"] = csp_nonce
    app.add_template_filter(format_roc, "roc_date")
    app.add_template_filter(format_roc_datetime, "roc_datetime")
    app.jinja_env.globals["section_svg"] = figures.section_svg  # maps and plans (query/_sections.html)
    app.jinja_env.globals["drawing_notes"] = figures.drawing_notes
    app.jinja_env.globals["gis_link"] = figures.gis_link

    # Browsers ask for it on every site; a 404 page each time otherwise. Served from memory: a
    # browser drops its favicon request when it navigates away, and an open file handed to the
    # server for that request may then never be closed.
    favicon = (Path(app.static_folder) / "favicon.ico").read_bytes()

    def _favicon():
        answer = Response(favicon, mimetype="image/vnd.microsoft.icon")
        answer.cache_control.public, answer.cache_control.max_age = True, 86400
        return answer

    app.add_url_rule("/favicon.ico", "favicon", _favicon)

    @app.context_processor
    def _context():
        return {"today": datetime.date.today(), "locale": str(get_locale())}
