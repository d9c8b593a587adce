"""The citizens' and businesses' portal (issue 15, items 1, 3, 4, 5): a citizen signs in with a
demo card (the real certauth, OCSP responders and CRL server), a tax clerk's query of their data
appears in "who read my data", they flag it, the tax bureau's Auditor answers, the citizen reads
the answer; my cases and withdrawing; restricted forms; another's case or entry is a 404, audited;
staff and anonymous visitors are kept out of the portal and card holders out of the back office."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models.audit import AuditEvent
from app.models.notify import NotificationCase
from app.models.queries import QueryForm, QueryLog
from tests import factories
from tests.conftest import api_token, bearer, csrf_token, login
from tests.test_cardsignin import card_info, card_login
from tests.test_notify import CITIZEN, act, register


@pytest.fixture(scope="module")
def pki():
    from tests.cards import card_pki, responders

    responders()
    return card_pki()


@pytest.fixture(scope="module")
def sim(pki):
    from app.simulators.signer import make_app

    return make_app(pki["dir"], None, origins=("http://localhost",)).test_client()


@pytest.fixture(scope="module")
def people_form(app, tmp_path_factory):
    """A form over an agency's database with an ID-number input, granted to tax-bureau clerks."""
    code = f"portal.people.{uuid.uuid4().hex[:6]}"
    path = tmp_path_factory.mktemp("portal") / "people.db"
    with app.app_context():
        src = factories.sqlite_source(f"SRC-{uuid.uuid4().hex[:6]}", factories.people_db(path))
        factories.people_form(code, src)
        db.session.remove()
    return code


def citizen_token(client, sim, pki, name: str = "citizen-wang") -> str:
    info = card_info(pki, name)
    r = card_login(client, sim, name)
    if r.status_code == 409:
        r = card_login(client, sim, name, id_number=info["id_number"], name=info["holder"])
    assert r.status_code == 200, r.json
    return r.json["access_token"]


def clerk_query(client, form: str, id_no: str, **purpose) -> int:
    body = {"form": form, "case_no": "1151203-0042", "reason": "", "business_item": "TAX-CHECK",
            "params": {"id_no": id_no}, **purpose}  # fmt: skip
    r = client.post("/api/v1/query/run", json=body, headers=bearer(api_token(client, "clerk")))
    assert r.status_code == 200, r.json
    return r.json["query_id"]


def mark(app) -> int:
    with app.app_context():
        value = db.session.scalar(select(func.max(AuditEvent.id))) or 0
        db.session.remove()
        return value


def events(app, since: int) -> list[tuple[str, str, str | None, dict]]:
    with app.app_context():
        rows = db.session.scalars(select(AuditEvent).where(AuditEvent.id > since).order_by(AuditEvent.id)).all()
        found = [(e.action, e.outcome, e.object_id, json.loads(e.detail or "{}")) for e in rows]
        db.session.remove()
        return found


