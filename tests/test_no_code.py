"""No code for new queries: an administrator links a new view in PostgreSQL and
builds a form for it through the API only; a clerk of the granted agency runs it."""

import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import PG_ADMIN_URL, api_token, bearer, try_and_grant


@pytest.fixture
def fire_records_db():
    """The fire department opens a read-only view on its own PostgreSQL database."""
    name = f"fire_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE fire_case (case_no varchar(20), door_address varchar(100), "
                          "owner_id varchar(10), damage varchar(20), occurred date)"))  # fmt: skip
        conn.execute(text("INSERT INTO fire_case VALUES "
                          "('F1151101', '示範縣東區中正路1段10號', 'A123456789', '全毀', '2026-11-01'), "
                          "('F1151102', '示範縣西區和平路5號', 'F131104093', '半毀', '2026-11-02')"))  # fmt: skip
        conn.execute(text("CREATE VIEW v_fire_damage AS SELECT case_no, door_address, owner_id, damage, occurred "
                          "FROM fire_case"))  # fmt: skip
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _post(client, token, path, body):
    r = client.post(path, json=body, headers=bearer(token))
    assert r.status_code == 201, (path, r.json)
    return r.json["id"]


def test_admin_links_a_new_postgresql_view_and_a_clerk_queries_it_without_code(app, client, fire_records_db):
    admin = api_token(client, "admin")
    agencies = {
        a["code"]: a["id"]
        for a in client.get("/api/v1/agencies/?q=(page_size:100)", headers=bearer(admin)).json["result"]
    }
    tag = uuid.uuid4().hex[:6]
    source = _post(client, admin, "/api/v1/sources/", {
        "code": f"FIRE-DB-{tag}", "name": "消防局火災案件", "kind": "sql", "agency": agencies["FIRE"],
        "host": fire_records_db.host, "port": fire_records_db.port or 5432, "database": fire_records_db.database,
        "account": fire_records_db.username, "secret": "not-needed-with-trust",
        "options": '{"dialect": "postgresql"}', "timeout": 3, "row_cap": 50, "enabled": True,
    })  # fmt: skip
    tested = client.post(f"/api/v1/sources/{source}/test", headers=bearer(admin)).json
    assert tested["ok"] is True and tested["latency_ms"] >= 0
    item = _post(
        client, admin, "/api/v1/business-items/", {"code": f"FIRE-TAX-{tag}", "name": "火災房屋稅減免", "active": True}
    )
    from flask import current_app

    with app.app_context():
        clerk_role = current_app.appbuilder.sm.find_role("Clerk").id
    grants = {"granted_agencies": [agencies["TAX"]], "granted_roles": [clerk_role]}
    # Granted only once tried: the form is made ungranted, built, tried, then granted.
    refused = client.post("/api/v1/query-forms/", json={"code": f"fire.early.{tag}", "title": "未試查", **grants},
                          headers=bearer(admin))  # fmt: skip
    assert refused.status_code == 400, refused.json
    form = _post(client, admin, "/api/v1/query-forms/", {
        "code": f"fire.damage.{tag}", "title": "火災建物毀損查詢", "agency": agencies["FIRE"], "active": True,
        "sort_order": 90, "business_items": [item],
    })  # fmt: skip
    _post(client, admin, "/api/v1/form-inputs/", {"form": form, "name": "id_no", "label": "所有權人身分證號",
                                                 "type": "national_id", "required": True, "sort_order": 1,
                                                 "max_length": 10})  # fmt: skip
    section = _post(client, admin, "/api/v1/form-sections/", {"form": form, "title": "火災案件", "source": source,
                                                             "target": "v_fire_damage", "display": "table",
                                                             "order_by": "occurred", "sort_order": 1})  # fmt: skip
    _post(
        client,
        admin,
        "/api/v1/section-filters/",
        {"section": section, "column": "owner_id", "op": "eq", "input_name": "id_no"},
    )
    for order, (column, label, fmt) in enumerate(
        [
            ("case_no", "案件編號", ""),
            ("door_address", "建物門牌", ""),
            ("damage", "毀損程度", ""),
            ("occurred", "發生日期", "roc_date"),
        ]
    ):
        _post(client, admin, "/api/v1/section-columns/", {"section": section, "column": column, "label": label,
                                                         "format": fmt, "mask": "", "sort_order": order})  # fmt: skip
    # A bad configuration is refused with a clear message, and nothing is stored.
    r = client.post("/api/v1/section-filters/", json={"section": section, "column": "owner_id; DROP TABLE x", "op": "eq",
                                                      "input_name": "id_no"}, headers=bearer(admin))  # fmt: skip
    assert r.status_code == 400

    try_and_grant(client, admin, form, {"id_no": "A123456789"}, grants)

    clerk = api_token(client, "clerk")
    forms = [f["code"] for f in client.get("/api/v1/query/forms", headers=bearer(clerk)).json["result"]]
    assert f"fire.damage.{tag}" in forms
    r = client.post("/api/v1/query/run", json={"form": f"fire.damage.{tag}", "case_no": "1151126-0099", "reason": "",
                                              "business_item": f"FIRE-TAX-{tag}", "params": {"id_no": "A123456789"}},
                    headers=bearer(clerk))  # fmt: skip
    assert r.status_code == 200, r.json
    section_out = r.json["sections"][0]
    assert section_out["error"] is None
    assert section_out["columns"] == ["案件編號", "建物門牌", "毀損程度", "發生日期"]
    assert section_out["rows"] == [["F1151101", "示範縣東區中正路1段10號", "全毀", "115/11/01"]]
    # A clerk of an agency the form was not granted to does not even see it.
    social = api_token(client, "clerk.social")
    assert f"fire.damage.{tag}" not in [
        f["code"] for f in client.get("/api/v1/query/forms", headers=bearer(social)).json["result"]
    ]


