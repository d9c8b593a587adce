"""Browser story (Playwright + Debian's chromium) of paying a fee: a household office registers
an online address change whose fee (NT$150) is due before dispatch; the citizen signs in with a
demo card, opens the case (waiting for the fee), pays on the gateway simulator's page (a real
subprocess) by credit card, chip financial card and bank account in turn; the gateway's signed
notification makes each payment paid and the case goes to its agencies; the return page shows
the platform's own state, never the browser's; the counter sees the payment; the electronic
receipt PDF is downloaded and its QR code read back to the verification page; withdrawing the
application refunds the fee. Screenshots in tests/artifacts/payments-*.png."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import httpx
import pytest
import zxingcpp
from PIL import Image
from playwright.sync_api import expect
from sqlalchemy import select, update

from app.extensions import db
from app.models.payments import Payment, PaymentProvider
from tests.conftest import ARTIFACTS, Database, api_token, bearer, build_app, free_port
from tests.test_browser_portal import card_sign_in
from tests.test_notify import CITIZEN, register
from tests.test_printout import run, squeezed, text_of

PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from werkzeug.serving import make_server

    from app.simulators.signer import make_app
    from tests.cards import card_pki, responders

    responders()
    pki = card_pki()
    app_port, signer_port, gate_port = free_port(), free_port(), free_port()
    origin = f"http://127.0.0.1:{app_port}"
    gate = subprocess.Popen([sys.executable, "-m", "app.simulators.paygate", "--port", str(gate_port),
                             "--retry-seconds", "0.2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    gate_url = f"http://127.0.0.1:{gate_port}"
    signer = make_app(pki["dir"], None, origins=(origin,))
    signer_server = make_server("127.0.0.1", signer_port, signer, threaded=True)
    threading.Thread(target=signer_server.serve_forever, daemon=True).start()
    database = Database("sqlite", tmp_path_factory.mktemp("payments-browser"))
    application = build_app(database.url, CERT_SIGNER_URL=f"http://127.0.0.1:{signer_port}", PUBLIC_BASE_URL=origin,
                            PAYMENT_NOTIFY_BASE_URL=origin)  # fmt: skip
    with application.app_context():  # the demo's providers, on this test's gateway
        db.session.execute(update(PaymentProvider).values(url=gate_url))
        db.session.commit()
        db.session.remove()
    server = make_server("127.0.0.1", app_port, application, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for _ in range(100):
        try:
            httpx.get(gate_url + "/", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield SimpleNamespace(url=origin, app=application, reader=signer.extensions["reader"], pki=pki, gate=gate_url)
    server.shutdown()
    signer_server.shutdown()
    gate.terminate()
    gate.wait(10)


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"payments-{name}.png"), full_page=True)


@pytest.mark.browser
def test_a_citizen_pays_the_fee_on_the_gateways_page_by_each_method_and_the_case_goes_out(world, browser, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    wang = next(c for c in world.pki["cards"] if c["name"] == "citizen-wang")
    client = world.app.test_client()
    notifier = api_token(client, "notifier")
    cats = client.get("/api/v1/categories/", headers=bearer(notifier)).json["result"]
    online = next(c for c in cats if c["sub_item"] == "地址變更（線上繳費）")
    page = browser.new_page(viewport=PHONE, locale="zh-TW")
    card_sign_in(page, world, "citizen-wang")
    page.wait_for_url("**/signin/card/register")
    page.fill("#id_number", wang["id_number"])
    page.fill("#name", wang["holder"])
    page.click("#register-submit")
    page.wait_for_url(f"{world.url}/portal/")
    for n, method in enumerate(("card", "chip", "account"), 1):
        case = register(client, notifier, online["id"], citizen={**CITIZEN, "id_no": wang["id_number"]}).json
        case_no = case["case_no"]
        assert case["result"]["dispatches"] == []  # the fee first
        page.goto(f"{world.url}/portal/cases/{case_no}")
        assert "繳費完成後，您的申請才會送到各機關" in page.inner_text("#fees")
        assert "等待繳費" in page.inner_text("#timeline")
        if n == 1:
            shot(page, "1-case-waiting-for-the-fee")
        page.check(f"#fees input[name=method][value={method}]")
        page.click("#fees button[type=submit]")
        page.wait_for_url(f"{world.gate}/pay/**")
        assert "NT$ 150" in page.inner_text("#amount")
        shot(page, f"2-gateway-{method}")
        page.click("#pay")
        page.wait_for_url(f"{world.url}/portal/payments/*/return**")
        expect(page.locator("#payment-state")).to_have_text("已繳費", timeout=20000)  # refreshes until notified
        shot(page, f"3-paid-{method}")
        page.click("#back-to-case")
        payments = page.inner_text("#fees")
        assert "已繳費" in payments and "繳納新臺幣" not in payments  # paid: no pay button any more
        agencies = page.inner_text("#dispatches")
        assert "示範縣地政事務所" in agencies and "示範縣地方稅務局" in agencies
        if n == 3:
            shot(page, "4-case-paid-and-dispatched")
        with world.app.app_context():
            found = db.session.scalars(select(Payment).join(Payment.case).where(Payment.method == method)).all()
            assert [(p.state, p.settled_by) for p in found if p.case.case_no == case_no] == [("paid", "notify")]
            db.session.remove()
    # the counter sees the payment
    staff = browser.new_page(locale="zh-TW")
    staff.goto(f"{world.url}/login/")
    staff.fill("#username", "notifier")
    staff.fill("#password", world.app.config["DEMO_PASSWORD"])
    staff.click("input[type=submit], button[type=submit]")
    staff.goto(f"{world.url}/notify/case/{case_no}")
    assert "已繳費" in staff.inner_text("#case-payments")
    shot(staff, "5-counter-sees-payment")
    # the electronic receipt: rendered, its QR code read back to the verification page
    page.goto(f"{world.url}/portal/cases/{case_no}")
    with page.expect_download() as download:
        page.click("#fees a[id^=receipt-]")
    path = tmp_path / "receipt.pdf"
    download.value.save_as(path)
    assert "新臺幣壹佰伍拾元整" in squeezed(text_of(path))
    run("pdftoppm", "-r", "150", "-png", "-singlefile", str(path), str(tmp_path / "receipt"))
    (ARTIFACTS / "payments-6-receipt.png").write_bytes((tmp_path / "receipt.png").read_bytes())
    with Image.open(tmp_path / "receipt.png") as image:
        found = [b.text for b in zxingcpp.read_barcodes(image.convert("L"))]
    assert len(found) == 1 and found[0].startswith(f"{world.url}/verify/")
    page.goto(found[0])
    assert "住址變更登記規費" in page.inner_text("#verify-ok")
    # withdrawing the application refunds the fee through the gateway
    page.goto(f"{world.url}/portal/cases/{case_no}")
    page.click("#withdraw")
    expect(page.locator("#fees")).to_contain_text("已退費")
    shot(page, "7-withdrawn-and-refunded")
