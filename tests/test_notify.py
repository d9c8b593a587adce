"""Cross-agency notification through the API, with a real SMTP server receiving
every e-mail: the citizen's address change reaching three agencies, a fire
reported agency to agency, refused steps, the assignment race, and strict
separation between agencies."""

import base64
import io
import threading

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import outbox as mail_priority
from app.models.notify import Attachment, Dispatch, NotificationCase
from app.services import outbox
from tests.conftest import api_token, bearer

CITIZEN = {
    "name": "王小明",
    "id_no": "A123456789",
    "email": "wang.xiaoming@example.tw",
    "phone": "03-8221234",
    "address": "示範縣東區中正里7鄰中正路一段128號",
}


def consent_pdf() -> bytes:
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    c.drawString(72, 720, "Consent form (scan)")
    c.showPage()
    c.drawString(72, 720, "page 2")
    c.save()
    return buf.getvalue()


def attachment(data: bytes, name="consent.pdf", kind="consent") -> dict:
    return {"filename": name, "content_base64": base64.b64encode(data).decode(), "kind": kind}


def register(client, token, category, **extra):
    body = {
        "category": category,
        "citizen": CITIZEN,
        "content": "民眾辦理住址變更，新址如上。",
        "attachments": [attachment(consent_pdf())],
    }
    body.update(extra)
    return client.post("/api/v1/cases/", json=body, headers=bearer(token))


def act(client, token, dispatch_id, action, **body):
    return client.post(f"/api/v1/dispatches/{dispatch_id}/{action}", json=body, headers=bearer(token))


def run_to_close(client, agency: str, dispatch_id: int):
    sup, han = api_token(client, f"supervisor.{agency}"), api_token(client, f"handler.{agency}")
    opened = client.get(f"/api/v1/dispatches/{dispatch_id}", headers=bearer(sup)).json["result"]
    assert opened["state"] == "received" and opened["received_by"] == f"supervisor.{agency}"
    assert (
        act(client, sup, dispatch_id, "assign", handler=f"handler.{agency}", version=opened["version"]).status_code
        == 200
    )
    assert act(client, han, dispatch_id, "accept").status_code == 200
    r = act(
        client, han, dispatch_id, "process", result="已更新所有權人住址。", control_type="closed", notes="依通報辦理"
    )
    assert r.status_code == 200, r.json
    r = act(client, sup, dispatch_id, "close")
    assert r.status_code == 200, r.json
    return r.json["result"]


def _deliver(app, smtp, expected):
    with app.app_context():
        outbox.work_once(db.session, limit=500)
    return smtp.sink.wait_for(expected)


def _mails_to(received, address):
    from email import message_from_bytes
    from email.header import decode_header, make_header

    out = []
    for env in received:
        if address in env.rcpt_tos:
            msg = message_from_bytes(env.original_content)
            out.append(str(make_header(decode_header(msg["Subject"]))))
    return out


def test_an_address_change_reaches_land_office_tax_bureau_and_motor_vehicles_and_the_citizen_hears_each_step(
    app, client, smtp
):
    with app.app_context():
        outbox_before = db.session.scalar(select(db.func.count()).select_from(outbox.OutboxMessage))
    notifier = api_token(client, "notifier")
    cats = client.get("/api/v1/categories/", headers=bearer(notifier)).json["result"]
    address = next(c for c in cats if c["sub_item"] == "地址變更")
    assert {a["code"] for a in address["default_receivers"]} == {"LAND", "TAX", "MOTOR"}
    r = register(client, notifier, address["id"])
    assert r.status_code == 201, r.json
    case_no = r.json["case_no"]
    assert case_no[:7].isdigit() and case_no[7] == "-"
    case = r.json["result"]
    assert {d["agency"]["code"] for d in case["dispatches"]} == {"LAND", "TAX", "MOTOR"}
    assert all(d["state"] == "sent" and d["sent_by"] == "notifier" for d in case["dispatches"])
    ids = {d["agency"]["code"]: d["id"] for d in case["dispatches"]}
    for code, agency in (("LAND", "land"), ("TAX", "tax")):
        closed = run_to_close(client, agency, ids[code])
        assert closed["state"] == "closed" and closed["control_type"] == "closed"
    view = client.get(f"/api/v1/cases/{case_no}", headers=bearer(notifier)).json["result"]
    assert view["status"] == "open"
    run_to_close(client, "motor", ids["MOTOR"])
    view = client.get(f"/api/v1/cases/{case_no}", headers=bearer(notifier)).json["result"]
    assert view["status"] == "completed" and view["completed_at"]
    actions = [e["action"] for e in view["events"]]
    assert actions[:2] == ["register", "dispatch"] and actions[-1] == "complete"
    assert actions.count("close") == 3 and actions.count("assign") == 3

    received = _deliver(app, smtp, 8)
    to_citizen = _mails_to(received, CITIZEN["email"])
    # registered, then completed carrying the 3 accepted and 3 closed still within their window
    assert len(to_citizen) == 2, to_citizen
    assert all(case_no in s for s in to_citizen)
    assert any("已全部辦結" in s for s in to_citizen)
    assert len(_mails_to(received, "hh-east@county.demo.gov.tw")) == 3  # each dispatch closed
    for agency in ("land", "tax", "motor"):
        assert len(_mails_to(received, f"{agency}@{'mvdis' if agency == 'motor' else 'county'}.demo.gov.tw")) == 1
    with app.app_context():
        total = db.session.scalar(select(db.func.count()).select_from(outbox.OutboxMessage))
        # The citizen's mails go before the staff notices queued with them.
        priorities = dict(
            db.session.execute(
                select(outbox.OutboxMessage.recipient, outbox.OutboxMessage.priority).where(
                    outbox.OutboxMessage.topic.like(f"case:{case_no}:%")
                )
            ).all()
        )
    assert total - outbox_before == 14  # the citizen's 8, merged into 2 mails
    assert priorities.pop(CITIZEN["email"]) == mail_priority.CITIZEN
    assert set(priorities.values()) == {mail_priority.NORMAL}


