"""Browser story (Playwright + Debian's chromium): a household office's
address change is run to completion by three agencies; the manager opens the
performance report, looks at another month (nothing there), types a range
backwards (told so), comes back to this month and exports it to Excel and
PDF; the citizen answers the questionnaire on a phone and the manager reads
the survey statistics. Screenshots in tests/artifacts/reports-*.png."""

from __future__ import annotations

import io
import re
from pathlib import Path

import httpx
import pytest
from openpyxl import load_workbook
from pypdf import PdfReader
from sqlalchemy import select

from app.extensions import db
from app.lib.rocdate import format_roc
from app.models.outbox import OutboxMessage
from app.services.reports import taipei_today
from tests.conftest import ARTIFACTS, DEMO_PASSWORD
from tests.test_browser_notify import sign_in
from tests.test_notify import CITIZEN, attachment, consent_pdf


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"reports-{name}.png"), full_page=True)


def _token(http: httpx.Client, username: str) -> dict:
    r = http.post("/api/v1/security/login", json={"username": username, "password": DEMO_PASSWORD, "provider": "db"})
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def complete_an_address_change(base: str) -> str:
    """Register 戶籍異動/地址變更 and let the land office, tax bureau and motor vehicle office close it."""
    with httpx.Client(base_url=base, timeout=30) as http:
        notifier = _token(http, "notifier")
        body = {
            "category": "戶籍異動/地址變更",
            "citizen": CITIZEN,
            "content": "民眾遷入新址。",
            "attachments": [attachment(consent_pdf())],
        }
        r = http.post("/api/v1/cases/", json=body, headers=notifier)
        assert r.status_code == 201, r.text
        case = r.json()["result"]
        for d in case["dispatches"]:
            agency = d["agency"]["code"].lower()
            sup, han = _token(http, f"supervisor.{agency}"), _token(http, f"handler.{agency}")
            version = http.get(f"/api/v1/dispatches/{d['id']}", headers=sup).json()["result"]["version"]
            steps = [
                (sup, "assign", {"handler": f"handler.{agency}", "version": version}),
                (han, "accept", {}),
                (han, "process", {"result": "已更新住址。", "control_type": "closed"}),
                (sup, "close", {}),
            ]
            for headers, action, payload in steps:
                r = http.post(f"/api/v1/dispatches/{d['id']}/{action}", json=payload, headers=headers)
                assert r.status_code == 200, (action, r.text)
        return case["case_no"]


@pytest.fixture(scope="module")
def served(live_app):
    """The seeded app on a free port, with the app object at hand (to read a survey link)."""
    return live_app


def survey_link(app, case_no: str) -> str:
    """What the citizen's last e-mail says (read from the outbox, as the SMTP server would receive it)."""
    with app.app_context():
        bodies = db.session.scalars(
            select(OutboxMessage.body).where(OutboxMessage.topic == f"case:{case_no}:completed")
        )
        text = next(iter(bodies))
    return re.search(r"https?://\S+/survey/([A-Za-z0-9_-]+)", text).group(1)


@pytest.mark.browser
def test_the_manager_reads_the_performance_report_changes_the_dates_and_exports_it(served, browser, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    base = served.url
    case_no = complete_an_address_change(base)

    # the citizen answers on a phone
    phone = browser.new_context(
        viewport={"width": 390, "height": 844}, locale="zh-TW", is_mobile=True, has_touch=True, device_scale_factor=2
    )
    citizen = phone.new_page()
    citizen.goto(f"{base}/survey/{survey_link(served.app, case_no)}")
    assert "跨機關通報服務滿意度調查" in citizen.inner_text("#survey-title")
    citizen.click("#survey-submit")  # nothing chosen: the required questions are marked
    citizen.wait_for_load_state()
    assert "此題必須作答" in citizen.inner_text("#question-1")
    shot(citizen, "0a-phone-required-marked")
    citizen.click("#question-1 label.rate:has-text('4')")
    citizen.click("#question-2 label.rate:has-text('5')")
    citizen.click("#question-3 label.option:has-text('不需要，一次就辦好')")
    citizen.click("#question-4 label.option:has-text('電子郵件通知')")
    citizen.fill("#question-5 textarea", "臨櫃人員說明清楚，謝謝。")
    shot(citizen, "0b-phone-filled-in")
    citizen.click("#survey-submit")
    citizen.wait_for_load_state()
    assert citizen.locator("#survey-thanks").is_visible()
    shot(citizen, "0c-phone-thanks")
    phone.close()
    today = format_roc(taipei_today())

    context, page = sign_in(browser, base, "manager")
    page.click("a.dropdown-toggle:has-text('統計報表')")
    page.click("a:has-text('辦理績效報表')")
    page.wait_for_load_state()
    assert "各受文機關辦理績效" in page.inner_text("#report-title")
    table = page.inner_text("#report-table")
    for name in ("示範縣地政事務所", "示範縣地方稅務局", "交通部公路局示範監理站", "全部受文機關"):
        assert name in table
    assert page.locator("#report-chart").is_visible()
    shot(page, "1-this-month-by-agency")

    page.fill("#from", "114/01/01")
    page.fill("#to", "114/01/31")
    page.click("#apply-filters")
    page.wait_for_load_state()
    assert "114/01/01–114/01/31" in page.inner_text("#report-period")
    assert page.locator("#report-empty").is_visible() and page.locator("#report-table").count() == 0
    shot(page, "2-an-empty-month")
    page.click("#export-xlsx")  # nothing to export: said so, no file
    page.wait_for_load_state()
    assert "沒有可匯出的資料" in page.inner_text("body")

    page.fill("#from", "114/01/31")
    page.fill("#to", "114/01/01")
    page.click("#apply-filters")
    page.wait_for_load_state()
    assert "早於" in page.inner_text("#report-error")
    shot(page, "3-range-backwards")

    page.fill("#from", today)
    page.fill("#to", today)
    page.click("#apply-filters")
    page.wait_for_load_state()
    page.click("#tab-categories")
    page.wait_for_load_state()
    assert "戶籍異動" in page.inner_text("#report-table") and "地址變更" in page.inner_text("#report-table")
    shot(page, "4-today-by-category")
    with page.expect_download() as excel:
        page.click("#export-xlsx")
    path = tmp_path / excel.value.suggested_filename
    excel.value.save_as(path)
    rows = list(load_workbook(path).active.iter_rows(values_only=True))
    assert rows[0][0] == "各類別辦理績效" and any(r and r[0] == "戶籍異動" and r[1] == "地址變更" for r in rows)
    with page.expect_download() as pdf:
        page.click("#export-pdf")
    data = Path(pdf.value.path()).read_bytes()
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)
    assert "各類別辦理績效" in text and "地址變更" in text
    (ARTIFACTS / "reports-4-today-by-category.pdf").write_bytes(data)

    page.click("a.dropdown-toggle:has-text('滿意度問卷')")
    page.click("a:has-text('問卷統計')")
    page.wait_for_load_state()
    assert "跨機關通報服務滿意度調查" in page.inner_text("#stats-title")
    assert page.inner_text("#stat-invitations").strip() == "1" and page.inner_text("#stat-rate").strip() == "100.0%"
    assert "臨櫃人員說明清楚，謝謝。" in page.inner_text("#stats-q5")
    shot(page, "5-survey-statistics")
    context.close()
