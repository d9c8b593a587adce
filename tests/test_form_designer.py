"""The form designer (issue 18, item 4): a whole query form saved in one go,
its tables, views, files and columns checked against what each source
describes (SQL on SQLite, PostgreSQL and MariaDB; text files; the e-gate; web
services), a mistyped column refused with nothing saved, and "try it" run
with sample input, audited as a designer test and never stored as a query."""

from __future__ import annotations

import re
import uuid

import pytest
from flask import current_app
from sqlalchemy import create_engine, func, select

from app.extensions import db
from app.models.audit import AuditEvent
from app.models.queries import FormSection, QueryForm, QueryLog, SectionColumn
from app.models.sources import DataSource
from app.services import actors
from app.services.errors import Conflict, InvalidInput
from app.services.query import designer
from tests import factories
from tests.conftest import PG_ADMIN_URL, api_token, bearer, login

MARIADB_ADMIN_URL = "mysql+pymysql://root@127.0.0.1:3306/"
FIRE_ROWS = (
    "('F1151101', '示範縣東區中正路1段10號', 'A123456789', '全毀', '2026-11-01'), "
    "('F1151102', '示範縣西區和平路5號', 'F131104093', '半毀', '2026-11-02')"
)


def _fire_tables(engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE fire_case (case_no varchar(20), door_address varchar(100), "
                             "owner_id varchar(10), damage varchar(20), occurred date)")  # fmt: skip
        conn.exec_driver_sql(f"INSERT INTO fire_case VALUES {FIRE_ROWS}")
        conn.exec_driver_sql("CREATE VIEW v_fire_damage AS SELECT case_no, door_address, owner_id, damage, occurred "
                             "FROM fire_case")  # fmt: skip
    engine.dispose()


@pytest.fixture(scope="module")
def fire_postgres():
    """The fire department's PostgreSQL database: a table and a view over it."""
    name = f"fire_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    _fire_tables(create_engine(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"))
    yield name
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(scope="module")
def fire_mariadb():
    name = f"fire_{uuid.uuid4().hex[:8]}"
    admin = create_engine(MARIADB_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    _fire_tables(create_engine(MARIADB_ADMIN_URL + name + "?charset=utf8mb4"))
    yield name
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
    admin.dispose()


def _sql_source(dialect: str, database: str) -> int:
    port, account = (5432, "postgres") if dialect == "postgresql" else (3306, "root")
    src = DataSource(code=f"FIRE-{dialect[:2].upper()}-{uuid.uuid4().hex[:6]}", name=f"消防局 {dialect}", kind="sql",
                     host="127.0.0.1", port=port, database=database, account=account, timeout=5, row_cap=50,
                     options=f'{{"dialect": "{"mysql" if dialect == "mariadb" else dialect}"}}', enabled=True)  # fmt: skip
    db.session.add(src)
    db.session.commit()
    return src.id


def _source_id(code: str) -> int:
    return db.session.scalar(select(DataSource.id).where(DataSource.code == code))


def _designer() -> actors.Actor:
    user = current_app.appbuilder.sm.find_user("designer")
    return actors.for_user(user, session=db.session)


def fire_draft(source: int, code: str, owner_column: str = "owner_id", extra_column: str | None = None) -> dict:
    """A whole form, as the designer page or the API hands it over."""
    sm = current_app.appbuilder.sm
    columns = [
        {"column": "case_no", "label": "案件編號"},
        {"column": "door_address", "label": "建物門牌"},
        {"column": "damage", "label": "毀損程度"},
        {"column": "occurred", "label": "發生日期", "format": "roc_date"},
    ]
    item = factories.business_item()
    db.session.commit()
    if extra_column:
        columns.append({"column": extra_column, "label": "所有權人電話"})
    return {
        "code": code,
        "title": "火災建物毀損查詢",
        "description": "",
        "agency": factories.agency("FIRE").id,
        "active": True,
        "sort_order": 90,
        "granted_agencies": [factories.agency("TAX").id],
        "granted_roles": [sm.find_role("Clerk").id],
        "business_items": [item.id],
        "inputs": [
            {"name": "id_no", "label": "所有權人身分證號", "type": "national_id", "required": True, "max_length": 10}
        ],  # fmt: skip
        "sections": [
            {
                "title": "火災案件",
                "source": source,
                "target": "v_fire_damage",
                "display": "table",
                "order_by": "occurred",
                "filters": [{"column": owner_column, "op": "eq", "input": "id_no", "constant": ""}],
                "columns": columns,
            }
        ],
    }


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


# --- describe, per kind ---------------------------------------------------------


@pytest.mark.parametrize("dialect", ["postgresql", "mariadb"])
def test_the_designer_describes_tables_and_views_of_postgresql_and_mariadb_sources(
    app, dialect, fire_postgres, fire_mariadb
):
    with app.app_context():
        source = _sql_source(dialect, fire_postgres if dialect == "postgresql" else fire_mariadb)
        described = designer.describe(db.session, source)
    assert described.ok, described.message
    entities = {e.target: e for e in described.entities}
    assert entities["fire_case"].kind == "table" and entities["v_fire_damage"].kind == "view"
    assert [c.name for c in entities["v_fire_damage"].columns] == [
        "case_no", "door_address", "owner_id", "damage", "occurred",
    ]  # fmt: skip


def test_the_designer_describes_the_demo_sqlite_file_egate_and_web_service_sources(app):
    with app.app_context():
        land, tax, egate, biz = (designer.describe(db.session, _source_id(code))
                                 for code in ("LAND-DB", "TAX-FILE", "HH-EGATE", "BIZ-API"))  # fmt: skip
    assert land.ok and {"land_parcel", "v_land_marking_ownership"} <= {e.target for e in land.entities}
    [file] = tax.entities
    assert file.kind == "file" and file.target == "" and "統一編號/身分證號" in [c.name for c in file.columns]
    rq02 = {e.target: e for e in egate.entities}["RQ02"]
    assert rq02.kind == "transaction" and rq02.inputs == ("id_no",) and "household_no" in [c.name for c in rq02.columns]
    assert biz.ok and biz.entities == ()  # the web service's administrator declared nothing


# --- saving whole, refusing what the source does not have ------------------------------------


def test_a_whole_form_is_saved_in_one_go_and_a_clerk_of_the_granted_agency_runs_it(app, client, fire_postgres):
    code = f"fire.damage.{uuid.uuid4().hex[:6]}"
    with app.app_context():
        source = _sql_source("postgresql", fire_postgres)
        draft = fire_draft(source, code)
        assert designer.try_form(db.session, _designer(), draft, {"id_no": "A123456789"}).outcome == "ok"
        saved = designer.save_form(db.session, _designer(), draft)
        form = db.session.get(QueryForm, saved.id)
        assert (len(form.inputs), len(form.sections), len(form.sections[0].columns)) == (1, 1, 4)
        event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "form_designed",
                                                            AuditEvent.object_id == str(saved.id))).one()  # fmt: skip
        assert event.actor == "designer" and '"sections": 1' in event.detail
    clerk = api_token(client, "clerk")
    r = client.post("/api/v1/query/run", json={"form": code, "case_no": "1151126-0099", "reason": "",
                                              "business_item": "TAX-CHECK", "params": {"id_no": "A123456789"}},
                    headers=bearer(clerk))  # fmt: skip
    assert r.status_code == 200, r.json
    assert r.json["sections"][0]["rows"] == [["F1151101", "示範縣東區中正路1段10號", "全毀", "115/11/01"]]


