"""Paying fees online (issue 16): a citizen pays a fee of their case on the payment gateway
simulator (a real subprocess) by card, chip card or bank account; the gateway's signed
notification, not the browser's return, makes the payment paid, once, however often it
comes; the case reaches its agencies only then; each bad notification is refused and
audited; a lost notification is settled by the query API; the day's settlement file is
reconciled and every mismatch listed; withdrawing the case refunds through the gateway."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import threading
import time
import uuid

import httpx
import pytest
from sqlalchemy import delete, func, select, text, update

from app.extensions import db
from app.lib import checkmac
from app.models.audit import AuditEvent
from app.models.notify import NotificationCase, NotificationCategory
from app.models.org import Agency
from app.models.payments import FeeItem, Payment, PaymentNotification, PaymentProvider
from tests.conftest import api_token, bearer, csrf_token, free_port, login
from tests.test_cardsignin import card_info
from tests.test_notify import CITIZEN, register
from tests.test_portal import card_page_sign_in, citizen_token
from tests.test_printout import run, squeezed, text_of

MERCHANT, KEY, IV = "3002607", "pwFHCqoQZGmho4w6", "EkRm7iFT261dpevs"
TAIPEI = datetime.timezone(datetime.timedelta(hours=8))


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
def paygate():
    """The gateway simulator as ./run.sh starts it, in a process of its own."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.simulators.paygate", "--port", str(port), "--retry-seconds", "0.2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if httpx.get(url + "/", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("the gateway simulator did not start")
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def served(app, paygate):
    """This module's platform on a real port (the gateway posts its notifications there), with
    the three providers and a fee of NT$150 due before dispatch on the address-change category."""
    from werkzeug.serving import make_server

    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    app.config.update(PUBLIC_BASE_URL=url, PAYMENT_NOTIFY_BASE_URL=url)
    with app.app_context():
        db.session.execute(update(PaymentProvider).values(enabled=False))  # the demo's, on ./run.sh's gateway
        for kind in ("card_gateway", "chip_card", "bank_account"):
            db.session.add(PaymentProvider(code=f"demo-{kind}", name=f"示範金流 {kind}", kind=kind, url=paygate,
                                           merchant_id=MERCHANT, merchant_key=KEY, merchant_iv=IV, timeout=5))  # fmt: skip
        category = db.session.scalar(select(NotificationCategory).where(NotificationCategory.sub_item == "地址變更"))
        household = db.session.scalar(select(Agency).where(Agency.code == "HH-EAST"))
        fee = FeeItem(code="ADDR-FEE", name="住址變更登記規費", amount=150,
                      agency=household or db.session.scalar(select(Agency).limit(1)), categories=[category],
                      due="before_dispatch", refundable=True)  # fmt: skip
        db.session.add(fee)
        db.session.commit()
        fee_id, category_id = fee.id, category.id
        db.session.remove()
    yield {"url": url, "fee": fee_id, "category": category_id, "gateway": paygate}
    server.shutdown()


def new_case(client, pki, served, card="citizen-wang") -> str:
    info = card_info(pki, card)
    notifier = api_token(client, "notifier")
    body = {**CITIZEN, "id_no": info["id_number"], "name": info["holder"]}
    r = register(client, notifier, served["category"], citizen=body)
    assert r.status_code == 201, r.json
    return r.json["case_no"]


def start(client, token, case_no, fee, method="card"):
    return client.post("/api/v1/me/payments", json={"case_no": case_no, "fee_item": fee, "method": method},
                       headers=bearer(token))  # fmt: skip


def pay_on_gateway(redirect_url: str, action: str = "pay") -> httpx.Response:
    page = httpx.get(redirect_url)
    assert page.status_code == 200 and "NT$ 150" in page.text
    return httpx.post(redirect_url, data={"action": action})


def wait_state(app, payment_id: int, state: str, timeout: float = 15.0) -> Payment:
    deadline = time.monotonic() + timeout
    while True:
        with app.app_context():
            p = db.session.get(Payment, payment_id)
            found = (p.state, p.settled_by, p.order_no, p.provider_trade_no, p.amount)
            db.session.remove()
        if found[0] == state or time.monotonic() > deadline:
            assert found[0] == state, f"payment {payment_id} is {found[0]}, not {state}"
            return found
        time.sleep(0.1)


