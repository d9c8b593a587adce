"""Browser story (Playwright + Debian's chromium): the administrator signs in,
reads the menu in Chinese, switches to English. Screenshots in tests/artifacts/."""

import pytest

from tests.conftest import ARTIFACTS, DEMO_PASSWORD

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


@pytest.mark.browser
def test_admin_signs_in_sees_the_chinese_menu_and_switches_to_english(live_server, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 800}, locale="zh-TW")
    page.goto(f"{live_server}/login/")
    assert "登入" in page.content()
    page.screenshot(path=str(ARTIFACTS / "foundation-login-zh.png"), full_page=True)
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_load_state("networkidle")
    nav = page.inner_text(".navbar")
    assert "組織管理" in nav and "安全管理" in nav and "稽核" in nav
    page.goto(f"{live_server}/agencyview/list/")
    body = page.inner_text("body")
    assert "示範縣地政事務所" in body and "機關代碼" in body
    page.screenshot(path=str(ARTIFACTS / "foundation-agencies-zh.png"), full_page=True)

    # The language menu in the navigation bar.
    page.click("a.dropdown-toggle:has(i.flag)")
    page.click("a[href$='/lang/en']")
    page.wait_for_load_state("networkidle")
    page.goto(f"{live_server}/agencyview/list/")
    nav = page.inner_text(".navbar")
    assert "Organisation" in nav and "Security" in nav
    assert "Agency code" in page.inner_text("body")
    page.screenshot(path=str(ARTIFACTS / "foundation-agencies-en.png"), full_page=True)
    page.close()


@pytest.mark.browser
def test_a_clerk_runs_the_land_form_reopens_it_from_history_and_opens_the_pdf(live_server, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-TW", accept_downloads=True)
    page = context.new_page()
    page.goto(f"{live_server}/login/")
    page.fill("input[name=username]", "clerk")
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_load_state("networkidle")
    page.goto(f"{live_server}/query/")
    assert "土地標示部＋所有權部" in page.inner_text("body")
    page.screenshot(path=str(ARTIFACTS / "query-menu.png"), full_page=True)
    page.click("text=土地標示部＋所有權部")
    # Without a purpose the query is refused, with a clear message.
    page.fill("#in-section_name", "中正段")
    page.fill("#in-parcel_no", "18-1")
    page.click("#run-query")
    assert "案號或事由" in page.inner_text("#query-error")
    page.fill("#case_no", "1151126-0007")
    page.select_option("#business_item", "TAX-LAND")
    page.fill("#in-section_name", "中正段")
    page.fill("#in-parcel_no", "18-1")
    page.click("#run-query")
    page.wait_for_selector("#query-result")
    result = page.inner_text("#query-result")
    assert "0018-0001" in result and "2分之1" in result and "******6789" in result
    page.screenshot(path=str(ARTIFACTS / "query-land-result.png"), full_page=True)

    page.goto(f"{live_server}/query/history/")
    assert "1151126-0007" in page.inner_text("#history-table")
    page.screenshot(path=str(ARTIFACTS / "query-history.png"), full_page=True)
    page.click("#history-table >> text=開啟")
    page.wait_for_load_state("networkidle")
    assert "0018-0001" in page.inner_text("body")
    pdf_url = page.get_attribute("#open-pdf", "href")
    response = context.request.get(f"{live_server}{pdf_url}")
    assert response.status == 200 and response.headers["content-type"] == "application/pdf"
    pdf = ARTIFACTS / "query-land.pdf"
    pdf.write_bytes(response.body())
    import subprocess

    subprocess.run(
        ["pdftoppm", "-r", "60", "-png", "-singlefile", str(pdf), str(ARTIFACTS / "query-land-pdf")], check=True
    )
    text = subprocess.run(["pdftotext", "-raw", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "0018-0001" in text and "限公務使用" in text
    context.close()
