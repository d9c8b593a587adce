"""The demo forms over the five agencies' systems, as a tax clerk and a social
clerk use them; land and social data served by SQLite, PostgreSQL and MariaDB
give the same answers through the same forms."""

import json
import uuid

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from app.extensions import db
from app.models.sources import DataSource
from tests.conftest import PG_ADMIN_URL, api_token, bearer

MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306/"


def run(client, token, form, params, item):
    r = client.post(
        "/api/v1/query/run",
        json={"form": form, "case_no": "1151126-0042", "reason": "", "business_item": item, "params": params},
        headers=bearer(token),
    )
    assert r.status_code == 200, r.json
    return r.json


def rows_of(result, title):
    section = next(s for s in result["sections"] if s["title"] == title)
    assert section["error"] is None, section["error"]
    return section["rows"]


def test_a_social_clerk_sees_wang_xiaoming_his_household_and_welfare_across_sources(client):
    token = api_token(client, "clerk.social")
    result = run(client, token, "person.overview", {"id_no": "A123456789"}, "SOC-AID")
    person = rows_of(result, "個人戶籍")
    assert person[0][0] == "王小明" and person[0][1] == "******6789"
    members = rows_of(result, "全戶成員")
    assert len(members) >= 3 and any(m[0] == "戶長" for m in members)
    assert rows_of(result, "福利身分")


def test_a_tax_clerk_reads_a_person_and_the_whole_household_from_the_e_gate(client):
    """RQ02 and RQ01 through the demo forms ``household.person`` (input
    ``id_no``) and ``household.whole``: masked IDs, ROC dates."""
    import re

    token = api_token(client, "clerk")
    person = rows_of(run(client, token, "household.person", {"id_no": "A123456789"}, "TAX-EXEMPT"), "個人戶籍")
    assert len(person) == 1
    name, id_no, _sex, born = person[0][:4]
    assert (name, id_no) == ("王小明", "******6789") and re.fullmatch(r"\d{2,3}/\d{2}/\d{2}", born)
    members = rows_of(run(client, token, "household.whole", {"id_no": "A123456789"}, "TAX-EXEMPT"), "全戶戶籍")
    assert len(members) >= 3 and "王小明" in [m[1] for m in members] and any(m[0] == "戶長" for m in members)
    assert all(m[2].startswith("******") for m in members)


def test_household_change_transactions_answer_through_the_e_gate(client):
    from seed_data.world import build_world

    world = build_world()
    renamed = world.name_changes[0]
    token = api_token(client, "clerk")
    result = run(client, token, "household.changes", {"id_no": renamed.id_no}, "HH-NOTIFY")
    changes = rows_of(result, "個人姓名更改（RQ04）")
    assert [renamed.old_name, renamed.new_name] in [row[:2] for row in changes]
    removed = world.person_removals[0]
    result = run(client, token, "household.changes", {"id_no": removed.id_no}, "HH-NOTIFY")
    assert rows_of(result, "個人除戶（RQ08）")
    gone = world.household_removals[0]
    former = next(p for p in world.persons if p.household_no == gone.household_no)
    result = run(client, token, "household.changes", {"id_no": former.id_no}, "HH-NOTIFY")
    whole = rows_of(result, "全戶除戶（RQ07）")
    assert whole and {row[0] for row in whole} == {gone.household_no} and gone.reason in [row[4] for row in whole]
    moved = world.address_changes[0]
    member = next(p for p in world.persons if p.household_no == moved.household_no)
    result = run(client, token, "household.changes", {"id_no": member.id_no}, "HH-NOTIFY")
    assert moved.new_address in [row[1] for row in rows_of(result, "門牌異動（RQ14）")]


def test_a_tax_clerk_reads_land_buildings_income_vehicles_and_company(client):
    token = api_token(client, "clerk")
    land = run(client, token, "land.parcel", {"section_name": "中正段", "parcel_no": "18-1"}, "TAX-LAND")
    assert rows_of(land, "土地標示部")[0][2] == "0018-0001"
    owners = rows_of(land, "土地所有權部")
    assert {row[9] for row in owners} == {"2分之1"} and len(owners) == 2
    building = run(client, token, "building.unit", {"building_no": "00173-000"}, "TAX-HOUSE")
    assert rows_of(building, "建物標示部") and rows_of(building, "建物所有權部")
    both = run(client, token, "land.owner", {"id_no": "A123456789"}, "TAX-LAND")
    assert rows_of(both, "土地") and rows_of(both, "建物")
    income = run(client, token, "tax.income", {"id_no": "A123456789"}, "TAX-EXEMPT")
    assert rows_of(income, "各類所得") and all(r[2].startswith("NT$") for r in rows_of(income, "各類所得"))
    cars = run(client, token, "motor.vehicle", {"id_no": "A123456789"}, "TAX-VEHICLE")
    assert any(r[0] == "TUL-9565" for r in rows_of(cars, "名下車輛"))
    company = run(client, token, "business.company", {"ban": "23582637"}, "TAX-EXEMPT")
    assert rows_of(company, "登記資料")[0][1] == "示範商業銀行股份有限公司"


