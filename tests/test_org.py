"""Agencies and users: screens, REST, separation of duties, clear messages."""

from sqlalchemy import func, select

from app.extensions import db
from app.models.org import Agency, PlatformUser
from app.services.roles import RESOLVE_ANOMALIES, TRANSFER_FILES, holders_of
from tests.conftest import api_token, bearer, login


def _count_agencies(app):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Agency))


def test_demo_world_has_the_agencies_and_accounts_the_design_names(app):
    with app.app_context():
        kinds = [a.kind for a in db.session.scalars(select(Agency))]
        assert len(kinds) >= 10
        assert kinds.count("household") == 2 and kinds.count("township") == 2
        for kind in ("land", "tax", "social", "fire", "labour", "motor"):
            assert kind in kinds
        clerk = db.session.scalar(select(PlatformUser).where(PlatformUser.username == "clerk"))
        assert clerk.agency.kind == "tax" and [r.name for r in clerk.roles] == ["Clerk"]
        social = db.session.scalar(select(PlatformUser).where(PlatformUser.username == "clerk.social"))
        assert social.agency.kind == "social"


def test_holders_of_a_capability_are_the_agencys_active_users_whose_roles_hold_it(app):
    with app.app_context():
        tax = db.session.scalar(select(Agency).where(Agency.code == "TAX"))
        names = [u.username for u in holders_of(db.session, RESOLVE_ANOMALIES, "TAX")]
        assert names == sorted(names) and {"supervisor.tax", "auditor.tax"} <= set(names)
        assert not {"clerk", "handler.tax", "supervisor.land", "auditor"} & set(names)
        assert [u.username for u in holders_of(db.session, RESOLVE_ANOMALIES, agency_id=tax.id)] == names
        everywhere = [u.username for u in holders_of(db.session, RESOLVE_ANOMALIES)]
        assert {"supervisor.tax", "supervisor.land", "auditor"} <= set(everywhere) and "clerk" not in everywhere
        assert [u.username for u in holders_of(db.session, TRANSFER_FILES, "TAX")] == ["transfer.tax"]
        sup = db.session.scalar(select(PlatformUser).where(PlatformUser.username == "supervisor.tax"))
        sup.active = False
        db.session.commit()
        try:
            assert "supervisor.tax" not in {u.username for u in holders_of(db.session, RESOLVE_ANOMALIES, "TAX")}
        finally:
            sup.active = True
            db.session.commit()


def test_seeding_twice_creates_nothing_new(app, runner):
    before = _count_agencies(app)
    result = runner.invoke(args=["seed", "demo"])
    assert result.exit_code == 0
    assert "accounts created: none" in result.output
    assert _count_agencies(app) == before


def test_admin_adds_an_agency_on_the_screen_and_a_duplicate_code_is_refused_in_chinese(app, client):
    login(client, "admin")
    r = client.post(
        "/agencyview/add",
        data={
            "code": "hh-north",
            "name": "示範縣北區戶政事務所",
            "kind": "household",
            "email": "n@demo.gov.tw",
            "active": "y",
        },
        follow_redirects=True,
    )
    assert r.status_code == 200
    with app.app_context():
        created = db.session.scalar(select(Agency).where(Agency.code == "HH-NORTH"))
        assert created is not None and created.name == "示範縣北區戶政事務所"
    before = _count_agencies(app)
    r = client.post(
        "/agencyview/add",
        data={"code": "HH-NORTH", "name": "另一個機關", "kind": "household", "active": "y"},
        follow_redirects=True,
    )
    assert "已存在" in r.text or "已由其他機關使用" in r.text
    assert _count_agencies(app) == before
    with app.app_context():
        db.session.delete(db.session.scalar(select(Agency).where(Agency.code == "HH-NORTH")))
        db.session.commit()