def audit_count(app, action: str, object_id=None) -> int:
    with app.app_context():
        stmt = select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)
        if object_id is not None:
            stmt = stmt.where(AuditEvent.object_id == str(object_id))
        n = db.session.scalar(stmt)
        db.session.remove()
        return n


def notification(order_no: str, trade_no: str, amount: int, *, key=KEY, merchant=MERCHANT, rtn="1", **extra) -> dict:
    fields = {"MerchantID": merchant, "MerchantTradeNo": order_no, "RtnCode": rtn, "RtnMsg": "Succeeded",
              "TradeNo": trade_no, "TradeAmt": amount, "Currency": "TWD", "PaymentDate": "2026/12/03 10:00:00",
              "PaymentType": "Credit", "SimulatePaid": "0", **extra}  # fmt: skip
    return checkmac.sign(fields, key, IV)


def test_amounts_in_capital_numerals_write_each_zero_once():
    from app.lib.twamount import capital_ntd

    assert capital_ntd(150) == "新臺幣壹佰伍拾元整"
    assert capital_ntd(105) == "新臺幣壹佰零伍元整"
    assert capital_ntd(10100) == "新臺幣壹萬零壹佰元整"
    assert capital_ntd(1000010) == "新臺幣壹佰萬零壹拾元整"
    assert capital_ntd(20000) == "新臺幣貳萬元整"


def test_the_check_value_is_ecpays_sha256_as_its_documentation_computes_it():
    fields = {"TradeDesc": "促銷方案", "PaymentType": "aio", "MerchantTradeDate": "2023/03/12 15:30:23",
              "MerchantTradeNo": "ecpay20230312153023", "MerchantID": "3002607",
              "ReturnURL": "https://www.ecpay.com.tw/receive.php", "ItemName": "Apple iphone 15",
              "TotalAmount": "30000", "ChoosePayment": "ALL", "EncryptType": "1"}  # fmt: skip
    value = checkmac.check_value(fields, KEY, IV)
    assert value == "6C51C9E6888DE861FD62FB1DD17029FC742634498FD813DC43D4243B5685B840"
    assert checkmac.verify({**fields, "CheckMacValue": value}, KEY, IV)
    assert not checkmac.verify({**fields, "TotalAmount": "1", "CheckMacValue": value}, KEY, IV)


@pytest.mark.parametrize("method", ["card", "chip", "account"])
def test_citizen_pays_the_notification_makes_it_paid_once_and_only_then_the_case_goes_out(
    app, pki, sim, served, method
):
    client = app.test_client()
    case_no = new_case(client, pki, served)
    notifier = bearer(api_token(client, "notifier"))
    held = client.get(f"/api/v1/cases/{case_no}", headers=notifier).json["result"]
    assert held["dispatches"] == []  # the fee is due before dispatch
    me = citizen_token(client, sim, pki)
    r = start(client, me, case_no, served["fee"], method)
    assert r.status_code == 201, r.json
    started = r.json
    assert started["state"] == "pending" and started["amount"] == 150 and started["currency"] == "TWD"
    assert started["redirect_url"].startswith(served["gateway"] + "/pay/")
    back = pay_on_gateway(started["redirect_url"])
    # the browser's way back says paid, and carries a tampered amount: it is not believed
    assert back.status_code == 303 and f"/portal/payments/{started['id']}/return" in back.headers["location"]
    order_no, trade_no, amount = wait_state(app, started["id"], "paid")[2:]
    mine = client.get(f"/api/v1/me/payments/{started['id']}", headers=bearer(me)).json
    assert mine["state"] == "paid" and mine["paid_at"] and mine["order_no"] == order_no
    gateway = httpx.get(f"{served['gateway']}/control/orders/{order_no}").json()
    assert gateway["acknowledged"] is True
    # now the agencies have it
    sent = client.get(f"/api/v1/cases/{case_no}", headers=notifier).json["result"]
    assert {d["agency"]["code"] for d in sent["dispatches"]} and all(d["state"] == "sent" for d in sent["dispatches"])
    # the same notification again, and the browser's return with a forged amount: paid once
    again = httpx.post(f"{served['url']}/payments/notify/demo-card_gateway" if method == "card" else
                       f"{served['url']}/payments/notify/demo-{ {'chip': 'chip_card', 'account': 'bank_account'}[method]}",
                       data=notification(order_no, trade_no, amount))  # fmt: skip
    assert again.status_code == 200 and again.text == "1|OK"
    assert audit_count(app, "payment.paid", started["id"]) == 1
    with app.app_context():
        outcomes = db.session.scalars(
            select(PaymentNotification.outcome).where(PaymentNotification.payment_id == started["id"])
        ).all()
        db.session.remove()
    assert sorted(outcomes) == ["accepted", "duplicate"]
    assert len(client.get(f"/api/v1/cases/{case_no}", headers=notifier).json["result"]["dispatches"]) == len(
        sent["dispatches"]
    )
    # paid: no second payment
    assert start(client, me, case_no, served["fee"], method).status_code == 409


