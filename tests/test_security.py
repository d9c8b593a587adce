"""Security basics: CSRF, cookies, headers, login rate limit, no personal data in logs."""

import logging

import pytest

from tests.conftest import Database, api_token, bearer, build_app, csrf_token, login


def test_security_headers_on_pages_and_apis(client):
    for path in ("/login/", "/api/v1/agencies/"):
        r = client.get(path)
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        csp = r.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "object-src 'none'" in csp


def test_session_cookie_is_httponly_and_samesite_lax(client):
    r = login(client, "clerk")
    assert r.status_code == 200
    cookie = client.get_cookie("session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"


def test_debug_is_off_by_default(app):
    assert app.debug is False


@pytest.fixture
def strict_app(tmp_path):
    database = Database("sqlite", tmp_path)
    application = build_app(database.url, WTF_CSRF_ENABLED=True, AUTH_RATE_LIMITED=True,
                            RATELIMIT_ENABLED=True, AUTH_RATE_LIMIT="5 per 1 minute")  # fmt: skip
    yield application
    database.drop()


def test_forms_without_a_csrf_token_are_refused_and_change_nothing(strict_app):
    client = strict_app.test_client()
    r = client.post("/login/", data={"username": "admin", "password": "Demo-2026"}, follow_redirects=True)
    assert "登出" not in r.text  # not signed in
    r = login(client, "admin")  # with the token
    assert "登出" in r.text
    r = client.post("/agencyview/add", data={"code": "NOCSRF", "name": "無權杖", "kind": "other"})
    from sqlalchemy import select

    from app.extensions import db
    from app.models.org import Agency

    with strict_app.app_context():
        assert db.session.scalar(select(Agency).where(Agency.code == "NOCSRF")) is None
    page = client.get("/agencyview/add")
    assert csrf_token(page.text)


def test_repeated_failed_logins_are_rate_limited(strict_app):
    client = strict_app.test_client()
    statuses = [
        client.post(
            "/api/v1/security/login", json={"username": "admin", "password": "nope", "provider": "db"}
        ).status_code
        for _ in range(8)
    ]
    assert statuses[0] == 401 and 429 in statuses


def test_the_login_form_and_the_login_api_share_one_rate_limit(strict_app):
    client = strict_app.test_client()
    for n in range(3):  # five a minute, counted over both doors (each name once: no account waits)
        page = client.get("/login/")
        r = client.post("/login/", data={"username": f"form-{n}", "password": "x", "csrf_token": csrf_token(page.text)})
        assert r.status_code == 302
    for n in range(2):
        r = client.post("/api/v1/security/login", json={"username": f"api-{n}", "password": "x", "provider": "db"})
        assert r.status_code == 401
    r = client.post("/api/v1/security/login", json={"username": "api-9", "password": "x", "provider": "db"})
    assert r.status_code == 429
    page = client.get("/login/")
    r = client.post("/login/", data={"username": "form-9", "password": "x", "csrf_token": csrf_token(page.text)})
    assert r.status_code == 429


def test_failed_logins_with_an_id_number_leave_no_trace_of_it_in_the_logs(client, caplog):
    with caplog.at_level(logging.INFO):
        login(client, "A123456789", "x")
        client.post("/api/v1/security/login", json={"username": "A123456789", "password": "x", "provider": "db"})
        logging.getLogger("flask_appbuilder").warning("Login Failed for user: %s", "A123456789")
    output = caplog.text
    assert "Login Failed for user: [ID]" in output
    assert "A123456789" not in output


def test_a_platform_database_that_cannot_be_reached_gives_a_clear_message(tmp_path):
    from app import create_app
    from config import TestConfig

    class Dead(TestConfig):
        SQLALCHEMY_DATABASE_URI = "postgresql+psycopg://postgres@127.0.0.1:1/nothing"

    app = create_app(Dead)
    client = app.test_client()
    r = client.post("/login/", data={"username": "admin", "password": "x"})
    assert r.status_code == 503 and "平台資料庫" in r.text and "SELECT" not in r.text
    r = client.post("/api/v1/security/login", json={"username": "admin", "password": "x", "provider": "db"})
    assert r.status_code == 503 and "平台資料庫" in r.json["message"]
    result = app.test_cli_runner().invoke(args=["platform", "check"])
    assert result.exit_code == 2 and "無法連線到平台資料庫" in result.output


def test_a_wrong_password_or_unknown_user_gets_the_same_clear_message(client):
    for username, password in (("clerk", "wrong"), ("nobody-here", "x")):
        r = login(client, username, password)
        assert "帳號或密碼錯誤" in r.text
        assert "登出" not in r.text


def test_the_public_verification_endpoints_are_rate_limited(tmp_path):
    database = Database("sqlite", tmp_path)
    app = build_app(database.url, RATELIMIT_ENABLED=True, VERIFY_RATE_LIMIT="3 per minute")
    client = app.test_client()
    statuses = [client.get("/api/v1/verify/ANX0-PJ6F-WGH7-JSCZ-R").status_code for _ in range(5)]
    assert statuses[:3] == [404, 404, 404] and statuses[3:] == [429, 429]
    pages = [client.get("/verify/ANX0-PJ6F-WGH7-JSCZ-R").status_code for _ in range(5)]
    assert 429 in pages


@pytest.mark.parametrize("default_limit", [None, "2 per minute"])
def test_the_query_api_is_not_rate_limited_unless_the_deployment_limits_every_endpoint(tmp_path, default_limit):
    database = Database("sqlite", tmp_path)
    extra = {"RATELIMIT_DEFAULT": default_limit} if default_limit else {}
    app = build_app(database.url, RATELIMIT_ENABLED=True, VERIFY_RATE_LIMIT="3 per minute", **extra)
    try:
        client = app.test_client()
        token = api_token(client, "clerk")
        statuses = [client.get("/api/v1/query/forms", headers=bearer(token)).status_code for _ in range(5)]
        assert statuses == [200] * 5 if default_limit is None else 429 in statuses
        # The verification endpoint keeps its own limit either way.
        verify = [client.get("/api/v1/verify/ANX0-PJ6F-WGH7-JSCZ-R").status_code for _ in range(5)]
        assert 429 in verify
    finally:
        with app.app_context():
            from app.extensions import db

            db.engine.dispose()
        database.drop()


def test_api_calls_with_a_bearer_token_get_no_session_cookie_but_screens_do(app):
    fresh = app.test_client()
    token = api_token(fresh, "clerk")
    caller = app.test_client()
    r = caller.get("/api/v1/query/forms", headers=bearer(token))
    assert r.status_code == 200 and "Set-Cookie" not in r.headers
    browser = app.test_client()
    r = login(browser, "clerk")
    assert browser.get_cookie("session") is not None


def test_a_bearer_token_is_refused_once_it_has_expired(app):
    import datetime
    import time

    from flask_jwt_extended import create_access_token

    issued = int(time.time()) - 300  # issued five minutes ago, valid for another minute
    with app.app_context():
        user = app.appbuilder.sm.find_user(username="clerk")
        token = create_access_token(
            identity=str(user.id),
            expires_delta=datetime.timedelta(seconds=60),
            additional_claims={"iat": issued, "nbf": issued},
        )
    client = app.test_client()
    assert client.get("/api/v1/query/forms", headers=bearer(token)).status_code == 200
    assert client.get("/api/v1/query/forms", headers=bearer(token)).status_code == 200
    # Two minutes later (the token's clock moved on through the decode leeway, no waiting):
    app.config["JWT_DECODE_LEEWAY"] = -120
    try:
        assert client.get("/api/v1/query/forms", headers=bearer(token)).status_code == 401
    finally:
        app.config["JWT_DECODE_LEEWAY"] = 0


def test_a_tampered_bearer_token_is_refused_even_after_the_genuine_one_was_used(app):
    client = app.test_client()
    token = api_token(app.test_client(), "clerk")
    assert client.get("/api/v1/query/forms", headers=bearer(token)).status_code == 200
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[:-4]}{'AAAA' if signature[-4:] != 'AAAA' else 'BBBB'}"
    assert client.get("/api/v1/query/forms", headers=bearer(forged)).status_code in (401, 422)  # refused, never 200


