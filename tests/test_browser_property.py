"""Browser story (Playwright + Debian's chromium): a tax clerk looks up 東平段 / 6,
which the demo world holds in both 一小段 and 二小段, is shown the two
candidates (section, number, township; no owners), picks 二小段, and gets that
parcel only, its owners grouped under it, on the page and in the PDF.
Screenshots in tests/artifacts/; the watched browser fails on any CSP violation."""

import subprocess

import pytest

from tests.conftest import ARTIFACTS, DEMO_PASSWORD


@pytest.mark.browser
def test_a_clerk_picks_one_of_two_parcels_named_tungping_6_and_only_it_is_printed(live_server, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-TW")
    page = context.new_page()
    page.goto(f"{live_server}/login/")
    page.fill("input[name=username]", "clerk")
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_load_state("networkidle")
    page.goto(f"{live_server}/query/form/land.parcel")
    # The section picker offers the source's sections (and 東平段 with all its 小段).
    offered = page.eval_on_selector_all("#list-section_name option", "os => os.map(o => o.value)")
    assert {"UA0301", "UA0302", "東平段"} <= set(offered)
    page.fill("#case_no", "1151203-0017")
    page.select_option("#business_item", "TAX-LAND")
    page.fill("#in-section_name", "東平段")
    page.fill("#in-parcel_no", "6")
    page.click("#run-query")
    page.wait_for_selector("#query-candidates")
    listing = page.inner_text("#query-candidates")
    assert "一小段" in listing and "二小段" in listing and "0006-0000" in listing
    assert page.locator("#query-result").count() == 0
    page.screenshot(path=str(ARTIFACTS / "query-land-candidates.png"), full_page=True)

    page.click("tr.query-candidate:has-text('二小段') button.pick-candidate")
    page.wait_for_selector("#query-result")
    result = page.inner_text("#query-result")
    assert "二小段" in result and "一小段" not in result and "0006-0000" in result
    assert page.locator("#query-result tbody.query-group").count() == 1
    assert "東平段二小段 0006-0000" in page.inner_text("#query-result tbody.query-group th")
    page.screenshot(path=str(ARTIFACTS / "query-land-picked.png"), full_page=True)

    pdf_url = page.get_attribute("#query-result a[href$='/pdf']", "href")
    response = context.request.get(f"{live_server}{pdf_url}")
    assert response.status == 200 and response.headers["content-type"] == "application/pdf"
    pdf = ARTIFACTS / "query-land-picked.pdf"
    pdf.write_bytes(response.body())
    subprocess.run(
        ["pdftoppm", "-r", "60", "-png", "-singlefile", str(pdf), str(ARTIFACTS / "query-land-picked-pdf")], check=True
    )
    text = subprocess.run(["pdftotext", "-raw", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "0006-0000" in text and "二小段" in text and "一小段" not in text
    context.close()