def test_agency_api_creates_updates_and_refuses_duplicates_and_bad_codes(app, client):
    token = api_token(client, "admin")
    r = client.post(
        "/api/v1/agencies/", json={"code": "API-1", "name": "API 測試機關", "kind": "other"}, headers=bearer(token)
    )
    assert r.status_code == 201, r.json
    pk = r.json["id"]
    r = client.put(f"/api/v1/agencies/{pk}", json={"email": "api1@demo.gov.tw"}, headers=bearer(token))
    assert r.status_code == 200, r.json
    before = _count_agencies(app)
    r = client.post(
        "/api/v1/agencies/?_l_=zh_TW", json={"code": "api-1", "name": "重複", "kind": "other"}, headers=bearer(token)
    )
    assert r.status_code == 400
    assert "API-1" in r.json["message"] and "已由其他機關使用" in r.json["message"]
    r = client.post(
        "/api/v1/agencies/", json={"code": "x y!", "name": "壞代碼", "kind": "other"}, headers=bearer(token)
    )
    assert r.status_code == 400
    assert _count_agencies(app) == before
    assert client.delete(f"/api/v1/agencies/{pk}", headers=bearer(token)).status_code == 200


def test_a_clerk_cannot_manage_agencies(client):
    token = api_token(client, "clerk")
    r = client.post("/api/v1/agencies/", json={"code": "NOPE", "name": "不行", "kind": "other"}, headers=bearer(token))
    assert r.status_code in (401, 403)


def test_admin_creates_a_user_with_agency_title_and_phone_through_the_api(app, client):
    token = api_token(client, "admin")
    with app.app_context():
        land = db.session.scalar(select(Agency).where(Agency.code == "LAND"))
        from flask import current_app

        handler_role = current_app.appbuilder.sm.find_role("Handler")
        land_id, role_id = land.id, handler_role.id
    r = client.post(
        "/api/v1/users/",
        json={
            "username": "handler.land2",
            "first_name": "二",
            "last_name": "王",
            "email": "h2@demo.gov.tw",
            "phone": "03-1234567",
            "title": "約聘承辦人",
            "active": True,
            "agency": land_id,
            "roles": [role_id],
            "password": "Secret-harbour-123",
        },
        headers=bearer(token),
    )
    assert r.status_code == 201, r.json
    pk = r.json["id"]
    shown = client.get(f"/api/v1/users/{pk}", headers=bearer(token)).json["result"]
    assert shown["agency"]["code"] == "LAND" and shown["title"] == "約聘承辦人" and shown["phone"] == "03-1234567"
    assert "password" not in shown
    assert api_token(client, "handler.land2", "Secret-harbour-123")
    assert client.delete(f"/api/v1/users/{pk}", headers=bearer(token)).status_code == 200


def test_auditor_together_with_admin_or_clerk_is_refused_on_screen_and_api(app, client):
    with app.app_context():
        from flask import current_app

        sm = current_app.appbuilder.sm
        auditor_id, clerk_id, admin_id = (sm.find_role(n).id for n in ("Auditor", "Clerk", "Admin"))
        tax_id = db.session.scalar(select(Agency.id).where(Agency.code == "TAX"))
        user_id = db.session.scalar(select(PlatformUser.id).where(PlatformUser.username == "auditor"))
    token = api_token(client, "admin")
    r = client.put(
        f"/api/v1/users/{user_id}?_l_=zh_TW",
        json={"roles": [auditor_id, clerk_id], "agency": tax_id},
        headers=bearer(token),
    )
    assert r.status_code == 400
    assert "職務分離" in r.json["message"]
    r = client.post(
        "/api/v1/users/",
        json={
            "username": "both",
            "first_name": "a",
            "last_name": "b",
            "email": "both@demo.gov.tw",
            "roles": [auditor_id, admin_id],
        },
        headers=bearer(token),
    )
    assert r.status_code == 400
    # On the screen: the edit form flashes the same message and changes nothing.
    login(client, "admin")
    r = client.post(
        f"/users/edit/{user_id}",
        data={
            "username": "auditor",
            "first_name": "稽核",
            "last_name": "郭",
            "email": "auditor@county.demo.gov.tw",
            "active": "y",
            "roles": [str(auditor_id), str(admin_id)],
        },
        follow_redirects=True,
    )
    assert "職務分離" in r.text
    with app.app_context():
        user = db.session.get(PlatformUser, user_id)
        assert [r.name for r in user.roles] == ["Auditor"]
        assert db.session.scalar(select(PlatformUser).where(PlatformUser.username == "both")) is None