def test_every_bad_notification_is_refused_audited_and_changes_nothing(app, pki, sim, served):
    client = app.test_client()
    me = citizen_token(client, sim, pki)
    first = start(client, me, new_case(client, pki, served), served["fee"]).json
    other = start(client, me, new_case(client, pki, served), served["fee"]).json
    with app.app_context():
        a = db.session.get(Payment, first["id"])
        b = db.session.get(Payment, other["id"])
        a_no, a_trade, b_no = a.order_no, a.provider_trade_no, b.order_no
        db.session.remove()
    url = f"{served['url']}/payments/notify/demo-card_gateway"
    bad_value = notification(a_no, a_trade, 150)
    bad_value["CheckMacValue"] = "0" * 64
    cases = {
        "check_value": bad_value,
        "amount": notification(a_no, a_trade, 15),
        "unknown_order": notification("P000000000000000000", a_trade, 150),
        "replay": notification(b_no, a_trade, 150),  # a's trade number on b's order
        "merchant": notification(a_no, a_trade, 150, merchant="9999999"),
        "currency": notification(a_no, a_trade, 150, Currency="USD"),
    }
    forged = notification(a_no, a_trade, 150)
    forged["TradeAmt"] = "1"  # changed after signing
    cases["check_value_tampered"] = forged
    for reason, body in cases.items():
        r = httpx.post(url, data=body)
        assert r.status_code == 400 and r.text.startswith("0|"), (reason, r.text)
    assert httpx.post(f"{served['url']}/payments/notify/nope", data=notification(a_no, a_trade, 150)).status_code == 404
    with app.app_context():
        states = {db.session.get(Payment, i).state for i in (first["id"], other["id"])}
        refused = db.session.scalars(
            select(AuditEvent.detail).where(
                AuditEvent.action == "payment.notify_refused", AuditEvent.outcome == "refused"
            )
        ).all()
        db.session.remove()
    assert states == {"pending"}
    reasons = [json.loads(d)["reason"] for d in refused]
    for reason in ("check_value", "amount", "unknown_order", "replay", "merchant", "currency", "provider"):
        assert reason in reasons, reason
    # another's payment is a 404, audited
    lin = citizen_token(client, sim, pki, "citizen-lin")
    assert client.get(f"/api/v1/me/payments/{first['id']}", headers=bearer(lin)).status_code == 404
    assert audit_count(app, "payment.view_refused") >= 1
    # malformed input is a 400, never a 500
    for body in (
        {},
        {"case_no": "x", "fee_item": "1", "method": "card"},
        {"case_no": "x", "fee_item": 1, "method": "cash"},
    ):
        assert client.post("/api/v1/me/payments", json=body, headers=bearer(me)).status_code == 400


