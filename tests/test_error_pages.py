"""A browser that meets an error gets a page in the reader's language, in the
platform's layout, with a way back; an API client still gets JSON."""

import re

import pytest

from tests.conftest import csrf_token, login


def _title(html: str) -> str:
    return re.search(r"<h1>(.*?)<small>", html, re.S).group(1).strip()


def test_a_clerk_who_mistypes_an_address_gets_a_chinese_page_with_the_menu_and_a_way_home(app):
    client = app.test_client()
    login(client, "clerk")
    page = client.get("/no/such/page", headers={"Referer": "http://localhost/query/"})
    assert page.status_code == 404
    assert _title(page.text) == "找不到這個頁面"
    assert 'id="error-home"' in page.text and "回首頁" in page.text
    assert 'href="http://localhost/query/"' in page.text  # back to where the clerk came from
    assert "Not Found" not in page.text and "navbar" in page.text  # the platform's layout, not Werkzeug's
    # Another site's address is never offered as "back".
    elsewhere = client.get("/no/such/page", headers={"Referer": "https://evil.example/"})
    assert "evil.example" not in elsewhere.text
    client.get("/lang/en", follow_redirects=True)
    english = client.get("/no/such/page")
    assert _title(english.text) == "Page not found" and "Back to the home page" in english.text


def test_an_anonymous_visitor_and_a_wrong_method_get_the_same_kind_of_page(app):
    client = app.test_client()
    missing = client.get("/nowhere")
    assert missing.status_code == 404 and _title(missing.text) == "找不到這個頁面"
    wrong = client.delete("/login/")
    assert wrong.status_code == 405 and _title(wrong.text) == "此頁面不接受這種操作方式"
    assert "GET" in wrong.headers.get("Allow", "")  # what the exception said stays in the answer


def test_the_portal_s_errors_are_in_the_portal_s_own_layout(app):
    page = app.test_client().get("/portal/no-such-page")
    assert page.status_code == 404
    assert 'class="bar"' in page.text and "navbar" not in page.text  # portal.css layout
    assert '<html lang="zh-Hant-TW">' in page.text


def test_api_paths_still_answer_json(app):
    answer = app.test_client().get("/api/v1/no-such-thing")
    assert answer.status_code == 404 and answer.is_json and answer.json["message"]


def test_an_unexpected_fault_on_a_page_is_a_chinese_500_page_without_the_fault_s_text(app, monkeypatch, caplog):
    def broken(**_args):
        raise RuntimeError("secret detail A123456789")

    endpoint = next(rule.endpoint for rule in app.url_map.iter_rules() if rule.rule == "/lang/<string:locale>")
    monkeypatch.setitem(app.view_functions, endpoint, broken)
    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)
    monkeypatch.setattr(app, "testing", False)
    page = app.test_client().get("/lang/en")
    assert page.status_code == 500 and _title(page.text) == "平台發生錯誤"
    assert "A123456789" not in page.text and "RuntimeError" not in page.text
    # the handler itself does not fail on the way (Flask 3 has no ``app.propagate_exceptions``)
    assert "unhandled error on GET /lang/en: RuntimeError" in caplog.text
    assert "AttributeError" not in caplog.text and "A123456789" not in caplog.text


def test_a_too_large_upload_gets_the_page_too(app):
    client = app.test_client()
    login(client, "admin")
    form = client.get("/users/add")
    big = b"x" * (app.config["MAX_CONTENT_LENGTH"] + 1)
    answer = client.post("/users/add", data=big, headers={"Content-Type": "application/x-www-form-urlencoded"},
                         query_string={"csrf_token": csrf_token(form.text) or ""})  # fmt: skip
    assert answer.status_code == 413 and _title(answer.text) == "上傳的內容過大"


@pytest.mark.parametrize("path", ["/favicon.ico"])
def test_the_favicon_is_served(app, path):
    with app.test_client().get(path) as icon:
        assert icon.status_code == 200 and icon.data[:4] == b"\x00\x00\x01\x00"  # an ICO file


@pytest.mark.browser
def test_the_error_page_as_a_clerk_sees_it(live_server, browser):
    from tests.conftest import ARTIFACTS, DEMO_PASSWORD

    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 720}, locale="zh-TW")
    page.goto(f"{live_server}/login/")
    page.fill("input[name=username]", "clerk")
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_load_state("networkidle")
    answer = page.goto(f"{live_server}/query/no-such-form")
    assert answer.status == 404
    assert "找不到這個頁面" in page.inner_text("h1") and "查詢" in page.inner_text(".navbar")
    page.screenshot(path=str(ARTIFACTS / "error-404-zh.png"), full_page=True)
    page.click("#error-home")
    page.wait_for_load_state("networkidle")
    assert page.url.rstrip("/") == live_server.rstrip("/") and page.locator("#error-home").count() == 0
