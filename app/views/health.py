"""/health/live, /health/ready and /metrics, for nginx and monitoring.

No sign-in, no session, no CSRF, no rate limit and no audit: a probe is read
every few seconds by machines. /health/* answer anyone (and hold nothing
personal or secret); /metrics answers only METRICS_ALLOW, by the client
address as TRUSTED_PROXIES make it out (``request.remote_addr`` after
``app.lib.proxies.TrustedProxies``), and 404 to anyone else.
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, current_app, jsonify, request

from app.extensions import csrf, db
from app.lib import metrics, proxies
from app.services import health

blueprint = Blueprint("platform_health", __name__)
PATHS = ("/health/", "/metrics")


def _no_store(response):
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.route("/health/live", methods=["GET", "HEAD"])
def live():
    """The process answers: nothing else is asked."""
    return _no_store(jsonify(status="live"))


@blueprint.route("/health/ready", methods=["GET", "HEAD"])
def ready():
    """200 when every HEALTH_REQUIRED dependency answers, else 503; the body says which."""
    started = time.perf_counter()
    report = health.readiness(db.engine, current_app.config)
    body = report.as_dict()
    body["seconds"] = round(time.perf_counter() - started, 4)
    response = jsonify(body)
    response.status_code = 200 if report.ready else 503
    return _no_store(response)


@blueprint.route("/metrics", methods=["GET"])
def scrape():
    if not proxies.is_trusted(request.remote_addr, current_app.extensions["platform_metrics_allow"]):
        return _no_store(Response("Not Found\n", status=404, mimetype="text/plain"))
    body, content_type = metrics.exposition(health.PlatformCollector(db.engine, current_app.config))
    return _no_store(Response(body, content_type=content_type))


def register(appbuilder) -> None:
    app = current_app  # create_app registers the views inside its app context
    # Bad settings stop the start, not the first probe.
    app.extensions["platform_metrics_allow"] = proxies.parse_networks(
        app.config.get("METRICS_ALLOW") or (), setting="METRICS_ALLOW"
    )
    health.required_checks(app.config)
    csrf.exempt(blueprint)
    appbuilder.sm.limiter.exempt(blueprint)
    app.register_blueprint(blueprint)
