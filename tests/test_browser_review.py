"""Browser stories (Playwright + Debian's chromium) of the weekly review signed with the
supervisor's certificate card: the page gets the statement to sign from the platform, the
local signing component (the demo's simulator, on a free port) signs it in its popup window,
the page posts the signature; the review then verifies. A wrong PIN says so, as the card
sign-in does, and signs nothing. Screenshots in tests/artifacts/review-*.png."""

from __future__ import annotations

import datetime
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select

from app.extensions import db
from app.models.anomaly import WeeklyReview
from app.models.audit import AuditEvent
from app.models.org import PlatformUser
from app.services import cards
from app.services.actors import for_user
from app.services.reports.filters import taipei_today
from tests.conftest import ARTIFACTS, DEMO_PASSWORD, build_app, free_port
from tests.test_browser_a11y import AXE
from tests.test_browser_a11y import check as axe_check

SUPERVISOR = "supervisor.tax"
CARD = "gov-clerk-social"  # a government card of the demo card PKI, bound by the administrator to the supervisor


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"review-{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def world(browser_template, tmp_path_factory):
    """The seeded app on a free port, supervisor.tax holding a bound card; the signing
    component's simulator on another port (accepting that origin only); the card PKI's
    OCSP responders and CRL server."""
    from werkzeug.serving import make_server

    from app.simulators.signer import make_app
    from tests.cards import card, card_pki, responders

    responders()
    pki = card_pki()
    app_port, signer_port = free_port(), free_port()
    origin = f"http://127.0.0.1:{app_port}"
    signer = make_app(pki["dir"], None, origins=(origin,))
    signer_server = make_server("127.0.0.1", signer_port, signer, threaded=True)
    threading.Thread(target=signer_server.serve_forever, daemon=True).start()
    database = browser_template.clone(tmp_path_factory.mktemp("review-browser"))
    application = build_app(database.url, migrate=False, DEMO_SOURCES_DIR=browser_template.sources_dir,
                            CERT_SIGNER_URL=f"http://127.0.0.1:{signer_port}")  # fmt: skip
    with application.app_context():
        admin = for_user(db.session.scalar(select(PlatformUser).where(PlatformUser.username == "admin")),
                         session=db.session)  # fmt: skip
        supervisor = db.session.scalar(select(PlatformUser).where(PlatformUser.username == SUPERVISOR))
        cert = x509.load_pem_x509_certificate(Path(card(CARD)["sign_cert"]).read_bytes())
        checked = cards.check(db.session, admin, cert.public_bytes(serialization.Encoding.DER), user_id=supervisor.id)
        cards.bindings.bind(db.session, admin, supervisor.id, checked, "admin")
        db.session.remove()
    server = make_server("127.0.0.1", app_port, application, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield SimpleNamespace(url=origin, app=application, reader=signer.extensions["reader"])
    server.shutdown()
    signer_server.shutdown()
    with application.app_context():
        db.engine.dispose()


def signed_in(browser, world, username: str = SUPERVISOR):
    page = browser.new_page(viewport={"width": 1200, "height": 900}, locale="zh-TW")
    page.goto(f"{world.url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{world.url}/")
    return page


def open_week(page, world, back: int) -> int:
    """Open the week `back` weeks ago for review; the prepared review's id."""
    page.goto(f"{world.url}/weeklyreview/")
    today = taipei_today()
    monday = today - datetime.timedelta(days=today.weekday(), weeks=back)
    button = page.locator(f"#open-{monday.isoformat()}")
    button.click()
    page.wait_for_load_state("networkidle")
    form = page.locator(f"#week-{monday.isoformat()} form.card-sign")
    return int(form.get_attribute("id").removeprefix("card-form-"))


def review_row(world, review_id: int) -> WeeklyReview:
    with world.app.app_context():
        found = db.session.get(WeeklyReview, review_id)
        db.session.expunge_all()
        db.session.remove()
        return found


def sign(page, review_id: int, pin: str) -> None:
    """Enter the PIN and press the button: the component's window opens, signs (or not), closes."""
    page.fill(f"#pin-{review_id}", pin)
    with page.expect_popup() as popup:
        page.click(f"#sign-{review_id}")
    popup.value.wait_for_event("close")


@pytest.mark.browser
def test_the_supervisor_signs_the_weekly_review_with_the_card_and_it_verifies(world, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    world.reader.insert(CARD)
    page = signed_in(browser, world)
    review_id = open_week(page, world, back=2)
    # the card holder signs with the card: PIN, no password field, the component's help at hand
    assert page.locator(f"#password-{review_id}").count() == 0
    assert "簽章元件" in page.inner_text("#component-help")
    page.fill(f"#comment-{review_id}", "本週查詢均有案號")
    shot(page, "1-card-option")
    findings: list[str] = []
    axe_check(page, AXE.read_text(), "/weeklyreview/ (card)", findings)
    page.set_viewport_size({"width": 1200, "height": 900})
    assert not findings, findings
    sign(page, review_id, "1234")
    page.wait_for_selector(".alert-success")
    assert "每週查詢紀錄審查已簽章" in page.inner_text("body")
    row = review_row(world, review_id)
    assert row.signed_at is not None and row.method == "card" and row.signer_fingerprint
    assert row.comment == "本週查詢均有案號"
    shot(page, "2-signed")
    page.click(f"#verify-{review_id}")
    page.wait_for_selector("#review-check")
    check = page.inner_text("#review-check")
    assert page.locator("#review-ok").count() == 1, check
    assert "憑證卡" in check and SUPERVISOR in check
    shot(page, "3-verified")
    page.close()


@pytest.mark.browser
def test_a_wrong_pin_says_so_and_signs_nothing_and_the_locked_card_says_what_to_do(world, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    world.reader.insert(CARD)
    page = signed_in(browser, world)
    review_id = open_week(page, world, back=3)
    sign(page, review_id, "0000")
    page.wait_for_selector(f"#card-error-{review_id}", state="visible")
    assert "PIN 碼錯誤" in page.inner_text(f"#card-error-{review_id}")
    shot(page, "4-wrong-pin")
    assert "/weeklyreview/" in page.url
    row = review_row(world, review_id)
    assert row.signed_at is None and row.signature is None
    with world.app.app_context():
        events = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "weekly_review.signed",
                                     AuditEvent.object_id == str(review_id))
        ).all()  # fmt: skip
        assert events == []  # nothing reached the platform
    # two more wrong PINs: the card locks, and the page says how to unlock it
    sign(page, review_id, "0000")
    sign(page, review_id, "0000")
    page.wait_for_selector(f"#card-error-{review_id}", state="visible")
    assert "PUK" in page.inner_text(f"#card-error-{review_id}")
    assert review_row(world, review_id).signed_at is None
    world.reader.insert(CARD)  # taken out and inserted again: unlocked (the simulator's way)
    page.close()


@pytest.mark.browser
def test_a_supervisor_without_a_card_signs_with_the_password(world, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    page = signed_in(browser, world, "supervisor.land")
    page.goto(f"{world.url}/weeklyreview/")
    assert page.locator("form.card-sign").count() == 0 and page.locator("#no-card").count() == 1
    today = taipei_today()
    monday = today - datetime.timedelta(days=today.weekday(), weeks=2)
    page.click(f"#open-{monday.isoformat()}")
    page.wait_for_load_state("networkidle")
    page.locator(f"#week-{monday.isoformat()} input[type=password]").fill(DEMO_PASSWORD)
    page.locator(f"#week-{monday.isoformat()} button[type=submit]").click()
    page.wait_for_selector(".alert-success")
    assert "每週查詢紀錄審查已簽章" in page.inner_text("body")
    shot(page, "5-password")
    page.close()
