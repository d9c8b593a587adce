"""An API token is checked against its user's credentials without reading the
database on every call: the web process that revokes a token refuses it at
once, another web process on the same database within TOKEN_CHECK_SECONDS."""

from __future__ import annotations

import time

from app.extensions import db
from app.models.org import PlatformUser
from app.services import accounts, actors
from tests.conftest import api_token, bearer, build_app

NEW_PASSWORD = "Correct-Horse-Battery-7"


def _user_id(app, username: str) -> int:
    with app.app_context():
        return db.session.query(PlatformUser.id).filter_by(username=username).scalar()


def _change_password(app, user_id: int) -> None:
    with app.app_context():
        accounts.set_password(db.session, actors.SYSTEM, user_id, NEW_PASSWORD)
        db.session.remove()


def _forms(app, token: str) -> int:
    return app.test_client().get("/api/v1/query/forms", headers=bearer(token)).status_code


def test_the_process_that_revokes_refuses_at_once_and_another_within_the_check_time(app):
    other = build_app(app.config["SQLALCHEMY_DATABASE_URI"], migrate=False, TOKEN_CHECK_SECONDS=0.5)
    try:
        token = api_token(app.test_client(), "clerk.social")
        assert _forms(app, token) == 200 and _forms(other, token) == 200  # both have read the user now
        _change_password(app, _user_id(app, "clerk.social"))

        assert _forms(app, token) == 401  # the revoking process: at once, whatever it read before
        deadline = time.monotonic() + 5
        while _forms(other, token) == 200 and time.monotonic() < deadline:
            time.sleep(0.05)  # the other host reads the user again once its check time is up
        assert _forms(other, token) == 401
        assert time.monotonic() < deadline
    finally:
        with other.app_context():
            db.session.remove()
            db.engine.dispose()


def test_with_no_check_time_every_call_reads_the_database(app):
    other = build_app(app.config["SQLALCHEMY_DATABASE_URI"], migrate=False, TOKEN_CHECK_SECONDS=0)
    try:
        token = api_token(app.test_client(), "clerk")
        assert _forms(other, token) == 200
        _change_password(app, _user_id(app, "clerk"))
        assert _forms(other, token) == 401
    finally:
        with other.app_context():
            db.session.remove()
            db.engine.dispose()
