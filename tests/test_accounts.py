"""Accounts: nobody removes themselves or the last active Admin; a user with
history is deactivated, never deleted (screen and API)."""

import time

import pytest
from sqlalchemy import func, select

from app.extensions import db
from tests.conftest import api_token, bearer, copied_app, csrf_token, login
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


# --- refusals leave an audit trace; the last-Admin guard counts groups and holds under concurrency ---------


def _refusals(app, user_id) -> list[dict]:
    """The audited refusals of account changes to one user (their rule and operation)."""
    import json

    from app.models.audit import AuditEvent

    with app.app_context():
        events = db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "account_refused", AuditEvent.object_id == str(user_id))
            .order_by(AuditEvent.id)
        ).all()
        assert all(e.outcome == "refused" for e in events)
        return [{k: v for k, v in json.loads(e.detail).items() if k != "reason"} for e in events]


@pytest.fixture
def own_app(backend, tmp_path):
    """An app on a copy of its own: these stories remove the demo admin."""
    with copied_app(backend, tmp_path) as application:
        yield application


def test_refusing_to_remove_oneself_or_the_last_admin_is_audited_on_the_api_and_the_screen(own_app):
    app = own_app
    with app.app_context():
        admin_id = app.appbuilder.sm.find_user(username="admin").id
    username, user_id = new_user(app, role="Admin", agency="COUNTY")
    token = api_token(app.test_client(), username, GOOD_PASSWORD)
    client = app.test_client()
    assert client.delete(f"/api/v1/users/{user_id}", headers=bearer(token)).status_code == 409
    assert client.put(f"/api/v1/users/{user_id}", json={"active": False}, headers=bearer(token)).status_code == 409
    browser = app.test_client()
    login(browser, username, GOOD_PASSWORD)
    page = browser.get(f"/users/show/{user_id}")
    r = browser.post(
        f"/users/delete/{user_id}", data={"csrf_token": csrf_token(page.text) or ""}, follow_redirects=True
    )
    assert "自己" in r.text
    assert _refusals(app, user_id) == [
        {"operation": "delete", "rule": "self"},
        {"operation": "edit", "rule": "self"},
        {"operation": "delete", "rule": "self"},
    ]
    # The new Admin removed, the demo admin is the last one again: removing it is refused, audited.
    admin = api_token(app.test_client(), "admin")
    assert client.delete(f"/api/v1/users/{user_id}", headers=bearer(admin)).status_code == 200
    manager, _ = _user_manager(app)
    manager_token = api_token(app.test_client(), manager, GOOD_PASSWORD)
    assert client.delete(f"/api/v1/users/{admin_id}", headers=bearer(manager_token)).status_code == 409
    r = client.put(f"/api/v1/users/{admin_id}", json={"roles": []}, headers=bearer(manager_token))
    assert r.status_code == 409 and "最後一位" in r.json["message"], r.json
    assert _refusals(app, admin_id) == [
        {"operation": "delete", "rule": "last_admin"},
        {"operation": "edit", "rule": "last_admin"},
    ]
    assert _user(app, admin_id) == {"active": True, "roles": ["Admin"]}


def _admin_group(app, *members) -> int:
    """A FAB user group holding the Admin role, with these members."""
    from flask_appbuilder.security.sqla.models import Group, assoc_user_group
    from sqlalchemy import insert

    with app.app_context():
        sm = app.appbuilder.sm
        group = Group(name="資訊小組", label="資訊小組", roles=[sm.find_role("Admin")])
        db.session.add(group)
        db.session.flush()
        for member in members:  # FAB's Group.users holds its own User class: the membership rows themselves
            db.session.execute(insert(assoc_user_group).values(user_id=member, group_id=group.id))
        db.session.commit()
        return group.id