def test_a_storm_of_one_hundred_identical_notifications_pays_once_and_acknowledges_each(app, pki, sim, served):
    client = app.test_client()
    me = citizen_token(client, sim, pki)
    started = start(client, me, new_case(client, pki, served), served["fee"]).json
    with app.app_context():
        p = db.session.get(Payment, started["id"])
        body = notification(p.order_no, p.provider_trade_no, 150)
        db.session.remove()
    url = f"{served['url']}/payments/notify/demo-card_gateway"
    answers: list = []
    barrier = threading.Barrier(100)

    def post():
        with httpx.Client(timeout=60) as http:
            barrier.wait()
            answers.append(http.post(url, data=body))

    threads = [threading.Thread(target=post) for _ in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [(a.status_code, a.text) for a in answers] == [(200, "1|OK")] * 100
    assert audit_count(app, "payment.paid", started["id"]) == 1
    with app.app_context():
        kept = db.session.scalars(
            select(PaymentNotification.outcome).where(PaymentNotification.payment_id == started["id"])
        ).all()
        assert db.session.get(Payment, started["id"]).state == "paid"
        db.session.remove()
    assert sorted(kept).count("accepted") == 1 and len(kept) == 100


def test_a_lost_notification_is_settled_by_the_query_api_and_an_abandoned_one_expires(app, pki, sim, served):
    from app.services import payments

    client = app.test_client()
    me = citizen_token(client, sim, pki)
    httpx.post(f"{served['gateway']}/control", json={"drop_notifications": 1})
    lost = start(client, me, new_case(client, pki, served), served["fee"], "chip").json
    pay_on_gateway(lost["redirect_url"])
    abandoned = start(client, me, new_case(client, pki, served), served["fee"], "account").json
    time.sleep(1)
    assert wait_state(app, lost["id"], "pending")[0] == "pending"  # nothing came
    with app.app_context():
        counts = payments.settle_pending(db.session, older_than_minutes=0)
        db.session.remove()
    assert counts["paid"] >= 1
    assert wait_state(app, lost["id"], "paid")[1] == "query"
    # the abandoned one, long past PAYMENT_EXPIRE_MINUTES
    with app.app_context():
        later = datetime.datetime.utcnow() + datetime.timedelta(hours=3)
        payments.settle_pending(db.session, later, older_than_minutes=0)
        db.session.remove()
    assert wait_state(app, abandoned["id"], "expired")[0] == "expired"


def test_the_gateway_down_at_checkout_charges_nothing_and_a_retry_works(app, pki, sim, served):
    client = app.test_client()
    me = citizen_token(client, sim, pki)
    case_no = new_case(client, pki, served)
    with app.app_context():
        p = db.session.scalar(select(PaymentProvider).where(PaymentProvider.code == "demo-card_gateway"))
        p.url = f"http://127.0.0.1:{free_port()}"
        db.session.commit()
        db.session.remove()
    try:
        r = start(client, me, case_no, served["fee"])
        message = r.json["message"]
        assert r.status_code == 503 and ("Nothing was charged" in message or "沒有扣款" in message)
    finally:
        with app.app_context():
            p = db.session.scalar(select(PaymentProvider).where(PaymentProvider.code == "demo-card_gateway"))
            p.url = served["gateway"]
            db.session.commit()
            db.session.remove()
    again = start(client, me, case_no, served["fee"])
    assert again.status_code == 201, again.json
    with app.app_context():
        states = db.session.scalars(
            select(Payment.state).join(Payment.case).where(text("case_no = :c")), {"c": case_no}
        )
        found = sorted(states)
        db.session.remove()
    assert found == ["failed", "pending"]


def test_the_settlement_file_that_disagrees_is_listed_mismatch_by_mismatch(app, pki, sim, served):
    from app.services import payments
    from app.services.actors import OPERATOR

    client = app.test_client()
    me = citizen_token(client, sim, pki)
    paid = []
    for _ in range(3):
        started = start(client, me, new_case(client, pki, served), served["fee"]).json
        pay_on_gateway(started["redirect_url"])
        paid.append(wait_state(app, started["id"], "paid")[2])
    omitted, changed = paid[0], paid[1]
    unknown = "P" + uuid.uuid4().hex[:18].upper()
    httpx.post(f"{served['gateway']}/control", json={"settlement_omit": [omitted], "amount_override": {changed: 1500},
                                                   "settlement_extra": [{"order_no": unknown, "amount": 150}]})  # fmt: skip
    today = datetime.datetime.now(TAIPEI).date()
    try:
        with app.app_context():
            provider = db.session.scalar(select(PaymentProvider).where(PaymentProvider.code == "demo-card_gateway"))
            rec = payments.fetch_and_reconcile(db.session, OPERATOR, provider, today)
            found = {(m.kind, m.order_no) for m in rec.mismatches}
            db.session.remove()
    finally:
        httpx.post(f"{served['gateway']}/control", json={"settlement_omit": [], "amount_override": {},
                                                       "settlement_extra": []})  # fmt: skip
    assert ("missing_in_file", omitted) in found
    assert ("amount", changed) in found
    assert ("unknown_to_platform", unknown) in found
    assert not any(no == paid[2] for _k, no in found)
    # finance staff read the list
    manager = app.test_client()
    login(manager, "manager")
    page = manager.get("/mismatchview/list/")
    assert page.status_code == 200 and unknown in page.text and omitted in page.text


def test_withdrawing_a_paid_application_refunds_it_through_the_gateway_and_staff_see_it(
    app, pki, sim, served, tmp_path
):
    client = app.test_client()
    me = citizen_token(client, sim, pki)
    case_no = new_case(client, pki, served)
    started = start(client, me, case_no, served["fee"]).json
    pay_on_gateway(started["redirect_url"])
    order_no = wait_state(app, started["id"], "paid")[2]
    staff = app.test_client()
    login(staff, "notifier")
    html = staff.get(f"/notify/case/{case_no}").text
    assert order_no in html and 'id="case-payments"' in html
    page = app.test_client()
    card_page_sign_in(page, sim, "citizen-wang")
    case_html = page.get(f"/portal/cases/{case_no}").text
    assert order_no in case_html and 'id="fees"' in case_html
    # the electronic receipt: amount in figures and capital numerals, payer, agency, a QR code to /verify
    assert f'id="receipt-{started["id"]}"' in case_html
    pdf = page.get(f"/portal/payments/{started['id']}/receipt.pdf")
    assert pdf.status_code == 200 and pdf.headers["Content-Type"] == "application/pdf"
    path = tmp_path / "receipt.pdf"
    path.write_bytes(pdf.data)
    words = squeezed(text_of(path))
    assert "電子收據" in words and "新臺幣壹佰伍拾元整" in words and "NT$150" in words
    assert "住址變更登記規費" in words and case_no in words and order_no[1:] in words
    assert squeezed(card_info(pki, "citizen-wang")["holder"]) in words
    png = tmp_path / "receipt.png"
    run("pdftoppm", "-r", "150", "-png", "-f", "1", "-l", "1", "-singlefile", str(path), str(png.with_suffix("")))
    import zxingcpp
    from PIL import Image

    with Image.open(png) as image:
        found = [b.text for b in zxingcpp.read_barcodes(image.convert("L"))]
    assert len(found) == 1 and found[0].startswith(f"{served['url']}/verify/")
    code = found[0].rsplit("/", 1)[1]
    checked = client.get(f"/api/v1/verify/{code}").json
    assert checked["valid"] is True and "壹佰伍拾" in checked["form"] and checked["sha256"] in squeezed(text_of(path))
    assert code in page.get(f"/verify/{code}").text
    lin = app.test_client()
    card_page_sign_in(lin, sim, "citizen-lin")
    assert lin.get(f"/portal/payments/{started['id']}/receipt.pdf").status_code == 404
    r = page.post(f"/portal/cases/{case_no}/withdraw", data={"csrf_token": csrf_token(case_html)})
    assert r.status_code == 302
    assert wait_state(app, started["id"], "refunded")[0] == "refunded"
    assert httpx.get(f"{served['gateway']}/control/orders/{order_no}").json()["state"] == "refunded"
    assert audit_count(app, "payment.refunded", started["id"]) == 1


def test_the_admin_tests_a_provider_and_its_merchant_key_is_encrypted_at_rest(app, served):
    from app.services import payments
    from app.services.actors import OPERATOR

    with app.app_context():
        provider = db.session.scalar(select(PaymentProvider).where(PaymentProvider.code == "demo-chip_card"))
        assert payments.test_provider(db.session, OPERATOR, provider).ok
        stored = db.session.execute(
            text("SELECT merchant_key FROM payment_provider WHERE code = 'demo-chip_card'")
        ).scalar()
        assert KEY not in stored
        provider.merchant_key = "WrongKey00000000"
        db.session.commit()
        tested = payments.test_provider(db.session, OPERATOR, provider)
        assert not tested.ok and ("credentials" in tested.message or "金鑰" in tested.message)
        provider.merchant_key = KEY
        db.session.commit()
        db.session.remove()
    admin = app.test_client()
    login(admin, "admin")
    listing = admin.get("/paymentproviderview/list/")
    assert listing.status_code == 200 and "demo-chip_card" in listing.text and KEY not in listing.text


def test_finance_staff_read_the_daily_collections_with_refunds_and_export_them_to_excel(app, pki, sim, served):
    import io

    import openpyxl

    client = app.test_client()
    me = citizen_token(client, sim, pki)
    started = start(client, me, new_case(client, pki, served), served["fee"], "account").json
    pay_on_gateway(started["redirect_url"])
    wait_state(app, started["id"], "paid")
    today = datetime.datetime.now(TAIPEI).date().isoformat()
    manager = app.test_client()
    login(manager, "manager")
    page = manager.get(f"/payments/collections/?first={today}&last={today}")
    assert page.status_code == 200 and "住址變更登記規費" in page.text and "存款帳戶" in page.text
    book = manager.get(f"/payments/collections/xlsx?first={today}&last={today}")
    assert book.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(book.data)).active
    rows = [[c.value for c in r] for r in sheet.iter_rows(min_row=4)]
    total = rows[-1]
    assert total[0] == "合計" and total[4] >= 1 and total[5] == 150 * total[4] and total[8] == total[5] - total[7]
    assert any(r[3] == "存款帳戶" and r[5] >= 150 for r in rows[:-1])
    assert manager.get("/payments/collections/?first=2026-13-01").status_code in (302, 400)  # a message, not a 500
    clerk = app.test_client()
    login(clerk, "notifier")
    assert clerk.get(f"/payments/collections/?first={today}&last={today}").status_code in (302, 403)
    assert audit_count(app, "payment.collections") >= 2


