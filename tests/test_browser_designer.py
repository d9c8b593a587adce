"""Browser story (Playwright + Debian's chromium) of the form designer (issue 18, item 4): the
designer builds a form on one page from what the social affairs database describes, the typo
is refused and nothing saved, "try it" shows the result, the form is granted and saved, and a
clerk of social affairs runs it. Screenshots in tests/artifacts/designer-*.png."""

import pytest
from sqlalchemy import select

from tests.conftest import ARTIFACTS, DEMO_PASSWORD


def _sign_in(page, live_server, username):
    page.goto(f"{live_server}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_load_state("networkidle")


def _refreshing(page, action):
    """Choosing a source or a target (or pressing "refresh") reloads the page with what the source offers."""
    with page.expect_navigation():
        action()


@pytest.mark.browser
def test_a_designer_builds_a_form_on_one_page_the_typo_is_refused_tried_then_a_clerk_uses_it(live_app, browser):
    from app.extensions import db
    from app.models.queries import QueryForm
    from seed_data.world import build_world

    person = build_world().welfare_status[0]
    live_server, code = live_app.url, "social.welfare.district"
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, locale="zh-TW")
    _sign_in(page, live_server, "designer")
    page.goto(f"{live_server}/queryformview/list/")
    page.click("#open-designer")  # 設計表單, from the form list
    page.wait_for_load_state("networkidle")
    assert "表單設計" in page.inner_text(".panel-heading")

    page.fill("#code", code)
    page.fill("#title", "福利身分（區域）")
    page.fill("#inputs-0-name", "id_no")
    page.fill("#inputs-0-label", "身分證統一編號")
    page.select_option("#inputs-0-type", "national_id")
    page.fill("#sections-0-title", "福利身分")
    _refreshing(page, lambda: page.select_option("#sections-0-source", label="社政系統（福利身分）"))
    targets = page.inner_text("#sections-0-target")
    assert "welfare_status" in targets and "disability" in targets  # the tables the source describes
    _refreshing(page, lambda: page.select_option("#sections-0-target", "welfare_status"))
    offer = page.inner_text("#offer-0")
    assert "welfare_label" in offer and "district" in offer  # its columns, with their types
    page.select_option("#sections-0-add_columns", ["name", "welfare_label", "district"])
    _refreshing(page, lambda: page.click("#refresh"))
    assert page.input_value("#sections-0-columns-2-column") == "district"
    page.fill("#sections-0-columns-0-label", "姓名")
    page.fill("#sections-0-columns-1-label", "福利身分別")
    page.fill("#sections-0-columns-2-label", "區域")
    page.fill("#sections-0-filters-0-column", "id_no")
    inputs = [o.strip() for o in page.locator("#sections-0-filters-0-input option").all_inner_texts()]
    assert "id_no" in inputs  # a filter picks one of the form's own inputs
    page.select_option("#sections-0-filters-0-input", "id_no")
    page.fill("#sections-0-columns-3-column", "owner_phone")  # the typo of the issue
    page.fill("#sections-0-columns-3-label", "電話")
    page.screenshot(path=str(ARTIFACTS / "designer-built.png"), full_page=True)

    _refreshing(page, lambda: page.click("#save-form"))
    assert "welfare_status 沒有欄位「owner_phone」" in page.inner_text("#designer-problems")
    assert page.input_value("#sections-0-columns-3-column") == "owner_phone"  # what was typed is kept
    page.locator("#designer-problems").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "designer-typo-refused.png"), full_page=True)
    with live_app.app.app_context():
        assert db.session.scalar(select(QueryForm).where(QueryForm.code == code)) is None  # nothing saved

    page.fill("#sections-0-columns-3-column", "")  # removed
    page.fill("#param-id_no", person.id_no)
    _refreshing(page, lambda: page.click("#try-it"))
    result = page.inner_text("#try-result")
    assert person.welfare_label in result and person.district in result
    page.screenshot(path=str(ARTIFACTS / "designer-try-it.png"), full_page=True)

    page.select_option("#granted_agencies", label="示範縣政府社會處")
    page.select_option("#granted_roles", label="查詢人員")
    page.select_option("#business_items", label="社會救助資格審核（SOC-AID）")
    _refreshing(page, lambda: page.click("#save-form"))
    assert f"表單 {code} 已儲存" in page.inner_text("body") and "/formdesigner/" in page.url
    page.screenshot(path=str(ARTIFACTS / "designer-saved.png"), full_page=True)

    def rows():
        with live_app.app.app_context():
            form = db.session.scalar(select(QueryForm).where(QueryForm.code == code))
            found = {"input": [(i.id, i.name) for i in form.inputs], "section": [s.id for s in form.sections],
                     "filter": [f.id for f in form.sections[0].filters],
                     "column": [(c.id, c.label) for c in form.sections[0].columns]}  # fmt: skip
            db.session.remove()
        return found

    before = rows()
    page.fill("#sections-0-columns-1-label", "福利身分類別")  # renamed on the saved form's page
    _refreshing(page, lambda: page.click("#save-form"))
    assert f"表單 {code} 已儲存" in page.inner_text("body")
    after = rows()
    assert after["column"][1] == (before["column"][1][0], "福利身分類別")  # the same row, renamed
    assert {k: v for k, v in after.items() if k != "column"} == {k: v for k, v in before.items() if k != "column"}
    assert [c[0] for c in after["column"]] == [c[0] for c in before["column"]]
    page.close()

    clerk = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-TW")
    _sign_in(clerk, live_server, "clerk.social")
    clerk.goto(f"{live_server}/query/")
    clerk.click("text=福利身分（區域）")
    clerk.wait_for_load_state("networkidle")
    clerk.fill("#case_no", "1151203-0042")
    clerk.select_option("#business_item", "SOC-AID")
    clerk.fill("#in-id_no", person.id_no)
    clerk.click("#run-query")
    clerk.wait_for_selector("#query-result")
    assert person.welfare_label in clerk.inner_text("#query-result")
    clerk.screenshot(path=str(ARTIFACTS / "designer-clerk-runs-it.png"), full_page=True)
    clerk.close()
