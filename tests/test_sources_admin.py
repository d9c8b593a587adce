"""The administrators' data sources through the API and the screen: one schema,
commands that own their transaction, the secret write-only, the connection
test declared in the API's contract."""

import uuid

import pytest

from tests.conftest import api_token, bearer
from tests.fax_kind import fax_kind  # noqa: F401  (the fixture)


def _source(**overrides) -> dict:
    body = {
        "code": f"SRC-{uuid.uuid4().hex[:6]}",
        "name": f"來源 {uuid.uuid4().hex[:4]}",
        "kind": "sql",
        "host": "127.0.0.1",
        "port": 3306,
        "database": "test",
        "account": "root",
        "secret": "x",
        "options": '{"dialect": "mysql"}',
        "timeout": 3,
        "row_cap": 50,
        "enabled": True,
    }
    body.update(overrides)
    return body


def test_a_source_with_wrong_types_unknown_fields_or_kind_is_refused_and_nothing_is_stored(app, client):
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models.sources import DataSource

    admin = api_token(client, "admin")
    with app.app_context():
        before = db.session.scalar(select(func.count()).select_from(DataSource))
    for bad in (
        _source(port=True),  # a boolean is not a port
        _source(port="3306"),  # nor is a text
        _source(timeout="3"),
        _source(row_cap=10**30),
        _source(surprise=1),  # unknown fields are refused
        _source(kind="fax"),  # not a registered kind
        _source(agency=True),
        _source(options='{"dialect": "db2"}'),  # the kind's own schema
        _source(options='{"dialect": "mysql", "surprise": 1}'),
        _source(host=None),  # a MySQL source needs a host
        _source(kind="textfile"),  # a text file has no host, and needs a path
    ):
        r = client.post("/api/v1/sources/", json=bad, headers=bearer(admin))
        assert 400 <= r.status_code < 500, (bad, r.status_code, r.json)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(DataSource)) == before


def test_a_source_is_created_changed_and_deleted_with_its_audit_events_and_never_shows_its_secret(app, client):
    from sqlalchemy import select

    from app.extensions import db
    from app.models.audit import AuditEvent

    admin = api_token(client, "admin")
    r = client.post("/api/v1/sources/", json=_source(secret="Very-S3cret"), headers=bearer(admin))
    assert r.status_code == 201, r.json
    source = r.json["id"]
    assert "secret" not in r.json["result"] and "Very-S3cret" not in r.text
    changed = client.put(f"/api/v1/sources/{source}", json={"row_cap": 20}, headers=bearer(admin))
    assert changed.status_code == 200 and changed.json["result"]["row_cap"] == 20 and "Very-S3cret" not in changed.text
    shown = client.get(f"/api/v1/sources/{source}", headers=bearer(admin))
    assert shown.json["result"]["row_cap"] == 20 and "secret" not in shown.json["result"]
    assert client.delete(f"/api/v1/sources/{source}", headers=bearer(admin)).status_code == 200
    assert client.get(f"/api/v1/sources/{source}", headers=bearer(admin)).status_code == 404
    with app.app_context():
        actions = db.session.scalars(
            select(AuditEvent.action).where(AuditEvent.object_type == "DataSource", AuditEvent.object_id == str(source))
        ).all()
        assert {"create", "update", "delete"} <= set(actions)


def test_testing_a_source_that_does_not_exist_is_a_404_and_the_contract_declares_the_test(app, client):
    from tests.openapi_check import resolved, served_spec

    admin = api_token(client, "admin")
    assert client.post("/api/v1/sources/999999999/test", headers=bearer(admin)).status_code == 404
    spec = served_spec(app)
    operation = spec["paths"]["/api/v1/sources/{pk}/test"]["post"]
    assert {"200", "401", "404"} <= set(operation["responses"])
    assert resolved(spec, operation["parameters"][0])["schema"]["maximum"] == 2**63 - 1


def test_the_add_screen_offers_every_registered_kind_by_its_label(client):
    from tests.conftest import login

    login(client, "admin")
    page = client.get("/datasourceview/add")
    assert page.status_code == 200
    for kind in ("sql", "textfile", "rest", "egate"):
        assert f'value="{kind}"' in page.text
    assert "資料庫（SQL）" in page.text and "戶役政電子閘門" in page.text


