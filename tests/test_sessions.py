"""Sessions and tokens end: logout, password change, deactivation, role removal,
idle and absolute lifetime, refresh tokens used once."""

import datetime
import uuid

import jwt
from sqlalchemy import select, update

from app.extensions import db
from tests.conftest import api_token, bearer, csrf_token, login

GOOD_PASSWORD = "Morning-tea-at-the-county-7"


def new_user(app, role="Notifier", agency="HH-EAST", password=GOOD_PASSWORD) -> tuple[str, int]:
    """A throwaway account (the shared demo accounts stay as they are)."""
    from app.models.org import Agency

    username = f"u{uuid.uuid4().hex[:8]}"
    with app.app_context():
        sm = app.appbuilder.sm
        user = sm.add_user(username=username, first_name="測", last_name="試", email=f"{username}@demo.gov.tw",
                           role=sm.find_role(role), password=password)  # fmt: skip
        user.agency = db.session.scalar(select(Agency).where(Agency.code == agency))
        db.session.commit()
        return username, user.id


def tokens(client, username, password=GOOD_PASSWORD) -> dict:
    r = client.post(
        "/api/v1/security/login",
        json={"username": username, "password": password, "provider": "db", "refresh": True},
    )
    assert r.status_code == 200, r.json
    return r.json


def admin_token(app) -> str:
    return api_token(app.test_client(), "admin")


def test_a_session_cookie_replayed_after_logout_opens_nothing(app):
    username, _ = new_user(app)
    browser = app.test_client()
    login(browser, username, GOOD_PASSWORD)
    assert browser.get("/notify/").status_code == 200
    stolen = browser.get_cookie("session").value
    browser.get("/logout/")
    replay = app.test_client()
    replay.set_cookie("session", stolen)
    r = replay.get("/notify/")
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_an_access_and_refresh_token_issued_before_a_password_change_are_refused(app):
    username, _ = new_user(app)
    pair = tokens(app.test_client(), username)
    client = app.test_client()
    assert client.get("/api/v1/categories/", headers=bearer(pair["access_token"])).status_code == 200
    browser = app.test_client()
    login(browser, username, GOOD_PASSWORD)
    page = browser.get("/resetmypassword/form")
    new_password = "Evening-walk-by-the-river-9"
    browser.post(
        "/resetmypassword/form",
        data={"password": new_password, "conf_password": new_password, "csrf_token": csrf_token(page.text) or ""},
    )
    assert client.get("/api/v1/categories/", headers=bearer(pair["access_token"])).status_code == 401
    refreshed = client.post("/api/v1/security/refresh", headers=bearer(pair["refresh_token"]))
    assert refreshed.status_code == 401
    # The user's own browser stays signed in; the new password works, the old one does not.
    assert browser.get("/notify/").status_code == 200
    assert tokens(app.test_client(), username, new_password)["access_token"]
    old = app.test_client().post(
        "/api/v1/security/login", json={"username": username, "password": GOOD_PASSWORD, "provider": "db"}
    )
    assert old.status_code == 401


def test_an_admin_resetting_a_password_ends_the_users_sessions_and_tokens(app):
    username, user_id = new_user(app)
    pair = tokens(app.test_client(), username)
    browser = app.test_client()
    login(browser, username, GOOD_PASSWORD)
    admin = app.test_client()
    login(admin, "admin")
    page = admin.get(f"/resetpassword/form?pk={user_id}")
    new_password = "Lanterns-over-the-harbour-4"
    admin.post(
        f"/resetpassword/form?pk={user_id}",
        data={"password": new_password, "conf_password": new_password, "csrf_token": csrf_token(page.text) or ""},
    )
    assert app.test_client().get("/api/v1/categories/", headers=bearer(pair["access_token"])).status_code == 401
    r = browser.get("/notify/")
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_deactivation_and_role_removal_revoke_the_users_tokens_at_once(app):
    client = app.test_client()
    for change in ({"active": False}, {"roles": []}):
        username, user_id = new_user(app)
        pair = tokens(app.test_client(), username)
        assert client.get("/api/v1/categories/", headers=bearer(pair["access_token"])).status_code == 200
        r = client.put(f"/api/v1/users/{user_id}", json=change, headers=bearer(admin_token(app)))
        assert r.status_code == 200, r.json
        assert client.get("/api/v1/categories/", headers=bearer(pair["access_token"])).status_code == 401
        assert client.post("/api/v1/security/refresh", headers=bearer(pair["refresh_token"])).status_code == 401


def test_a_refresh_token_is_used_once_and_rotates(app):
    username, _ = new_user(app)
    pair = tokens(app.test_client(), username)
    client = app.test_client()
    r = client.post("/api/v1/security/refresh", headers=bearer(pair["refresh_token"]))
    assert r.status_code == 200, r.json
    rotated = r.json
    assert rotated["access_token"] and rotated["refresh_token"] and rotated["refresh_token"] != pair["refresh_token"]
    assert client.get("/api/v1/categories/", headers=bearer(rotated["access_token"])).status_code == 200
    # The new refresh token works once, like the first.
    again = client.post("/api/v1/security/refresh", headers=bearer(rotated["refresh_token"]))
    assert again.status_code == 200
    assert client.post("/api/v1/security/refresh", headers=bearer(rotated["refresh_token"])).status_code == 401


