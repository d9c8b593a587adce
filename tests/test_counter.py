"""At the counter: the clerk types the case's purpose once, it follows them from
form to form until they start another case, and the cursor starts where typing does."""

import re

import pytest

from tests.conftest import csrf_token, login


def _autofocused(html: str) -> list[str]:
    return re.findall(r'id="([^"]+)"[^>]*\bautofocus\b', html)


def _value(html: str, field: str) -> str:
    match = re.search(rf'id="{field}" name="{field}" maxlength="\d+" value="([^"]*)"', html)
    return match.group(1) if match else ""


def test_the_purpose_follows_the_clerk_from_form_to_form_until_another_case(app):
    clerk = app.test_client()
    login(clerk, "clerk")
    first = clerk.get("/query/form/tax.income")
    assert _autofocused(first.text) == ["case_no"]  # a new case: typing starts at the case number
    assert "carried-purpose" not in first.text
    answer = clerk.post(
        "/query/form/tax.income",
        data={"csrf_token": csrf_token(first.text), "case_no": "1151203-0042", "reason": "",
              "business_item": "TAX-EXEMPT", "id_no": "A123456789"},
    )  # fmt: skip
    assert answer.status_code == 200 and "query-error" not in answer.text
    # The next form of the same case: the purpose is already there, the cursor at the first condition.
    second = clerk.get("/query/form/business.company")
    assert _value(second.text, "case_no") == "1151203-0042" and "carried-purpose" in second.text
    assert _autofocused(second.text)[0].startswith("in-")
    # The clerk starts another case: nothing is carried any more.
    cleared = clerk.post(
        "/query/new-case", data={"csrf_token": csrf_token(second.text), "next": "/query/form/business.company"},
        follow_redirects=True,
    )  # fmt: skip
    assert "案號、查詢事由及業務項目已清除" in cleared.text
    assert _value(cleared.text, "case_no") == "" and _autofocused(cleared.text) == ["case_no"]
    # Another clerk's browser never carries this clerk's case.
    other = app.test_client()
    login(other, "clerk.social")
    assert _value(other.get("/query/form/tax.income").text, "case_no") == ""


def test_a_refused_query_carries_nothing(app):
    clerk = app.test_client()
    login(clerk, "clerk")
    page = clerk.get("/query/form/tax.income")
    clerk.post(
        "/query/form/tax.income",
        data={"csrf_token": csrf_token(page.text), "case_no": "1151203-0099", "reason": "",
              "business_item": "NO-SUCH-ITEM", "id_no": "A123456789"},
    )  # fmt: skip
    assert _value(clerk.get("/query/form/tax.income").text, "case_no") == ""


@pytest.mark.browser
def test_the_clerk_types_and_presses_enter(live_server, browser):
    from tests.conftest import ARTIFACTS, DEMO_PASSWORD

    page = browser.new_page(viewport={"width": 1280, "height": 800}, locale="zh-TW")
    page.goto(f"{live_server}/login/")
    page.fill("input[name=username]", "clerk")
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("input[type=submit], button[type=submit]")
    page.goto(f"{live_server}/query/form/tax.income")
    # The cursor is already in the case number: the clerk just types.
    page.keyboard.type("1151203-0077")
    page.select_option("#business_item", "TAX-EXEMPT")
    page.fill("#in-id_no", "A123456789")
    page.press("#in-id_no", "Enter")
    page.wait_for_load_state("networkidle")
    assert page.locator("#query-error").count() == 0 and "各類所得" in page.inner_text("body")
    page.goto(f"{live_server}/query/form/business.company")
    assert page.input_value("#case_no") == "1151203-0077"
    assert page.evaluate("document.activeElement.id").startswith("in-")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "counter-carried-purpose.png"), full_page=True)