def test_an_admin_through_a_group_counts_and_is_guarded_as_the_last_one(own_app):
    app = own_app
    with app.app_context():
        admin_id = app.appbuilder.sm.find_user(username="admin").id
    member, member_id = new_user(app, role="Manager", agency="COUNTY")
    group_id = _admin_group(app, member_id)
    client = app.test_client()
    # The demo admin is not the last Admin: the group's member is one too.
    manager, _ = _user_manager(app)
    token = api_token(app.test_client(), manager, GOOD_PASSWORD)
    r = client.put(f"/api/v1/users/{admin_id}", json={"active": False}, headers=bearer(token))
    assert r.status_code == 200, r.json
    # Now the group's member is the last active Admin: neither the user nor the group may take that away.
    r = client.delete(f"/api/v1/users/{member_id}", headers=bearer(token))
    assert r.status_code == 409 and "最後一位" in r.json["message"], r.json
    r = client.put(f"/api/v1/users/{member_id}", json={"active": False}, headers=bearer(token))
    assert r.status_code == 409 and "最後一位" in r.json["message"], r.json
    assert _refusals(app, member_id) == [
        {"operation": "delete", "rule": "last_admin"},
        {"operation": "edit", "rule": "last_admin"},
    ]
    browser = app.test_client()
    login(browser, member, GOOD_PASSWORD)  # an Admin through the group: the group screen is theirs
    page = browser.get(f"/groups/edit/{group_id}")
    assert page.status_code == 200
    form = {"name": "資訊小組", "label": "資訊小組", "csrf_token": csrf_token(page.text) or ""}
    r = browser.post(f"/groups/edit/{group_id}", data={**form, "users": [str(member_id)]}, follow_redirects=True)
    assert "最後一位" in r.text  # the group without its Admin role
    r = browser.post(
        f"/groups/edit/{group_id}", data={**form, "roles": [str(_role_id(app, "Admin"))]}, follow_redirects=True
    )
    assert "最後一位" in r.text  # the member out of the group
    with app.app_context():
        from flask_appbuilder.security.sqla.models import Group

        group = db.session.get(Group, group_id)
        assert [u.id for u in group.users] == [member_id] and [r.name for r in group.roles] == ["Admin"]
        import json

        from app.models.audit import AuditEvent

        details = [
            json.loads(e.detail)
            for e in db.session.scalars(
                select(AuditEvent).where(
                    AuditEvent.action == "account_refused",
                    AuditEvent.object_type == "Group",
                    AuditEvent.object_id == str(group_id),
                )
            )
        ]
        assert [(d["operation"], d["rule"]) for d in details] == [("group_edit", "last_admin")] * 2
    assert _user(app, member_id)["active"] is True


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_two_removals_of_the_last_two_admins_at_once_leave_one(own_app):
    """Each of two requests removes one of the last two Admins. The first holds
    its transaction open just before it commits; the second waits for it (seen
    waiting on a lock in PostgreSQL), then finds the one it would remove the
    last and refuses."""
    import threading

    from sqlalchemy import event, text

    from app.services import accounts
    from app.services.actors import for_user
    from app.services.errors import Conflict

    app = own_app
    second, second_id = new_user(app, role="Admin", agency="COUNTY")
    manager, manager_id = _user_manager(app)
    with app.app_context():
        admin_id = app.appbuilder.sm.find_user(username="admin").id
    assert _active_admins(app) == 2
    holding, release = threading.Event(), threading.Event()
    outcome: dict = {}

    def remove(user_id, name, hold):
        with app.app_context():
            session = db.session()
            actor = for_user(app.appbuilder.sm.get_user_by_id(manager_id), session=session)
            outcome[f"{name}_pid"] = session.execute(text("SELECT pg_backend_pid()")).scalar()
            outcome[f"{name}_ready"].set()
            if hold:

                def before_commit(_session):
                    holding.set()
                    release.wait(30)

                event.listen(session, "before_commit", before_commit)
            try:
                outcome[name] = accounts.remove(session, actor, user_id)
            except Conflict as exc:
                outcome[name] = exc
            finally:
                if hold:
                    event.remove(session, "before_commit", before_commit)
                db.session.remove()

    outcome["first_ready"], outcome["second_ready"] = threading.Event(), threading.Event()
    first = threading.Thread(target=remove, args=(admin_id, "first", True))
    first.start()
    assert holding.wait(30), "the first removal never reached its commit"
    other = threading.Thread(target=remove, args=(second_id, "second", False))
    other.start()
    assert outcome["second_ready"].wait(30)
    waited = False
    try:
        with app.app_context():
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and other.is_alive():
                state = db.session.execute(
                    text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"),
                    {"pid": outcome["second_pid"]},
                ).scalar()
                db.session.rollback()
                if state == "Lock":
                    waited = True
                    break
                time.sleep(0.02)  # polling a condition, with a deadline
    finally:
        release.set()
        first.join(30)
        other.join(30)
    assert waited, f"the second removal did not wait for the first: {outcome.get('second')!r}"
    assert isinstance(outcome["first"], str)
    assert isinstance(outcome["second"], Conflict) and outcome["second"].message is accounts.LAST_ADMIN
    assert _active_admins(app) == 1 and _user(app, second_id)["active"] is True
    assert _refusals(app, second_id) == [{"operation": "delete", "rule": "last_admin"}]


