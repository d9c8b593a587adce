"""The kit one download away (issue 18, item 8). A transfer officer downloads the kit from
the platform as one file, checks it against the SHA-256 the platform shows and serves
(`sha256sum -c`), installs it into a fresh virtual environment of a stock Python with pip,
offline, from wheels on disk, and the installed `transfer-kit` seals a file, the platform
carries it, and the receiver's installed kit opens it with the case's configuration file
downloaded from the platform: byte for byte the original, and the signer checked to be the
registered sender. The wheel itself: the kit's modules byte for byte, pinned as the platform
runs them, the same bytes at every build, importing nothing of the platform."""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import io
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from sqlalchemy import select

from app.extensions import db
from app.lib import wheel
from app.models.transfer import TransferItem
from app.services.transfer import kit as kit_dist
from tests.conftest import api_token, bearer, login, pki_dir

ROOT = Path(__file__).resolve().parent.parent
KIT = ROOT / "app" / "kit"
# The machine's wheel mirror (cryptography, asn1crypto, cffi... for this Python and platform).
MIRROR = Path("/opt/pypi/files")
PIN = "1234"  # TestConfig.DEMO_PKI_PIN
PLAINTEXT = "身分證字號,姓名,所得\nA123456789,王小明,123456\n".encode() * 300
# What the kit may import besides the standard library and its own modules.
KIT_LIBRARIES = {"asn1crypto", "cryptography", "pyhanko", "pyhanko_certvalidator"}

# The database plays no part in a download: one backend is enough.
ONE_BACKEND = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


# --- the wheel itself ---------------------------------------------------------------------------