@pytest.mark.parametrize("dialect", ["postgresql", "mariadb"])
def test_a_mistyped_column_is_refused_naming_it_and_nothing_is_saved(app, dialect, fire_postgres, fire_mariadb):
    code = f"fire.typo.{uuid.uuid4().hex[:6]}"
    with app.app_context(), app.test_request_context(headers={"Accept-Language": "zh-TW"}):
        source = _sql_source(dialect, fire_postgres if dialect == "postgresql" else fire_mariadb)
        before = (_count(QueryForm), _count(FormSection), _count(SectionColumn))
        with pytest.raises(InvalidInput) as refused:
            designer.save_form(db.session, _designer(), fire_draft(source, code, extra_column="owner_phone"))
        assert str(refused.value) == "區段「火災案件」：v_fire_damage 沒有欄位「owner_phone」。"
        with pytest.raises(InvalidInput, match="owner_idd"):  # a filter's column too
            designer.save_form(db.session, _designer(), fire_draft(source, code, owner_column="owner_idd"))
        wrong_view = fire_draft(source, code)
        wrong_view["sections"][0]["target"] = "v_fire_damages"
        with pytest.raises(InvalidInput, match="v_fire_damages"):
            designer.save_form(db.session, _designer(), wrong_view)
        assert (_count(QueryForm), _count(FormSection), _count(SectionColumn)) == before
        assert db.session.scalar(select(QueryForm).where(QueryForm.code == code)) is None


