"""The cross-agency citizen service platform: application factory.

The imports live inside ``create_app`` on purpose: ``app.kit`` (the
sign-and-encrypt kit that runs on agency PCs) is a subpackage, and importing it
must not pull in Flask or the database layer.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask


def create_app(config: object | str = "config.Config") -> Flask:
    from flask import Flask
    from flask_appbuilder import AppBuilder

    from app.extensions import csrf, db, mail, migrate
    from app.lib import fieldcrypt
    from app.lib.logging import install_log_format, install_personal_data_filter

    app = Flask(__name__)
    app.config.from_object(config)
    from app.web import install_converters

    install_converters(app)  # before AppBuilder adds the routes
    install_personal_data_filter()
    install_log_format(app.config.get("LOG_FORMAT", "text"))
    fieldcrypt.configure(app.config["FIELD_ENCRYPTION_KEYS"])
    logging.getLogger("flask_appbuilder").setLevel(logging.WARNING)

    from app.lib.proxies import TrustedProxies

    # Forwarding headers and the forwarded client certificate are believed from
    # TRUSTED_PROXIES only, and removed from anyone else's requests.
    app.wsgi_app = TrustedProxies(
        app.wsgi_app,
        app.config.get("TRUSTED_PROXIES") or (),
        strip=(app.config.get("CLIENT_CERT_HEADER"), app.config.get("CLIENT_VERIFY_HEADER")),
    )

    from app.lib import liveness

    # PostgreSQL: no SELECT 1 before every request's first statement (liveness.install below)
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = liveness.engine_options(
        app.config["SQLALCHEMY_DATABASE_URI"], app.config.get("SQLALCHEMY_ENGINE_OPTIONS")
    )
    db.init_app(app)
    mail.init_app(app)
    # Every form POST needs its CSRF token; FAB exempts its JWT APIs itself
    # (which is why this comes before AppBuilder). Transfer uploads get their
    # own size limit before the CSRF check reads the body.
    from app.web import https_only, transfer_upload_limit

    app.before_request(https_only)  # with HTTPS_ONLY, plain HTTP goes no further than a redirect
    app.before_request(transfer_upload_limit)
    csrf.init_app(app)

    migrate.init_app(app, db, directory=str(_migrations_dir()), render_as_batch=True)

    with app.app_context():
        from app import models  # noqa: F401  (register every table)

        liveness.install(db.engine)
        from app.services import audit, org, outbox, sessions
        from app.services.query import plan as formplan
        from app.views import register_views

        audit.install_session_hooks(db.session)
        outbox.install_wakeup(db.session)
        org.install_role_guard(db.session)
        sessions.install_revocation_hook(db.session)
        formplan.install_generation_hook(db.session)
        # platform/base.html: FAB's layout with our fix to its scripts (app/static/fab-fixes.js).
        appbuilder = AppBuilder(indexview=_index_view(), base_template="platform/base.html")
        appbuilder.init_app(app, db.session)
        register_views(appbuilder)

    from app import cli, web

    cli.register(app)
    web.register(app)
    from app.services.reports import replica

    replica.init_app(app)
    return app


def sweep_temporary_uploads(app: Flask) -> None:
    """Remove the temporary uploads that a killed process left (only those no living
    process holds: safe beside running uploads). A web process calls it as it starts
    (gunicorn.conf.py, run.py); the ftp-poller worker sweeps at its start and every
    TRANSFER_SWEEP_SECONDS. Not ``create_app``: a command such as ``flask audit
    verify`` or ``flask db upgrade`` touches no upload."""
    from pathlib import Path

    from app.services import transfer

    try:
        removed = transfer.sweep_parts(Path(app.config["TRANSFER_DIR"]), app.config["TRANSFER_STALE_SECONDS"])
    except OSError as exc:
        logging.getLogger(__name__).warning("temporary uploads not swept: %s", exc.strerror or type(exc).__name__)
        return
    if removed:
        logging.getLogger(__name__).info("removed %s temporary uploads left by a stopped process", removed)


def _migrations_dir():
    from pathlib import Path

    return Path(__file__).resolve().parent.parent / "migrations"


def _index_view():
    from app.views.home import HomeView

    return HomeView