def test_a_group_cannot_smuggle_a_second_incompatible_role(app, client):
    from flask import current_app
    from flask_appbuilder.security.sqla.models import Group

    from app.services.errors import InvalidInput

    with app.app_context():
        sm = current_app.appbuilder.sm
        auditor = sm.find_user(username="auditor")
        group = Group(name="資訊小組", label="資訊小組", roles=[sm.find_role("Admin")])
        db.session.add(group)
        db.session.commit()
        group_id = group.id
        auditor.groups = [group]
        try:
            db.session.commit()
            raise AssertionError("an auditor joined a group holding Admin")
        except InvalidInput as exc:
            assert "Separation of duties" in str(exc) or "職務分離" in str(exc)
            db.session.rollback()
        assert [g.name for g in sm.find_user(username="auditor").groups] == []
        db.session.delete(db.session.get(Group, group_id))
        db.session.commit()


# --- list search filters in words -------------------------------------------------------


def _filter_widgets(html: str) -> dict[str, str]:
    """FAB's list page: column -> the HTML of its search filter's input (JSON in the page's script)."""
    import json
    import re

    found = re.search(r"new AdminFilters\(\s*'#filter_form',\s*\{.*?\},\s*(\{.*?\}),", html, re.S)
    assert found, "no search filters on the page"
    return json.loads(found.group(1))


def _options(widget: str) -> dict[str, str]:
    """A select's options: value -> text."""
    import html as html_lib
    import re

    return {v: html_lib.unescape(t) for v, t in re.findall(r'<option[^>]*value="([^"]*)"[^>]*>(.*?)</option>', widget)}


def test_list_search_filters_offer_roles_kinds_and_states_in_words_not_codes(app, client):
    login(client, "admin")
    with app.app_context():
        sm = app.appbuilder.sm
        auditor_role = sm.find_role("Auditor").id
    client.get("/lang/zh_TW", follow_redirects=True)
    users = client.get("/users/list/")
    assert users.status_code == 200
    roles = _options(_filter_widgets(users.text)["roles"])
    assert {"系統管理員", "查詢人員", "稽核人員", "表單設計"} <= set(roles.values())
    assert not {"Admin", "Clerk", "Auditor", "FormDesigner"} & set(roles.values())
    assert roles[str(auditor_role)] == "稽核人員"  # the filter still sends the role's id
    agencies = _options(_filter_widgets(users.text)["agency"])
    assert agencies["__None"] == "（無）"  # an optional relation's empty choice, not FAB's "__None"
    groups = _options(_filter_widgets(client.get("/groups/list/").text)["roles"])
    assert "案件主管" in groups.values() and "Supervisor" not in groups.values()
    # columns of codes: the add form's choices, or the screen's labels
    kinds = _options(_filter_widgets(client.get("/agencyview/list/").text)["kind"])
    assert kinds["household"] == "戶政事務所" and kinds["land"] == "地政事務所"
    audit = _filter_widgets(client.get("/auditeventview/list/").text)
    assert _options(audit["outcome"])["refused"] == "拒絕" and _options(audit["action"])["login"] == "登入"
    assert _options(_filter_widgets(client.get("/outboxview/list/").text)["status"])["failed"] == "寄送失敗"
    states = _options(_filter_widgets(client.get("/paymentlistview/list/").text)["state"])
    assert states["created"] == "已建立" and states["failed"] == "繳費失敗"
    # the filter filters: the Auditor role's users only
    found = client.get(f"/users/list/?_flt_0_roles={auditor_role}")
    assert ">auditor<" in found.text and ">clerk<" not in found.text
    # English when chosen
    client.get("/lang/en", follow_redirects=True)
    english = _options(_filter_widgets(client.get("/users/list/").text)["roles"])
    assert {"System administrator", "Query clerk", "Auditor"} <= set(english.values())
    assert _options(_filter_widgets(client.get("/agencyview/list/").text)["kind"])["household"] != "household"
    client.get("/lang/zh_TW", follow_redirects=True)