def test_a_refused_application_refunds_each_agencys_fee_when_that_agency_refuses_and_the_application_fee_when_all_do(
    app, pki, sim, served
):
    """駁回: the land office's own fee goes back as soon as the land office refuses its part; the
    household office's fee for the application goes back only once every agency has refused."""
    from tests.test_notify import act

    with app.app_context():
        land = db.session.scalar(select(Agency).where(Agency.code == "LAND"))
        category = db.session.get(NotificationCategory, served["category"])
        fee = FeeItem(code="LAND-FEE", name="地政登記規費", amount=150, agency=land, categories=[category],
                      due="before_dispatch", refundable=True)  # fmt: skip
        db.session.add(fee)
        db.session.commit()
        land_fee = fee.id
        db.session.remove()
    try:
        client = app.test_client()
        me = citizen_token(client, sim, pki)
        case_no = new_case(client, pki, served)
        ids = {}
        for name, fee_id in (("application", served["fee"]), ("land", land_fee)):
            started = start(client, me, case_no, fee_id).json
            pay_on_gateway(started["redirect_url"])
            wait_state(app, started["id"], "paid")
            ids[name] = started["id"]
        notifier = api_token(client, "notifier")
        dispatches = {d["agency"]["code"]: d["id"] for d in client.get(f"/api/v1/cases/{case_no}",
                                                              headers=bearer(notifier)).json["result"]["dispatches"]}  # fmt: skip
        assert set(dispatches) == {"LAND", "TAX", "MOTOR"}

        def refuse(agency: str) -> dict:
            sup, han = api_token(client, f"supervisor.{agency.lower()}"), api_token(client, f"handler.{agency.lower()}")
            d = dispatches[agency]
            opened = client.get(f"/api/v1/dispatches/{d}", headers=bearer(sup)).json["result"]
            act(client, sup, d, "assign", handler=f"handler.{agency.lower()}", version=opened["version"])
            assert act(client, han, d, "accept").status_code == 200
            r = act(client, han, d, "process", result="不符申請資格，依法駁回。", control_type="refused")
            assert r.status_code == 200, r.json
            r = act(client, sup, d, "close")
            assert r.status_code == 200, r.json
            return r.json["result"]

        assert refuse("LAND")["control_type"] == "refused"
        assert wait_state(app, ids["land"], "refunded")[0] == "refunded"
        assert wait_state(app, ids["application"], "paid")[0] == "paid"  # two agencies still to decide
        refuse("TAX")
        assert wait_state(app, ids["application"], "paid")[0] == "paid"
        refuse("MOTOR")
        order_no = wait_state(app, ids["application"], "refunded")[2]
        assert httpx.get(f"{served['gateway']}/control/orders/{order_no}").json()["state"] == "refunded"
        assert audit_count(app, "payment.refund_requested", ids["land"]) == 1
        assert audit_count(app, "payment.refunded", ids["application"]) == 1
    finally:
        with app.app_context():
            db.session.get(FeeItem, land_fee).categories = []  # the other tests' cases pay one fee
            db.session.commit()
            db.session.remove()


