"""Browser story (Playwright + Debian's chromium) under the Content-Security-Policy
without 'unsafe-inline' scripts: the administrator works the screens FAB builds
(lists with their delete confirmation, search filters with the date picker, forms
with select2, the API docs) and every one still works, with no violation and no
script error (the ``browser`` fixture fails the story on any). The other stories
(query, notification, transfer, reports, survey) run under the same watch.
Screenshots in tests/artifacts/csp-*.png."""

import pytest

from tests.conftest import ARTIFACTS
from tests.test_browser_notify import sign_in


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"csp-{name}.png"), full_page=False)


@pytest.mark.browser
def test_the_administrator_works_fabs_screens_with_scripts_only_by_nonce(live_server, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    base = live_server
    context, page = sign_in(browser, base, "admin")
    csp = page.goto(f"{base}/").headers["content-security-policy"]
    assert "'unsafe-inline'" not in csp.split("script-src", 1)[1].split(";", 1)[0]
    assert "組織管理" in page.inner_text(".navbar")

    # A list: the delete button asks first (FAB's confirmation dialog, driven by its scripts).
    page.goto(f"{base}/businessitemview/list/")
    page.locator("a[id^='btn-delete-']").first.click()
    dialog = page.locator("#modal-confirm")
    dialog.wait_for(state="visible")
    assert dialog.locator(".modal-body").inner_text().strip() == "確定要刪除此筆資料嗎？"
    shot(page, "1-delete-confirmation")
    dialog.locator("button[data-dismiss=modal]").first.click()
    dialog.wait_for(state="hidden")

    # The audit trail's search: a filter on the time column, with its date picker.
    page.goto(f"{base}/auditeventview/list/")
    page.locator("a:has-text('查詢')").last.click()
    page.click("#filter_form button.dropdown-toggle")
    page.click("#filter_form a.filter[name=at]")
    page.click("#filter_form input.filter_val")
    page.locator(".datepicker").first.wait_for(state="visible")
    shot(page, "2-audit-filter-date-picker")
    page.keyboard.press("Escape")

    # A form with select2: the new user's agency and roles.
    page.goto(f"{base}/users/add")
    page.locator("#s2id_agency, #agency + .select2-container").first.click()
    page.locator(".select2-results__option:has-text('示範縣地政事務所')").click()
    assert "示範縣地政事務所" in page.inner_text("#agency + .select2-container")
    page.locator("#roles + .select2-container").click()
    page.locator(".select2-results__option").first.wait_for(state="visible")
    shot(page, "3-user-form-select2")
    page.keyboard.press("Escape")

    # FAB's API documentation page (Swagger UI) runs its bundle and inline start-up script.
    page.goto(f"{base}/swagger/v1")
    page.locator(".swagger-ui .info").first.wait_for(state="visible")
    shot(page, "4-api-docs")
    context.close()
