"""Issue 19's story in Chromium: the Admin marks today a holiday on the office calendar and adds
a rule (its nonsense threshold refused first); a tax clerk queries eight people in a burst; the
anomalies worker (its real loop, in a thread) raises the flags within a minute; the tax bureau's
supervisor finds them on the home page, resolves each with an outcome and a comment; the auditor
reads the auditor's desk. The supervisor also signs last week's query log (password re-entered)
and verifies it. axe-core on the flags' page and the desk. Screenshots in
tests/artifacts/anomaly-*.png."""

from __future__ import annotations

import datetime
import threading
import time

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models.anomaly import AnomalyFlag
from app.services import anomaly
from app.services.reports.filters import taipei_today
from tests.conftest import ARTIFACTS, DEMO_PASSWORD, api_token
from tests.test_anomaly import run_query, valid_id
from tests.test_browser_citizen_story import staff_page
from tests.test_browser_portal import axe_source  # noqa: F401 (fixture)


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"anomaly-{name}.png"), full_page=True)


def accessible(page, axe: str, region: str) -> None:
    """axe-core (WCAG 2.0/2.1 A and AA) over this page's own region (the back office's FAB frame
    around it is not this story's): no serious or critical violation."""
    page.evaluate(axe)
    found = page.evaluate(
        "(region) => axe.run(document.querySelector(region), {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa',"
        " 'wcag21a', 'wcag21aa']}}).then(r => r.violations.map(v => ({id: v.id, impact: v.impact,"
        " nodes: v.nodes.map(n => n.target)})))",
        region,
    )
    bad = [v for v in found if v["impact"] in ("serious", "critical")]
    assert not bad, f"{page.url}: {bad}"


def open_flags(app) -> list[AnomalyFlag]:
    with app.app_context():
        found = list(db.session.scalars(select(AnomalyFlag).where(AnomalyFlag.username == "clerk",
                                                                   AnomalyFlag.resolved_at.is_(None))))  # fmt: skip
        db.session.remove()
        return found


@pytest.mark.browser
def test_a_clerks_burst_on_a_holiday_is_flagged_and_the_supervisor_resolves_it(live_app, browser, axe_source):  # noqa: F811
    url, app = live_app.url, live_app.app
    # The Admin: today is a holiday on the county's calendar; a rule for five people in an hour.
    admin = staff_page(browser, url, "admin")
    admin.goto(f"{url}/officedayview/add")
    day = admin.locator("input[name=day]")  # bootstrap-datepicker's input: typed as a person types
    day.click()
    day.press_sequentially(taipei_today().isoformat())
    day.press("Escape")
    admin.select_option("select[name=kind]", "holiday")
    admin.fill("input[name=name]", "防颱假")
    admin.click("button[type=submit], input[type=submit]")
    admin.wait_for_load_state("networkidle")
    admin.goto(f"{url}/officedayview/list/")
    assert "防颱假" in admin.inner_text("body")
    shot(admin, "calendar")
    for threshold in ("0", "5"):  # a nonsense threshold is refused (FAB shows the message on its next page)
        admin.goto(f"{url}/anomalyruleview/add")
        admin.fill("input[name=code]", "BURST-5")
        admin.fill("input[name=name]", "一小時查詢五人以上")
        admin.select_option("select[name=kind]", "many_subjects")
        admin.select_option("select[name=severity]", "high")
        admin.fill("input[name=threshold]", threshold)
        admin.fill("input[name=window_minutes]", "60")
        admin.click("button[type=submit], input[type=submit]")
        admin.wait_for_load_state("networkidle")
        if threshold == "0":
            assert "不同人數必須是 2 到 100000 的整數" in admin.content()
            shot(admin, "rule-refused")
    admin.goto(f"{url}/anomalyruleview/list/")
    assert "一小時查詢五人以上" in admin.content()
    shot(admin, "rules")
    admin.close()

    # The anomalies worker runs beside the platform (its loop, as `flask worker anomalies` runs it).
    app.config.update(ANOMALY_POLL_SECONDS=1, ANOMALY_SETTLE_SECONDS=2)
    with app.app_context():
        anomaly.evaluate_round(db.session, now=datetime.datetime.utcnow() + datetime.timedelta(seconds=30))
        db.session.remove()
    stop = threading.Event()
    worker = threading.Thread(target=anomaly.run, args=(app, stop), daemon=True)
    worker.start()
    try:
        client = app.test_client()
        token = api_token(client, "clerk")
        for n in range(8):
            run_query(client, token, valid_id("C", n))
        last_query = time.monotonic()
        while len(open_flags(app)) < 2 and time.monotonic() - last_query < 60:
            stop.wait(0.5)
        raised = open_flags(app)
        assert {f.kind for f in raised} == {"many_subjects", "off_hours"}, "no flags within a minute"
    finally:
        stop.set()
        worker.join(timeout=10)

    # The tax bureau's supervisor: the home page says what waits; each flag gets an outcome and a comment.
    sup = staff_page(browser, url, "supervisor.tax")
    assert "待審查的異常查詢警示" in sup.inner_text("#waiting")
    shot(sup, "home")
    sup.click("#todo-anomalies")
    sup.wait_for_load_state("networkidle")
    assert "/anomalyflags/" in sup.url
    text = sup.inner_text("main, body")
    assert "一小時查詢五人以上" in text and "非上班時間或假日查詢" in text and "clerk" in text
    accessible(sup, axe_source, "#anomaly-flags")
    shot(sup, "flags")
    outcomes = {
        "many_subjects": ("justified", "年度清查，公文 1151203-0001"),
        "off_hours": ("false_alarm", "防颱假加班"),
    }
    for flag in raised:
        outcome, comment = outcomes[flag.kind]
        sup.check(f"#outcome-{flag.id}-{outcome}")
        sup.fill(f"#comment-{flag.id}", comment)
        sup.click(f"#resolve-{flag.id}")
        sup.wait_for_load_state("networkidle")
        assert "已記錄結果" in sup.content()
    assert not open_flags(app)
    sup.click("#tab-all")
    sup.wait_for_load_state("networkidle")
    text = sup.inner_text("body")
    assert "正當" in text and "誤報" in text and "防颱假加班" in text
    shot(sup, "resolved")
    # The weekly review: last week's log opened, read, signed by entering the password again, verified.
    sup.goto(f"{url}/weeklyreview/")
    sup.click("#open-" + (taipei_today() - datetime.timedelta(days=taipei_today().weekday() + 7)).isoformat())
    sup.wait_for_load_state("networkidle")
    form = sup.locator("form[action$='/sign']").first
    form.locator("input[name=comment]").fill("本週查詢皆有公文")
    form.locator("input[name=password]").fill(DEMO_PASSWORD)
    form.locator("button[type=submit]").click()
    sup.wait_for_load_state("networkidle")
    assert "每週查詢紀錄審查已簽章" in sup.content()
    accessible(sup, axe_source, "#weekly-reviews")
    shot(sup, "weekly-review")
    sup.locator("a[id^=verify-]").first.click()
    sup.wait_for_load_state("networkidle")
    assert sup.locator("#review-ok").is_visible()
    shot(sup, "weekly-review-verified")
    sup.close()

    # The auditor's desk: nothing open, the chain's state, the Admin's changes of today.
    desk = staff_page(browser, url, "auditor")
    desk.goto(f"{url}/auditdesk/")
    assert desk.inner_text("#open-flags") == "0"
    changes = desk.inner_text("#desk-changes")
    assert "AnomalyRule" in changes and "OfficeDay" in changes
    accessible(desk, axe_source, "#audit-desk")
    shot(desk, "desk")
    desk.close()