def test_an_edit_with_a_typo_leaves_the_stored_form_as_it_was(app, fire_postgres):
    code = f"fire.edit.{uuid.uuid4().hex[:6]}"
    with app.app_context(), app.test_request_context(headers={"Accept-Language": "zh-TW"}):
        source = _sql_source("postgresql", fire_postgres)
        designer.try_form(db.session, _designer(), fire_draft(source, code), {"id_no": "A123456789"})
        saved = designer.save_form(db.session, _designer(), fire_draft(source, code))
        stored = designer.definition(db.session, saved.id)
        draft = fire_draft(source, code, extra_column="owner_phone")
        draft["title"] = "改過的標題"
        with pytest.raises(InvalidInput, match="owner_phone"):
            designer.save_form(db.session, _designer(), draft, saved.id)
        db.session.expire_all()
        assert designer.definition(db.session, saved.id) == stored


def test_a_filter_picks_one_of_the_forms_own_inputs(app, fire_postgres):
    code = f"fire.input.{uuid.uuid4().hex[:6]}"
    with app.app_context(), app.test_request_context(headers={"Accept-Language": "zh-TW"}):
        source = _sql_source("postgresql", fire_postgres)
        draft = fire_draft(source, code)
        draft["sections"][0]["filters"][0]["input"] = "owner_no"
        with pytest.raises(InvalidInput, match="owner_no"):
            designer.save_form(db.session, _designer(), draft)
        assert db.session.scalar(select(QueryForm).where(QueryForm.code == code)) is None


def test_the_egate_is_asked_only_by_the_fields_its_transaction_takes(app):
    with app.app_context(), app.test_request_context(headers={"Accept-Language": "zh-TW"}):
        draft = fire_draft(_source_id("HH-EGATE"), f"hh.{uuid.uuid4().hex[:6]}")
        draft["sections"][0].update(target="RQ02", order_by="", filters=[{"column": "name", "input": "id_no"}],
                                    columns=[{"column": "name", "label": "姓名"}])  # fmt: skip
        with pytest.raises(InvalidInput, match="id_no"):
            designer.save_form(db.session, _designer(), draft)


def test_every_demo_form_passes_the_designers_checks_unchanged(app):
    """The checks refuse typos, not the forms that work: each seeded form, re-saved whole, is the same."""
    with app.app_context():
        ids = db.session.scalars(select(QueryForm.id).order_by(QueryForm.id)).all()
        for form_id in ids:
            before = designer.definition(db.session, form_id)
            designer.save_form(db.session, _designer(), before, form_id)
            db.session.expire_all()
            assert designer.definition(db.session, form_id) == before


def _row_ids(definition: dict) -> dict:
    """Every row of a form's definition by kind and place -> its id."""
    ids = {("input", n): i["id"] for n, i in enumerate(definition["inputs"])}
    for n, section in enumerate(definition["sections"]):
        ids["section", n] = section["id"]
        ids.update({("filter", n, m): f["id"] for m, f in enumerate(section["filters"])})
        ids.update({("column", n, m): c["id"] for m, c in enumerate(section["columns"])})
    return ids


