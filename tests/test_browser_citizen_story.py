"""The citizen's story, end to end in Chromium (issue 15, "Tests"): 林 signs in with her demo
card (the signing component's popup, the real OCSP responders), applies online for an address
change and signs it with the card, then follows it in "my cases" while three agencies act in the
back office in the same test: the land office's handler accepts and records the result in the
browser with "show this result to the applicant" ticked, the tax bureau publishes its result
through the API, the motor-vehicles office records one it keeps to itself. She sees each agency's
state and the published results, never a staff member's name nor the unpublished text. A tax
clerk then queries her data; she sees it in "who read my data", flags it, the tax bureau's
Auditor answers on the back office's flags page, and she reads the answer.
axe-core checks each portal page she visits: no serious or critical violation.
Screenshots in tests/artifacts/citizen-story-*.png."""

from __future__ import annotations

import pytest

from tests.conftest import ARTIFACTS, DEMO_PASSWORD, api_token, bearer
from tests.test_browser_apply import lease_pdf
from tests.test_browser_portal import PHONE, accessible, axe_source, card_sign_in, world  # noqa: F401 (fixtures)
from tests.test_notify import act
from tests.test_portal import clerk_query

# Every back-office account that touches the case or the query, by user name and by full name:
# none of them may appear on a portal page.
STAFF = ("supervisor.land", "handler.land", "supervisor.tax", "handler.tax", "supervisor.motor", "handler.motor",
         "clerk", "auditor.tax", "吳地政", "蔡地政", "劉稅務", "楊稅務", "周監理", "羅監理", "張稅務", "潘稽核")  # fmt: skip
NEW_ADDRESS = "示範縣西林鄉和平街88號3樓"
LAND_RESULT = "已依新址更新土地登記簿所有權人住址。"
TAX_RESULT = "房屋稅及地價稅單自下期起寄送新址。"
MOTOR_RESULT = "內部註記：行照地址待車主到站換發。"  # recorded, not published


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"citizen-story-{name}.png"), full_page=True)