def test_a_fire_reported_agency_to_agency_emails_the_agencies_only(app, client, smtp):
    fire = api_token(client, "notifier.fire")
    r = client.post(
        "/api/v1/cases/",
        json={
            "category": "災害通報/火災建物毀損",
            "citizen": {"address": "示範縣西區和平路5號"},
            "content": "115/11/25 火災，建物半毀，住戶 3 人。",
        },
        headers=bearer(fire),
    )
    assert r.status_code == 201, r.json
    ids = {d["agency"]["code"]: d["id"] for d in r.json["result"]["dispatches"]}
    assert set(ids) == {"SOCIAL", "TAX", "LABOUR"}
    for code in ("SOCIAL", "TAX", "LABOUR"):
        run_to_close(client, code.lower(), ids[code])
    received = _deliver(app, smtp, 7)
    assert not _mails_to(received, CITIZEN["email"])
    to_fire = _mails_to(received, "fire@county.demo.gov.tw")
    assert len(to_fire) == 4 and any("已全部辦結" in s for s in to_fire)


def test_illegal_steps_are_refused_with_clear_messages_and_change_nothing(app, client):
    notifier = api_token(client, "notifier")
    case = register(client, notifier, "戶籍異動/更名").json["result"]
    land = next(d["id"] for d in case["dispatches"] if d["agency"]["code"] == "LAND")
    sup, han = api_token(client, "supervisor.land"), api_token(client, "handler.land")
    r = act(client, han, land, "accept")
    assert r.status_code == 409 and "已送達" in r.json["message"] or "已送出" in r.json["message"]
    r = act(client, han, land, "assign", handler="handler.land")
    assert r.status_code == 403
    r = act(client, sup, land, "assign", handler="handler.tax")
    assert r.status_code == 400 and "本機關" in r.json["message"]
    assert act(client, sup, land, "assign", handler="handler.land").status_code == 200
    r = act(client, sup, land, "close")
    assert r.status_code == 409
    assert act(client, han, land, "accept").status_code == 200
    r = act(client, han, land, "process", result="", control_type="closed")
    assert r.status_code == 400
    r = act(client, han, land, "process", result="辦畢", control_type="maybe")
    assert r.status_code == 400
    assert act(client, han, land, "process", result="辦畢", control_type="continuing").status_code == 200
    r = act(client, sup, land, "return")
    assert r.status_code == 400 and "理由" in r.json["message"]
    r = act(client, sup, land, "return", reason="請補充處理說明")
    assert r.status_code == 200 and r.json["result"]["state"] == "accepted"
    assert act(client, sup, land, "fly").status_code == 404
    with app.app_context():
        d = db.session.get(Dispatch, land)
        assert d.state == "accepted" and d.return_reason == "請補充處理說明"