def test_the_wheel_holds_the_kits_modules_byte_for_byte_pinned_and_the_same_at_every_build():
    first, again = kit_dist.kit_download.__wrapped__(), kit_dist.kit_download.__wrapped__()
    assert first.data == again.data and first.sha256 == hashlib.sha256(first.data).hexdigest()
    assert first.filename == f"county_transfer_kit-{first.version}-py3-none-any.whl"
    with zipfile.ZipFile(io.BytesIO(first.data)) as whl:
        names = whl.namelist()
        info = f"county_transfer_kit-{first.version}.dist-info"
        assert names[-1] == f"{info}/RECORD"
        record = [line.split(",") for line in whl.read(f"{info}/RECORD").decode().splitlines()]
        assert sorted(r[0] for r in record) == sorted(names)
        for path, digest, size in record:
            if path.endswith("/RECORD"):
                continue
            data = whl.read(path)
            assert digest == wheel.record_hash(data) and int(size) == len(data), path
        modules = {n.split("/", 1)[1]: whl.read(n) for n in names if n.startswith("county_transfer_kit/")}
        assert modules == {p.name: p.read_bytes() for p in KIT.glob("*.py") if p.name != "demo_pki.py"}
        meta = whl.read(f"{info}/METADATA").decode()
        entry = whl.read(f"{info}/entry_points.txt").decode()
    assert "transfer-kit = county_transfer_kit.__main__:cli" in entry
    assert "Requires-Python: >=3.11" in meta
    pinned = dict(line.split("==") for line in re.findall(r"^Requires-Dist: (\S+)$", meta, flags=re.M))
    platform = dict(
        line.strip().split("==")
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert pinned == {
        name: platform[name] for name in ("asn1crypto", "cryptography", "pyhanko", "pyhanko-certvalidator")
    }


def test_the_kit_imports_only_the_standard_library_its_four_libraries_and_itself():
    found = []
    for path in sorted(KIT.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                tops = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                tops = [(node.module or "").split(".")[0]]
            else:
                continue
            found += [
                f"{path.name}:{node.lineno} {t}" for t in tops if t not in sys.stdlib_module_names | KIT_LIBRARIES
            ]
    assert found == []


# --- the page, the file, the checksum -----------------------------------------------------------


@ONE_BACKEND
def test_transfer_officers_find_the_kit_its_checksum_and_how_to_install_it_others_do_not(app):
    officer = app.test_client()
    login(officer, "transfer.tax")
    page = officer.get("/transfer/kit")
    assert page.status_code == 200
    kit = kit_dist.kit_download()
    text = page.text
    assert kit.sha256 in text and f"kit/bin/pip install {kit.filename}" in text
    assert f"kit\\Scripts\\pip install {kit.filename}" in text and "Get-FileHash" in text and "sha256sum -c" in text
    assert "下載加解密工具" in text and "檢查下載的檔案" in text
    assert "/transfer/kit" in officer.get("/transfer/").text  # the transfer list links it
    officer.get("/lang/en", follow_redirects=True)
    assert "Download the kit" in officer.get("/transfer/kit").text
    assert officer.get("/transfer/kit/county_transfer_kit-0.9-py3-none-any.whl").status_code == 404

    clerk = app.test_client()
    login(clerk, "clerk")
    for url in ("/transfer/kit", f"/transfer/kit/{kit.filename}", "/transfer/kit.sha256"):
        answer = clerk.get(url, follow_redirects=True)
        assert kit.sha256 not in answer.text and not answer.data.startswith(b"PK"), url
    anonymous = app.test_client().get(f"/transfer/kit/{kit.filename}")
    assert anonymous.status_code in (302, 401) and not anonymous.data.startswith(b"PK")


# --- the whole way: download, check, install offline, use ---------------------------------------


def _kit_requirements_installed() -> dict[str, importlib.metadata.Distribution]:
    """The kit's libraries and everything they need, as installed in this (the platform's) environment."""
    todo = [Requirement(r) for r in kit_dist.REQUIRES]
    found: dict[str, importlib.metadata.Distribution] = {}
    while todo:
        req = todo.pop()
        key = canonicalize_name(req.name)
        if key in found or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
            continue
        found[key] = importlib.metadata.distribution(req.name)
        todo += [Requirement(r) for r in found[key].requires or []]
    return found


def _repacked(dist: importlib.metadata.Distribution, folder: Path) -> Path:
    """A wheel of an installed pure-Python distribution, made from its installed files (RECORD)."""
    tags = [line[5:] for line in dist.read_text("WHEEL").splitlines() if line.startswith("Tag: ")]
    assert tags and all(t.endswith("-none-any") for t in tags), f"{dist.metadata['Name']} is not pure Python"
    info = f"{wheel.escape(dist.metadata['Name'])}-{dist.version}.dist-info"
    skip = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json", "WHEEL", "METADATA"}
    files = {}
    for f in dist.files or []:
        if f.parts[0] == ".." or "__pycache__" in f.parts or f.suffix == ".pyc":
            continue
        if f.parts[0].endswith(".dist-info"):
            if f.name in skip:
                continue
            f_path = "/".join((info, *f.parts[1:]))
        else:
            f_path = "/".join(f.parts)
        files[f_path] = Path(f.locate()).read_bytes()
    built = wheel.build(dist.metadata["Name"], dist.version, files, dist.read_text("METADATA").encode())
    target = folder / built.filename
    target.write_bytes(built.data)
    return target


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory) -> list[Path]:
    """Where pip finds the kit's libraries with no index and no network: the machine's mirror, and,
    for the projects it lacks (pyHanko and a few small pure-Python ones), wheels made from this
    environment's installed copies."""
    extra = tmp_path_factory.mktemp("wheelhouse")
    mirrored = {canonicalize_name(p.name.split("-")[0]) for p in MIRROR.glob("*.whl")} if MIRROR.is_dir() else set()
    for key, dist in _kit_requirements_installed().items():
        if key not in mirrored:
            _repacked(dist, extra)
    return [MIRROR, extra] if MIRROR.is_dir() else [extra]


def _run(argv, cwd: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    """A command on the agency PC: nothing of the platform's environment, no pip configuration."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(cwd),
        "LANG": "C.UTF-8",
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
    }
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _downloaded_and_checked(web, pc: Path) -> str:
    """The kit saved as the page links it, with the checksum file, checked with sha256sum -c."""
    page = web.get("/transfer/kit").text
    href = re.search(r'id="kit-download" href="([^"]+)"', page).group(1)
    shown = re.search(r'id="kit-sha256"[^>]*>([0-9a-f]{64})<', page).group(1)
    got = web.get(href)
    assert got.status_code == 200 and got.mimetype == "application/zip"
    name = re.search(r'filename="?([^";]+)', got.headers["Content-Disposition"]).group(1)
    checksum = web.get("/transfer/kit.sha256")
    assert checksum.status_code == 200
    digest, listed = checksum.text.split()
    assert digest == shown and listed == name
    (pc / name).write_bytes(got.data)
    (pc / "kit.sha256").write_text(checksum.text)
    done = _run(["sha256sum", "-c", "kit.sha256"], pc)
    assert done.returncode == 0, done.stdout + done.stderr
    return name


@ONE_BACKEND
def test_an_officer_downloads_the_kit_installs_it_offline_in_a_fresh_python_and_it_opens_a_real_transfer(
    app, tmp_path, wheelhouse
):
    social_pc, tax_pc = tmp_path / "social-pc", tmp_path / "tax-pc"
    social_pc.mkdir()
    tax_pc.mkdir()
    social_web, tax_web, api = app.test_client(), app.test_client(), app.test_client()
    login(social_web, "transfer.social")
    login(tax_web, "transfer.tax")

    # one file, checked, installed into a stock Python's fresh environment from wheels on disk
    name = _downloaded_and_checked(tax_web, tax_pc)
    venv = tmp_path / "kit"  # one environment serves both PCs here; each runs in its own folder
    made = _run([sys.executable, "-m", "venv", venv], tmp_path)
    assert made.returncode == 0, made.stderr
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    links = [arg for folder in wheelhouse for arg in ("--find-links", folder)]
    pip = _run([venv / "bin" / "pip", "install", "--no-index", "--no-cache-dir", *links, name], tax_pc, timeout=300)
    assert pip.returncode == 0, pip.stdout[-2000:] + pip.stderr[-2000:]
    transfer_kit = venv / "bin" / "transfer-kit"
    version = _run([venv / "bin" / "python", "-m", "county_transfer_kit", "--version"], tax_pc)
    assert version.returncode == 0 and kit_dist.kit_download().version in version.stdout, version.stderr

    # the sender: registers the transfer, seals with the installed kit, uploads
    from app.kit.demo_pki import load_pki

    pki = load_pki(pki_dir())
    social = api_token(api, "transfer.social")
    with app.app_context():
        item = db.session.scalar(select(TransferItem).where(TransferItem.description == "低收入戶財稅資料比對"))
    r = api.post("/api/v1/transfers/", json={"item": item.id, "source": "社政福利系統", "record_count": 300},
                 headers=bearer(social))  # fmt: skip
    assert r.status_code == 201, r.json
    case = r.json["result"]
    config = f"transfer-{case['upload_no']}.json"
    (social_pc / config).write_bytes(social_web.get(f"/transfer/case/{case['id']}/config").data)
    (social_pc / "data.csv").write_bytes(PLAINTEXT)
    me = pki.staff["transfer.social"]
    sealed = _run([transfer_kit, "encrypt", "--config", config, "--sign-key", me.p12, "--sign-cert", me.cert,
                   "--pin", PIN, "data.csv", "data.p7m"], social_pc)  # fmt: skip
    assert sealed.returncode == 0, sealed.stderr
    put = api.put(f"/api/v1/transfers/{case['id']}/payload", data=(social_pc / "data.p7m").read_bytes(),
                  headers={**bearer(social), "Content-Type": "application/octet-stream"})  # fmt: skip
    assert put.status_code == 200, put.json

    # the receiver: the platform's file and configuration file, opened by the installed kit
    got = tax_web.get(f"/transfer/case/{case['id']}/download/payload")
    assert got.status_code == 200
    (tax_pc / f"{case['upload_no']}.p7m").write_bytes(got.get_data())
    got.close()
    (tax_pc / config).write_bytes(tax_web.get(f"/transfer/case/{case['id']}/config").data)
    holder = pki.staff["transfer.tax"]
    opened = _run([transfer_kit, "decrypt", "--config", config, "--key", holder.p12, "--pin", PIN,
                   f"{case['upload_no']}.p7m", "got.csv"], tax_pc)  # fmt: skip
    assert opened.returncode == 0, opened.stderr
    assert (tax_pc / "got.csv").read_bytes() == PLAINTEXT
    assert "the signer is the sender registered for this case" in opened.stdout
    # what ran is the installed copy, with nothing of the platform beside it
    where = _run([venv / "bin" / "python", "-c", "import county_transfer_kit as k, importlib.util as u; "
                  "print(k.__file__, u.find_spec('app'), u.find_spec('flask'))"], tax_pc)  # fmt: skip
    assert str(venv) in where.stdout and where.stdout.strip().endswith("None None"), where.stdout + where.stderr