def test_a_clerks_query_appears_the_citizen_flags_it_and_reads_the_tax_auditors_answer(app, pki, sim, people_form):
    client = app.test_client()
    wang = citizen_token(client, sim, pki)
    me = bearer(wang)
    query_id = clerk_query(client, people_form, card_info(pki, "citizen-wang")["id_number"])
    clerk_query(client, people_form, card_info(pki, "citizen-lin")["id_number"])  # someone else's
    since = mark(app)
    r = client.get("/api/v1/me/accesses", headers=me)
    assert r.status_code == 200, r.json
    entries = r.json["result"]
    assert entries[0]["id"] == query_id  # newest first, and only wang's
    assert all(e["id"] != query_id + 1 for e in entries)
    first = entries[0]
    assert first["agency_code"] == "TAX" and first["agency_name"] and first["form_title"].startswith("測試表單")
    assert first["business_item"] == "TAX-CHECK" and first["case_no_given"] is True and first["reason_given"] is False
    # never the official, the case number itself, nor another subject
    text = json.dumps(entries, ensure_ascii=False)
    assert "clerk" not in text and "1151203-0042" not in text and "A123456789" not in text
    # a flag, then the auditor of the querying agency answers
    r = client.post(f"/api/v1/me/accesses/{query_id}/flag", json={"note": "我沒有去稅務局辦事"}, headers=me)
    assert r.status_code == 201, r.json
    assert r.json["flagged_at"] and r.json["answer_due"] and r.json["answer"] is None
    again = client.post(f"/api/v1/me/accesses/{query_id}/flag", json={}, headers=me)
    assert again.status_code == 409
    # the county's auditor is not the tax bureau's: the flag is not theirs
    county = app.test_client()
    login(county, "auditor")
    assert "我沒有去稅務局辦事" not in county.get("/accessflags/").text
    auditor = app.test_client()
    login(auditor, "auditor.tax")
    page = auditor.get("/accessflags/")
    assert page.status_code == 200
    assert "我沒有去稅務局辦事" in page.text and "clerk" in page.text and "1151203-0042" in page.text
    with app.app_context():
        from app.models.portal import AccessFlag

        flag_id = db.session.scalar(select(AccessFlag.id).where(AccessFlag.query_log_id == query_id))
        db.session.remove()
    answer = "本局查詢係依房屋稅籍查核案辦理，案號 1151203-0042。"
    r = auditor.post(f"/accessflags/{flag_id}/answer", data={"answer": answer, "csrf_token": csrf_token(page.text)})
    assert r.status_code == 302
    mine = client.get("/api/v1/me/accesses", headers=me).json["result"][0]
    assert mine["answer"] == answer and mine["answered_at"]
    actions = [(a, o) for a, o, _i, _d in events(app, since)]
    assert ("portal.accesses_viewed", "ok") in actions
    assert ("portal.access_flag", "ok") in actions and ("portal.access_flag", "refused") in actions
    assert ("portal.flags_viewed", "ok") in actions and ("portal.flag_answer", "ok") in actions
    # the citizen's page shows the answer
    page = app.test_client()
    card_page_sign_in(page, sim, "citizen-wang")
    html = page.get("/portal/accesses/").text
    assert answer in html and "示範縣地方稅務局" in html


def card_page_sign_in(client, sim, card: str):
    from tests.test_cardsignin import signature

    nonce = client.post("/signin/card/challenge").json["nonce"]
    r = client.post("/signin/card/", data={"signature": signature(sim, card, nonce)})
    assert r.status_code == 302, r.text
    home = client.get("/")
    assert home.status_code == 302 and home.headers["Location"].endswith("/portal/")


def test_another_persons_entry_or_case_is_a_404_audited(app, pki, sim, people_form):
    client = app.test_client()
    lin_query = clerk_query(client, people_form, card_info(pki, "citizen-lin")["id_number"])
    notifier = api_token(client, "notifier")
    cats = client.get("/api/v1/categories/", headers=bearer(notifier)).json["result"]
    address = next(c for c in cats if c["sub_item"] == "地址變更")
    lin = card_info(pki, "citizen-lin")
    r = register(client, notifier, address["id"], citizen={**CITIZEN, "id_no": lin["id_number"], "name": lin["holder"]})
    assert r.status_code == 201, r.json
    lin_case = r.json["case_no"]
    me = bearer(citizen_token(client, sim, pki))
    since = mark(app)
    assert client.post(f"/api/v1/me/accesses/{lin_query}/flag", json={}, headers=me).status_code == 404
    assert client.get(f"/api/v1/me/cases/{lin_case}", headers=me).status_code == 404
    assert client.get("/api/v1/me/cases/nonsense-number-x", headers=me).status_code == 404
    refused = [(a, o) for a, o, _i, _d in events(app, since)]
    assert refused.count(("portal.case_refused", "refused")) == 2
    assert ("portal.access_refused", "refused") in refused
    # lin sees her own
    lin_me = bearer(citizen_token(client, sim, pki, "citizen-lin"))
    assert client.get(f"/api/v1/me/cases/{lin_case}", headers=lin_me).status_code == 200
    assert lin_query in {e["id"] for e in client.get("/api/v1/me/accesses", headers=lin_me).json["result"]}