def test_the_disability_category_is_shown_to_social_affairs_only(client):
    from seed_data.world import build_world

    person = build_world().disabilities[0]
    social = run(client, api_token(client, "clerk.social"), "social.welfare", {"id_no": person.id_no}, "SOC-DISABLED")
    tax = run(client, api_token(client, "clerk"), "social.welfare", {"id_no": person.id_no}, "TAX-EXEMPT")
    social_cols = next(s for s in social["sections"] if s["title"] == "身心障礙")["columns"]
    tax_cols = next(s for s in tax["sections"] if s["title"] == "身心障礙")["columns"]
    assert "障礙類別" in social_cols and "障礙類別" not in tax_cols


@pytest.fixture
def server_copies(app):
    """The land and social databases loaded into PostgreSQL and MariaDB."""
    from seed_data.loader import load_land, load_social

    tag = uuid.uuid4().hex[:8]
    made = []
    pg_admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    my_admin = create_engine(MARIADB_URL, isolation_level="AUTOCOMMIT")
    copies = {}
    for kind in ("land", "social"):
        name = f"demo_{kind}_{tag}"
        with pg_admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        with my_admin.connect() as c:
            c.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
        made.append(name)
        pg_url = make_url(PG_ADMIN_URL).set(database=name)
        my_url = make_url(MARIADB_URL).set(database=name)
        for url in (pg_url, my_url):
            engine = create_engine(url)
            (load_land if kind == "land" else load_social)(engine)
            engine.dispose()
        copies[kind] = {"postgresql": pg_url, "mysql": my_url}
    yield copies
    for name in made:
        with pg_admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        with my_admin.connect() as c:
            c.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
    # Their pooled connections close now, not whenever the engines are collected.
    pg_admin.dispose()
    my_admin.dispose()


def _point(app, code, dialect, url):
    with app.app_context():
        src = db.session.scalar(select(DataSource).where(DataSource.code == code))
        saved = (src.host, src.port, src.database, src.account, src.options)
        if dialect == "sqlite":
            src.host, src.port, src.database, src.account, src.options = url
        else:
            src.host, src.port, src.database, src.account = url.host, url.port, url.database, url.username
            src.options = json.dumps({"dialect": dialect})
        db.session.commit()
        return saved


def test_the_same_land_and_social_forms_give_the_same_answers_on_postgresql_and_mariadb(app, client, server_copies):
    token_tax, token_social = api_token(client, "clerk"), api_token(client, "clerk.social")

    def answers():
        return (
            run(client, token_tax, "land.parcel", {"section_name": "中正段", "parcel_no": "18-1"}, "TAX-LAND")[
                "sections"
            ],
            run(client, token_tax, "land.owner", {"id_no": "A123456789"}, "TAX-LAND")["sections"],
            # the survey plan's view (v_building_floor: 主建物 or the annex's use, the site's parcel)
            run(
                client, token_tax, "building.unit", {"section_name": "西門段", "building_no": "00164-000"}, "TAX-HOUSE"
            )["sections"],  # fmt: skip
            run(client, token_social, "social.welfare", {"id_no": "A123456789"}, "SOC-AID")["sections"],
        )

    on_sqlite = answers()
    assert all(s["error"] is None for group in on_sqlite for s in group)
    for dialect in ("postgresql", "mysql"):
        saved_land = _point(app, "LAND-DB", dialect, server_copies["land"][dialect])
        saved_social = _point(app, "SOCIAL-DB", dialect, server_copies["social"][dialect])
        try:
            assert answers() == on_sqlite, dialect
        finally:
            _point(app, "LAND-DB", "sqlite", saved_land)
            _point(app, "SOCIAL-DB", "sqlite", saved_social)
