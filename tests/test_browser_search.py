"""Browser stories (Playwright + Debian's chromium), one per role, of the case
search: the land office's supervisor finds a citizen's closed case by ID number
and opens it; the handler finds the cases of a state; the household office's
notifier finds its closed cases of a category and mistypes an ID number; the
manager finds every agency's cases, with no search by citizen offered. Screenshots
in tests/artifacts/search-*.png."""

from __future__ import annotations

import pytest

from app.lib.rocdate import format_roc
from app.services.reports import taipei_today
from tests.conftest import ARTIFACTS
from tests.test_browser_notify import sign_in
from tests.test_browser_reports import complete_an_address_change
from tests.test_notify import CITIZEN


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"search-{name}.png"), full_page=True)


def open_search(page) -> None:
    """Through the menu, as a person would."""
    page.click("a.dropdown-toggle:has-text('跨機關通報')")
    page.click("a[href='/notify/search/']")
    page.wait_for_load_state()
    assert "案件查詢" in page.inner_text("h4.panel-title")


def results(page) -> str:
    return page.inner_text("#search-results")


@pytest.mark.browser
def test_each_role_searches_the_cases_it_may_see(live_server, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    base = live_server
    closed = complete_an_address_change(base)
    today = format_roc(taipei_today())

    supervisor, page = sign_in(browser, base, "supervisor.land")
    open_search(page)
    page.fill("#id_no", CITIZEN["id_no"])
    page.click("#search-submit")
    page.wait_for_load_state()
    table = results(page)
    assert closed in table and "全案辦結" in table and "已結案" in table and today in table
    assert CITIZEN["id_no"] not in page.inner_text("#search-results")
    shot(page, "1-supervisor-by-id")
    page.click(f"#search-results a:has-text('{closed}')")
    page.wait_for_load_state()
    assert f"/notify/case/{closed}" in page.url
    supervisor.close()

    handler, page = sign_in(browser, base, "handler.land")
    open_search(page)
    page.select_option("#state", "closed")
    page.fill("#date_from", today)
    page.click("#search-submit")
    page.wait_for_load_state()
    assert closed in results(page)
    shot(page, "2-handler-by-state-and-date")
    handler.close()

    notifier, page = sign_in(browser, base, "notifier")
    open_search(page)
    page.select_option("#category", label="戶籍異動－地址變更")
    page.select_option("#status", "completed")
    page.click("#search-submit")
    page.wait_for_load_state()
    assert closed in results(page)
    page.fill("#id_no", "A123456788")  # one digit wrong
    page.click("#search-submit")
    page.wait_for_load_state()
    assert "檢查碼" in page.inner_text("#error-id_no") and page.input_value("#id_no") == "A123456788"
    assert page.input_value("#status") == "completed"  # nothing typed is lost
    shot(page, "3-notifier-mistyped-id")
    notifier.close()

    manager, page = sign_in(browser, base, "manager")
    open_search(page)
    page.select_option("#category", label="戶籍異動－地址變更")
    page.click("#search-submit")
    page.wait_for_load_state()
    assert closed in results(page) and page.locator(f"#search-results a:has-text('{closed}')").count() == 0
    assert page.locator("#id_no, #name").count() == 0  # no search by citizen offered (the API refuses it: 403)
    shot(page, "4-manager-by-category")
    manager.close()
