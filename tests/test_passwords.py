"""Passwords follow a policy wherever they are set; repeated failures lock the
account (and the address) for a growing time, the same for the form and the API."""

import datetime
import uuid

import pytest
from sqlalchemy import select

from app.extensions import db
from app.services.errors import InvalidInput
from tests.conftest import api_token, bearer, csrf_token, login
from tests.test_sessions import GOOD_PASSWORD, new_user


def _role_id(app, name):
    with app.app_context():
        return app.appbuilder.sm.find_role(name).id


def _agency_id(app, code):
    from app.models.org import Agency

    with app.app_context():
        return db.session.scalar(select(Agency.id).where(Agency.code == code))


def _user_exists(app, username) -> bool:
    from app.models.org import PlatformUser

    with app.app_context():
        return db.session.scalar(select(PlatformUser.id).where(PlatformUser.username == username)) is not None


WEAK = [
    ("1", "至少"),  # too short
    ("a", "至少"),
    ("Password1234", "常見"),  # common (a listed password with digits after it)
    ("qwertyuiop123", "常見"),
    ("{username}-Harbour-2026", "帳號"),  # holds the user name
]


@pytest.mark.parametrize("password,message", WEAK)
def test_an_admin_cannot_give_a_user_a_weak_password_over_the_api(app, password, message):
    username = f"p{uuid.uuid4().hex[:8]}"
    r = app.test_client().post(
        "/api/v1/users/",
        json={
            "username": username,
            "first_name": "甲",
            "last_name": "陳",
            "email": f"{username}@demo.gov.tw",
            "active": True,
            "agency": _agency_id(app, "TAX"),
            "roles": [_role_id(app, "Clerk")],
            "password": password.format(username=username),
        },  # fmt: skip
        headers=bearer(api_token(app.test_client(), "admin")),
    )
    assert r.status_code == 400 and message in r.json["message"], r.json
    assert not _user_exists(app, username)


def test_an_admin_cannot_give_a_user_a_weak_password_on_the_screen(app):
    admin = app.test_client()
    login(admin, "admin")
    username = f"s{uuid.uuid4().hex[:8]}"
    page = admin.get("/users/add")
    form = {
        "username": username,
        "first_name": "乙",
        "last_name": "林",
        "email": f"{username}@demo.gov.tw",
        "agency": str(_agency_id(app, "TAX")),
        "roles": [str(_role_id(app, "Clerk"))],
        "active": "y",
        "password": "1",
        "conf_password": "1",
        "csrf_token": csrf_token(page.text) or "",
    }
    r = admin.post("/users/add", data=form, follow_redirects=True)
    assert "至少 12 個字元" in r.text
    assert not _user_exists(app, username)
    form.update(password=GOOD_PASSWORD, conf_password=GOOD_PASSWORD)
    admin.post("/users/add", data=form, follow_redirects=True)
    assert _user_exists(app, username)
    assert api_token(app.test_client(), username, GOOD_PASSWORD)


def test_an_admin_reset_with_a_weak_password_is_refused_and_changes_nothing(app):
    username, user_id = new_user(app)
    admin = app.test_client()
    login(admin, "admin")
    page = admin.get(f"/resetpassword/form?pk={user_id}")
    r = admin.post(
        f"/resetpassword/form?pk={user_id}",
        data={"password": "1", "conf_password": "1", "csrf_token": csrf_token(page.text) or ""},
        follow_redirects=True,
    )
    assert "至少 12 個字元" in r.text
    assert api_token(app.test_client(), username, GOOD_PASSWORD)


@pytest.mark.parametrize("password,message", WEAK)
def test_a_user_cannot_choose_a_weak_password_for_themselves(app, password, message):
    username, _ = new_user(app)
    browser = app.test_client()
    login(browser, username, GOOD_PASSWORD)
    page = browser.get("/resetmypassword/form")
    weak = password.format(username=username.upper())
    r = browser.post(
        "/resetmypassword/form",
        data={"password": weak, "conf_password": weak, "csrf_token": csrf_token(page.text) or ""},
        follow_redirects=True,
    )
    assert message in r.text
    assert api_token(app.test_client(), username, GOOD_PASSWORD)  # the old password still holds


