"""Browser story (Playwright + Debian's chromium): a tax clerk looks up 中正段 18-1
and sees its cadastral map (the parcel highlighted among its neighbours), then
the building 西門段 00164-000 and its survey plan (floors, balconies, the
location plan); the result pages are kept as screenshots in tests/artifacts/
for a person to look at. The watched browser fails on any CSP violation."""

import pytest

from tests.conftest import ARTIFACTS, DEMO_PASSWORD


def _run(page, live_server, form, section, number_field, number, item):
    page.goto(f"{live_server}/query/form/{form}")
    page.fill("#case_no", "1151203-0017")
    page.select_option("#business_item", item)
    page.fill("#in-section_name", section)
    page.fill(f"#in-{number_field}", number)
    page.click("#run-query")
    page.wait_for_selector("#query-result")


@pytest.mark.browser
def test_a_clerk_sees_the_cadastral_map_and_the_building_survey_plan(live_server, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-TW")
    page = context.new_page()
    page.goto(f"{live_server}/login/")
    page.fill("input[name=username]", "clerk")
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_load_state("networkidle")

    _run(page, live_server, "land.parcel", "中正段", "parcel_no", "18-1", "TAX-LAND")
    figure = page.locator("#query-result .query-map svg.query-figure")
    assert figure.count() == 1
    assert figure.locator("path.hit").count() == 1 and figure.locator("path.neighbour").count() >= 3
    box = figure.bounding_box()
    assert box["width"] > 400 and box["height"] > 250  # drawn at a readable size
    hit = figure.locator("path.hit").bounding_box()
    assert box["x"] < hit["x"] and hit["x"] + hit["width"] < box["x"] + box["width"]
    assert "0018-0001" in figure.inner_html() and "EPSG:3826" in figure.inner_html()
    figure.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "query-map-land.png"), full_page=True)
    figure.screenshot(path=str(ARTIFACTS / "query-map-figure.png"))

    _run(page, live_server, "building.unit", "西門段", "building_no", "00164-000", "TAX-HOUSE")
    plan = page.locator("#query-result .query-plan svg.query-figure")
    assert plan.count() == 1
    assert plan.locator("path.part").count() >= 2 and plan.locator("path.annex").count() >= 1
    text = plan.inner_html()
    assert "陽台" in text and "位置圖（示意）" in text and "主建物總面積" in text
    page.screenshot(path=str(ARTIFACTS / "query-plan-building.png"), full_page=True)
    plan.screenshot(path=str(ARTIFACTS / "query-plan-figure.png"))

    # The stored result reopened: the same drawing.
    href = page.get_attribute("#query-result a[href$='/pdf']", "href")
    page.goto(f"{live_server}{href.rsplit('/', 1)[0]}")
    assert page.locator(".query-plan svg.query-figure path.annex").count() >= 1
    page.screenshot(path=str(ARTIFACTS / "query-result-plan.png"), full_page=True)
    context.close()
