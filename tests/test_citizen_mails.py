"""The citizen's e-mails about a case, with a real SMTP server receiving them:
the demo address change to three agencies mails the citizen at most four times
(registered, progress, completed with the questionnaire link) and names each
agency's change in some mail; a change after the window goes in a mail of its
own; a category that does not mail a stage sends nothing for it."""

import datetime
import re
import time
from email import message_from_bytes
from email.header import decode_header, make_header

from sqlalchemy import select, update

from app.extensions import db
from app.models.outbox import MERGED, QUEUED, SENT, OutboxMessage
from app.services import outbox
from tests.conftest import api_token, bearer
from tests.test_notify import act, register


def _names(client, token, case_no) -> dict:
    """The receiving agencies' names as the case shows them, by code."""
    case = client.get(f"/api/v1/cases/{case_no}", headers=bearer(token)).json["result"]
    return {d["agency"]["code"]: d["agency"]["name"] for d in case["dispatches"]}


def _citizen(tag: str) -> dict:
    return {
        "name": "王小明",
        "id_no": "A123456789",
        "email": f"wang.{tag}@example.tw",
        "phone": "03-8221234",
        "address": "示範縣東區中正里7鄰中正路一段128號",
    }


def _address_change(client, tag: str) -> tuple[str, dict, dict]:
    """The notifier registers the demo address change: (case number, dispatch ids and agency names by code)."""
    notifier = api_token(client, "notifier")
    cats = client.get("/api/v1/categories/", headers=bearer(notifier)).json["result"]
    address = next(c for c in cats if c["sub_item"] == "地址變更")
    r = register(client, notifier, address["id"], citizen=_citizen(tag))
    assert r.status_code == 201, r.json
    ids = {d["agency"]["code"]: d["id"] for d in r.json["result"]["dispatches"]}
    assert set(ids) == {"LAND", "TAX", "MOTOR"}
    return r.json["case_no"], ids, _names(client, notifier, r.json["case_no"])


def _accept(client, agency: str, dispatch_id: int) -> None:
    sup, han = api_token(client, f"supervisor.{agency}"), api_token(client, f"handler.{agency}")
    assert act(client, sup, dispatch_id, "assign", handler=f"handler.{agency}").status_code == 200
    assert act(client, han, dispatch_id, "accept").status_code == 200


def _close(client, agency: str, dispatch_id: int) -> None:
    sup, han = api_token(client, f"supervisor.{agency}"), api_token(client, f"handler.{agency}")
    r = act(client, han, dispatch_id, "process", result=f"{agency} 已更新地址。", control_type="closed")
    assert r.status_code == 200, r.json
    assert act(client, sup, dispatch_id, "close").status_code == 200


def _minutes_pass(app, minutes: float) -> None:
    """The queue's clock moves on: what waits is due that much sooner."""
    t = OutboxMessage.__table__
    with app.app_context():
        waiting = db.session.execute(select(t.c.id, t.c.next_attempt_at).where(t.c.status == QUEUED)).all()
        for msg_id, at in waiting:
            db.session.execute(
                update(t).where(t.c.id == msg_id).values(next_attempt_at=at - datetime.timedelta(minutes=minutes))
            )
        db.session.commit()
        db.session.remove()


def _send(app) -> None:
    with app.app_context():
        outbox.work_once(db.session, limit=500)
        db.session.remove()


def _received(smtp, address: str) -> list[tuple[str, str]]:
    """(subject, body) of each mail the SMTP server received for ``address``."""
    out = []
    with smtp.sink.lock:
        received = list(smtp.sink.messages)
    for env in received:
        if address in env.rcpt_tos:
            msg = message_from_bytes(env.original_content)
            body = msg.get_payload(decode=True).decode(msg.get_content_charset() or "utf-8")
            out.append((str(make_header(decode_header(msg["Subject"]))), body))
    return out


def _wait(smtp, address: str, count: int) -> list[tuple[str, str]]:
    """What ``address`` received, once it has ``count`` mails (or after 10 s)."""
    deadline = time.monotonic() + 10
    while len(_received(smtp, address)) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return _received(smtp, address)


