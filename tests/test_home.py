"""The staff home page says what waits for each role, with counts that follow the work."""

import re

import pytest
from sqlalchemy import update

from app.extensions import db
from app.models.sources import DataSource
from tests.conftest import api_token, login
from tests.test_notify import act, register


def _waiting(client) -> dict[str, int]:
    """The home page's "what waits for me": key -> count."""
    html = client.get("/").text
    return {
        k: int(n) for k, n in re.findall(r'id="todo-([a-z_]+)" href="[^"]*">\s*<span class="badge">(\d+)</span>', html)
    }


def _browser(app, username):
    client = app.test_client()
    login(client, username)
    return client


def test_each_role_sees_what_waits_for_it_and_the_counts_follow_the_work(app):
    api = app.test_client()
    supervisor, handler = _browser(app, "supervisor.land"), _browser(app, "handler.land")
    notifier = _browser(app, "notifier")
    before = {"sup": _waiting(supervisor), "han": _waiting(handler), "notifier": _waiting(notifier)}
    assert set(before["sup"]) == {"assign", "review", "overdue", "anomalies"}  # and the anomaly flags (issue 19)
    assert set(before["han"]) == {"accept", "record"}
    assert set(before["notifier"]) == {"cases", "cases_overdue"}
    # The notifier registers an address change: the land office has one more to assign, the notifier one more case.
    token = api_token(api, "notifier")
    cats = api.get("/api/v1/categories/", headers={"Authorization": f"Bearer {token}"}).json["result"]
    address = next(c for c in cats if c["sub_item"] == "地址變更")
    case = register(api, token, address["id"]).json["result"]
    land = next(d for d in case["dispatches"] if d["agency"]["code"] == "LAND")
    assert _waiting(supervisor)["assign"] == before["sup"]["assign"] + 1
    assert _waiting(notifier)["cases"] == before["notifier"]["cases"] + 1
    # Assigned to the handler: it leaves the supervisor's list and waits for the handler to accept.
    sup = api_token(api, "supervisor.land")
    assert act(api, sup, land["id"], "assign", handler="handler.land").status_code == 200
    assert _waiting(supervisor)["assign"] == before["sup"]["assign"]
    assert _waiting(handler)["accept"] == before["han"]["accept"] + 1
    han = api_token(api, "handler.land")
    assert act(api, han, land["id"], "accept").status_code == 200
    after = _waiting(handler)
    assert after["accept"] == before["han"]["accept"] and after["record"] == before["han"]["record"] + 1


def test_the_admin_sees_failing_sources_and_a_clerk_has_nothing_waiting(app):
    admin = _browser(app, "admin")
    assert _waiting(admin)["sources"] == 0
    with app.app_context():
        db.session.execute(update(DataSource).where(DataSource.code == "TAX-FILE").values(last_ok=False))
        db.session.commit()
    try:
        page = admin.get("/").text
        assert _waiting(admin)["sources"] == 1 and "健康檢查失敗的資料來源" in page
        assert 'href="/datasourceview/list/"' in page
    finally:
        with app.app_context():
            db.session.execute(update(DataSource).where(DataSource.code == "TAX-FILE").values(last_ok=None))
            db.session.commit()
    assert set(_waiting(_browser(app, "transfer.tax"))) >= {"transfers", "transfer_results"}
    clerk = _browser(app, "clerk")
    assert _waiting(clerk) == {} and 'id="waiting"' not in clerk.get("/").text


@pytest.mark.browser
def test_the_supervisor_s_home_page(live_server, browser):
    from tests.conftest import ARTIFACTS, DEMO_PASSWORD

    page = browser.new_page(viewport={"width": 1280, "height": 800}, locale="zh-TW")
    page.goto(f"{live_server}/login/")
    page.fill("input[name=username]", "supervisor.land")
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "我的待辦" in page.inner_text("#waiting") and "待簽收、分派的通報" in page.inner_text("#waiting")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "home-supervisor.png"), full_page=True)
    page.click("#todo-assign")
    page.wait_for_load_state("networkidle")
    assert "/notify/" in page.url and "tab=incoming" in page.url
