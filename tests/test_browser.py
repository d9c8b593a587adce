"""Browser story (Playwright + Debian's chromium): the administrator signs in,
reads the menu in Chinese, switches to English. Screenshots in tests/artifacts/."""

import threading

import pytest
from werkzeug.serving import make_server

from tests.conftest import ARTIFACTS, DEMO_PASSWORD, Database, build_app, free_port

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    database = Database("sqlite", tmp_path_factory.mktemp("browser"))
    app = build_app(database.url)
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


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
