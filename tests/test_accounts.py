"""Accounts: nobody removes themselves or the last active Admin; a user with
history is deactivated, never deleted (screen and API)."""

from sqlalchemy import func, select

from app.extensions import db
from tests.conftest import api_token, bearer, csrf_token, login
from tests.test_sessions import GOOD_PASSWORD, new_user


def _user(app, user_id):
    from app.models.org import PlatformUser

    with app.app_context():
        user = db.session.get(PlatformUser, user_id)
        return None if user is None else {"active": user.active, "roles": [r.name for r in user.roles]}


def _role_id(app, name):
    with app.app_context():
        return app.appbuilder.sm.find_role(name).id


def _active_admins(app) -> int:
    from flask_appbuilder.security.sqla.models import Role

    from app.models.org import PlatformUser

    with app.app_context():
        return db.session.scalar(
            select(func.count(PlatformUser.id))
            .where(PlatformUser.active.is_(True))
            .where(PlatformUser.roles.any(Role.name == "Admin"))
        )


def _user_manager(app) -> tuple[str, int]:
    """An account that manages users without being an Admin (a county's HR desk)."""
    username, user_id = new_user(app, role="Manager", agency="COUNTY")
    with app.app_context():
        sm = app.appbuilder.sm
        role = sm.find_role("帳號管理") or sm.add_role("帳號管理")
        for perm, view in [
            ("can_get", "UserApi"),
            ("can_put", "UserApi"),
            ("can_delete", "UserApi"),
            ("can_info", "UserApi"),
            ("manage_accounts", "Platform"),
        ]:
            sm.add_permission_role(role, sm.add_permission_view_menu(perm, view))
        user = sm.get_user_by_id(user_id)
        user.roles = [*user.roles, role]
        db.session.commit()
    return username, user_id


def test_the_only_active_admin_cannot_be_deleted_or_deactivated(app):
    with app.app_context():
        admin_id = app.appbuilder.sm.find_user(username="admin").id
    assert _active_admins(app) == 1
    manager, _ = _user_manager(app)
    token = api_token(app.test_client(), manager, GOOD_PASSWORD)
    client = app.test_client()
    r = client.delete(f"/api/v1/users/{admin_id}", headers=bearer(token))
    assert r.status_code == 409 and "最後一位" in r.json["message"], r.json
    r = client.put(f"/api/v1/users/{admin_id}", json={"active": False}, headers=bearer(token))
    assert r.status_code == 409 and "最後一位" in r.json["message"], r.json
    r = client.put(f"/api/v1/users/{admin_id}", json={"roles": []}, headers=bearer(token))
    assert r.status_code == 409 and "最後一位" in r.json["message"], r.json
    assert _user(app, admin_id) == {"active": True, "roles": ["Admin"]}
    assert api_token(app.test_client(), "admin")


def test_nobody_deletes_or_deactivates_themselves_on_the_api_or_the_screen(app):
    username, user_id = new_user(app, role="Admin", agency="COUNTY")
    token = api_token(app.test_client(), username, GOOD_PASSWORD)
    client = app.test_client()
    r = client.delete(f"/api/v1/users/{user_id}", headers=bearer(token))
    assert r.status_code == 409 and "自己" in r.json["message"], r.json
    r = client.put(f"/api/v1/users/{user_id}", json={"active": False}, headers=bearer(token))
    assert r.status_code == 409 and "自己" in r.json["message"], r.json
    browser = app.test_client()
    login(browser, username, GOOD_PASSWORD)
    page = browser.get(f"/users/edit/{user_id}")
    r = browser.post(
        f"/users/edit/{user_id}",
        data={
            "username": username,
            "first_name": "測",
            "last_name": "試",
            "email": f"{username}@demo.gov.tw",
            "roles": [str(_role_id(app, "Admin"))],
            "csrf_token": csrf_token(page.text) or "",
        },  # "active" unticked; fmt: skip
        follow_redirects=True,
    )
    assert "自己" in r.text
    r = browser.post(
        f"/users/delete/{user_id}", data={"csrf_token": csrf_token(page.text) or ""}, follow_redirects=True
    )
    assert "自己" in r.text
    assert _user(app, user_id)["active"] is True


def test_a_user_with_history_is_deactivated_not_deleted_over_the_api(app):
    username, user_id = new_user(app)
    pair_token = api_token(app.test_client(), username, GOOD_PASSWORD)  # signing in is history (audited)
    client = app.test_client()
    r = client.delete(f"/api/v1/users/{user_id}", headers=bearer(api_token(app.test_client(), "admin")))
    assert r.status_code == 200 and "停用" in r.json["message"], r.json
    assert _user(app, user_id)["active"] is False
    assert client.get("/api/v1/categories/", headers=bearer(pair_token)).status_code == 401


def test_a_user_with_history_is_deactivated_not_deleted_on_the_screen(app):
    username, user_id = new_user(app)
    login(app.test_client(), username, GOOD_PASSWORD)
    admin = app.test_client()
    login(admin, "admin")
    page = admin.get(f"/users/show/{user_id}")
    r = admin.post(f"/users/delete/{user_id}", data={"csrf_token": csrf_token(page.text) or ""}, follow_redirects=True)
    assert "停用" in r.text
    assert _user(app, user_id)["active"] is False


def test_a_user_without_history_is_deleted_and_that_is_audited(app):
    from app.models.audit import AuditEvent

    _, user_id = new_user(app)
    r = app.test_client().delete(f"/api/v1/users/{user_id}", headers=bearer(api_token(app.test_client(), "admin")))
    assert r.status_code == 200, r.json
    assert _user(app, user_id) is None
    with app.app_context():
        assert db.session.scalar(
            select(AuditEvent.id).where(
                AuditEvent.action == "delete", AuditEvent.object_type == "User", AuditEvent.object_id == str(user_id)
            )
        )
