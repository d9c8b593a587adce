"""Browser story (Playwright + Debian's chromium, phone-sized) of applying online: a citizen signs in
with a demo card, applies for an address change (old and new address, the date, a PDF proof of
residence), reviews it and signs it with the card through the signing component's popup (the same
mechanism as the card sign-in), and sees the case in my cases; the land office's supervisor opens
the case's check integrity and sees the signer, the signing time and the certificate's status now.
axe-core finds no serious or critical violation on the apply pages. Screenshots tests/artifacts/apply-*.png."""

from __future__ import annotations

import io

import pytest
from reportlab.pdfgen.canvas import Canvas

from tests.conftest import ARTIFACTS, DEMO_PASSWORD
from tests.test_browser_portal import PHONE, accessible, axe_source, card_sign_in, world  # noqa: F401 (fixtures)


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"apply-{name}.png"), full_page=True)


def lease_pdf() -> bytes:
    buffer = io.BytesIO()
    canvas = Canvas(buffer)
    canvas.drawString(72, 720, "Lease")
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()


@pytest.mark.browser
def test_a_citizen_applies_for_an_address_change_signs_it_with_the_card_and_the_land_office_checks_it(
    world,  # noqa: F811
    browser,
    axe_source,  # noqa: F811
):
    ARTIFACTS.mkdir(exist_ok=True)
    lin = next(c for c in world.pki["cards"] if c["name"] == "citizen-lin")
    page = browser.new_page(viewport=PHONE, locale="zh-TW")
    card_sign_in(page, world, "citizen-lin")
    page.wait_for_url("**/signin/card/register")
    page.fill("#id_number", lin["id_number"])
    page.fill("#name", lin["holder"])
    page.click("#register-submit")
    page.wait_for_url(f"{world.url}/portal/")

    page.click("text=線上申辦")
    page.wait_for_url("**/portal/apply/")
    assert "地址變更" in page.inner_text("#open-categories") and "營業地址變更" not in page.inner_text("main")
    accessible(page, axe_source)
    shot(page, "1-categories-zh")
    page.click("#open-categories a:has-text('地址變更')")
    page.wait_for_selector("#apply-form")
    accessible(page, axe_source)
    # a missing field first: the page says which, and keeps what was typed
    page.fill("#field-address-old", "示範縣東平鄉中山路1號")
    page.fill("#field-address-new", "示範縣西林鄉和平街88號3樓")
    page.fill("#email", "lin@example.tw")
    page.fill("#id_number", lin["id_number"])
    page.click("#review")
    page.wait_for_selector("#apply-error")
    assert "「遷入日期」" in page.inner_text("#apply-error")
    assert page.input_value("#field-address-new") == "示範縣西林鄉和平街88號3樓"
    accessible(page, axe_source)
    shot(page, "2-missing-field-zh")
    page.fill("#field-moved_on", "2026-11-30")
    page.fill("#id_number", lin["id_number"])
    page.set_input_files("#file-proof", files=[{"name": "租約.pdf", "mimeType": "application/pdf",
                                                "buffer": lease_pdf()}])  # fmt: skip
    shot(page, "3-form-zh")
    page.click("#review")
    page.wait_for_url("**/portal/apply/review/*")
    review = page.inner_text("#review-fields")
    assert "示範縣西林鄉和平街88號3樓" in review and "租約.pdf" in review
    accessible(page, axe_source)
    shot(page, "4-review-zh")

    # sign with the card: the signing component's popup signs the canonical content
    world.reader.insert("citizen-lin")
    page.fill("#pin", "1234")
    with page.expect_popup() as popup:
        page.click("#sign-apply")
    popup.value.wait_for_event("close")
    page.wait_for_url("**/portal/cases/*")
    case_no = page.url.rsplit("/", 1)[-1]
    assert case_no in page.inner_text("h1") and "已登記為案件" in page.inner_text("main")
    assert "示範縣地政事務所" in page.inner_text("#dispatches")
    accessible(page, axe_source)
    shot(page, "5-my-case-zh")
    page.click("text=我的案件")
    page.wait_for_url("**/portal/cases/")
    assert case_no in page.inner_text("#cases")

    # in English, the category's English labels
    page.click("a[href='/lang/en']")
    page.wait_for_load_state("networkidle")
    page.goto(f"{world.url}/portal/apply/")
    page.click("#open-categories a")
    page.wait_for_selector("#apply-form")
    assert "Old Address" in page.inner_text("#apply-form")
    accessible(page, axe_source)
    shot(page, "6-form-en")
    page.close()

    # the land office's supervisor checks the signature's integrity
    staff = browser.new_page(viewport={"width": 1200, "height": 900}, locale="zh-TW")
    staff.goto(f"{world.url}/login/")
    staff.fill("input[name=username]", "supervisor.land")
    staff.fill("input[name=password]", DEMO_PASSWORD)
    staff.click("input[type=submit]")
    staff.wait_for_load_state("networkidle")
    staff.goto(f"{world.url}/notify/case/{case_no}")
    assert "憑證卡簽章" in staff.inner_text("#case-signature")
    staff.click("#case-signature .check-signature")
    staff.wait_for_selector("#signature-check")
    assert staff.inner_text("#signer") == lin["holder"]
    assert "有效" in staff.inner_text("#cert-status") and staff.inner_text("#signed-at").startswith("115/")
    assert "示範縣西林鄉和平街88號3樓" in staff.inner_text("#signed-content")
    shot(staff, "7-check-integrity")
    staff.close()