def test_two_supervisors_assigning_at_once_exactly_one_wins(app, client):
    from flask import current_app

    with app.app_context():
        sm = current_app.appbuilder.sm
        if sm.find_user(username="supervisor.land2") is None:
            u = sm.add_user(
                "supervisor.land2",
                "二",
                "吳",
                "sup2@county.demo.gov.tw",
                sm.find_role("Supervisor"),
                password="Demo-2026",
            )
            u.agency = sm.find_user(username="supervisor.land").agency
            db.session.commit()
    case = register(client, api_token(client, "notifier"), "戶籍異動/更名").json["result"]
    land = next(d["id"] for d in case["dispatches"] if d["agency"]["code"] == "LAND")
    tokens = [api_token(client, "supervisor.land"), api_token(client, "supervisor.land2")]
    version = client.get(f"/api/v1/dispatches/{land}", headers=bearer(tokens[0])).json["result"]["version"]
    barrier = threading.Barrier(2)
    statuses = []

    def assign(token):
        c = app.test_client()
        barrier.wait()
        statuses.append(act(c, token, land, "assign", handler="handler.land", version=version).status_code)

    threads = [threading.Thread(target=assign, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200, 409]


def test_nobody_reads_another_agencys_dispatch(app, client):
    case = register(client, api_token(client, "notifier"), "戶籍異動/更名").json["result"]
    ids = {d["agency"]["code"]: d["id"] for d in case["dispatches"]}
    tax = api_token(client, "supervisor.tax")
    assert client.get(f"/api/v1/dispatches/{ids['LAND']}", headers=bearer(tax)).status_code == 404
    assert act(client, tax, ids["LAND"], "assign", handler="handler.tax").status_code == 404
    seen = client.get(f"/api/v1/cases/{case['case_no']}", headers=bearer(tax)).json["result"]
    assert [d["agency"]["code"] for d in seen["dispatches"]] == ["TAX"]
    assert seen["citizen"]["id_no"] == "******6789"
    social = api_token(client, "supervisor.social")
    assert client.get(f"/api/v1/cases/{case['case_no']}", headers=bearer(social)).status_code == 404
    work = client.get("/api/v1/worklist/incoming", headers=bearer(tax)).json
    assert all(item["agency"]["code"] == "TAX" for item in work["result"])


def test_work_lists_come_a_page_at_a_time_newest_first(app, client):
    notifier = api_token(client, "notifier")
    made = [register(client, notifier, "戶籍異動/更名").json["result"]["case_no"] for _ in range(3)]
    old = app.config["WORKLIST_PAGE_SIZE"]
    app.config["WORKLIST_PAGE_SIZE"] = 2
    try:
        first = client.get("/api/v1/worklist/cases", headers=bearer(notifier)).json
        second = client.get("/api/v1/worklist/cases?page=2", headers=bearer(notifier)).json
    finally:
        app.config["WORKLIST_PAGE_SIZE"] = old
    assert first["count"] == 2 and first["more"] is True and second["page"] == 2
    assert [c["case_no"] for c in first["result"]] == made[::-1][:2]  # newest first
    assert second["result"][0]["case_no"] == made[0]
    assert not {c["case_no"] for c in first["result"]} & {c["case_no"] for c in second["result"]}


@pytest.mark.parametrize(
    "change,needle",
    [
        ({"citizen": {**CITIZEN, "id_no": "A123456788"}}, "身分證"),
        ({"citizen": {**CITIZEN, "email": "not-an-address"}}, "電子郵件"),
        ({"attachments": []}, "同意書"),
        ({"attachments": [attachment(b"\x89PNG\r\n\x1a\n" + b"0" * 100, name="scan.pdf")]}, ""),
        ({"attachments": [attachment(b"MZ" + b"\x00" * 200, name="virus.pdf")]}, ""),
        ({"content": ""}, "通報內容"),
        ({"receivers": []}, "受文機關"),
    ],
)
def test_bad_registrations_are_refused_and_leave_nothing_behind(app, client, change, needle):
    notifier = api_token(client, "notifier")
    with app.app_context():
        before = db.session.scalar(select(db.func.count()).select_from(NotificationCase))
    r = register(client, notifier, "戶籍異動/更名", **change)
    assert r.status_code == 400, r.json
    assert needle in r.json["message"]
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(NotificationCase)) == before


def test_an_oversized_attachment_is_refused(app, client):
    app.config["ATTACHMENT_MAX_BYTES"], saved = 1000, app.config["ATTACHMENT_MAX_BYTES"]
    try:
        r = register(client, api_token(client, "notifier"), "戶籍異動/更名")
        assert r.status_code == 400
    finally:
        app.config["ATTACHMENT_MAX_BYTES"] = saved


def _stored(app) -> tuple[int, int, int]:
    with app.app_context():
        return tuple(
            db.session.scalar(select(db.func.count()).select_from(model))
            for model in (NotificationCase, Attachment, outbox.OutboxMessage)
        )


