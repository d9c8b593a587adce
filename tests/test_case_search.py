"""Case search: each role finds exactly the cases the case page would show it,
by number, citizen (keyed hashes only), category, state, date range and
lateness, closed ones included, a page at a time; a search by citizen is
audited; bad input is refused with a clear message and changes nothing."""

import datetime
import json

import pytest
from marshmallow import ValidationError
from sqlalchemy import func, select, text, update

from app.extensions import db
from app.lib.rocdate import TAIPEI, format_roc
from app.models.audit import AuditEvent
from app.models.notify import NotificationCase, NotificationCategory
from app.models.org import Agency, PlatformUser
from app.schemas.notify import CaseSearchSchema
from app.services import actors, notify
from app.services.errors import Forbidden, InvalidInput
from app.services.roles import NOTIFY_CASES
from tests.conftest import api_token, bearer, login
from tests.test_notify_pages import consent_pdf

LETTERS = "ABCDEFGHJKLMNPQRSTUVXYWZIO"  # A=10 ... in the order of their values


def national_id(letter: str, digits: str) -> str:
    """A valid national ID: the letter, 8 digits, and the check digit that makes it pass."""
    value = LETTERS.index(letter) + 10
    numbers = [value // 10, value % 10, *map(int, digits)]
    total = sum(n * w for n, w in zip(numbers, (1, 9, 8, 7, 6, 5, 4, 3, 2, 1)))
    return f"{letter}{digits}{(10 - total % 10) % 10}"


CITIZEN_A = {"name": "林 美 華", "id_no": national_id("F", "22345678"), "email": "lin@example.tw"}
CITIZEN_B = {"name": "瓦歷斯·諾幹", "id_no": national_id("G", "13579246"), "email": "walis@example.tw"}


def who(username: str) -> actors.Actor:
    user = db.session.scalar(select(PlatformUser).where(PlatformUser.username == username))
    return actors.for_user(user, session=db.session)


def fire_officer() -> actors.Actor:
    """A notifier of the fire department (no demo account there): fires go to SOCIAL, TAX, LABOUR, not LAND."""
    fire = db.session.scalar(select(Agency).where(Agency.code == "FIRE"))
    return actors.Actor(
        user_id=who("admin").user_id, username="fire.notifier", agency_id=fire.id, agency_code="FIRE",
        permissions=frozenset({NOTIFY_CASES}),
    )  # fmt: skip


def category(sub_item: str) -> int:
    return db.session.scalar(select(NotificationCategory.id).where(NotificationCategory.sub_item == sub_item))


def register(actor, sub_item: str, citizen: dict) -> str:
    draft = notify.CaseDraft(
        category=category(sub_item),
        citizen=notify.Citizen(**citizen),
        content="案件查詢測試",
        uploads=[notify.Upload("同意書.pdf", consent_pdf(), "consent")],
    )
    return notify.register_case(db.session, actor, draft).case_no


def found(actor, **criteria) -> list[str]:
    return [row.case_no for row in notify.search_cases(db.session, actor, notify.Criteria(**criteria)).items]


@pytest.fixture(scope="module")
def cases(app):
    """An address change and a rename for citizen A (HH-EAST to LAND, TAX, MOTOR), the
    rename closed everywhere; a fire report for citizen B (FIRE to SOCIAL, TAX, LABOUR)."""
    with app.app_context():
        notifier = who("notifier")
        address = register(notifier, "地址變更", CITIZEN_A)
        rename = register(notifier, "更名", CITIZEN_A)
        fire = register(fire_officer(), "火災建物毀損", {"name": CITIZEN_B["name"], "id_no": CITIZEN_B["id_no"]})
        case = db.session.scalar(select(NotificationCase).where(NotificationCase.case_no == rename))
        for d in case.dispatches:
            d.state, d.closed_at = "closed", datetime.datetime.utcnow()
        case.status, case.completed_at = "completed", datetime.datetime.utcnow()
        db.session.commit()
        db.session.remove()
    return {"address": address, "rename": rename, "fire": fire}


def test_each_role_finds_what_the_case_page_shows_it(app, cases):
    with app.app_context():
        by_a = {"id_no": CITIZEN_A["id_no"]}
        # The household office finds the cases it registered, the closed one included.
        assert set(found(who("notifier"), **by_a)) == {cases["address"], cases["rename"]}
        # The land office's supervisor and handler: what was dispatched to the land office...
        for username in ("supervisor.land", "handler.land"):
            assert set(found(who(username), **by_a)) == {cases["address"], cases["rename"]}
            assert found(who(username), id_no=CITIZEN_B["id_no"]) == []  # ...never the fire report
            assert found(who(username), case_no=cases["fire"]) == []
        # The tax bureau received all three.
        assert cases["fire"] in found(who("supervisor.tax"), id_no=CITIZEN_B["id_no"])
        # The fire department finds its own report, not the household office's cases.
        assert found(fire_officer(), id_no=CITIZEN_B["id_no"]) == [cases["fire"]]
        assert found(fire_officer(), **by_a) == []
        # Every page of a search answers as the case page does: each linked row opens for the searcher.
        for row in notify.search_cases(db.session, who("supervisor.land"), notify.Criteria(**by_a)).items:
            assert row.linked and notify.view_case(db.session, who("supervisor.land"), row.case_no)
            assert [d.agency.code for d in row.dispatches] == ["LAND"]  # only its own dispatch, as on the page
        # The administrator (every agency) finds all.
        assert cases["fire"] in found(who("admin"), category=category("火災建物毀損"))


def test_a_manager_finds_every_agency_s_cases_but_never_by_citizen_and_opens_none(app, cases):
    with app.app_context():
        manager = who("manager")
        page = notify.search_cases(db.session, manager, notify.Criteria(category=category("火災建物毀損")))
        assert cases["fire"] in [r.case_no for r in page.items] and page.everywhere
        row = next(r for r in page.items if r.case_no == cases["fire"])
        assert not row.linked and {d.agency.code for d in row.dispatches} == {"SOCIAL", "TAX", "LABOUR"}
        assert cases["fire"] in found(manager, state="sent", category=category("火災建物毀損"))
        assert cases["fire"] not in found(manager, state="closed", category=category("火災建物毀損"))
        for personal in ({"id_no": CITIZEN_B["id_no"]}, {"name": CITIZEN_B["name"]}):
            with pytest.raises(Forbidden):
                notify.search_cases(db.session, manager, notify.Criteria(**personal))
        with pytest.raises(Forbidden):  # a counter clerk has no case search at all
            notify.search_cases(db.session, who("clerk"), notify.Criteria())


def test_each_criterion_narrows_the_search(app, cases):
    with app.app_context():
        land = who("supervisor.land")
        today = datetime.datetime.now(TAIPEI).date()
        a = {"id_no": CITIZEN_A["id_no"]}
        assert found(land, case_no=cases["address"]) == [cases["address"]]
        # The name: exact, whatever its spaces and middle dots.
        assert set(found(land, name="林美華")) == {cases["address"], cases["rename"]}
        assert found(land, name="林美") == []
        assert found(who("supervisor.tax"), name="瓦歷斯‧諾幹") == [cases["fire"]]
        assert found(land, category=category("更名"), **a) == [cases["rename"]]
        assert found(land, status="completed", **a) == [cases["rename"]]
        assert found(land, status="open", **a) == [cases["address"]]
        assert found(land, state="closed", **a) == [cases["rename"]]
        assert found(land, state="sent", **a) == [cases["address"]]
        assert set(found(land, date_from=today, date_to=today, **a)) == {cases["address"], cases["rename"]}
        yesterday = today - datetime.timedelta(days=1)
        assert found(land, date_to=yesterday, **a) == []
        assert found(land, overdue=True, **a) == []
        db.session.execute(
            update(NotificationCase)
            .where(NotificationCase.case_no == cases["address"])
            .values(due_at=datetime.datetime.utcnow() - datetime.timedelta(days=1))
        )
        db.session.commit()
        late = notify.search_cases(db.session, land, notify.Criteria(overdue=True, **a)).items
        assert [r.case_no for r in late] == [cases["address"]] and late[0].overdue
        # A page at a time, newest first.
        first = notify.search_cases(db.session, land, notify.Criteria(**a), size=1)
        second = notify.search_cases(db.session, land, notify.Criteria(page=2, **a), size=1)
        assert first.more and not second.more
        assert [first.items[0].case_no, second.items[0].case_no] == [cases["rename"], cases["address"]]


def _search_events() -> list[AuditEvent]:
    return list(
        db.session.scalars(select(AuditEvent).where(AuditEvent.action == "case_search").order_by(AuditEvent.id))
    )


def test_a_search_by_citizen_is_audited_without_the_citizen_s_data(app, cases):
    with app.app_context():
        before = len(_search_events())
        found(who("supervisor.land"), category=category("地址變更"))
        assert len(_search_events()) == before  # no personal data used: nothing to record
        found(who("supervisor.land"), id_no=CITIZEN_A["id_no"], name=CITIZEN_A["name"])
        events = _search_events()
        assert len(events) == before + 1
        event = events[-1]
        assert event.actor == "supervisor.land"
        detail = json.loads(event.detail)
        assert detail["by"] == ["id_no", "name"] and cases["address"] in detail["cases"]
        assert CITIZEN_A["id_no"] not in event.detail and "美華" not in event.detail


@pytest.mark.parametrize(
    "body, field",
    [
        ({"id_no": "A123456788"}, "id_no"),
        ({"date_from": "115/13/40"}, "date_from"),
        ({"date_from": "115/11/02", "date_to": "115/11/01"}, "date_to"),
        ({"status": "lost"}, "status"),
        ({"state": "done"}, "state"),
        ({"category": True}, "category"),
        ({"category": "地址"}, "category"),
        ({"page": 0}, "page"),
        ({"overdue": "maybe"}, "overdue"),
        ({"name": "名" * 61}, "name"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_malformed_searches_are_refused_in_the_user_s_language(app, cases, body, field):
    client = app.test_client()
    token = api_token(client, "supervisor.land")
    answer = client.post("/api/v1/cases/search", json=body, headers={**bearer(token), "Accept-Language": "zh-TW"})
    assert answer.status_code == 400, answer.text
    assert field in answer.json["errors"]
    assert not any(c.isascii() and c.isalpha() for c in answer.json["message"])  # zh_TW, not English
    with pytest.raises(ValidationError):
        CaseSearchSchema().load(body)


def test_the_service_refuses_a_bad_id_and_reversed_dates_itself(app, cases):
    with app.app_context():
        for criteria in (
            notify.Criteria(id_no="A123456788"),
            notify.Criteria(date_from=datetime.date(2026, 11, 2), date_to=datetime.date(2026, 11, 1)),
        ):
            with pytest.raises(InvalidInput):
                notify.search_cases(db.session, who("notifier"), criteria)


def test_the_api_searches_and_the_page_lists_with_words_and_roc_dates(app, cases):
    client = app.test_client()
    token = api_token(client, "supervisor.land")
    answer = client.post("/api/v1/cases/search", json={"id_no": CITIZEN_A["id_no"]}, headers=bearer(token))
    assert answer.status_code == 200, answer.text
    rows = answer.json["result"]
    assert {r["case_no"] for r in rows} == {cases["address"], cases["rename"]}
    assert all(r["linked"] and r["category"].startswith("戶籍異動") for r in rows)
    assert "林" not in answer.text and CITIZEN_A["id_no"] not in answer.text  # the rows hold no personal data
    manager = api_token(client, "manager")
    refused = client.post("/api/v1/cases/search", json={"id_no": CITIZEN_A["id_no"]}, headers=bearer(manager))
    assert refused.status_code == 403
    assert client.post("/api/v1/cases/search", json={}, headers=bearer(api_token(client, "clerk"))).status_code in (
        401,
        403,
    )

    browser = app.test_client()
    login(browser, "supervisor.land")
    form = browser.get("/notify/search/")
    assert form.status_code == 200 and "案件查詢" in form.text
    page = browser.post("/notify/search/", data={"id_no": CITIZEN_A["id_no"], "status": "completed"})
    assert page.status_code == 200
    assert cases["rename"] in page.text and cases["address"] not in page.text
    assert "全案辦結" in page.text and "已辦結" in page.text  # words, not codes
    with app.app_context():
        created = db.session.scalar(
            select(NotificationCase.created_at).where(NotificationCase.case_no == cases["rename"])
        )
    assert format_roc(created.replace(tzinfo=datetime.UTC).astimezone(TAIPEI)) in page.text
    assert f'href="/notify/case/{cases["rename"]}"' in page.text
    bad = browser.post("/notify/search/", data={"id_no": "A123456788"})
    assert bad.status_code == 400 and "身分證" in bad.text


def test_cases_registered_keep_their_name_only_as_ciphertext_and_keyed_hash(app, cases):
    with app.app_context():
        row = db.session.execute(
            text("SELECT citizen_name, citizen_name_hash FROM notification_case WHERE case_no = :n"),
            {"n": cases["address"]},
        ).one()
        assert "林" not in row.citizen_name and len(row.citizen_name_hash) == 64
        total = db.session.scalar(select(func.count()).select_from(NotificationCase))
        assert total >= 3


def test_migration_0022_hashes_the_names_of_cases_registered_before_it(app, cases):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "migrations" / "versions" / "0022_case_search.py"
    spec = importlib.util.spec_from_file_location("migration_0022", path)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    with app.app_context():
        table = NotificationCase.__table__
        db.session.execute(update(table).where(table.c.case_no == cases["fire"]).values(citizen_name_hash=None))
        db.session.commit()
        assert found(who("supervisor.tax"), name=CITIZEN_B["name"]) == []
        migration._backfill(db.session.connection())
        db.session.commit()
        assert found(who("supervisor.tax"), name=CITIZEN_B["name"]) == [cases["fire"]]