def _api_login(client, username, password, address="127.0.0.1"):
    return client.post(
        "/api/v1/security/login",
        json={"username": username, "password": password, "provider": "db"},
        environ_base={"REMOTE_ADDR": address},
    )


def _form_login(client, username, password, address="127.0.0.1"):
    page = client.get("/login/", environ_base={"REMOTE_ADDR": address})
    return client.post(
        "/login/",
        data={"username": username, "password": password, "csrf_token": csrf_token(page.text) or ""},
        environ_base={"REMOTE_ADDR": address},
        follow_redirects=True,
    )


def _actions(app, user_id) -> list[str]:
    from app.models.audit import AuditEvent

    with app.app_context():
        return db.session.scalars(
            select(AuditEvent.action).where(AuditEvent.object_type == "User", AuditEvent.object_id == str(user_id))
        ).all()


def test_after_repeated_failures_on_form_and_api_even_the_right_password_waits_until_an_admin_unlocks(app):
    username, user_id = new_user(app)
    threshold = app.config["LOGIN_LOCK_AFTER_FAILURES"]
    client = app.test_client()
    # One limit for both doors: the failures alternate between the form and the API.
    for attempt in range(threshold):
        if attempt % 2:
            assert _api_login(client, username, "wrong-password").status_code == 401
        else:
            assert "登出" not in _form_login(client, username, "wrong-password").text
    r = _api_login(client, username, GOOD_PASSWORD)
    assert r.status_code == 429 and "稍後" in r.json["message"] and "Retry-After" in r.headers
    page = _form_login(app.test_client(), username, GOOD_PASSWORD)
    assert "登出" not in page.text and "稍後" in page.text
    actions = _actions(app, user_id)
    assert "account_locked" in actions and "login_refused" in actions
    # An administrator unlocks the account on the user's page.
    admin = app.test_client()
    login(admin, "admin")
    shown = admin.get(f"/users/show/{user_id}")
    assert "解除鎖定" in shown.text
    r = admin.post(f"/users/action/unlock/{user_id}", follow_redirects=True)
    assert "已解除鎖定" in r.text
    assert "unlock" in _actions(app, user_id)
    assert _api_login(app.test_client(), username, GOOD_PASSWORD).status_code == 200


def test_fifty_five_wrong_passwords_never_let_the_right_one_in(app):
    username, _ = new_user(app)
    client = app.test_client()
    for _ in range(55):
        assert _api_login(client, username, "guess").status_code in (401, 429)
    assert _api_login(client, username, GOOD_PASSWORD).status_code == 429


def test_the_wait_grows_with_each_failure_after_the_lock(app):
    from app.services import signin

    key = f"account:test-{uuid.uuid4().hex}"
    threshold = app.config["LOGIN_LOCK_AFTER_FAILURES"]
    base = app.config["LOGIN_LOCK_SECONDS"]
    now = datetime.datetime(2026, 12, 3, 8, 0, 0)
    with app.app_context():
        waits = []
        for _ in range(threshold + 3):
            state = signin.record_failure(db.session, [key], now=now)[0]
            if state.locked_until is not None:
                waits.append((state.locked_until - now).total_seconds())
                now = state.locked_until  # the wait is over: the next try fails again
        assert waits[:4] == [base, 2 * base, 4 * base, 8 * base]
        assert signin.locked(db.session, [key], now=now - datetime.timedelta(seconds=1)) is not None
        signin.clear(db.session, [key])