def test_an_81_megapixel_consent_scan_is_refused_in_chinese_and_nothing_is_stored(app, client):
    from tests.test_attachments import png_rows

    notifier = api_token(client, "notifier")
    before = _stored(app)
    scan = attachment(png_rows(9000, 9000), name="同意書.png")
    r = register(client, notifier, "戶籍異動/更名", attachments=[scan])
    assert r.status_code == 400
    assert r.json["message"] == "影像過大無法處理（所有頁面合計超過 50 百萬像素），未儲存任何資料。"
    assert _stored(app) == before  # no case, no attachment, no e-mail


def test_an_over_budget_image_refused_at_registration_is_audited_with_the_category_and_the_limit(app, client):
    """Who tried, on which category (the case was never made), which limit; never the image or its name."""
    import json

    from app.models.audit import AuditEvent
    from app.models.notify import NotificationCategory
    from tests.test_attachments import png_rows

    notifier = api_token(client, "notifier")
    scan = attachment(png_rows(9000, 9000), name="A123456789同意書.png")
    assert register(client, notifier, "戶籍異動/更名", attachments=[scan]).status_code == 400
    with app.app_context():
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "attachment_refused").order_by(AuditEvent.id.desc())
        ).first()
        assert event is not None and event.outcome == "refused" and event.actor == "notifier"
        category = db.session.get(NotificationCategory, int(event.object_id))
        assert event.object_type == "NotificationCategory" and (category.main_item, category.sub_item) == (
            "戶籍異動",
            "更名",
        )
        detail = json.loads(event.detail)
        assert {k: detail[k] for k in ("rule", "limit", "kind", "mime")} == {
            "rule": "pixels",
            "limit": 50_000_000,
            "kind": "consent",
            "mime": "image/png",
        }
        assert "A123456789" not in event.detail and "同意書" not in event.detail


def test_a_consent_pdf_with_scripts_is_kept_as_sent_and_its_stamped_copy_runs_nothing(app, client):
    from app.services.notify import attachments as att
    from tests.test_attachments import active_content, active_pdf

    armed = active_pdf()
    notifier = api_token(client, "notifier")
    case = register(client, notifier, "戶籍異動/更名", attachments=[attachment(armed)]).json["result"]
    stored_id = case["attachments"][0]["id"]
    with app.app_context():
        stored = db.session.get(Attachment, stored_id)
        assert stored.original == armed and stored.sha256 == att.digest(armed)  # sealed as sent, byte for byte
        assert active_content(stored.stamped) == []
    assert client.get(f"/api/v1/attachments/{stored_id}/check", headers=bearer(notifier)).json["intact"] is True


def test_a_category_without_receivers_is_refused(client):
    admin = api_token(client, "admin")
    r = client.post(
        "/api/v1/notification-categories/",
        json={"main_item": "測試", "sub_item": "無受文機關", "kind": "citizen", "due_days": 5, "default_receivers": []},
        headers=bearer(admin),
    )
    assert r.status_code == 400 and "受文機關" in r.json["message"]


def test_case_numbers_stay_unique_when_registered_at_once(app, client):
    token = api_token(client, "notifier")
    numbers, errors = [], []

    def one():
        c = app.test_client()
        r = register(c, token, "戶籍異動/更名")
        (numbers.append(r.json["case_no"]) if r.status_code == 201 else errors.append(r.json))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(numbers) == 8 and len(set(numbers)) == 8


def test_the_consent_scan_is_kept_sealed_and_checked(app, client):
    notifier = api_token(client, "notifier")
    case = register(client, notifier, "戶籍異動/更名").json["result"]
    att = case["attachments"][0]
    r = client.get(f"/api/v1/attachments/{att['id']}/check", headers=bearer(notifier)).json
    assert r["intact"] is True
    from app.models.notify import Attachment

    with app.app_context():
        stored = db.session.get(Attachment, att["id"])
        assert stored.original == consent_pdf() or stored.original.startswith(b"%PDF")
        assert stored.stamped and stored.stamped.startswith(b"%PDF")
        data = bytearray(stored.original)
        data[len(data) // 2] ^= 0x01  # one bit changed in the stored file
        stored.original = bytes(data)
        db.session.commit()
    r = client.get(f"/api/v1/attachments/{att['id']}/check", headers=bearer(notifier)).json
    assert r["intact"] is False
    other = api_token(client, "supervisor.social")
    assert client.get(f"/api/v1/attachments/{att['id']}/check", headers=bearer(other)).status_code == 404


def test_the_receiving_agencys_first_opening_is_a_recorded_and_audited_receipt(app, client):
    from app.models.audit import AuditEvent

    case = register(client, api_token(client, "notifier"), "戶籍異動/更名").json["result"]
    land = next(d["id"] for d in case["dispatches"] if d["agency"]["code"] == "LAND")
    notifier, sup = api_token(client, "notifier"), api_token(client, "supervisor.land")
    # The notifying agency opening it records nothing.
    assert client.get(f"/api/v1/dispatches/{land}", headers=bearer(notifier)).json["result"]["state"] == "sent"
    first = client.get(f"/api/v1/dispatches/{land}", headers=bearer(sup)).json["result"]
    again = client.get(f"/api/v1/dispatches/{land}", headers=bearer(sup)).json["result"]
    assert first["state"] == again["state"] == "received" and first["version"] == again["version"]
    with app.app_context():
        receipts = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "dispatch_receive", AuditEvent.object_id == str(land))
        ).all()
        assert len(receipts) == 1 and receipts[0].actor == "supervisor.land"
    events = client.get(f"/api/v1/cases/{case['case_no']}", headers=bearer(notifier)).json["result"]["events"]
    assert [e["action"] for e in events].count("receive") == 1


