"""Browser story (Playwright + Debian's chromium): the land office's supervisor
runs the quarterly account review: starts it, takes a role away from the
handler, tries to disable the platform's only administrator (refused), confirms
the rest, completes and signs the review and downloads the signed export.
Screenshots in tests/artifacts/account-review-*.png."""

from __future__ import annotations

import io
import json
from pathlib import Path

from flask_appbuilder.security.sqla.models import Role
from openpyxl import load_workbook
from sqlalchemy import select

from app.extensions import db
from app.models.org import Agency, PlatformUser
from app.services import account_review
from app.services.audit import checkpoints
from tests.conftest import ARTIFACTS
from tests.test_browser_notify import sign_in


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"account-review-{name}.png"), full_page=True)


def _row(page, username: str):
    return page.locator("#review-items tbody tr", has_text=username).first


def test_the_supervisor_reviews_the_agencys_accounts_and_downloads_the_signed_export(live_app, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    with live_app.app.app_context():
        land = db.session.scalar(select(Agency).where(Agency.code == "LAND"))
        admin = db.session.scalar(select(PlatformUser).where(PlatformUser.username == "admin"))
        admin.agency_id = land.id  # the platform's only administrator works at the land office in this story
        handler = db.session.scalar(select(PlatformUser).where(PlatformUser.username == "handler.land"))
        handler.roles = [*handler.roles, db.session.scalar(select(Role).where(Role.name == "Clerk"))]
        db.session.commit()

    context, page = sign_in(browser, live_app.url, "supervisor.land")
    page.goto(f"{live_app.url}/accounts/review/")
    page.click("#review-open")
    page.wait_for_load_state()
    assert "地政事務所" in page.inner_text("#review-title")
    assert "handler.land" in page.inner_text("#review-items")
    shot(page, "1-opened")

    # The handler keeps only the handler role.
    row = _row(page, "handler.land")
    row.locator("input[name=keep][value=Clerk]").uncheck()
    row.locator("button[value=change]").click()
    page.wait_for_load_state()
    assert "已儲存" in page.inner_text("body")
    assert "已調整角色" in _row(page, "handler.land").inner_text()

    # Disabling the only administrator is refused.
    _row(page, "admin").locator("button[value=disable]").click()
    page.wait_for_load_state()
    assert "最後" in page.inner_text(".alert-danger") or "系統管理員" in page.inner_text(".alert-danger")
    shot(page, "2-last-admin-refused")

    while page.locator("#review-items tbody tr:not(:has(.review-decision)) button[value=confirm]").count():
        page.locator("#review-items tbody tr:not(:has(.review-decision)) button[value=confirm]").first.click()
        page.wait_for_load_state()
    page.click("#review-complete")
    page.wait_for_load_state()
    assert "已於" in page.inner_text("#review-state")
    shot(page, "3-completed")

    with page.expect_download() as got:
        page.click("#review-export")
    data = Path(got.value.path()).read_bytes()
    with page.expect_download() as got:
        page.click("#review-signature")
    signature = Path(got.value.path()).read_text(encoding="utf-8")
    with live_app.app.app_context():
        assert account_review.verify_export(data, signature, checkpoints.signing_key().public_key())
        assert db.session.scalar(select(PlatformUser.active).where(PlatformUser.username == "admin"))
    assert json.loads(signature)["agency"] == "LAND"
    cells = [str(c.value) for r in load_workbook(io.BytesIO(data)).active.iter_rows() for c in r if c.value]
    assert "每季帳號清查" in cells and "handler.land" in cells
    context.close()
