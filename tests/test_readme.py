"""The kit's command lines that people copy, run as written: the README's
example and the ones the transfer case page shows. A sender signs and
encrypts on their PC with the configuration file the platform gives them; the
receiver, on another PC, decrypts with exactly the command they were shown."""

from __future__ import annotations

import html
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models.transfer import TransferItem
from tests.conftest import api_token, bearer, login, pki_dir

ROOT = Path(__file__).resolve().parent.parent
PIN = "1234"  # TestConfig.DEMO_PKI_PIN, as the README says
PLAINTEXT = "身分證字號,姓名,所得\nA123456789,王小明,123456\n".encode() * 50


def readme_kit_commands() -> list[list[str]]:
    """The README's `python -m app.kit ...` lines, continuations joined, split as a shell would."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip().startswith("python -m app.kit"):
                commands.append(shlex.split(line))
    return commands


def run_as_typed(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``python`` is the interpreter the reader set up, ``transfer-kit`` the command the kit's wheel
    installs (the same modules: tests/test_kit_download.py runs the installed one); the rest is as written."""
    assert argv[0] in ("python", "transfer-kit")
    program = [sys.executable] if argv[0] == "python" else [sys.executable, "-m", "app.kit"]
    return subprocess.run(
        [*program, *argv[1:]],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
    )


def a_pc(tmp_path: Path, name: str) -> Path:
    """An agency PC's working folder, holding the demo PKI where the README says it is."""
    pc = tmp_path / name
    (pc / "instance").mkdir(parents=True)
    (pc / "instance" / "pki").symlink_to(pki_dir(), target_is_directory=True)
    return pc


def registered_case(client) -> tuple[str, dict, dict]:
    social = api_token(client, "transfer.social")
    with client.application.app_context():
        item = db.session.scalar(select(TransferItem).where(TransferItem.description == "低收入戶財稅資料比對"))
    body = {"item": item.id, "source": "社政福利系統 11月低收入戶名冊", "record_count": 50}
    r = client.post("/api/v1/transfers/", json=body, headers=bearer(social))
    assert r.status_code == 201, r.json
    return social, r.json["result"], r.json["config"]


def test_the_readme_kit_commands_run_as_written(client, tmp_path):
    encrypt, decrypt = readme_kit_commands()
    assert encrypt[3] == "encrypt" and decrypt[3] == "decrypt"
    social, case, config = registered_case(client)

    sender = a_pc(tmp_path, "social-pc")
    downloaded = client.get(f"/api/v1/transfers/{case['id']}/config", headers=bearer(social))
    assert downloaded.status_code == 200
    # The README writes the file's name with an ellipsis for the case's upload number.
    placeholder = next(a for a in encrypt if a.startswith("transfer-") and a.endswith(".json"))
    real_name = f"transfer-{case['upload_no']}.json"
    assert re.fullmatch(re.escape(placeholder).replace("…", ".+"), real_name)
    (sender / real_name).write_bytes(downloaded.data)
    (sender / "data.csv").write_bytes(PLAINTEXT)
    done = run_as_typed([real_name if a == placeholder else a for a in encrypt], sender)
    assert done.returncode == 0, done.stderr

    receiver = a_pc(tmp_path, "tax-pc")
    shutil.copy(sender / "data.p7m", receiver / "data.p7m")
    done = run_as_typed(decrypt, receiver)
    assert done.returncode == 0, done.stderr
    assert (receiver / "data.csv").read_bytes() == PLAINTEXT


def page_command(page: str, element_id: str) -> list[str]:
    found = re.search(rf'<pre[^>]*id="{element_id}"[^>]*>(.*?)</pre>', page, flags=re.S)
    assert found, f"the page shows no {element_id} command"
    return shlex.split(html.unescape(found.group(1)))


@pytest.mark.parametrize("language", ["zh_TW", "en"])
def test_the_case_page_commands_run_once_the_placeholders_are_filled_in(app, tmp_path, language):
    """The page's commands name what the reader fills in (their key and
    certificate); filled in, they run, and the receiver's, with only the case's
    configuration file, checks the whole chain's revocation (its embedded CRLs)."""
    api, web_social, web_tax = app.test_client(), app.test_client(), app.test_client()
    social, case, _ = registered_case(api)
    from app.kit.demo_pki import load_pki

    pki = load_pki(pki_dir())
    for web, who in ((web_social, "transfer.social"), (web_tax, "transfer.tax")):
        login(web, who)
        web.get(f"/lang/{language}", follow_redirects=True)

    sender = a_pc(tmp_path, "social-pc")
    (sender / f"transfer-{case['upload_no']}.json").write_bytes(
        web_social.get(f"/transfer/case/{case['id']}/config").data
    )
    (sender / word(app, language, "data.csv")).write_bytes(PLAINTEXT)
    encrypt = page_command(web_social.get(f"/transfer/case/{case['id']}").get_data(as_text=True), "kit-encrypt")
    assert "--pin" not in encrypt, "the kit asks for the PIN; a PIN on the command line stays in the shell history"
    filled = filled_in(app, encrypt, language, pki.staff["transfer.social"]) + ["--pin", PIN]
    done = run_as_typed(filled, sender)
    assert done.returncode == 0, done.stderr
    sealed = sender / f"{case['upload_no']}.p7m"
    put = api.put(
        f"/api/v1/transfers/{case['id']}/payload",
        data=sealed.read_bytes(),
        headers={**bearer(social), "Content-Type": "application/octet-stream"},
    )
    assert put.status_code == 200, put.json

    receiver = a_pc(tmp_path, "tax-pc")
    shutil.copy(sealed, receiver / sealed.name)
    decrypt = page_command(web_tax.get(f"/transfer/case/{case['id']}").get_data(as_text=True), "kit-decrypt")
    assert "--pin" not in decrypt
    # Nothing from the IT desk: the case's configuration file carries the CAs and the CRLs.
    assert "--trust" not in decrypt and "--crl" not in decrypt
    (receiver / f"transfer-{case['upload_no']}.json").write_bytes(
        web_tax.get(f"/transfer/case/{case['id']}/config").data
    )
    done = run_as_typed(filled_in(app, decrypt, language, pki.staff["transfer.tax"]) + ["--pin", PIN], receiver)
    assert done.returncode == 0, done.stderr
    assert (receiver / word(app, language, "data.csv")).read_bytes() == PLAINTEXT


def word(app, language: str, english: str) -> str:
    """A placeholder as the page shows it in the reader's language."""
    from flask_babel import force_locale, gettext

    with app.test_request_context(), force_locale(language):
        return gettext(english)


def filled_in(app, argv: list[str], language: str, who) -> list[str]:
    """The reader's own key and certificate where the page shows placeholders."""
    mine = {word(app, language, "your-key.p12"): str(who.p12), word(app, language, "your-cert.pem"): str(who.cert)}
    return [mine.get(a, a) for a in argv]