def test_a_deactivated_account_is_refused_at_once_and_its_old_tokens_stay_refused(app):
    from app.extensions import db

    client = app.test_client()
    token = api_token(app.test_client(), "clerk.social")
    assert client.get("/api/v1/query/forms", headers=bearer(token)).status_code == 200
    with app.app_context():
        user = app.appbuilder.sm.find_user(username="clerk.social")
        user.active = False
        db.session.commit()
    try:
        # Deactivation ends the account's tokens (a new credential epoch): no cache window.
        assert client.get("/api/v1/query/forms", headers=bearer(token)).status_code == 401
    finally:
        with app.app_context():
            user = app.appbuilder.sm.find_user(username="clerk.social")
            user.active = True
            db.session.commit()
        app.appbuilder.sm.forget_cached_permissions()  # other tests use this account at once
    # Reactivated, the account signs in again; the token from before stays refused.
    assert client.get("/api/v1/query/forms", headers=bearer(token)).status_code == 401
    fresh = api_token(app.test_client(), "clerk.social")
    assert client.get("/api/v1/query/forms", headers=bearer(fresh)).status_code == 200


def test_an_api_call_with_a_bearer_token_ignores_a_session_cookie_sent_along(app):
    token = api_token(app.test_client(), "clerk")
    browser = app.test_client()
    login(browser, "admin")
    # The admin's session cookie does not lend the clerk's token call any rights, nor the other way round.
    r = browser.get("/api/v1/query/forms", headers=bearer(token))
    assert r.status_code == 200 and "Set-Cookie" not in r.headers
    assert [f["code"] for f in r.json["result"]] == [
        f["code"] for f in app.test_client().get("/api/v1/query/forms", headers=bearer(token)).json["result"]
    ]