def test_the_form_designer_reads_what_a_source_offers_or_why_it_cannot_say(app, client, tmp_path):
    from app.extensions import db
    from tests import factories

    with app.app_context():
        good = factories.sqlite_source(f"DSC-{uuid.uuid4().hex[:6]}", factories.people_db(tmp_path / "describe.db"))
        gone = factories.sqlite_source(f"DSC-{uuid.uuid4().hex[:6]}", str(tmp_path / "missing.db"))
        db.session.commit()
        good_id, gone_id = good.id, gone.id
    admin = api_token(client, "admin")
    described = client.get(f"/api/v1/sources/{good_id}/describe", headers=bearer(admin)).json
    assert described["ok"] is True
    [people] = [e for e in described["entities"] if e["target"] == "v_people"]
    assert people["kind"] == "table"
    assert [c["name"] for c in people["columns"]] == ["id_no", "name", "district", "income"]
    assert "INT" in people["columns"][3]["type"].upper()
    missing = client.get(f"/api/v1/sources/{gone_id}/describe", headers=bearer(admin)).json
    assert missing["ok"] is False and "找不到檔案：" in missing["message"] and missing["entities"] == []
    assert client.get("/api/v1/sources/999999999/describe", headers=bearer(admin)).status_code == 404


def test_the_screen_refuses_what_the_api_refuses_and_saves_what_it_accepts(app, client, tmp_path):
    """The add screen's values go through the API's schema and the kind's: a
    pool of 1,000 connections or a MySQL source without a host is refused with
    the fields named, and nothing is stored; a valid one is saved."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models.sources import DataSource
    from tests import factories
    from tests.conftest import csrf_token, login

    login(client, "admin")
    token = csrf_token(client.get("/datasourceview/add").text)
    code = f"SCR-{uuid.uuid4().hex[:6]}"
    form = {
        "csrf_token": token,
        "code": code,
        "name": "螢幕新增",
        "kind": "sql",
        "database": "",
        "timeout": "3",
        "row_cap": "50",
        "pool_size": "5",
        "options": '{"dialect": "sqlite"}',
        "enabled": "y",
    }
    too_big = client.post(
        "/datasourceview/add", data={**form, "pool_size": "1000", "database": "/x.db"}, follow_redirects=True
    )
    assert "pool_size" in too_big.text
    no_host = client.post(
        "/datasourceview/add", data={**form, "options": '{"dialect": "mysql"}', "database": "d"}, follow_redirects=True
    )
    assert "host" in no_host.text
    with app.app_context():
        assert db.session.scalar(select(DataSource).where(DataSource.code == code)) is None
    good = factories.people_db(tmp_path / "screen-add.db")
    client.post("/datasourceview/add", data={**form, "database": good}, follow_redirects=True)
    with app.app_context():
        saved = db.session.scalar(select(DataSource).where(DataSource.code == code))
        assert saved is not None and saved.database == good and saved.pool_size == 5


@pytest.mark.usefixtures("fax_kind")
def test_a_new_kind_dropped_in_as_one_module_is_saved_validated_described_tested_and_queried(app, client):
    """The throwaway fax kind (tests/fax_kind.py): the screen offers it, the
    API refuses settings its own schema refuses (a text where its options want
    a number, an option it does not know, a field it does not use), saves the
    good ones, describes and tests it, and a form over it answers a clerk's
    query with as many pages as its options say. No file of the platform was
    edited for it."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models.queries import FormInput, FormSection, QueryForm, SectionColumn, SectionFilter
    from tests import factories
    from tests.conftest import login

    login(client, "admin")
    assert 'value="fax"' in client.get("/datasourceview/add").text
    admin = api_token(client, "admin")
    fax = {"kind": "fax", "url": "http://fax.example", "host": None, "port": None, "database": None, "account": None}
    for bad in (
        _source(**fax, options='{"inbox": "county", "pages": "3"}'),
        _source(**fax, options='{"inbox": "county", "pages": 3, "surprise": 1}'),
        _source(**{**fax, "host": "fax.example"}, options='{"inbox": "county", "pages": 3}'),
    ):
        refused = client.post("/api/v1/sources/", json=bad, headers=bearer(admin))
        assert refused.status_code == 400, (bad, refused.json)
    created = client.post("/api/v1/sources/", json=_source(**fax, options='{"inbox": "county", "pages": 3}'),
                          headers=bearer(admin))  # fmt: skip
    assert created.status_code == 201, created.json
    source = created.json["id"]
    form_code = f"test.fax.{uuid.uuid4().hex[:6]}"
    try:
        described = client.get(f"/api/v1/sources/{source}/describe", headers=bearer(admin)).json
        assert described["ok"] is True
        assert [(e["target"], e["label"]) for e in described["entities"]] == [("county", "http://fax.example")]
        assert [c["name"] for c in described["entities"][0]["columns"]] == ["page", "inbox", "from_no"]
        assert client.post(f"/api/v1/sources/{source}/test", headers=bearer(admin)).json["ok"] is True

        with app.app_context():
            src = db.session.get(factories.DataSource, source)
            form = QueryForm(code=form_code, title="傳真收件匣", active=True, granted_agencies=[factories.agency("TAX")],
                             granted_roles=[app.appbuilder.sm.find_role("Clerk")],
                             business_items=[factories.business_item()])  # fmt: skip
            form.inputs = [FormInput(name="id_no", label="身分證統一編號", type="national_id", required=True)]
            section = FormSection(title="傳真", source=src, target="county", display="table", sort_order=1)
            section.filters = [SectionFilter(column="from_no", op="eq", input_name="id_no")]
            section.columns = [SectionColumn(column="page", label="頁", sort_order=1)]
            form.sections = [section]
            db.session.add(form)
            db.session.commit()
        payload = {"form": form_code, "case_no": "1151126-0001", "reason": "", "business_item": "TAX-CHECK",
                   "params": {"id_no": "A123456789"}}  # fmt: skip
        answered = client.post("/api/v1/query/run", json=payload, headers=bearer(api_token(client, "clerk")))
        assert answered.status_code == 200, answered.json
        [pages] = answered.json["sections"]
        assert pages["error"] is None and len(pages["rows"]) == 3
    finally:
        with app.app_context():
            form = db.session.scalar(select(QueryForm).where(QueryForm.code == form_code))
            if form is not None:
                db.session.delete(form)
                db.session.commit()
        assert client.delete(f"/api/v1/sources/{source}", headers=bearer(admin)).status_code == 200