def staff_page(browser, url: str, username: str):
    page = browser.new_page(viewport={"width": 1200, "height": 900}, locale="zh-TW")
    page.goto(f"{url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_load_state("networkidle")
    return page


def no_staff(page) -> None:
    html = page.content()
    shown = [name for name in STAFF if name in html]
    assert not shown, f"{page.url} names staff: {shown}"


def dispatch_of(client, agency: str, case_no: str) -> int:
    """The agency's own dispatch of the case, opened by its supervisor (which receives it)."""
    sup = api_token(client, f"supervisor.{agency}")
    case = client.get(f"/api/v1/cases/{case_no}", headers=bearer(sup))
    assert case.status_code == 200, case.json
    (dispatch,) = case.json["result"]["dispatches"]
    opened = client.get(f"/api/v1/dispatches/{dispatch['id']}", headers=bearer(sup)).json["result"]
    r = act(client, sup, dispatch["id"], "assign", handler=f"handler.{agency}", version=opened["version"])
    assert r.status_code == 200, r.json
    return dispatch["id"]


def dispatch_states(page) -> dict[str, str]:
    rows = page.locator("#dispatches tbody tr")
    return {
        rows.nth(i).locator("th").inner_text(): rows.nth(i).locator("td").first.inner_text()
        for i in range(rows.count())
    }


@pytest.mark.browser
def test_a_citizen_applies_with_her_card_follows_three_agencies_and_questions_a_clerks_query(
    world,  # noqa: F811
    browser,
    axe_source,  # noqa: F811
):
    ARTIFACTS.mkdir(exist_ok=True)
    lin = next(c for c in world.pki["cards"] if c["name"] == "citizen-lin")
    client = world.app.test_client()

    # 林 signs in with her card; the first time she binds her ID number and name
    page = browser.new_page(viewport=PHONE, locale="zh-TW")
    card_sign_in(page, world, "citizen-lin")
    page.wait_for_url("**/signin/card/register")
    page.fill("#id_number", lin["id_number"])
    page.fill("#name", lin["holder"])
    page.click("#register-submit")
    page.wait_for_url(f"{world.url}/portal/")
    assert "我的服務" in page.inner_text("main")
    accessible(page, axe_source)
    shot(page, "1-home")

    # she applies online for an address change and signs it with the card
    page.click("text=線上申辦")
    page.wait_for_url("**/portal/apply/")
    accessible(page, axe_source)
    page.click("#open-categories a:has-text('地址變更')")
    page.wait_for_selector("#apply-form")
    page.fill("#field-address-old", "示範縣東平鄉中山路1號")
    page.fill("#field-address-new", NEW_ADDRESS)
    page.fill("#field-moved_on", "2026-11-30")
    page.fill("#email", "lin@example.tw")
    page.fill("#id_number", lin["id_number"])
    page.set_input_files("#file-proof", files=[{"name": "租約.pdf", "mimeType": "application/pdf",
                                                "buffer": lease_pdf()}])  # fmt: skip
    accessible(page, axe_source)
    shot(page, "2-apply")
    page.click("#review")
    page.wait_for_url("**/portal/apply/review/*")
    assert NEW_ADDRESS in page.inner_text("#review-fields")
    accessible(page, axe_source)
    world.reader.insert("citizen-lin")
    page.fill("#pin", "1234")
    with page.expect_popup() as popup:
        page.click("#sign-apply")
    popup.value.wait_for_event("close")
    page.wait_for_url("**/portal/cases/*")
    case_no = page.url.rsplit("/", 1)[-1]
    assert "已登記為案件" in page.inner_text("main")
    assert set(dispatch_states(page).values()) == {"已寄出"}, dispatch_states(page)
    assert page.locator("#results").count() == 0 and page.locator("#withdraw").count() == 1
    accessible(page, axe_source)
    shot(page, "3-registered")

    # three agencies act on it, each with its own back-office roles
    land = dispatch_of(client, "land", case_no)
    handler = staff_page(browser, world.url, "handler.land")
    handler.goto(f"{world.url}/notify/dispatch/{land}")
    handler.click("#do-accept")
    handler.wait_for_selector("#do-process")
    handler.fill("#result", LAND_RESULT)
    handler.check("#control-closed")
    handler.check("#publish-result")
    handler.click("#do-process")
    handler.wait_for_load_state("networkidle")
    assert LAND_RESULT in handler.inner_text("#fact-result")
    shot(handler, "4-land-handler-publishes")
    handler.close()
    assert act(client, api_token(client, "supervisor.land"), land, "close").status_code == 200

    # meanwhile, on her case's page: the land office is done, its result shown; the tax bureau has only assigned it
    tax = dispatch_of(client, "tax", case_no)
    page.reload()
    states = dispatch_states(page)
    assert (states["示範縣地政事務所"], states["示範縣地方稅務局"]) == ("已結", "已分案"), states
    assert page.locator("#results").count() == 1, "no published result on the page"
    assert LAND_RESULT in page.inner_text("#results") and page.locator("#withdraw").count() == 0
    assert "辦理中" in page.inner_text("#case-status")
    no_staff(page)
    accessible(page, axe_source)
    shot(page, "5-land-office-done")

    han = api_token(client, "handler.tax")
    assert act(client, han, tax, "accept").status_code == 200
    r = act(client, han, tax, "process", result=TAX_RESULT, control_type="closed", publish_result=True)
    assert r.status_code == 200, r.json

    motor = dispatch_of(client, "motor", case_no)
    han = api_token(client, "handler.motor")
    assert act(client, han, motor, "accept").status_code == 200
    r = act(client, han, motor, "process", result=MOTOR_RESULT, control_type="continuing", publish_result=False)
    assert r.status_code == 200, r.json

    # she follows it in "my cases": each agency's state and the results published to her
    page.click("text=我的案件")
    page.wait_for_url("**/portal/cases/")
    assert case_no in page.inner_text("#cases")
    accessible(page, axe_source)
    shot(page, "6-my-cases")
    page.click(f"text={case_no}")
    page.wait_for_url(f"**/portal/cases/{case_no}")
    assert dispatch_states(page) == {"示範縣地政事務所": "已結", "示範縣地方稅務局": "已處理",
                                     "交通部公路局示範監理站": "已處理"}  # fmt: skip
    results = page.inner_text("#results")
    assert LAND_RESULT in results and TAX_RESULT in results
    assert MOTOR_RESULT not in page.content() and "交通部公路局示範監理站" not in results
    assert page.locator("#withdraw").count() == 0  # accepted: no withdrawal any more
    no_staff(page)
    accessible(page, axe_source)
    shot(page, "7-case-followed")

    # a tax clerk looks her up (the back office's query API, in the same test)
    query_id = clerk_query(client, world.form, lin["id_number"])
    page.click("text=誰查了我的資料")
    page.wait_for_url("**/portal/accesses/")
    entry = page.inner_text(f"#access-{query_id}")
    assert "示範縣地方稅務局" in entry and "TAX-CHECK" in entry and "1151203-0042" not in entry
    no_staff(page)
    accessible(page, axe_source)
    shot(page, "8-who-read-my-data")
    page.fill(f"#note-{query_id}", "我沒有在稅務局辦過任何案件。")
    page.click(f"#flag-{query_id}")
    page.wait_for_load_state("networkidle")
    assert "稽核人員" in page.inner_text(f"#access-{query_id}")
    assert page.locator(f"#flag-{query_id}").count() == 0
    accessible(page, axe_source)
    shot(page, "9-flagged")

    # the tax bureau's Auditor sees the full record and answers
    auditor = staff_page(browser, world.url, "auditor.tax")
    auditor.goto(f"{world.url}/accessflags/")
    flag = auditor.locator(".panel", has_text="我沒有在稅務局辦過任何案件")
    assert "clerk" in flag.inner_text() and "1151203-0042" in flag.inner_text()
    answer = "本局承辦人依房屋稅籍查核案 1151203-0042 查詢您的資料，係因新址房屋稅籍異動，特此說明。"
    flag.locator("textarea").fill(answer)
    flag.locator("button[type=submit]").click()
    auditor.wait_for_load_state("networkidle")
    shot(auditor, "10-auditor-answers")
    auditor.close()

    # and she reads the answer
    page.reload()
    assert answer in page.inner_text(f"#access-{query_id}")
    no_staff(page)
    accessible(page, axe_source)
    shot(page, "11-answer")
    page.close()
