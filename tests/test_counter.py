"""At the counter: the clerk types the case's purpose once, it follows them from
form to form until they start another case, and the cursor starts where typing does."""

import re

import pytest

from tests.conftest import api_token, bearer, csrf_token, login


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


def _offered(html: str) -> list[str]:
    select = re.search(r'<select[^>]*id="business_item".*?</select>', html, re.S).group(0)
    return sorted(v for v in re.findall(r'<option value="([^"]*)"', select) if v)


def test_the_counter_offers_the_clerks_own_agencys_business_items_and_the_county_wide_ones(app):
    """household.changes allows HH-NOTIFY (county-wide), LAND-REG (land office) and TAX-EXEMPT
    (tax bureau); social.welfare allows three social items and TAX-EXEMPT."""
    tax = app.test_client()
    login(tax, "clerk")
    assert _offered(tax.get("/query/form/household.changes").text) == ["HH-NOTIFY", "TAX-EXEMPT"]
    assert _offered(tax.get("/query/form/social.welfare").text) == ["TAX-EXEMPT"]
    social = app.test_client()
    login(social, "clerk.social")
    assert _offered(social.get("/query/form/social.welfare").text) == ["SOC-AID", "SOC-DISABLED", "SOC-SENIOR"]
    # The API offers the same, and the command refuses another agency's item whatever is sent.
    token = api_token(tax, "clerk")
    forms = {f["code"]: f for f in tax.get("/api/v1/query/forms", headers=bearer(token)).json["result"]}
    assert sorted(b["code"] for b in forms["household.changes"]["business_items"]) == ["HH-NOTIFY", "TAX-EXEMPT"]
    r = tax.post("/api/v1/query/run", headers=bearer(token), json={
        "form": "social.welfare", "case_no": "1151203-0100", "reason": "", "business_item": "SOC-AID",
        "params": {"id_no": "A123456789"}})  # fmt: skip
    assert r.status_code == 400 and "業務項目" in r.json["message"]


def test_the_admin_sees_and_sets_each_business_items_agency(app):
    admin = app.test_client()
    login(admin, "admin")
    page = admin.get("/businessitemview/list/")
    assert "地方稅務局" in page.text and "全縣共用" in page.text


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
