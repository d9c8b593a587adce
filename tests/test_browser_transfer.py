"""Browser story (Playwright + Debian's chromium): the social affairs officer
registers a transfer, downloads its configuration file, encrypts the data with
the kit and uploads it with the progress bar; the tax bureau's officer downloads
it, records notes and returns an encrypted result; the sender downloads it.
Screenshots in tests/artifacts/transfer-*.png."""

import hashlib
import json

import pytest

from tests.conftest import ARTIFACTS
from tests.test_browser_notify import sign_in
from tests.test_transfer import PLAINTEXT, kit_decrypt, kit_encrypt, pki, staff


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"transfer-{name}.png"), full_page=True)


@pytest.mark.browser
def test_a_transfer_from_social_affairs_to_the_tax_bureau_and_back(live_server, browser, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    base = live_server
    social_ctx, page = sign_in(browser, base, "transfer.social")
    _a_revoked_certificate_is_refused_with_the_reason(page, base)
    upload_no = _registered_after_a_refused_record_count(page, base)
    _sealed_with_its_configuration_and_uploaded(page, upload_no, tmp_path)
    tax_ctx, tax = sign_in(browser, base, "transfer.tax")
    _the_tax_bureau_receives_notes_and_returns_a_result(tax, base, upload_no, tmp_path)
    _the_sender_downloads_the_result_and_reads_the_notes(page, base, upload_no, tmp_path)
    tax_ctx.close()
    social_ctx.close()


def _a_revoked_certificate_is_refused_with_the_reason(page, base) -> None:
    page.goto(f"{base}/transfer/certificates")
    assert "有效" in page.inner_text("#certificates")
    page.set_input_files("#certificate", str(pki().revoked.cert))
    page.click("#upload-certificate")
    page.wait_for_load_state()
    assert "撤銷" in page.inner_text("#certificate-error")  # refused with the reason, nothing registered
    assert page.locator("#certificates tbody tr").count() == 1
    shot(page, "0-certificates")


def _registered_after_a_refused_record_count(page, base) -> str:
    page.goto(f"{base}/transfer/")
    shot(page, "1-worklist")
    page.click("#new-transfer")
    page.wait_for_load_state()
    assert "低收入戶財稅資料比對" in page.inner_text("#chosen-item")
    assert page.is_checked("#recipient-transfer\\.tax")
    page.fill("#source", "社政福利系統 11月低收入戶名冊")
    page.fill("#record_count", "一百")  # not a number: refused, what was typed is kept
    page.click("#register-transfer")
    page.wait_for_load_state()
    assert "筆數" in page.inner_text("#transfer-error")
    assert page.input_value("#source") == "社政福利系統 11月低收入戶名冊"
    page.fill("#record_count", "200")
    shot(page, "2-register")
    page.click("#register-transfer")
    page.wait_for_load_state()
    upload_no = page.inner_text("#upload-no").strip()
    assert upload_no.startswith("TR")
    return upload_no


def _sealed_with_its_configuration_and_uploaded(page, upload_no, tmp_path) -> None:
    with page.expect_download() as dl:
        page.click("#download-config")
    config_path = tmp_path / "config.json"
    dl.value.save_as(config_path)
    assert json.loads(config_path.read_text())["upload_no"] == upload_no
    (tmp_path / "data.csv").write_bytes(PLAINTEXT)
    kit_encrypt(staff("transfer.social"), tmp_path / "data.csv", tmp_path / "data.p7m", "--config", config_path)
    shot(page, "3-case-registered")
    page.set_input_files("#file-payload", str(tmp_path / "data.p7m"))
    # Sent by the page's script (a static file: no inline script) as a PUT with a progress bar; then the page reloads.
    with page.expect_request(lambda r: r.method == "PUT" and r.url.endswith("/upload/payload")):
        with page.expect_navigation():
            page.click("#send-payload")
    assert "已上傳" in page.inner_text(".transfer-state")
    assert "加密檔已登錄" in page.inner_text(".alert-success")
    shot(page, "4-uploaded")


def _the_tax_bureau_receives_notes_and_returns_a_result(tax, base, upload_no, tmp_path) -> None:
    tax.goto(f"{base}/transfer/?tab=incoming")
    assert upload_no in tax.inner_text("#transfers-incoming")
    shot(tax, "5-incoming")
    tax.click(f"#transfers-incoming tr:has-text('{upload_no}') a.open-transfer")
    tax.wait_for_load_state()
    with tax.expect_download() as dl:
        tax.click("#download-payload")
    dl.value.save_as(tmp_path / "got.p7m")
    assert (tmp_path / "got.p7m").read_bytes() == (tmp_path / "data.p7m").read_bytes()
    kit_decrypt(staff("transfer.tax"), tmp_path / "got.p7m", tmp_path / "got.csv")
    assert (tmp_path / "got.csv").read_bytes() == PLAINTEXT
    tax.reload()
    tax.fill("#notes", "比對完成，3 筆所得超過門檻")
    tax.click("#save-notes")
    tax.wait_for_load_state()
    (tmp_path / "result.csv").write_text("比對結果\n", encoding="utf-8")
    sender_cert = staff("transfer.social").cert
    kit_encrypt(staff("transfer.tax"), tmp_path / "result.csv", tmp_path / "result.p7m", "--to", sender_cert)
    # A plaintext file is refused in place by the page's script, which says why; the page stays.
    tax.set_input_files("#file-result", str(tmp_path / "result.csv"))
    tax.click("#send-result")
    tax.wait_for_selector("#upload-result .upload-error", state="visible")
    assert "明文" in tax.inner_text("#upload-result .upload-error")
    tax.set_input_files("#file-result", str(tmp_path / "result.p7m"))
    with tax.expect_navigation():
        tax.click("#send-result")
    assert "已處理" in tax.inner_text(".transfer-state")
    shot(tax, "6-result-returned")


def _the_sender_downloads_the_result_and_reads_the_notes(page, base, upload_no, tmp_path) -> None:
    page.goto(f"{base}/transfer/?tab=completed")
    assert upload_no in page.inner_text("#transfers-completed")
    page.click(f"#transfers-completed tr:has-text('{upload_no}') a.open-transfer")
    page.wait_for_load_state()
    with page.expect_download() as dl:
        page.click("#download-result")
    dl.value.save_as(tmp_path / "back.p7m")
    assert (tmp_path / "back.p7m").read_bytes() == (tmp_path / "result.p7m").read_bytes()
    page.reload()
    assert "比對完成" in page.inner_text("#transfer-notes")
    shot(page, "7-result-received")


@pytest.mark.browser
def test_an_officer_gets_the_kit_from_the_transfer_list_and_its_checksum_holds(live_server, browser, tmp_path):
    """One file to download; the SHA-256 the page shows is the file's; the install commands name it."""
    ARTIFACTS.mkdir(exist_ok=True)
    ctx, page = sign_in(browser, live_server, "transfer.tax")
    page.goto(f"{live_server}/transfer/")
    page.click("#get-kit")
    page.wait_for_load_state()
    shown = page.inner_text("#kit-sha256").strip()
    name = page.inner_text("#kit-filename").strip()
    assert f"kit/bin/pip install {name}" in page.inner_text("#kit-install-linux")
    assert f"kit\\Scripts\\pip install {name}" in page.inner_text("#kit-install-windows")
    with page.expect_download() as dl:
        page.click("#kit-download")
    assert dl.value.suggested_filename == name
    dl.value.save_as(tmp_path / name)
    assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == shown
    shot(page, "8-kit")
    page.set_viewport_size({"width": 390, "height": 844})
    shot(page, "8-kit-phone")
    ctx.close()