def test_the_demo_address_change_to_three_agencies_mails_the_citizen_at_most_four_times_naming_every_change(
    app, client, smtp
):
    case_no, ids, names = _address_change(client, "four")
    email = "wang.four@example.tw"
    _send(app)
    assert [s for s, _ in _wait(smtp, email, 1)] == [f"【跨機關通報】案件 {case_no} 已受理"]

    # the three agencies accept within minutes: nothing yet, then one mail after the window
    for code, agency in (("LAND", "land"), ("TAX", "tax"), ("MOTOR", "motor")):
        _accept(client, agency, ids[code])
    _send(app)
    assert len(_received(smtp, email)) == 1
    _minutes_pass(app, 11)
    _send(app)
    mails = _wait(smtp, email, 2)
    assert len(mails) == 2, mails
    subject, body = mails[1]
    assert subject == f"【跨機關通報】案件 {case_no} 辦理進度"
    for code in ("LAND", "TAX", "MOTOR"):
        assert f"{names[code]}已受理" in body, body

    # two finish within minutes: one more mail after the window
    _close(client, "land", ids["LAND"])
    _close(client, "tax", ids["TAX"])
    _minutes_pass(app, 11)
    _send(app)
    mails = _wait(smtp, email, 3)
    assert len(mails) == 3, mails
    assert all(
        f"{names[c]}已辦結，處理結果：{a} 已更新地址。" in mails[2][1] for c, a in (("LAND", "land"), ("TAX", "tax"))
    )

    # the last one finishes: the completion mail, at once, with its change and the questionnaire link
    _close(client, "motor", ids["MOTOR"])
    _send(app)
    mails = _wait(smtp, email, 4)
    assert len(mails) == 4, [s for s, _ in mails]
    subject, body = mails[3]
    assert subject == f"【跨機關通報】案件 {case_no} 已全部辦結"
    assert f"{names['MOTOR']}已辦結，處理結果：motor 已更新地址。" in body and "/survey/" in body, body
    _minutes_pass(app, 60)
    _send(app)
    assert len(_received(smtp, email)) == 4

    # nothing lost, nothing twice: each change went out in exactly one sent mail
    with app.app_context():
        rows = db.session.execute(
            select(OutboxMessage.topic, OutboxMessage.status, OutboxMessage.merged_into).where(
                OutboxMessage.recipient == email
            )
        ).all()
        db.session.remove()
    assert {status for _, status, _ in rows} == {SENT, MERGED}
    assert sorted(t.rsplit(":", 1)[1] for t, _, _ in rows) == sorted(
        ["registered", "completed"] + ["accepted"] * 3 + ["dispatch_closed"] * 3
    )
    sent_topics = [t for t, status, _ in rows if status == SENT]
    assert len(sent_topics) == 4
    # the agencies and the notifier still hear of each step as before
    assert len(_received(smtp, "hh-east@county.demo.gov.tw")) == 3


def test_a_change_after_the_window_goes_in_a_mail_of_its_own(app, client, smtp):
    case_no, ids, names = _address_change(client, "window")
    email = "wang.window@example.tw"
    _accept(client, "land", ids["LAND"])
    _minutes_pass(app, 11)
    _send(app)
    mails = _wait(smtp, email, 2)
    assert [s for s, _ in mails] == [
        f"【跨機關通報】案件 {case_no} 已受理",
        f"【跨機關通報】{names['LAND']}已受理案件 {case_no}",  # one change: the stage's own mail
    ]
    # the tax bureau accepts after that mail went: it waits its own window, then goes alone
    _accept(client, "tax", ids["TAX"])
    _send(app)
    assert len(_received(smtp, email)) == 2
    _minutes_pass(app, 11)
    _send(app)
    mails = _wait(smtp, email, 3)
    assert len(mails) == 3
    assert names["TAX"] in mails[2][0] and names["LAND"] not in mails[2][1]


def test_the_category_decides_which_stages_mail_the_citizen_and_refuses_unknown_ones(app, client, smtp):
    admin = bearer(api_token(client, "admin"))
    cats = client.get("/api/v1/notification-categories/?q=(page_size:100)", headers=admin).json["result"]
    address = next(c for c in cats if c["sub_item"] == "地址變更")
    assert address["citizen_mail_stages"] == "registered,accepted,dispatch_closed,completed"
    r = client.put(
        f"/api/v1/notification-categories/{address['id']}", json={"citizen_mail_stages": "registered,nonsense"},
        headers=admin,
    )  # fmt: skip
    assert r.status_code == 400 and "registered" in r.json["message"]
    r = client.put(
        f"/api/v1/notification-categories/{address['id']}", json={"citizen_mail_stages": "registered,completed"},
        headers=admin,
    )  # fmt: skip
    assert r.status_code == 200, r.json
    # the Admin's screen shows the stages as checkboxes, the chosen ones ticked
    from tests.conftest import login

    screen = app.test_client()
    login(screen, "admin")
    page = screen.get(f"/notificationcategoryview/edit/{address['id']}").text
    tags = [t for t in re.findall(r"<input[^>]*>", page) if 'name="citizen_mail_stages"' in t]
    boxes = {re.search(r'value="(\w+)"', t)[1]: " checked" in t for t in tags}
    assert boxes == {
        "registered": True,
        "dispatched": False,
        "accepted": False,
        "dispatch_closed": False,
        "completed": True,
    }, boxes
    assert "機關受理案件" in page

    case_no, ids, _ = _address_change(client, "policy")
    email = "wang.policy@example.tw"
    for code, agency in (("LAND", "land"), ("TAX", "tax"), ("MOTOR", "motor")):
        _accept(client, agency, ids[code])
        _close(client, agency, ids[code])
    _minutes_pass(app, 60)
    _send(app)
    mails = _wait(smtp, email, 2)
    assert [s for s, _ in mails] == [
        f"【跨機關通報】案件 {case_no} 已受理",
        f"【跨機關通報】案件 {case_no} 已全部辦結",
    ]
    assert "已受理" not in mails[1][1].split("均已辦結")[1]  # no progress listed: the category mails none
    with app.app_context():
        topics = db.session.scalars(select(OutboxMessage.topic).where(OutboxMessage.recipient == email)).all()
        db.session.remove()
    assert sorted(t.rsplit(":", 1)[1] for t in topics) == ["completed", "registered"]
    r = client.put(
        f"/api/v1/notification-categories/{address['id']}",
        json={"citizen_mail_stages": "registered,accepted,dispatch_closed,completed"},
        headers=admin,
    )
    assert r.status_code == 200