def test_my_case_shows_each_agency_without_staff_and_withdraws_only_before_acceptance(app, pki, sim):
    client = app.test_client()
    wang = card_info(pki, "citizen-wang")
    notifier = api_token(client, "notifier")
    cats = client.get("/api/v1/categories/", headers=bearer(notifier)).json["result"]
    address = next(c for c in cats if c["sub_item"] == "地址變更")
    body = {**CITIZEN, "id_no": wang["id_number"]}
    first = register(client, notifier, address["id"], citizen=body).json
    second = register(client, notifier, address["id"], citizen=body).json
    me = bearer(citizen_token(client, sim, pki))
    listed = client.get("/api/v1/me/cases", headers=me).json["result"]
    assert {first["case_no"], second["case_no"]} <= {c["case_no"] for c in listed}
    # the land office accepts the first case: no withdrawal any more
    land = next(d for d in first["result"]["dispatches"] if d["agency"]["code"] == "LAND")
    sup, han = api_token(client, "supervisor.land"), api_token(client, "handler.land")
    opened = client.get(f"/api/v1/dispatches/{land['id']}", headers=bearer(sup)).json["result"]
    assert act(client, sup, land["id"], "assign", handler="handler.land", version=opened["version"]).status_code == 200
    assert act(client, han, land["id"], "accept").status_code == 200
    case = client.get(f"/api/v1/me/cases/{first['case_no']}", headers=me).json
    assert case["withdrawable"] is False
    states = {d["agency_name"]: d["state"] for d in case["dispatches"]}
    assert states["示範縣地政事務所"] == "accepted" and case["dispatches"][0]["sent_at"]
    assert [e["action"] for e in case["events"]][:1] and "handler.land" not in json.dumps(case, ensure_ascii=False)
    assert "supervisor" not in json.dumps(case)
    page = app.test_client()
    card_page_sign_in(page, sim, "citizen-wang")
    html = page.get(f"/portal/cases/{first['case_no']}").text
    assert "示範縣地政事務所" in html and "handler.land" not in html and 'id="withdraw"' not in html
    refused = page.post(f"/portal/cases/{first['case_no']}/withdraw", data={"csrf_token": csrf_token(html)})
    assert refused.status_code == 302
    assert "已有機關受理此申請案，無法撤回" in page.get(f"/portal/cases/{first['case_no']}").text
    # the second: nobody accepted it; withdrawn once, the second time refused
    html = page.get(f"/portal/cases/{second['case_no']}").text
    assert 'id="withdraw"' in html
    r = page.post(f"/portal/cases/{second['case_no']}/withdraw", data={"csrf_token": csrf_token(html)})
    assert r.status_code == 302
    again = page.post(f"/portal/cases/{second['case_no']}/withdraw", data={"csrf_token": csrf_token(html)})
    assert again.status_code == 302
    with app.app_context():
        statuses = dict(db.session.execute(select(NotificationCase.case_no, NotificationCase.status).where(
            NotificationCase.case_no.in_((first["case_no"], second["case_no"])))).all())  # fmt: skip
        db.session.remove()
    assert statuses == {first["case_no"]: "open", second["case_no"]: "withdrawn"}
    # it leaves the receiving agencies' boxes of work to do, and stays listed under "all"
    sup_tax = api_token(client, "supervisor.tax")
    boxes = {  # newest first: both cases are on the first page
        box: {d["case_no"] for d in client.get(f"/api/v1/worklist/{box}", headers=bearer(sup_tax)).json["result"]}
        for box in ("incoming", "all")
    }
    assert first["case_no"] in boxes["incoming"] and second["case_no"] not in boxes["incoming"]
    assert second["case_no"] in boxes["all"]
    # the receiving agencies can no longer act on it
    tax = next(d for d in second["result"]["dispatches"] if d["agency"]["code"] == "TAX")
    r = act(client, sup_tax, tax["id"], "assign", handler="handler.tax")
    assert r.status_code == 409 and "撤回" in r.json["message"]
    r = client.get(f"/api/v1/me/cases/{second['case_no']}", headers=me).json
    assert r["status"] == "withdrawn" and r["events"][-1]["action"] == "withdraw"


