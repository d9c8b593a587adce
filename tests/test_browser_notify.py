"""Browser story (Playwright + Debian's chromium): the household office registers
an address change with the citizen's consent scan; the land office's supervisor
assigns it, the handler accepts it and records the result, the supervisor
closes it. Screenshots in tests/artifacts/notify-*.png."""

import re

import pytest

from tests.conftest import ARTIFACTS, DEMO_PASSWORD
from tests.test_notify_pages import CITIZEN, consent_pdf


def sign_in(browser, base: str, username: str):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-TW")
    page = context.new_page()
    page.goto(f"{base}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_load_state()
    return context, page


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"notify-{name}.png"), full_page=True)


def open_dispatch(page, base: str, tab: str, case_no: str) -> None:
    page.goto(f"{base}/notify/?tab={tab}")
    page.click(f"#worklist-{tab} tr:has-text('{case_no}') a.open-dispatch")
    page.wait_for_load_state()


@pytest.mark.browser
def test_an_address_change_goes_from_household_office_to_land_office_and_is_closed(live_server, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    base = live_server

    notifier, page = sign_in(browser, base, "notifier")
    page.goto(f"{base}/notify/")
    page.click("#new-case")
    assert "地址變更" in page.inner_text("body")
    shot(page, "1-choose-item")
    page.click("a.list-group-item:has-text('地址變更')")
    for code in ("LAND", "TAX", "MOTOR"):
        assert page.is_checked(f"#receiver-{code}")
    page.fill("#name", CITIZEN["name"])
    page.fill("#id_no", CITIZEN["id_no"])
    page.fill("#email", CITIZEN["email"])
    page.fill("#phone", CITIZEN["phone"])
    page.fill("#address", CITIZEN["address"])
    page.fill("#content", "民眾遷入新址，請更新土地、房屋稅籍及車籍住址。")
    page.click("#register-case")  # without the consent scan: refused, nothing typed is lost
    page.wait_for_load_state()
    assert "同意書" in page.inner_text("#notify-error")
    assert page.input_value("#name") == CITIZEN["name"] and page.is_checked("#receiver-MOTOR")
    shot(page, "2a-consent-missing")
    page.set_input_files(
        "#consent", files=[{"name": "同意書.pdf", "mimeType": "application/pdf", "buffer": consent_pdf()}]
    )
    shot(page, "2-new-case-form")
    page.click("#register-case")
    page.wait_for_load_state()
    case_no = page.inner_text("#case-no").strip()
    assert re.fullmatch(r"\d{7}-\d{4}", case_no)
    assert case_no in page.inner_text(".alert-success") and "同意書.pdf" in page.inner_text("#case-attachments")
    shot(page, "3-case-registered")

    supervisor, sup = sign_in(browser, base, "supervisor.land")
    sup.goto(f"{base}/notify/?tab=incoming")
    assert case_no in sup.inner_text("#worklist-incoming")
    shot(sup, "4-supervisor-incoming")
    open_dispatch(sup, base, "incoming", case_no)
    assert "supervisor.land" in sup.inner_text("#fact-received")  # receipt recorded on opening
    sup.select_option("#handler", "handler.land")
    shot(sup, "5-supervisor-assigns")
    sup.click("#do-assign")
    sup.wait_for_load_state()
    assert "handler.land" in sup.inner_text("#fact-handler")

    handler, han = sign_in(browser, base, "handler.land")
    han.goto(f"{base}/notify/?tab=work")
    assert case_no in han.inner_text("#worklist-work")
    open_dispatch(han, base, "work", case_no)
    han.click("#do-accept")
    han.wait_for_load_state()
    han.fill("#result", "已依新址更新土地所有權人住址。")
    han.check("#control-closed")
    han.fill("#notes", "已電話通知民眾。")
    shot(han, "6-handler-records-result")
    han.click("#do-process")
    han.wait_for_load_state()
    assert "已依新址更新土地所有權人住址。" in han.inner_text("#dispatch-facts")

    open_dispatch(sup, base, "incoming", case_no)
    shot(sup, "7-supervisor-reviews")
    sup.click("#do-close")
    sup.wait_for_load_state()
    assert sup.locator("#no-actions").count() == 1
    shot(sup, "8-supervisor-closed")

    page.goto(f"{base}/notify/case/{case_no}")
    assert "已依新址更新土地所有權人住址。" in page.inner_text("#dispatch-LAND")
    shot(page, "9-notifier-sees-the-result")
    page.click("#case-attachments a.check-attachment")
    page.wait_for_load_state()
    assert page.locator("#check-result.alert-success").count() == 1
    shot(page, "10-integrity-check")
    page.goto(f"{base}/notify/")
    assert case_no in page.inner_text("#worklist-cases")
    shot(page, "11-notifier-worklist")
    for context in (notifier, supervisor, handler):
        context.close()