def test_finance_staff_reconcile_a_day_on_the_collections_page_and_the_worker_does_yesterday_once(
    app, pki, sim, served
):
    from app.models.payments import Reconciliation
    from app.services import payments
    from app.services.actors import Actor

    with app.app_context():
        provider = db.session.scalar(select(PaymentProvider).where(PaymentProvider.code == "demo-card_gateway"))
        provider_id = provider.id
        db.session.remove()
    manager = app.test_client()
    login(manager, "manager")
    page = manager.get("/payments/collections/")
    assert 'id="reconcile-panel"' in page.text
    token = csrf_token(page.text)
    yesterday = (datetime.datetime.now(TAIPEI).date() - datetime.timedelta(days=1)).isoformat()

    def reconciliations() -> int:
        with app.app_context():
            n = db.session.scalar(select(func.count()).select_from(Reconciliation))
            db.session.remove()
            return n

    before = reconciliations()
    # a day that has not ended, and a day that is no date: a message in Chinese, nothing kept
    today = datetime.datetime.now(TAIPEI).date().isoformat()
    r = manager.post("/payments/collections/reconcile", data={"csrf_token": token, "provider": provider_id,
                                                              "day": today}, follow_redirects=True)  # fmt: skip
    assert "結束" in r.text and reconciliations() == before
    r = manager.post("/payments/collections/reconcile", data={"csrf_token": token, "provider": provider_id,
                                                              "day": "2026-13-40"}, follow_redirects=True)  # fmt: skip
    assert "YYYY-MM-DD" in r.text and reconciliations() == before
    # notifiers are not finance staff
    clerk = app.test_client()
    login(clerk, "notifier")
    r = clerk.post("/payments/collections/reconcile", data={"csrf_token": token, "provider": provider_id,
                                                            "day": yesterday})  # fmt: skip
    assert r.status_code in (302, 403) and reconciliations() == before
    r = manager.post("/payments/collections/reconcile", data={"csrf_token": token, "provider": provider_id,
                                                              "day": yesterday})  # fmt: skip
    assert r.status_code == 302 and "/reconciliationview/show/" in r.headers["Location"]
    assert reconciliations() == before + 1
    with app.app_context():
        rec = db.session.scalar(select(Reconciliation).order_by(Reconciliation.id.desc()).limit(1))
        assert rec.run_by == "manager" and rec.day.isoformat() == yesterday
        # the worker's morning round: every enabled provider's yesterday not yet done, once
        worker = Actor(user_id=None, username="worker:payments")
        morning = datetime.datetime.combine(
            datetime.datetime.now(TAIPEI).date(), datetime.time(7)
        ) - datetime.timedelta(hours=8)
        enabled = db.session.scalar(
            select(func.count()).select_from(PaymentProvider).where(PaymentProvider.enabled.is_(True))
        )
        first = payments.reconcile_due(db.session, worker, morning)
        assert len(first) == enabled - 1 and all(r.provider_id != provider_id for r in first)
        assert payments.reconcile_due(db.session, worker, morning) == []  # the second round finds it done
        assert payments.reconcile_due(db.session, worker, morning - datetime.timedelta(hours=2)) == []  # before 6
        db.session.remove()
    assert reconciliations() == before + enabled
    assert audit_count(app, "payment.reconcile") >= enabled


