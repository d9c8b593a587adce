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
    page.fill("#field-address-old", "示範縣東區光明里3鄰光明路20號")
    page.fill("#field-address-new", CITIZEN["address"])
    page.fill("#field-moved_on", "2026-11-20")
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


@pytest.mark.browser
def test_a_name_change_is_registered_from_the_household_register_with_its_rare_characters(live_server, browser):
    """The notifier types the ID number and looks the citizen up: the register's
    name and address (王䶵明, 䅈山村𤧛興路) fill the form and show with every glyph;
    the name change is two structured fields; no e-mail, a postal notice instead."""
    from seed_data.world import build_world

    head = next(p for p in build_world().persons if p.name == "王䶵明")
    ARTIFACTS.mkdir(exist_ok=True)
    base = live_server
    _context, page = sign_in(browser, base, "notifier")
    page.goto(f"{base}/notify/new")
    page.click("a.list-group-item:has-text('更名')")
    page.fill("#id_no", head.id_no)
    page.click("#lookup-citizen")
    page.wait_for_load_state()
    assert "已由戶籍資料帶入姓名及地址" in page.inner_text("#lookup-result")
    assert page.input_value("#name") == "王䶵明"
    assert page.input_value("#address") == "示範縣西林鄉䅈山村3鄰𤧛興路18號"
    reserved = page.input_value("#case_no")
    assert re.fullmatch(r"\d{7}-\d{4}", reserved)
    # every character of the name and address has a glyph in the page's fonts: a character
    # drawn without one comes out as the same empty box as a code point no font has
    boxes = page.evaluate(
        """(texts) => {
          const canvas = document.createElement('canvas'); canvas.width = 64; canvas.height = 64;
          const g = canvas.getContext('2d');
          const font = getComputedStyle(document.querySelector('#name')).fontFamily;
          const draw = (ch) => { g.clearRect(0, 0, 64, 64); g.font = '40px ' + font; g.fillText(ch, 4, 48);
                                  return Array.from(g.getImageData(0, 0, 64, 64).data).join(','); };
          const tofu = draw(String.fromCodePoint(0x30000));
          return texts.filter((ch) => draw(ch) === tofu);
        }""",
        list("王䶵明陳𠀋華䅈𤧛"),
    )
    assert boxes == []
    page.fill("#field-name-old", "王䶵明")
    page.fill("#field-name-new", "王大明")
    page.check("#contact-postal")
    page.set_input_files(
        "#consent", files=[{"name": "同意書.pdf", "mimeType": "application/pdf", "buffer": consent_pdf()}]
    )
    shot(page, "rare-1-looked-up")
    page.click("#register-case")
    page.wait_for_load_state()
    assert page.inner_text("#case-no").strip() == reserved
    body = page.inner_text("body")
    assert "姓名：原 王䶵明 → 新 王大明" in body and "待郵寄通知民眾" in body
    shot(page, "rare-2-registered")
