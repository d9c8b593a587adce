"""Browser stories (Playwright + Debian's chromium) of the certificate card sign-in:
a citizen's first sign-in (the card signs the page's challenge through the local
signing component's popup window and postMessage; the full ID number the first
time), a business's, and clerk.card's card plus password; and the plain-words
help when the component does not answer. The component is the demo's simulator,
served on a free port for this module. Screenshots in tests/artifacts/cards-*.png."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from tests.conftest import ARTIFACTS, DEMO_PASSWORD, Database, build_app, free_port


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"cards-{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The seeded app served on a free port, the signing component's simulator on another
    (accepting that origin only), and the card PKI's OCSP responders and CRL server."""
    from werkzeug.serving import make_server

    from app.simulators.signer import make_app
    from tests.cards import card_pki, responders

    responders()
    pki = card_pki()
    app_port, signer_port = free_port(), free_port()
    origin = f"http://127.0.0.1:{app_port}"
    signer = make_app(pki["dir"], None, origins=(origin,))
    signer_server = make_server("127.0.0.1", signer_port, signer, threaded=True)
    threading.Thread(target=signer_server.serve_forever, daemon=True).start()
    database = Database("sqlite", tmp_path_factory.mktemp("cards-browser"))
    application = build_app(database.url, CERT_SIGNER_URL=f"http://127.0.0.1:{signer_port}")
    server = make_server("127.0.0.1", app_port, application, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield SimpleNamespace(url=origin, app=application, reader=signer.extensions["reader"], pki=pki)
    server.shutdown()
    signer_server.shutdown()


def card(pki, name: str) -> dict:
    return next(c for c in pki["cards"] if c["name"] == name)


def sign_with_card(page, pin: str = "1234", password: str | None = None) -> None:
    """Enter the PIN (and a staff password), press the button: the component's window opens,
    signs, closes, and the page posts the signature."""
    page.fill("#pin", pin)
    if password is not None:
        page.fill("#password", password)
    with page.expect_popup() as popup:
        page.click("#card-sign-in")
    popup.value.wait_for_event("close")


@pytest.mark.browser
def test_a_citizen_signs_in_with_the_card_the_first_time_with_the_full_id_number(world, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    wang = card(world.pki, "citizen-wang")
    world.reader.insert("citizen-wang")
    page = browser.new_page(viewport={"width": 1100, "height": 900}, locale="zh-TW")
    page.goto(f"{world.url}/login/")
    page.click("#card-sign-in-link")
    assert "以憑證卡登入" in page.inner_text("#card-signin")
    assert "簽章元件" in page.inner_text("#component-help")
    shot(page, "1-citizen-sign-in-page")
    sign_with_card(page)
    page.wait_for_url("**/signin/card/register")
    assert "末 4 碼" in page.inner_text("#card-register")
    shot(page, "2-citizen-first-sign-in")
    # a number that fails its checksum: refused, and the card must sign again
    page.fill("#id_number", "A123456780")
    page.fill("#name", wang["holder"])
    page.click("#register-submit")
    page.wait_for_load_state("networkidle")
    assert "身分證統一編號不正確" in page.inner_text("body")
    page.goto(f"{world.url}/signin/card/")
    sign_with_card(page)
    page.wait_for_url("**/signin/card/register")
    page.fill("#id_number", wang["id_number"])
    page.fill("#name", wang["holder"])
    page.click("#register-submit")
    page.wait_for_url(f"{world.url}/portal/")  # citizens land on their portal
    assert "/logout" in page.content()
    shot(page, "3-citizen-signed-in")
    # the back office is closed to a citizen
    assert page.goto(f"{world.url}/query/").status == 403
    page.close()
    # the next time, the card alone (and the page in English)
    page = browser.new_page(viewport={"width": 1100, "height": 900}, locale="en")
    page.goto(f"{world.url}/lang/en")
    page.goto(f"{world.url}/signin/card/")
    assert "Sign in with a certificate card" in page.inner_text("#card-signin")
    shot(page, "4-sign-in-page-en")
    sign_with_card(page)
    page.wait_for_url(f"{world.url}/portal/")
    assert "/logout" in page.content()
    page.close()


@pytest.mark.browser
def test_a_business_signs_in_with_its_moeaca_card(world, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    world.reader.insert("business-bank")
    page = browser.new_page(viewport={"width": 1100, "height": 800}, locale="zh-TW")
    page.goto(f"{world.url}/signin/card/")
    # a wrong PIN: the component says so, nothing is sent to the platform
    page.fill("#pin", "0000")
    with page.expect_popup() as popup:
        page.click("#card-sign-in")
    popup.value.wait_for_event("close")
    page.wait_for_selector("#card-error", state="visible")
    assert "PIN 碼錯誤" in page.inner_text("#card-error")
    sign_with_card(page)
    page.wait_for_url(f"{world.url}/portal/")
    assert "23582637" in page.inner_text("body")
    shot(page, "5-business-signed-in")
    page.close()


@pytest.mark.browser
def test_clerk_card_signs_in_with_card_plus_password_and_not_with_the_password_alone(world, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1100, "height": 800}, locale="zh-TW")
    page.goto(f"{world.url}/login/")
    page.fill("input[name=username]", "clerk.card")
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "憑證卡加密碼" in page.inner_text("body") and "/logout" not in page.content()
    shot(page, "6-clerk-card-password-alone-refused")
    world.reader.insert("gov-clerk-card")
    page.goto(f"{world.url}/signin/card/")
    sign_with_card(page, password=DEMO_PASSWORD)
    page.wait_for_url(f"{world.url}/")
    assert "clerk.card" in page.inner_text("body")
    page.goto(f"{world.url}/query/")
    assert "/query/" in page.url and "土地" in page.inner_text("body")
    shot(page, "7-clerk-card-query-menu")
    page.close()


@pytest.mark.browser
def test_the_page_says_in_plain_words_what_to_do_when_the_component_does_not_answer(world, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    running = world.app.config["CERT_SIGNER_URL"]
    world.app.config["CERT_SIGNER_URL"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    try:
        page = browser.new_page(viewport={"width": 1100, "height": 900}, locale="zh-TW")
        page.goto(f"{world.url}/signin/card/")
        page.fill("#pin", "1234")
        page.click("#card-sign-in")
        page.wait_for_selector("#card-error", state="visible", timeout=20000)
        assert "沒有回應" in page.inner_text("#card-error")
        assert "HiPKI" in page.inner_text("#component-help")
        shot(page, "8-component-not-running")
        page.close()
    finally:
        world.app.config["CERT_SIGNER_URL"] = running