def test_saving_a_form_again_changes_its_rows_in_place_and_they_keep_their_ids(app, fire_postgres):
    """Audit events, column grants and stored results name rows by id: a save changes the rows the
    draft names (by the ids the definition gave), adds the new ones and removes the ones left out."""
    import copy

    code = f"fire.ids.{uuid.uuid4().hex[:6]}"
    with app.app_context(), app.test_request_context(headers={"Accept-Language": "zh-TW"}):
        source = _sql_source("postgresql", fire_postgres)
        draft = {**fire_draft(source, code), "granted_agencies": [], "granted_roles": []}
        draft["sections"][0]["columns"][2]["agencies"] = [factories.agency("TAX").id]  # a column grant
        saved = designer.save_form(db.session, _designer(), draft)
        first = designer.definition(db.session, saved.id)
        ids = _row_ids(first)
        renamed = copy.deepcopy(first)
        renamed["sections"][0]["columns"][1]["label"] = "建物門牌（地址）"
        designer.save_form(db.session, _designer(), renamed, saved.id)
        db.session.expire_all()
        second = designer.definition(db.session, saved.id)
        assert _row_ids(second) == ids  # every row kept its id, the renamed column too
        assert second["sections"][0]["columns"][1] == {
            **first["sections"][0]["columns"][1],
            "label": "建物門牌（地址）",
        }
        assert second == renamed
        column_id = ids["column", 0, 1]
        changed = db.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "update", AuditEvent.object_type == "SectionColumn",
            AuditEvent.object_id == str(column_id))).all()  # fmt: skip
        assert len(changed) == 1 and "label" in changed[0].fields  # the change, on the row it changed
        untouched = db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action.in_(("create", "delete", "update")), AuditEvent.object_type == "SectionColumn",
            AuditEvent.object_id == str(ids["column", 0, 0])))  # fmt: skip
        assert untouched == 1  # created once, never rewritten

        # a column removed and another added: the rest keep their ids
        third = copy.deepcopy(second)
        removed = third["sections"][0]["columns"].pop(3)
        third["sections"][0]["columns"].append({"column": "owner_id", "label": "所有權人", "mask": "last4",
                                                "format": "", "agencies": []})  # fmt: skip
        designer.save_form(db.session, _designer(), third, saved.id)
        db.session.expire_all()
        after = designer.definition(db.session, saved.id)
        kept = {key: value for key, value in ids.items() if key != ("column", 0, 3)}
        assert {key: value for key, value in _row_ids(after).items() if key != ("column", 0, 3)} == kept
        assert after["sections"][0]["columns"][3]["id"] not in ids.values()
        assert db.session.get(SectionColumn, removed["id"]) is None
        assert after["sections"][0]["columns"][2]["agencies"] == [factories.agency("TAX").id]

        # a row id that is not this form's (another form's column) is refused, nothing saved
        stranger = db.session.scalar(select(SectionColumn.id).where(SectionColumn.section_id != ids["section", 0]))
        tampered = copy.deepcopy(after)
        tampered["title"] = "不該存下"
        tampered["sections"][0]["columns"][0]["id"] = stranger
        with pytest.raises(Conflict, match="開啟"):
            designer.save_form(db.session, _designer(), tampered, saved.id)
        db.session.expire_all()
        assert designer.definition(db.session, saved.id) == after


# --- try it ---------------------------------------------------------------------


def test_try_it_shows_the_drafts_result_audited_as_a_designer_test_and_stores_no_query(app, fire_postgres):
    code = f"fire.try.{uuid.uuid4().hex[:6]}"
    with app.app_context():
        source = _sql_source("postgresql", fire_postgres)
        logs = _count(QueryLog)
        run = designer.try_form(db.session, _designer(), fire_draft(source, code), {"id_no": "a123456789"})
        assert run.outcome == "ok"
        assert run.sections[0]["rows"] == [["F1151101", "示範縣東區中正路1段10號", "全毀", "115/11/01"]]
        assert _count(QueryLog) == logs  # not a citizen query
        assert db.session.scalar(select(QueryForm).where(QueryForm.code == code)) is None  # nor saved
        event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "designer_test",
                                                            AuditEvent.object_id == code)).one()  # fmt: skip
        from app.services.query import subject_hash

        assert event.actor == "designer" and event.outcome == "ok"
        assert subject_hash("A123456789") in event.detail and "A123456789" not in event.detail
        with pytest.raises(InvalidInput):  # the sample input is checked as a clerk's would be
            designer.try_form(db.session, _designer(), fire_draft(source, code), {"id_no": "A123456788"})


