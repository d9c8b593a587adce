"""Applying online (issue 15, item 2): a citizen signed in with a demo card applies for an address
change over the API and on the portal's pages, signing the application's canonical content with the
card through the local signing component's simulator; the server checks the signature (real
certauth, OCSP responders and CRL server), registers the case through the counter's workflow with the
signature kept with it, and the receiving agency's check integrity shows signer, time and status.
A business applies for its business category. Faults: a missing field, a wrong attachment type, a
signature over other content, a revoked card, another person's card: refused in Chinese, nothing
registered, audited. The category's web settings on the admin API."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image
from reportlab.pdfgen.canvas import Canvas
from sqlalchemy import func, select

from app.extensions import db
from app.models.notify import Attachment, CaseSignature, NotificationCase, NotificationCategory
from tests.conftest import api_token, bearer, csrf_token, login
from tests.test_cardsignin import card_info, sign
from tests.test_portal import card_page_sign_in, citizen_token, events, mark


@pytest.fixture(scope="module")
def pki():
    from tests.cards import card_pki, responders

    responders()
    return card_pki()


@pytest.fixture(scope="module")
def sim(pki):
    from app.simulators.signer import make_app

    return make_app(pki["dir"], None, origins=("http://localhost",)).test_client()


def a_pdf(text: str = "lease") -> bytes:
    buffer = io.BytesIO()
    canvas = Canvas(buffer)
    canvas.drawString(72, 720, text)
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def a_tiff() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (40, 40), 255).save(buffer, "TIFF")
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def signed_by(sim, card: str, content: str) -> str:
    answer = sign(sim, card, content).json
    assert answer["ret_code"] == 0, answer
    return answer["signature"]


def open_category(client, me, sub_item: str) -> dict:
    r = client.get("/api/v1/me/categories", headers=me)
    assert r.status_code == 200, r.json
    return next(c for c in r.json["result"] if c["sub_item"] == sub_item)


def address_change(category_id: int, id_number: str, **extra) -> dict:
    return {
        "category": category_id,
        "fields": {
            "address": {"old": "示範縣東平鄉中山路1號", "new": "示範縣西林鄉和平街88號3樓"},
            "moved_on": "2026-11-30",
        },
        "email": "wang@example.tw",
        "phone": "0912345678",
        "id_number": id_number,
        "attachments": [{"slot": "proof", "filename": "租約.pdf", "content": b64(a_pdf())}],
        **extra,
    }


def canonical(client, me, body: dict) -> dict:
    r = client.post("/api/v1/me/applications/canonical", json=body, headers=me)
    assert r.status_code == 200, r.json
    return r.json


def cases_count(app) -> int:
    with app.app_context():
        n = db.session.scalar(select(func.count()).select_from(NotificationCase))
        db.session.remove()
        return n


def test_a_citizen_applies_for_an_address_change_signed_with_the_card_and_it_runs_the_counters_workflow(app, pki, sim):
    client = app.test_client()
    wang = card_info(pki, "citizen-wang")
    me = bearer(citizen_token(client, sim, pki))
    listed = client.get("/api/v1/me/categories", headers=me).json["result"]
    assert [c["sub_item"] for c in listed] == ["地址變更"]  # the business category is not for citizens
    cat = listed[0]
    assert cat["agency_name"] == "示範縣東區戶政事務所" and "示範縣地政事務所" in cat["receivers"]
    assert [(f["name"], f["old_new"], f["required"]) for f in cat["fields"]][:2] == [
        ("address", True, True), ("moved_on", False, True)]  # fmt: skip
    assert cat["attachments"][0]["types"] == ["pdf", "jpeg", "png"]
    body = address_change(cat["id"], wang["id_number"])
    to_sign = canonical(client, me, body)
    content = json.loads(to_sign["content"])
    assert content["category"]["id"] == cat["id"] and content["applicant"]["kind"] == "citizen"
    assert content["fields"]["address"]["new"] == "示範縣西林鄉和平街88號3樓"
    assert content["attachments"][0]["slot"] == "proof" and len(content["attachments"][0]["sha256"]) == 64
    assert wang["id_number"] not in to_sign["content"]  # only the keyed hash names the applicant
    signature = signed_by(sim, "citizen-wang", to_sign["content"])
    before = cases_count(app)
    r = client.post("/api/v1/me/applications", json={**body, "time": to_sign["time"], "signature": signature},
                    headers=me)  # fmt: skip
    assert r.status_code == 201, r.json
    case_no = r.json["case_no"]
    assert cases_count(app) == before + 1
    # my case, as the portal shows it
    mine = client.get(f"/api/v1/me/cases/{case_no}", headers=me).json
    assert mine["notifying_agency"] == "示範縣東區戶政事務所" and mine["status"] == "open"
    assert {d["agency_name"] for d in mine["dispatches"]} == {
        "示範縣地政事務所",
        "示範縣地方稅務局",
        "交通部公路局示範監理站",
    }
    with app.app_context():
        case = db.session.scalar(select(NotificationCase).where(NotificationCase.case_no == case_no))
        sig = db.session.scalar(select(CaseSignature).where(CaseSignature.case_id == case.id))
        files = db.session.scalars(select(Attachment).where(Attachment.case_id == case.id)).all()
        assert case.citizen_id_no == wang["id_number"] and case.citizen_name == wang["holder"]
        assert case.operator_id is None and "原 示範縣東平鄉中山路1號 → 新 示範縣西林鄉和平街88號3樓" in case.content
        assert sig.content == to_sign["content"] and sig.signer_kind == "citizen" and sig.signed_at is not None
        assert sig.verified_by in ("ocsp", "ocsp-cache", "crl")
        assert [f.filename for f in files] == ["租約.pdf"] and files[0].sha256 == content["attachments"][0]["sha256"]
        db.session.remove()
    # the same signed application again: refused
    again = client.post("/api/v1/me/applications", json={**body, "time": to_sign["time"], "signature": signature},
                        headers=me)  # fmt: skip
    assert again.status_code == 409 and cases_count(app) == before + 1
    # the land office works it as any counter case
    dispatch = client.get(f"/api/v1/cases/{case_no}", headers=bearer(api_token(client, "supervisor.land"))).json
    land = next(d for d in dispatch["result"]["dispatches"] if d["agency"]["code"] == "LAND")
    from tests.test_notify import act

    sup = api_token(client, "supervisor.land")
    assert act(client, sup, land["id"], "assign", handler="handler.land", version=land["version"]).status_code == 200
    assert act(client, api_token(client, "handler.land"), land["id"], "accept").status_code == 200
    assert client.get(f"/api/v1/me/cases/{case_no}", headers=me).json["withdrawable"] is False
    # its check integrity: signer, signing time, certificate status now (audited)
    staff = app.test_client()
    login(staff, "supervisor.land")
    since = mark(app)
    case_page = staff.get(f"/notify/case/{case_no}").text
    assert 'id="case-signature"' in case_page
    page = staff.get(f"/notify/case/{case_no}/signature")
    assert page.status_code == 200
    assert wang["holder"] in page.text and "有效" in page.text and "示範縣西林鄉和平街88號3樓" in page.text
    assert [(a, o, d.get("status")) for a, o, _i, d in events(app, since) if a == "signature_check"] == [
        ("signature_check", "ok", "good")]  # fmt: skip
    # an agency that did not receive it does not see it
    social = app.test_client()
    login(social, "supervisor.social")
    assert social.get(f"/notify/case/{case_no}/signature").status_code == 404


def refused(client, me, body, card: str, sim, *, tamper=None):
    to_sign = canonical(client, me, body)
    signature = signed_by(sim, card, to_sign["content"])
    sent = {**body, "time": to_sign["time"], "signature": signature}
    if tamper:
        sent = tamper(sent)
    return client.post("/api/v1/me/applications", json=sent, headers=me)


def test_faults_are_refused_in_chinese_register_nothing_and_are_audited(app, pki, sim):
    from app.services import certauth
    from app.simulators.cardpki import set_revoked

    client = app.test_client()
    wang = card_info(pki, "citizen-wang")
    me = bearer(citizen_token(client, sim, pki))
    cat = open_category(client, me, "地址變更")
    good = address_change(cat["id"], wang["id_number"])
    before, since = cases_count(app), mark(app)
    # a missing field (the new address)
    body = {**good, "fields": {"address": {"old": "示範縣東平鄉中山路1號", "new": ""}, "moved_on": "2026-11-30"}}
    r = client.post("/api/v1/me/applications/canonical", json=body, headers=me)
    assert r.status_code == 400 and "「地址」" in r.json["message"], r.json
    r = client.post("/api/v1/me/applications", json={**body, "time": "2026-12-03T05:00:00Z", "signature": "AAAA"},
                    headers=me)  # fmt: skip
    assert r.status_code == 400 and "「地址」" in r.json["message"] and "未送出" in r.json["message"]
    # a wrong attachment type: a TIFF where PDF, JPEG or PNG is asked for; a text file
    tiff = {**good, "attachments": [{"slot": "proof", "filename": "scan.tif", "content": b64(a_tiff())}]}
    r = client.post("/api/v1/me/applications/canonical", json=tiff, headers=me)
    assert r.status_code == 400 and "PDF、JPEG、PNG" in r.json["message"], r.json
    text = {**good, "attachments": [{"slot": "proof", "filename": "note.txt", "content": b64(b"hello")}]}
    assert client.post("/api/v1/me/applications/canonical", json=text, headers=me).status_code == 400
    # a signature that does not cover the submitted content: another address after signing
    r = refused(client, me, good, "citizen-wang", sim,
                tamper=lambda s: {**s, "fields": {**s["fields"], "address": {"old": "示範縣東平鄉中山路1號",
                                                                              "new": "示範縣某處"}}})  # fmt: skip
    assert r.status_code == 400 and "簽章" in r.json["message"] and "未登記" in r.json["message"], r.json
    # another person's card
    r = refused(client, me, good, "citizen-lin", sim)
    assert r.status_code == 403 and "您登入時的卡片" in r.json["message"], r.json
    # a revoked card: lin signs in, then her card is revoked
    lin = card_info(pki, "citizen-lin")
    lin_me = bearer(citizen_token(client, sim, pki, "citizen-lin"))
    lin_body = {**good, "id_number": lin["id_number"], "email": "lin@example.tw"}
    set_revoked(pki["dir"], "citizen-lin", True)
    certauth.clear_cache()
    try:
        r = refused(client, lin_me, lin_body, "citizen-lin", sim)
        assert r.status_code == 403 and "廢止" in r.json["message"], r.json
    finally:
        set_revoked(pki["dir"], "citizen-lin", False)
        certauth.clear_cache()
    # another's ID number
    r = client.post("/api/v1/me/applications/canonical", json={**good, "id_number": lin["id_number"]}, headers=me)
    assert r.status_code == 400 and "身分證" in r.json["message"]
    assert cases_count(app) == before
    found = [(d.get("step"), d.get("code")) for a, o, _i, d in events(app, since)
             if a == "portal.application" and o == "refused"]  # fmt: skip
    assert ("signature", "wrong_content") in found and ("signature", "revoked") in found
    assert ("signer", None) in found and ("prepare", None) in found and ("check", None) in found
    text = json.dumps([d for *_x, d in events(app, since)], ensure_ascii=False)
    assert "示範縣西林鄉" not in text and wang["id_number"] not in text  # no personal data in the audit details


def test_a_business_applies_for_its_business_category_with_its_business_card(app, pki, sim):
    client = app.test_client()
    me = bearer(citizen_token(client, sim, pki, "business-bank"))
    listed = client.get("/api/v1/me/categories", headers=me).json["result"]
    assert [c["sub_item"] for c in listed] == ["營業地址變更"]
    cat = listed[0]
    body = {"category": cat["id"], "email": "bank@example.tw",
            "fields": {"business_address": {"old": "示範縣東平鄉中正路2號", "new": "示範縣西林鄉民生路5號"},
                       "effective_on": "2026-12-01"}}  # fmt: skip
    # the lease is required, and only as a PDF
    r = client.post("/api/v1/me/applications/canonical", json=body, headers=me)
    assert r.status_code == 400 and "營業場所租賃契約" in r.json["message"]
    body["attachments"] = [{"slot": "lease", "filename": "lease.pdf", "content": b64(a_pdf())}]
    to_sign = canonical(client, me, body)
    assert json.loads(to_sign["content"])["applicant"] == {"kind": "business", "key": "23582637"}
    signature = signed_by(sim, "business-bank", to_sign["content"])
    r = client.post("/api/v1/me/applications", json={**body, "time": to_sign["time"], "signature": signature},
                    headers=me)  # fmt: skip
    assert r.status_code == 201, r.json
    assert r.json["case_no"] in {c["case_no"] for c in client.get("/api/v1/me/cases", headers=me).json["result"]}
    # a citizen's category is not open to a business
    citizen_cat = next(c for c in client.get("/api/v1/categories/", headers=bearer(api_token(client, "notifier")))
                       .json["result"] if c["sub_item"] == "地址變更")  # fmt: skip
    assert client.post("/api/v1/me/applications/canonical", json={**body, "category": citizen_cat["id"]},
                       headers=me).status_code == 404  # fmt: skip
    # and staff or citizens reach nothing else
    assert client.get("/api/v1/me/categories", headers=bearer(api_token(client, "clerk"))).status_code == 403


def test_a_citizen_applies_on_the_portals_pages(app, pki, sim):
    page = app.test_client()
    wang = card_info(pki, "citizen-wang")
    citizen_token(app.test_client(), sim, pki)  # the first sign-in binds the card
    card_page_sign_in(page, sim, "citizen-wang")
    home = page.get("/portal/apply/")
    assert home.status_code == 200 and "地址變更" in home.text
    with app.app_context():
        cat_id = db.session.scalar(select(NotificationCategory.id).where(NotificationCategory.sub_item == "地址變更"))
        db.session.remove()
    form = page.get(f"/portal/apply/{cat_id}")
    assert form.status_code == 200 and 'id="field-address-old"' in form.text
    fields = {"csrf_token": csrf_token(form.text), "field-address-old": "示範縣東平鄉中山路1號",
              "field-address-new": "示範縣西林鄉和平街88號3樓", "field-moved_on": "2026-11-30",
              "email": "wang@example.tw", "id_number": wang["id_number"]}  # fmt: skip
    # a missing field: the page says which, in Chinese
    missing = page.post(f"/portal/apply/{cat_id}", data={**fields, "field-moved_on": ""})
    assert missing.status_code == 400 and "「遷入日期」" in missing.text
    r = page.post(f"/portal/apply/{cat_id}", data={**fields, "file-proof": (io.BytesIO(a_pdf()), "租約.pdf")},
                  content_type="multipart/form-data")  # fmt: skip
    assert r.status_code == 302, r.text
    review = page.get(r.headers["Location"])
    assert review.status_code == 200 and "示範縣西林鄉和平街88號3樓" in review.text and "租約.pdf" in review.text
    sign_url = r.headers["Location"]
    tbs = page.post(f"{sign_url}/content", headers={"X-CSRFToken": csrf_token(review.text)}).json
    assert tbs["tbs_encoding"] == "base64"
    content = base64.b64decode(tbs["tbs"]).decode("utf-8")
    assert json.loads(content)["fields"]["moved_on"] == "2026-11-30"
    done = page.post(sign_url, data={"csrf_token": csrf_token(review.text),
                                     "signature": signed_by(sim, "citizen-wang", content)})  # fmt: skip
    assert done.status_code == 302 and "/portal/cases/" in done.headers["Location"]
    case_page = page.get(done.headers["Location"])
    assert "已登記" in case_page.text or "案件" in case_page.text
    # the draft is spent
    assert page.get(sign_url).status_code == 404


def test_the_category_admin_api_opens_a_category_to_the_web_only_with_its_agency(app):
    client = app.test_client()
    admin = bearer(api_token(client, "admin"))
    cats = client.get("/api/v1/notification-categories/?q=(page_size:100)", headers=admin).json["result"]
    address = next(c for c in cats if c["sub_item"] == "地址變更")
    assert address["web_open"] is True and address["web_applicant"] == "citizen"
    fire = next(c for c in cats if c["sub_item"] == "火災建物毀損")
    with app.app_context():
        fire_id = db.session.scalar(
            select(NotificationCategory.id).where(NotificationCategory.sub_item == "火災建物毀損")
        )
        db.session.remove()
    r = client.put(f"/api/v1/notification-categories/{fire_id}", json={"web_open": True}, headers=admin)
    assert r.status_code == 400 and fire["web_open"] is False
    fields = client.get("/api/v1/category-fields/?q=(page_size:100)", headers=admin).json["result"]
    assert {"address", "moved_on", "business_address"} <= {f["name"] for f in fields}
    bad = client.post("/api/v1/category-attachments/", headers=admin,
                      json={"category": fire_id, "position": 1, "name": "x", "label": "X", "types": "exe"})  # fmt: skip
    assert bad.status_code == 400
    screen = app.test_client()
    login(screen, "admin")
    page = screen.get(f"/notificationcategoryview/show/{address['id']}")
    assert page.status_code == 200 and "開放網路申辦" in page.text


def apply_address_change(client, sim, pki, me, card: str = "citizen-wang") -> str:
    cat = open_category(client, me, "地址變更")
    body = address_change(cat["id"], card_info(pki, card)["id_number"])
    to_sign = canonical(client, me, body)
    r = client.post("/api/v1/me/applications", headers=me,
                    json={**body, "time": to_sign["time"], "signature": signed_by(sim, card, to_sign["content"])})  # fmt: skip
    assert r.status_code == 201, r.json
    return r.json["case_no"]


def citizen_mails(app, case_no: str) -> list[str]:
    from app.models.outbox import OutboxMessage

    with app.app_context():
        topics = db.session.scalars(
            select(OutboxMessage.topic).where(OutboxMessage.topic.like(f"case:{case_no}:%"),
                                              OutboxMessage.recipient == "wang@example.tw")
        ).all()  # fmt: skip
        db.session.remove()
    return [t.rsplit(":", 1)[-1] for t in topics]


def test_my_case_shows_the_results_agencies_publish_and_emails_me_only_the_stages_i_chose(app, pki, sim):
    from tests.test_notify import act

    client = app.test_client()
    me = bearer(citizen_token(client, sim, pki))
    case_no = apply_address_change(client, sim, pki, me)
    assert citizen_mails(app, case_no) == ["registered"]  # the category does not mail "dispatched"
    mine = client.get(f"/api/v1/me/cases/{case_no}", headers=me).json
    assert mine["mail_stages"] == mine["mail_choices"] == ["accepted", "dispatch_closed", "completed"]
    # the citizen wants only the final e-mail
    r = client.put(f"/api/v1/me/cases/{case_no}/mails", json={"stages": ["completed"]}, headers=me)
    assert r.status_code == 200 and r.json["mail_stages"] == ["completed"], r.json
    assert client.put(f"/api/v1/me/cases/{case_no}/mails", json={"stages": ["nonsense"]}, headers=me).status_code == 400
    # the land office publishes its result, the tax bureau keeps its own
    for agency, publish in (("land", True), ("tax", False)):
        sup, han = api_token(client, f"supervisor.{agency}"), api_token(client, f"handler.{agency}")
        dispatches = client.get(f"/api/v1/cases/{case_no}", headers=bearer(sup)).json
        d = next(x for x in dispatches["result"]["dispatches"] if x["agency"]["code"] == agency.upper())
        assert act(client, sup, d["id"], "assign", handler=f"handler.{agency}").status_code == 200
        assert act(client, han, d["id"], "accept").status_code == 200
        r = act(client, han, d["id"], "process", result=f"{agency} 已完成地址更新。", control_type="closed",
                publish_result=publish)  # fmt: skip
        assert r.status_code == 200, r.json
        assert act(client, sup, d["id"], "close").status_code == 200
    mine = client.get(f"/api/v1/me/cases/{case_no}", headers=me).json
    results = {d["agency_name"]: d["result"] for d in mine["dispatches"]}
    assert results["示範縣地政事務所"] == "land 已完成地址更新。" and results["示範縣地方稅務局"] is None
    # no "accepted" nor "agency finished" e-mail went to the citizen
    assert citizen_mails(app, case_no) == ["registered"]
    # the page shows the published result and the choice
    page = app.test_client()
    card_page_sign_in(page, sim, "citizen-wang")
    html = page.get(f"/portal/cases/{case_no}").text
    assert "land 已完成地址更新。" in html and "tax 已完成地址更新。" not in html
    assert 'id="mail-completed" checked' in html and 'id="mail-accepted" checked' not in html
    r = page.post(
        f"/portal/cases/{case_no}/mails", data={"csrf_token": csrf_token(html), "stages": ["accepted", "completed"]}
    )
    assert r.status_code == 302
    assert client.get(f"/api/v1/me/cases/{case_no}", headers=me).json["mail_stages"] == ["accepted", "completed"]
    # the category's policy narrows the choice: a stage it never mails is not offered
    admin = bearer(api_token(client, "admin"))
    cats = client.get("/api/v1/notification-categories/?q=(page_size:100)", headers=admin).json["result"]
    address = next(c for c in cats if c["sub_item"] == "地址變更")
    stages = {"citizen_mail_stages": "registered,dispatch_closed,completed"}
    assert client.put(f"/api/v1/notification-categories/{address['id']}", json=stages, headers=admin).status_code == 200
    mine = client.get(f"/api/v1/me/cases/{case_no}", headers=me).json
    assert mine["mail_choices"] == ["dispatch_closed", "completed"] and mine["mail_stages"] == ["completed"]
    html = page.get(f"/portal/cases/{case_no}").text
    assert 'id="mail-dispatch_closed"' in html and 'id="mail-accepted"' not in html
    stages = {"citizen_mail_stages": "registered,accepted,dispatch_closed,completed"}
    assert client.put(f"/api/v1/notification-categories/{address['id']}", json=stages, headers=admin).status_code == 200