def test_restricted_forms_show_their_entries_only_after_the_delay(app, pki, sim, people_form):
    client = app.test_client()
    me = bearer(citizen_token(client, sim, pki))
    with app.app_context():
        form_id = db.session.scalar(select(QueryForm.id).where(QueryForm.code == people_form))
        db.session.remove()
    # Only the Admin marks a form restricted: the form designer who built it may not, nor set a bad delay.
    designer, admin = bearer(api_token(client, "designer")), bearer(api_token(client, "admin"))
    url = f"/api/v1/query-forms/{form_id}"
    refused = client.put(url, json={"restricted": True, "restricted_days": 30}, headers=designer)
    assert refused.status_code == 403 and "系統管理者" in refused.json["message"], refused.json
    assert client.put(url, json={"restricted": True, "restricted_days": 0}, headers=admin).status_code == 400
    assert client.put(url, json={"restricted": True, "restricted_days": 99999}, headers=admin).status_code == 400
    assert client.put(url, json={"restricted": True, "restricted_days": 30}, headers=admin).status_code == 200
    shown = client.get(url, headers=designer).json["result"]
    assert (shown["restricted"], shown["restricted_days"]) == (True, 30)
    # the designer still edits the rest of the form, leaving the restriction as it is
    assert client.put(url, json={"description": "戶籍人口（測試）"}, headers=designer).status_code == 200
    try:
        query_id = clerk_query(client, people_form, card_info(pki, "citizen-wang")["id_number"])
        assert query_id not in {e["id"] for e in client.get("/api/v1/me/accesses", headers=me).json["result"]}
        assert client.post(f"/api/v1/me/accesses/{query_id}/flag", json={}, headers=me).status_code == 404
        with app.app_context():
            import datetime

            log = db.session.get(QueryLog, query_id)
            log.at = log.at - datetime.timedelta(days=31)
            db.session.commit()
            db.session.remove()
        assert query_id in {e["id"] for e in client.get("/api/v1/me/accesses", headers=me).json["result"]}
    finally:
        with app.app_context():
            form = db.session.scalar(select(QueryForm).where(QueryForm.code == people_form))
            form.restricted, form.restricted_days = False, 0
            db.session.commit()
            db.session.remove()


def test_staff_and_anonymous_stay_out_of_the_portal_and_card_holders_out_of_the_back_office(app, pki, sim):
    anonymous = app.test_client()
    r = anonymous.get("/portal/")
    assert r.status_code == 302 and "/signin/card/" in r.headers["Location"]
    assert anonymous.get("/api/v1/me/cases").status_code == 401
    clerk = app.test_client()
    login(clerk, "clerk")
    assert clerk.get("/portal/cases/").status_code in (302, 403)
    assert "/portal/cases/" not in (clerk.get("/portal/cases/").headers.get("Location") or "")
    assert clerk.get("/api/v1/me/accesses", headers=bearer(api_token(clerk, "clerk"))).status_code == 403
    admin = bearer(api_token(clerk, "admin"))
    assert clerk.get("/api/v1/me/accesses", headers=admin).status_code == 403
    # a citizen: the portal yes, the back office no
    token = bearer(citizen_token(anonymous, sim, pki))
    for path in ("/api/v1/users/", "/api/v1/query/forms", "/api/v1/categories/", "/api/v1/transfers/",
                 "/api/v1/auditevent/"):  # fmt: skip
        assert anonymous.get(path, headers=token).status_code in (401, 403, 404), path
    page = app.test_client()
    card_page_sign_in(page, sim, "citizen-wang")
    assert page.get("/portal/").status_code == 200
    for path in ("/query/", "/notify/", "/transfer/", "/auditeventview/list/", "/accessflags/", "/users/list/"):
        assert page.get(path).status_code in (302, 403), path
    # a business: its number is its subject
    biz = bearer(citizen_token(anonymous, sim, pki, "business-bank"))
    assert anonymous.get("/api/v1/me/accesses", headers=biz).status_code == 200
    assert anonymous.get("/api/v1/me/cases", headers=biz).json["result"] == []