def test_the_admin_adds_changes_and_deletes_fee_items_and_providers_through_their_commands(app):
    """The two admin screens write through the payments commands: neither record goes while a
    payment names it (the commands refuse it), and both go once none does."""
    admin = app.test_client()
    login(admin, "admin")
    with app.app_context():
        land = db.session.scalar(select(Agency.id).where(Agency.code == "LAND"))
    fee_form = {"code": "TIDY-FEE", "name": "測試規費", "amount": "120", "agency": str(land), "due": "after_approval",
                "refundable": "y", "active": "y"}  # fmt: skip
    assert admin.post("/feeitemview/add", data=fee_form).status_code == 302
    provider_form = {"code": "tidy-gw", "name": "測試金流", "kind": "card_gateway", "url": "https://pay.example.test/",
                     "merchant_id": "3002607", "merchant_key": KEY, "merchant_iv": IV, "timeout": "5"}  # fmt: skip
    assert admin.post("/paymentproviderview/add", data=provider_form).status_code == 302
    with app.app_context():
        fee = db.session.scalar(select(FeeItem).where(FeeItem.code == "TIDY-FEE"))
        provider = db.session.scalar(select(PaymentProvider).where(PaymentProvider.code == "tidy-gw"))
        assert fee.amount == 120 and provider.merchant_key == KEY
        fee_id, provider_id = fee.id, provider.id
        db.session.remove()
    assert admin.post(f"/feeitemview/edit/{fee_id}", data={**fee_form, "amount": "130"}).status_code == 302
    # the key and IV left empty, as the form says, keep the stored ones
    changed = {**provider_form, "name": "測試金流二", "merchant_key": "", "merchant_iv": ""}
    assert admin.post(f"/paymentproviderview/edit/{provider_id}", data=changed).status_code == 302
    token = api_token(admin, "notifier")
    with app.app_context():
        category = db.session.scalar(select(NotificationCategory.id).where(NotificationCategory.sub_item == "地址變更"))
    case = register(admin, token, category)
    assert case.status_code == 201, case.json
    with app.app_context():
        fee, provider = db.session.get(FeeItem, fee_id), db.session.get(PaymentProvider, provider_id)
        assert fee.amount == 130 and provider.name == "測試金流二" and provider.merchant_key == KEY
        case_id = db.session.scalar(select(NotificationCase.id).where(NotificationCase.case_no == case.json["case_no"]))
        payment = Payment(order_no=f"T{uuid.uuid4().hex[:12]}", case_id=case_id, fee_item_id=fee_id,
                          provider_id=provider_id, amount=130, method="card")  # fmt: skip
        db.session.add(payment)
        db.session.commit()
        payment_id = payment.id
        db.session.remove()
    try:
        refused = admin.post(f"/feeitemview/delete/{fee_id}", follow_redirects=True)
        assert "此規費項目已有繳款紀錄" in refused.text
        admin.post(f"/paymentproviderview/delete/{provider_id}")
        with app.app_context():
            assert db.session.get(FeeItem, fee_id) is not None
            assert db.session.get(PaymentProvider, provider_id) is not None
    finally:
        with app.app_context():
            db.session.execute(delete(Payment).where(Payment.id == payment_id))
            db.session.commit()
    admin.post(f"/feeitemview/delete/{fee_id}")
    admin.post(f"/paymentproviderview/delete/{provider_id}")
    with app.app_context():
        assert db.session.get(FeeItem, fee_id) is None and db.session.get(PaymentProvider, provider_id) is None