def test_a_spent_refresh_token_presented_again_revokes_the_whole_family(app):
    username, _ = new_user(app)
    pair = tokens(app.test_client(), username)
    client = app.test_client()
    rotated = client.post("/api/v1/security/refresh", headers=bearer(pair["refresh_token"])).json
    # Someone replays the spent token (it was stolen): every token of the account is revoked.
    assert client.post("/api/v1/security/refresh", headers=bearer(pair["refresh_token"])).status_code == 401
    assert client.get("/api/v1/categories/", headers=bearer(rotated["access_token"])).status_code == 401
    assert client.post("/api/v1/security/refresh", headers=bearer(rotated["refresh_token"])).status_code == 401


def test_token_lifetimes_are_the_configured_ones_not_thirty_days(app):
    username, _ = new_user(app)
    pair = tokens(app.test_client(), username)
    refresh = jwt.decode(pair["refresh_token"], options={"verify_signature": False})
    access = jwt.decode(pair["access_token"], options={"verify_signature": False})
    assert refresh["exp"] - refresh["iat"] == app.config["JWT_REFRESH_TOKEN_EXPIRES"].total_seconds()
    assert refresh["exp"] - refresh["iat"] <= 24 * 3600
    assert access["exp"] - access["iat"] == app.config["JWT_ACCESS_TOKEN_EXPIRES"].total_seconds()


def _age_sessions(app, user_id, **moved_back):
    """The clock moves on: the user's session rows look as old as given."""
    from app.models.org import UserSession

    with app.app_context():
        sessions = db.session.scalars(select(UserSession).where(UserSession.user_id == user_id)).all()
        assert sessions, "signing in recorded a server-side session"
        for row in sessions:
            for column, delta in moved_back.items():
                db.session.execute(
                    update(UserSession)
                    .where(UserSession.id == row.id)
                    .values({column: getattr(row, column) - datetime.timedelta(**delta)})
                )
        db.session.commit()


def test_an_idle_session_ends_after_the_configured_idle_time(app):
    username, user_id = new_user(app)
    browser = app.test_client()
    login(browser, username, GOOD_PASSWORD)
    assert browser.get("/notify/").status_code == 200
    idle = app.config["SESSION_IDLE_MINUTES"]
    _age_sessions(app, user_id, last_seen_at={"minutes": idle - 1})
    assert browser.get("/notify/").status_code == 200  # still within the idle time, and touched
    _age_sessions(app, user_id, last_seen_at={"minutes": idle + 1})
    r = browser.get("/notify/")
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_a_busy_session_still_ends_at_its_absolute_lifetime(app):
    username, user_id = new_user(app)
    browser = app.test_client()
    login(browser, username, GOOD_PASSWORD)
    _age_sessions(app, user_id, created_at={"hours": app.config["SESSION_MAX_HOURS"], "minutes": 1})
    r = browser.get("/notify/")
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_logout_is_audited_and_ends_only_that_browsers_session(app):
    from app.models.audit import AuditEvent

    username, user_id = new_user(app)
    first, second = app.test_client(), app.test_client()
    login(first, username, GOOD_PASSWORD)
    login(second, username, GOOD_PASSWORD)
    first.get("/logout/")
    assert second.get("/notify/").status_code == 200
    with app.app_context():
        actions = db.session.scalars(
            select(AuditEvent.action).where(AuditEvent.actor_id == user_id).order_by(AuditEvent.id)
        ).all()
    assert actions.count("login") == 2 and "logout" in actions


def test_a_group_losing_a_role_ends_its_members_tokens(app):
    from flask_appbuilder.security.sqla.models import Group, assoc_user_group
    from sqlalchemy import insert

    username, user_id = new_user(app)
    name = f"小組{uuid.uuid4().hex[:6]}"
    with app.app_context():
        sm = app.appbuilder.sm
        group = Group(name=name, label=name, roles=[sm.find_role("Manager")])
        db.session.add(group)
        db.session.flush()
        db.session.execute(insert(assoc_user_group).values(user_id=user_id, group_id=group.id))
        db.session.commit()
    pair = tokens(app.test_client(), username)
    client = app.test_client()
    assert client.get("/api/v1/categories/", headers=bearer(pair["access_token"])).status_code == 200
    with app.app_context():
        group = db.session.scalar(select(Group).where(Group.name == name))
        group.roles = []
        db.session.commit()
    assert client.get("/api/v1/categories/", headers=bearer(pair["access_token"])).status_code == 401
    with app.app_context():
        db.session.delete(db.session.scalar(select(Group).where(Group.name == name)))
        db.session.commit()