def test_a_source_secret_is_written_never_read_back_and_a_failed_test_says_why_in_plain_words(app, client):
    """Against the machine's MariaDB with a wrong password: the answer to
    every call leaves the secret out, it is stored encrypted, a PUT without
    it keeps it, and the connection test refuses in plain words, audited."""
    from sqlalchemy import select, text

    from app.extensions import db
    from app.models.audit import AuditEvent
    from app.models.sources import DataSource

    admin = api_token(client, "admin")
    secret = f"Wr0ng-{uuid.uuid4().hex[:10]}"
    r = client.post("/api/v1/sources/", json={
        "code": f"MARIA-{uuid.uuid4().hex[:6]}", "name": f"戶役政備援庫 {uuid.uuid4().hex[:4]}", "kind": "sql",
        "host": "127.0.0.1", "port": 3306, "database": "test", "account": "root", "secret": secret,
        "options": '{"dialect": "mysql"}', "timeout": 3, "row_cap": 50, "enabled": True,
    }, headers=bearer(admin))  # fmt: skip
    assert r.status_code == 201 and secret not in r.text and "secret" not in r.json["result"]
    source = r.json["id"]
    shown = client.get(f"/api/v1/sources/{source}", headers=bearer(admin))
    assert shown.status_code == 200 and secret not in shown.text
    renamed = client.put(f"/api/v1/sources/{source}", json={"timeout": 2}, headers=bearer(admin))
    assert renamed.status_code == 200 and secret not in renamed.text, renamed.json
    blank = client.put(f"/api/v1/sources/{source}", json={"secret": "", "timeout": 3}, headers=bearer(admin))
    assert blank.status_code == 200, blank.json  # an empty password field keeps the stored one, as on the screen
    with app.app_context():
        stored = db.session.execute(text("SELECT secret FROM data_source WHERE id = :i"), {"i": source}).scalar()
        assert stored and secret not in stored  # encrypted at rest...
        assert db.session.get(DataSource, source).secret == secret  # ...and kept by the PUT without it

    tested = client.post(f"/api/v1/sources/{source}/test", headers=bearer(admin))
    assert tested.json["ok"] is False and tested.json["latency_ms"] is None
    assert "拒絕此帳號或密碼" in tested.json["message"] and secret not in tested.text
    with app.app_context():
        src = db.session.get(DataSource, source)
        assert src.last_ok is False and "拒絕此帳號或密碼" in src.last_error and secret not in src.last_error
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "source_test", AuditEvent.object_id == str(source))
        ).one()
        assert event.outcome == "error" and secret not in (event.detail or "")


def test_the_administrator_screens_list_add_and_test_sources_and_forms_in_chinese(app, client, tmp_path):
    """The screens a county administrator uses instead of code: the lists and
    add forms of data sources and query forms, and the "test connection"
    action, which reports the latency or the error in plain words."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models.sources import DataSource
    from tests import factories
    from tests.conftest import csrf_token, login

    with app.app_context():
        good = factories.sqlite_source(f"SCR-{uuid.uuid4().hex[:6]}", factories.people_db(tmp_path / "screen.db"))
        gone = factories.sqlite_source(f"SCR-{uuid.uuid4().hex[:6]}", str(tmp_path / "missing.db"))
        db.session.commit()
        good_id, gone_id, good_name, gone_name = good.id, gone.id, good.name, gone.name
    login(client, "admin")
    sources = client.get("/datasourceview/list/")
    assert sources.status_code == 200 and "資料來源" in sources.text and "來源代碼" in sources.text
    shown = client.get(f"/datasourceview/show/{good_id}")
    assert shown.status_code == 200 and good_name in shown.text and "測試連線" in shown.text
    add = client.get("/datasourceview/add")
    assert add.status_code == 200 and 'type="password"' in add.text
    forms = client.get("/queryformview/list/")
    assert forms.status_code == 200 and "查詢表單" in forms.text
    assert client.get("/queryformview/add").status_code == 200

    token = csrf_token(sources.text)
    ok = client.post("/datasourceview/action_post", data={"action": "test_connection", "rowid": good_id,
                                                          "csrf_token": token}, follow_redirects=True)  # fmt: skip
    assert f"已連線至 {good_name}，耗時" in ok.text
    failed = client.post("/datasourceview/action_post", data={"action": "test_connection", "rowid": gone_id,
                                                              "csrf_token": token}, follow_redirects=True)  # fmt: skip
    assert f"無法連線至 {gone_name}：找不到檔案：" in failed.text
    with app.app_context():
        health = {s.id: (s.last_ok, s.last_error) for s in db.session.scalars(
            select(DataSource).where(DataSource.id.in_([good_id, gone_id])))}  # fmt: skip
    assert health[good_id] == (True, None) and health[gone_id][0] is False and health[gone_id][1]