def test_many_failures_from_one_address_lock_that_address_for_every_account(app):
    limit = app.config["LOGIN_ADDRESS_LOCK_AFTER_FAILURES"]
    app.config["LOGIN_ADDRESS_LOCK_AFTER_FAILURES"] = 4
    try:
        address = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7"
        client = app.test_client()
        for n in range(4):  # guessing at many accounts, each once
            assert _api_login(client, f"nobody-{n}-{uuid.uuid4().hex[:6]}", "x", address).status_code == 401
        username, _ = new_user(app)
        assert _api_login(client, username, GOOD_PASSWORD, address).status_code == 429
        assert _api_login(client, username, GOOD_PASSWORD, "10.200.200.200").status_code == 200
    finally:
        app.config["LOGIN_ADDRESS_LOCK_AFTER_FAILURES"] = limit


def test_a_locked_unknown_name_answers_like_a_locked_account(app):
    client = app.test_client()
    name = f"ghost-{uuid.uuid4().hex[:8]}"
    for _ in range(app.config["LOGIN_LOCK_AFTER_FAILURES"]):
        assert _api_login(client, name, "x").status_code == 401
    assert _api_login(client, name, "x").status_code == 429  # nothing tells it from a real account


@pytest.fixture
def redis_url(tmp_path):
    """A real Redis server of the test's own, on a free port, without persistence."""
    import subprocess

    import redis

    from tests.conftest import free_port

    port = free_port()
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],  # fmt: skip
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        for line in server.stdout:  # started when it says so
            if "Ready to accept connections" in line:
                break
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url)
        yield url, client
        client.close()
    finally:
        server.terminate()
        server.wait()
        server.stdout.close()


def test_the_failure_counters_live_in_redis_when_one_is_configured(app, redis_url):
    from app.models.org import LoginThrottle
    from app.services import signin

    url, client = redis_url
    username, user_id = new_user(app)
    app.config["LOGIN_THROTTLE_STORAGE_URI"] = url
    try:
        for _ in range(app.config["LOGIN_LOCK_AFTER_FAILURES"]):
            assert _api_login(app.test_client(), username, "wrong-password").status_code == 401
        assert _api_login(app.test_client(), username, GOOD_PASSWORD).status_code == 429
        with app.app_context():
            key = signin.account_key(username, user_id)
            assert db.session.get(LoginThrottle, key) is None  # not in the database
        assert int(client.hget(f"platform:login:{key}", "failures")) == app.config["LOGIN_LOCK_AFTER_FAILURES"]
        assert client.ttl(f"platform:login:{key}") > 0  # forgotten in time
        admin = app.test_client()
        login(admin, "admin")
        admin.post(f"/users/action/unlock/{user_id}")
        assert not client.exists(f"platform:login:{key}")
        assert _api_login(app.test_client(), username, GOOD_PASSWORD).status_code == 200
    finally:
        app.config["LOGIN_THROTTLE_STORAGE_URI"] = ""


def test_an_operator_resetting_a_password_at_the_command_line_meets_the_same_policy(app):
    from flask_appbuilder.cli import reset_password  # `flask fab reset-password`

    from app.services.errors import InvalidInput

    username, _ = new_user(app)
    runner = app.test_cli_runner()
    weak = runner.invoke(reset_password, ["--username", username, "--password", "short"])
    assert isinstance(weak.exception, InvalidInput) and "12" in str(weak.exception)
    assert api_token(app.test_client(), username, GOOD_PASSWORD)
    strong = "Quiet-library-on-a-Sunday-3"
    done = runner.invoke(reset_password, ["--username", username, "--password", strong])
    assert done.exit_code == 0, done.output
    assert api_token(app.test_client(), username, strong)


@pytest.mark.parametrize(
    "password", ["111111111111", "000000000000", "121212121212", "123456789012", "abcdefghijkl", "zaq12wsxcde3"]
)
def test_patterns_a_guesser_tries_first_are_refused_like_common_passwords(app, password):
    from app.services import passwords

    with app.app_context(), pytest.raises(InvalidInput) as refused:
        passwords.check(password, "clerk")
    assert refused.value.message is passwords.TOO_COMMON


def test_a_long_password_of_words_and_signs_is_still_accepted(app):
    from app.services import passwords

    with app.app_context():
        passwords.check("Correct-Horse-Battery-7", "clerk")
        passwords.check("tr0ub4dor&3xy", "clerk")