def test_a_form_is_granted_only_after_a_designer_test_of_what_it_reads(app, fire_postgres):
    code = f"fire.grant.{uuid.uuid4().hex[:6]}"
    with app.app_context(), app.test_request_context(headers={"Accept-Language": "zh-TW"}):
        source = _sql_source("postgresql", fire_postgres)
        granted = fire_draft(source, code)
        with pytest.raises(InvalidInput, match="授權前請先"):
            designer.save_form(db.session, _designer(), granted)
        assert db.session.scalar(select(QueryForm).where(QueryForm.code == code)) is None
        ungranted = {**granted, "granted_agencies": [], "granted_roles": []}
        saved = designer.save_form(db.session, _designer(), ungranted)  # a draft may be kept untried
        other = fire_draft(source, code)
        other["sections"][0]["columns"] = other["sections"][0]["columns"][:2]
        designer.try_form(db.session, _designer(), other, {"id_no": "A123456789"})  # tried, then changed
        with pytest.raises(InvalidInput, match="授權前請先"):
            designer.save_form(db.session, _designer(), granted, saved.id)
        designer.try_form(db.session, _designer(), granted, {"id_no": "A123456789"})
        designer.save_form(db.session, _designer(), granted, saved.id)
        assert db.session.get(QueryForm, saved.id).granted_roles


def test_the_older_form_screen_and_api_grant_a_form_only_after_a_designer_test_since_its_last_change(
    app, client, fire_postgres
):
    """Granting is one rule (``grants.check_granting``) for the designer, FAB's form screen and its
    REST API: an untried form, or one changed since its test, is refused with the reason."""
    from app.services.query import design

    code = f"fire.fab.{uuid.uuid4().hex[:6]}"
    with app.app_context():
        source = _sql_source("postgresql", fire_postgres)
        draft = fire_draft(source, code)
        grants_of = {k: draft[k] for k in ("granted_agencies", "granted_roles", "business_items", "agency")}
        saved = designer.save_form(db.session, _designer(), {**draft, "granted_agencies": [], "granted_roles": []})
        stored = designer.definition(db.session, saved.id)

    def screen_grant():
        data = {"code": code, "title": draft["title"], "description": "", "agency": grants_of["agency"],
                "active": "y", "sort_order": "90", "granted_agencies": grants_of["granted_agencies"],
                "granted_roles": grants_of["granted_roles"], "business_items": grants_of["business_items"],
                "restricted_days": "0"}  # fmt: skip
        return client.post(f"/queryformview/edit/{saved.id}", data=data, follow_redirects=True)

    def granted() -> bool:
        with app.app_context():
            form = db.session.get(QueryForm, saved.id)
            return bool(form.granted_agencies or form.granted_roles)

    login(client, "admin")
    client.get("/lang/zh_TW", follow_redirects=True)
    refused = screen_grant()
    assert "授權前請先試查" in refused.text and "表單設計" in refused.text
    assert not granted()
    token = api_token(client, "admin")
    body = {k: grants_of[k] for k in ("granted_agencies", "granted_roles")}
    answer = client.put(f"/api/v1/query-forms/{saved.id}", json=body,
                        headers={**bearer(token), "Accept-Language": "zh-TW"})  # fmt: skip
    assert answer.status_code == 400 and "授權前請先試查" in answer.json["message"], answer.json
    assert not granted()

    with app.app_context():  # tried, then changed on the older column screen (its command): still untried
        assert designer.try_form(db.session, _designer(), stored, {"id_no": "A123456789"}).outcome == "ok"
        column = db.session.get(SectionColumn, stored["sections"][0]["columns"][0]["id"])
        column.label = "案號"
        design.save(db.session, column, existing=True)
    assert "授權前請先試查" in screen_grant().text and not granted()

    with app.app_context():  # tried as it stands now
        now = designer.definition(db.session, saved.id)
        assert designer.try_form(db.session, _designer(), now, {"id_no": "A123456789"}).outcome == "ok"
    answer = client.put(f"/api/v1/query-forms/{saved.id}", json=body, headers=bearer(token))
    assert answer.status_code == 200, answer.json
    assert granted()
    with app.app_context():  # and on the screen, a form already granted is edited freely
        db.session.get(QueryForm, saved.id).granted_roles = []
        db.session.commit()
    page = screen_grant()
    assert "授權前請先試查" not in page.text and granted()


# --- the REST counterpart and the page ----------------------------------------------