def test_a_source_a_query_form_reads_cannot_be_deleted_and_the_answer_names_the_form(app, client, tmp_path):
    """Found in review: on SQLite the source went and the form's section was
    left reading nothing; on PostgreSQL the API called it a duplicate and the
    screen showed the database's error text. Now both refuse in the
    administrator's language, naming the form, and nothing is deleted."""
    from app.extensions import db
    from tests import factories
    from tests.conftest import csrf_token, login

    code = f"test.used.{uuid.uuid4().hex[:6]}"
    with app.app_context():
        src = factories.sqlite_source(f"USED-{uuid.uuid4().hex[:6]}", factories.people_db(tmp_path / "used.db"))
        factories.people_form(code, src)
        source = src.id
    admin = api_token(client, "admin")
    refused = client.delete(f"/api/v1/sources/{source}", headers=bearer(admin))
    assert refused.status_code == 409, refused.json
    assert f"查詢表單（{code}）仍從此資料來源讀取資料" in refused.json["message"]
    login(client, "admin")
    token = csrf_token(client.get(f"/datasourceview/show/{source}").text)
    page = client.post(f"/datasourceview/delete/{source}", data={"csrf_token": token}, follow_redirects=True)
    assert f"查詢表單（{code}）仍從此資料來源讀取資料" in page.text
    assert "psycopg" not in page.text and "DELETE FROM" not in page.text
    with app.app_context():
        assert db.session.get(factories.DataSource, source) is not None