def _role_refusals(app, role_id) -> list[dict]:
    import json

    from app.models.audit import AuditEvent

    with app.app_context():
        events = db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "account_refused", AuditEvent.object_type == "Role")
            .where(AuditEvent.object_id == str(role_id))
            .order_by(AuditEvent.id)
        ).all()
        return [{k: v for k, v in json.loads(e.detail).items() if k != "reason"} for e in events]


def _role(app, role_id):
    from flask_appbuilder.security.sqla.models import Role

    with app.app_context():
        role = db.session.get(Role, role_id)
        return None if role is None else (role.name, len(role.permissions))


def test_the_admin_role_keeps_its_name_and_every_permission_on_the_role_screen(own_app):
    """An Admin editing roles on FAB's screen cannot rename the platform's own roles, strip the
    Admin role (which would lock every administrator out) or delete them; other roles stay editable."""
    app = own_app
    admin_role, clerk_role = _role_id(app, "Admin"), _role_id(app, "Clerk")
    admin_before, clerk_before = _role(app, admin_role), _role(app, clerk_role)
    browser = app.test_client()
    login(browser, "admin")
    page = browser.get(f"/roles/edit/{admin_role}")
    assert page.status_code == 200
    token = csrf_token(page.text) or ""
    with app.app_context():
        from flask_appbuilder.security.sqla.models import Role

        kept = [str(p.id) for p in db.session.get(Role, admin_role).permissions][:3]
    r = browser.post(
        f"/roles/edit/{admin_role}", data={"name": "Admin", "permissions": kept, "csrf_token": token},
        follow_redirects=True,
    )  # fmt: skip
    assert "系統管理者角色保有全部權限" in r.text, r.text[:2000]
    r = browser.post(f"/roles/edit/{clerk_role}", data={"name": "Counter", "csrf_token": token}, follow_redirects=True)
    assert "內建角色的名稱不可變更" in r.text
    r = browser.post(f"/roles/delete/{clerk_role}", data={"csrf_token": token}, follow_redirects=True)
    assert "內建角色不可刪除" in r.text
    assert _role(app, admin_role) == admin_before and _role(app, clerk_role) == clerk_before
    assert _role_refusals(app, admin_role) == [{"operation": "role_edit", "rule": "admin_permissions"}]
    assert _role_refusals(app, clerk_role) == [
        {"operation": "role_edit", "rule": "rename"},
        {"operation": "role_delete", "rule": "platform_role"},
    ]
    # A county's own role may be renamed, reduced and deleted as before.
    with app.app_context():
        sm = app.appbuilder.sm
        own = sm.add_role("戶政查詢")
        sm.add_permission_role(own, sm.add_permission_view_menu("can_index", "QueryView"))
        own_id = own.id
        db.session.commit()
    r = browser.post(
        f"/roles/edit/{own_id}", data={"name": "戶政查詢（新）", "csrf_token": token}, follow_redirects=True
    )
    assert _role(app, own_id) == ("戶政查詢（新）", 0)
    browser.post(f"/roles/delete/{own_id}", data={"csrf_token": token}, follow_redirects=True)
    assert _role(app, own_id) is None