def test_the_api_saves_a_whole_form_refuses_a_typo_with_400_and_tries_a_draft(app, client, fire_postgres):
    code = f"fire.api.{uuid.uuid4().hex[:6]}"
    with app.app_context():
        source = _sql_source("postgresql", fire_postgres)
        draft = fire_draft(source, code)
        typo = fire_draft(source, code, extra_column="owner_phone")
    token = api_token(client, "designer")
    described = client.get(f"/api/v1/form-designer/sources/{source}", headers=bearer(token))
    assert described.status_code == 200 and "v_fire_damage" in [e["target"] for e in described.json["entities"]]
    refused = client.post("/api/v1/form-designer/", json=typo, headers={**bearer(token), "Accept-Language": "zh-TW"})
    assert refused.status_code == 400 and "owner_phone" in refused.json["message"], refused.json
    tried = client.post("/api/v1/form-designer/try", json={"form": draft, "params": {"id_no": "F131104093"}},
                        headers=bearer(token))  # fmt: skip
    assert tried.status_code == 200 and tried.json["sections"][0]["rows"][0][0] == "F1151102", tried.json
    created = client.post("/api/v1/form-designer/", json=draft, headers=bearer(token))
    assert created.status_code == 201, created.json
    form_id = created.json["id"]
    shown = client.get(f"/api/v1/form-designer/{form_id}", headers=bearer(token)).json["result"]
    assert shown["code"] == code and shown["sections"][0]["columns"][0]["column"] == "case_no"
    again = client.post("/api/v1/form-designer/", json=draft, headers=bearer(token))
    assert again.status_code == 409
    shown["title"] = "火災建物毀損查詢（修正）"
    assert client.put(f"/api/v1/form-designer/{form_id}", json=shown, headers=bearer(token)).status_code == 200
    clerk = api_token(client, "clerk")
    assert client.post("/api/v1/form-designer/", json=draft, headers=bearer(clerk)).status_code in (401, 403)
    # Malformed documents are a 400 with a message, never a 500, and save nothing.
    for body in ([1], {**draft, "bogus": 1}, {**draft, "sections": [{**draft["sections"][0], "source": "x"}]},
                 {**draft, "code": "fire.gone", "sections": [{**draft["sections"][0], "source": 9_999_999}]},
                 {**draft, "code": "fire.gone", "granted_agencies": [9_999_999]}):  # fmt: skip
        answer = client.post("/api/v1/form-designer/", json=body, headers=bearer(token))
        assert answer.status_code == 400 and answer.json["message"], (body, answer.json)
    assert client.get("/api/v1/form-designer/9999999", headers=bearer(token)).status_code == 404
    assert client.get("/api/v1/form-designer/sources/9999999", headers=bearer(token)).status_code == 404


def test_the_designer_page_is_reached_from_the_form_list_and_offers_the_sources_columns(app, client):
    login(client, "designer")
    forms = client.get("/queryformview/list/")
    assert forms.status_code == 200 and "設計表單" in forms.text and "/formdesigner/" in forms.text
    page = client.get("/formdesigner/")
    assert page.status_code == 200 and "表單設計" in page.text
    with app.app_context():
        form_id = db.session.scalar(select(QueryForm.id).where(QueryForm.code == "land.parcel"))
    page = client.get(f"/formdesigner/{form_id}")
    assert page.status_code == 200 and "v_land_marking_ownership" in page.text
    assert "owner_name" in page.text or "section_name" in page.text  # the view's columns, offered
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    tampered = client.post("/formdesigner/", data={"csrf_token": token, "action": "save", "code": "x.tampered",
                                                   "title": "t", "sort_order": "many", "sections-0-title": "s",
                                                   "sections-0-source": "abc"})  # fmt: skip
    assert tampered.status_code == 200 and 'id="designer-problems"' in tampered.text
    refreshed = client.post("/formdesigner/", data={"csrf_token": token, "action": "add_section", "code": "x.more",
                                                    "sections-0-title": "一", "inputs-0-name": "id_no"})  # fmt: skip
    assert refreshed.status_code == 200 and 'id="section-1"' in refreshed.text and 'value="id_no"' in refreshed.text
    clerk = app.test_client()
    login(clerk, "clerk")
    assert clerk.get("/formdesigner/").status_code in (302, 403)