BAD_REGISTRATIONS = [
    {"category": True},
    {"category": {"id": 1}},
    {"roles": [{}]},
    {"receivers": [{}]},
    {"receivers": [True]},
    {"receivers": "LAND"},
    {"citizen": {**CITIZEN, "id_no": 123}},
    {"citizen": {**CITIZEN, "nickname": "小明"}},
    {"content": "\ud800"},
    {"content": ["a"]},
    {"attachments": [{"filename": "a.pdf", "content_base64": "not base64!", "kind": "consent"}]},
    {"attachments": [{"filename": "a.pdf", "content_base64": "", "kind": "virus"}]},
    {"receivers": [99999999999999999999999]},
]


@pytest.mark.parametrize("change", BAD_REGISTRATIONS, ids=[str(c)[:40] for c in BAD_REGISTRATIONS])
def test_malformed_registration_bodies_get_a_400_and_leave_nothing_behind(app, client, change):
    notifier = api_token(client, "notifier")
    with app.app_context():
        before = db.session.scalar(select(db.func.count()).select_from(NotificationCase))
    body = {
        "category": "戶籍異動/更名",
        "citizen": CITIZEN,
        "content": "民眾辦理更名。",
        "attachments": [attachment(consent_pdf())],
        **change,
    }
    r = client.post("/api/v1/cases/", json=body, headers=bearer(notifier))
    assert r.status_code == 400, r.json
    assert r.json["message"]
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(NotificationCase)) == before


def test_a_boolean_category_is_refused_in_chinese_not_taken_as_category_1(client):
    notifier = api_token(client, "notifier")
    body = {"category": True, "citizen": CITIZEN, "content": "民眾辦理更名。"}
    r = client.post("/api/v1/cases/", json=body, headers=bearer(notifier))
    assert r.status_code == 400
    assert r.json["errors"]["category"] == ["請提供 id（數字）或代碼（文字）。"]


def test_a_body_that_is_not_a_json_object_gets_a_400(client):
    notifier = api_token(client, "notifier")
    for data in ("[1, 2]", "not json", '"text"'):
        r = client.post("/api/v1/cases/", data=data, content_type="application/json", headers=bearer(notifier))
        assert r.status_code == 400, (data, r.status_code)


def test_malformed_dispatch_steps_and_ids_beyond_64_bits_get_a_4xx_never_a_500(app, client):
    case = register(client, api_token(client, "notifier"), "戶籍異動/更名").json["result"]
    land = next(d["id"] for d in case["dispatches"] if d["agency"]["code"] == "LAND")
    sup = api_token(client, "supervisor.land")
    huge = 99999999999999999999999
    assert client.get(f"/api/v1/dispatches/{huge}", headers=bearer(sup)).status_code == 404
    assert act(client, sup, huge, "assign", handler="handler.land").status_code == 404
    assert client.get(f"/api/v1/attachments/{huge}/check", headers=bearer(sup)).status_code == 404
    assert client.get(f"/api/v1/cases/{'9' * 40}", headers=bearer(sup)).status_code == 404
    for body in (
        {"handler": "handler.tax", "version": "abc"},
        {"handler": "handler.land", "version": True},
        {"handler": "handler.land", "version": 2**63},
        {"handler": {"username": "handler.land"}},
        {"handler": "handler.land", "colour": "red"},
        {"handler": "handler.land", "notes": "\ud800"},
    ):
        r = act(client, sup, land, "assign", **body)
        assert r.status_code == 400, (body, r.status_code, r.json)
    with app.app_context():
        assert db.session.get(Dispatch, land).handler_id is None
    assert act(client, sup, land, "assign", handler="handler.land").status_code == 200
