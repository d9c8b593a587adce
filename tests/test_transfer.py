"""Confidential file transfer, as the two agencies live it: the social affairs
department sends low-income households' data to the tax bureau, signed and
encrypted by the kit on its PC; the platform holds ciphertext only."""

from __future__ import annotations

import datetime
import errno
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import func as sa_func
from sqlalchemy import select

from app.extensions import db
from app.models.audit import AuditEvent
from app.models.org import Agency, PlatformUser
from app.models.outbox import OutboxMessage
from app.models.transfer import StaffCertificate, TransferCase, TransferItem
from app.services import actors, audit, transfer
from app.services.errors import DomainError, InvalidInput
from app.services.transfer import pki as certificates
from tests.conftest import api_token, bearer, free_port, login, pki_dir

ROOT = Path(__file__).resolve().parent.parent
_DER = Encoding.DER
PIN = "1234"  # TestConfig.DEMO_PKI_PIN
PLAINTEXT = "身分證字號,姓名,所得\nA123456789,王小明,123456\n".encode() * 200


def kit(*args, check=True) -> subprocess.CompletedProcess:
    """The kit as an agency PC runs it."""
    return subprocess.run(
        [sys.executable, "-m", "app.kit", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
    )


def staff(name: str):
    from app.kit.demo_pki import load_pki

    return load_pki(pki_dir()).staff[name]


def pki():
    from app.kit.demo_pki import load_pki

    return load_pki(pki_dir())


def crl_args() -> list:
    """The demo PKI's revocation lists, as the kit's decrypt wants them (it refuses unchecked revocation)."""
    return [arg for crl in pki().crls for arg in ("--crl", crl)]


def kit_encrypt(signer, source: Path, target: Path, *recipients) -> bytes:
    """Sign with ``signer``'s key and encrypt as the kit does (recipients: ``--config FILE`` or ``--to CERT``)."""
    kit("encrypt", *recipients, "--sign-key", signer.p12, "--pin", PIN, "--sign-cert", signer.cert, source, target)
    return target.read_bytes()


def kit_decrypt(holder, source: Path, target: Path) -> subprocess.CompletedProcess:
    """Decrypt and verify as the kit does on the holder's PC (the demo CA and its CRLs)."""
    trust = ("--trust", pki().ca_bundle, *crl_args())
    return kit("decrypt", "--key", holder.p12, "--pin", PIN, "--cert", holder.cert, *trust, source, target)


def openssl_encrypt(plain: Path, out: Path, *certs: Path) -> Path:
    subprocess.run(
        [
            "openssl",
            "cms",
            "-encrypt",
            "-binary",
            "-aes-256-cbc",
            "-outform",
            "DER",
            "-in",
            str(plain),
            "-out",
            str(out),
            *map(str, certs),
        ],
        check=True,
        capture_output=True,
    )
    return out


def _leftovers(app) -> list[Path]:
    """Files in the platform's transfer storage, temporary ones included."""
    root = Path(app.config["TRANSFER_DIR"])
    return sorted(p for p in root.rglob("*") if p.is_file())


def _register(client, token, **body):
    with client.application.app_context():
        item = db.session.scalar(select(TransferItem).where(TransferItem.description == "低收入戶財稅資料比對"))
    payload = {"item": item.id, "source": "社政福利系統 11月低收入戶名冊", "record_count": 200, **body}
    return client.post("/api/v1/transfers/", json=payload, headers=bearer(token))


def test_a_transfer_officers_own_system_lists_the_items_it_may_use_but_cannot_change_them(app, client):
    social, tax = api_token(client, "transfer.social"), api_token(client, "transfer.tax")
    r = client.get("/api/v1/transfers/items", headers=bearer(social))
    assert r.status_code == 200, r.json
    mine = {i["description"]: i for i in r.json["result"]}
    item = mine["低收入戶財稅資料比對"]
    assert item["receiving_agency"]["name"] and item["sending_agency"]["name"]
    tax_cert = [x for x in item["recipients"] if x["username"] == "transfer.tax"]
    assert tax_cert and tax_cert[0]["cert_sha256"] == staff("transfer.tax").fingerprint
    # what the list gives is what registering needs
    done = _register(client, social, recipients=[tax_cert[0]["cert_id"]])
    assert done.status_code == 201, done.json
    # only the items the caller's agency sends: the tax bureau does not send this one
    theirs = client.get("/api/v1/transfers/items", headers=bearer(tax)).json["result"]
    assert item["id"] not in [i["id"] for i in theirs]
    # read-only: the administrators' item API stays theirs
    assert client.get("/api/v1/transfer-items/", headers=bearer(social)).status_code in (401, 403)
    changed = client.put(f"/api/v1/transfer-items/{item['id']}", json={"active": False}, headers=bearer(social))
    assert changed.status_code in (401, 403)
    assert client.get("/api/v1/transfers/items").status_code == 401
    assert client.get("/api/v1/transfers/items", headers=bearer(api_token(client, "clerk"))).status_code == 403


# --- the whole story, through the REST API ---------------------------------------------------------


def test_social_affairs_sends_encrypted_data_and_the_tax_bureau_returns_an_encrypted_result(
    app, client, smtp, tmp_path
):
    social, tax = api_token(client, "transfer.social"), api_token(client, "transfer.tax")
    case, config = _registered_with_its_configuration(client, social, tax)
    sealed = _sealed_on_the_senders_pc_and_uploaded(app, client, social, case, config, tmp_path)
    _the_receiver_is_told_by_email(app, smtp, case)
    _another_agency_never_sees_it(app, client, case)
    _the_tax_bureau_receives_and_decrypts(client, tax, case, sealed, tmp_path, config)
    result = _notes_then_a_result_for_the_sender(client, social, tax, case, tmp_path)
    _the_sender_downloads_and_decrypts_the_result(client, social, case, result, tmp_path)
    _every_step_is_audited_without_the_data(app, case)


def _registered_with_its_configuration(client, social, tax) -> tuple[dict, dict]:
    r = _register(client, social, remarks="比對後請回傳")
    assert r.status_code == 201, r.json
    case, config = r.json["result"], r.json["config"]
    assert case["state"] == "registered"
    assert [x["username"] for x in case["recipients"]] == ["transfer.tax"]
    assert config["upload_no"] == case["upload_no"] and config["recipients"][0]["cert_pem"].startswith("-----BEGIN")
    assert config["sender_cert_sha256"] == staff("transfer.social").fingerprint
    # The same file again later, for the sending officers only.
    again = client.get(f"/api/v1/transfers/{case['id']}/config", headers=bearer(social))
    assert again.status_code == 200 and again.json == config
    # The receiving agency decrypts with the same file: it carries the trusted roots and the CRLs.
    assert client.get(f"/api/v1/transfers/{case['id']}/config", headers=bearer(tax)).json == config
    assert "BEGIN CERTIFICATE" in config["trust_pem"] and "BEGIN X509 CRL" in config["crls_pem"]
    return case, config


def _sealed_on_the_senders_pc_and_uploaded(app, client, social, case, config, tmp_path) -> bytes:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(config, ensure_ascii=False))
    (tmp_path / "data.csv").write_bytes(PLAINTEXT)
    sealed = kit_encrypt(staff("transfer.social"), tmp_path / "data.csv", tmp_path / "data.p7m", "--config", cfg)
    assert b"A123456789" not in sealed

    r = client.put(f"/api/v1/transfers/{case['id']}/payload", data=sealed, headers=bearer(social))
    assert r.status_code == 200, r.json
    assert r.json["result"]["state"] == "uploaded"
    sha = hashlib.sha256(sealed).hexdigest()
    assert r.json["result"]["payload"] == {"channel": "api", "sha256": sha, "size": len(sealed)}
    # The platform stores exactly the ciphertext, nothing else.
    stored = sorted((Path(app.config["TRANSFER_DIR"]) / str(case["id"])).iterdir())
    assert len(stored) == 1 and stored[0].read_bytes() == sealed
    assert not list((Path(app.config["TRANSFER_DIR"]) / "tmp").iterdir())
    return sealed


def _the_receiver_is_told_by_email(app, smtp, case) -> None:
    with app.app_context():
        from app.services import outbox

        outbox.work_once(db.session)
    mails = smtp.sink.wait_for(1)
    texts = [m.content.decode("utf-8", "replace") for m in mails]
    assert any(case["upload_no"] in text or "transfer" in text for text in texts)
    assert any(_email_of(app, "transfer.tax") in m.rcpt_tos for m in mails)


def _another_agency_never_sees_it(app, client, case) -> None:
    other = bearer(api_token(client, _third_agency_officer(app)))
    assert client.get(f"/api/v1/transfers/{case['id']}", headers=other).status_code == 404
    assert client.get(f"/api/v1/transfers/{case['id']}/payload", headers=other).status_code == 404


def _the_tax_bureau_receives_and_decrypts(client, tax, case, sealed, tmp_path, config) -> None:
    incoming = client.get("/api/v1/transfers/?box=incoming", headers=bearer(tax)).json["result"]
    assert case["id"] in [c["id"] for c in incoming]
    r = _download(client, f"/api/v1/transfers/{case['id']}/payload", bearer(tax))
    assert r.status_code == 200 and r.data == sealed
    assert client.get(f"/api/v1/transfers/{case['id']}", headers=bearer(tax)).json["result"]["state"] == "received"
    (tmp_path / "got.p7m").write_bytes(r.data)
    # `decrypt --config FILE --key KEY`: nothing else (no CA bundle, no CRLs found by hand)
    (tmp_path / "tax-config.json").write_text(json.dumps(config, ensure_ascii=False))
    holder = staff("transfer.tax")
    out = kit(
        "decrypt",
        "--config",
        tmp_path / "tax-config.json",
        "--key",
        holder.p12,
        "--pin",
        PIN,
        tmp_path / "got.p7m",
        tmp_path / "got.csv",
    )
    assert (tmp_path / "got.csv").read_bytes() == PLAINTEXT
    assert "transfer.social" in out.stdout or "社會" in out.stdout


def _notes_then_a_result_for_the_sender(client, social, tax, case, tmp_path) -> bytes:
    notes = {"notes": "比對完成，3 筆所得超過門檻"}
    r = client.post(f"/api/v1/transfers/{case['id']}/notes", json=notes, headers=bearer(tax))
    assert r.status_code == 200 and r.json["result"]["notes"] == notes["notes"]
    # The sending agency does not read the receiver's notes before the result is back.
    seen = client.get(f"/api/v1/transfers/{case['id']}", headers=bearer(social)).json["result"]
    assert seen["notes"] is None and seen["allowed_actions"] == ["config"]
    (tmp_path / "result.csv").write_text("比對結果\n3 筆\n", encoding="utf-8")
    sender_cert = staff("transfer.social").cert
    result = kit_encrypt(staff("transfer.tax"), tmp_path / "result.csv", tmp_path / "result.p7m", "--to", sender_cert)
    r = client.put(f"/api/v1/transfers/{case['id']}/result", data=result, headers=bearer(tax))
    assert r.status_code == 200, r.json
    assert r.json["result"]["state"] == "processed"
    return result


def _the_sender_downloads_and_decrypts_the_result(client, social, case, result, tmp_path) -> None:
    done = client.get("/api/v1/transfers/?box=completed", headers=bearer(social)).json["result"]
    assert case["id"] in [c["id"] for c in done]
    r = _download(client, f"/api/v1/transfers/{case['id']}/result", bearer(social))
    assert r.status_code == 200 and r.data == result
    final = client.get(f"/api/v1/transfers/{case['id']}", headers=bearer(social)).json["result"]
    assert final["state"] == "result_received" and final["notes"] == "比對完成，3 筆所得超過門檻"
    (tmp_path / "back.p7m").write_bytes(r.data)
    kit_decrypt(staff("transfer.social"), tmp_path / "back.p7m", tmp_path / "back.csv")
    assert (tmp_path / "back.csv").read_text(encoding="utf-8") == "比對結果\n3 筆\n"


def _every_step_is_audited_without_the_data(app, case) -> None:
    with app.app_context():
        events = db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.object_type == "TransferCase", AuditEvent.object_id == str(case["id"]))
            .order_by(AuditEvent.id)
        )
        actions = [e.action for e in events if e.action.startswith("transfer.")]
        details = " ".join(e.detail or "" for e in db.session.scalars(select(AuditEvent)))
    assert actions == [
        "transfer.registered",
        "transfer.config_downloaded",
        "transfer.config_downloaded",
        "transfer.uploaded",
        "transfer.payload_downloaded",
        "transfer.noted",
        "transfer.processed",
        "transfer.result_downloaded",
    ]
    assert "A123456789" not in details and "王小明" not in details


def _download(client, url: str, headers: dict):
    """A GET whose file the test reads whole, then closes (as a WSGI server closes it after sending)."""
    response = client.get(url, headers=headers)
    response.get_data()
    response.close()
    return response


def _email_of(app, username: str) -> str:
    with app.app_context():
        return db.session.scalar(select(PlatformUser.email).where(PlatformUser.username == username))


def _third_agency_officer(app) -> str:
    """A transfer officer at the land office, which is neither party."""
    with app.app_context():
        sm = app.appbuilder.sm
        if sm.find_user("transfer.land") is None:
            land = db.session.scalar(select(Agency).where(Agency.code == "LAND"))
            user = sm.add_user(
                "transfer.land",
                "地政",
                "傳遞",
                "transfer.land@example.tw",
                [sm.find_role("Transferor")],
                password=app.config["DEMO_PASSWORD"],
            )
            user.agency_id = land.id
            db.session.commit()
    return "transfer.land"


# --- refusals: nothing half-registered, nothing left behind ----------------------------------------


@pytest.fixture
def registered(app, client):
    token = api_token(client, "transfer.social")
    r = _register(client, token)
    assert r.status_code == 201, r.json
    return r.json["result"]["id"], token


def _state(app, case_id) -> str:
    with app.app_context():
        return db.session.get(TransferCase, case_id).state


def test_a_plaintext_upload_is_refused_and_leaves_nothing(app, client, registered):
    case_id, token = registered
    before = _leftovers(app)
    r = client.put(f"/api/v1/transfers/{case_id}/payload", data=PLAINTEXT, headers=bearer(token))
    assert r.status_code == 400
    assert "明文" in r.json["message"] or "plaintext" in r.json["message"]
    assert _state(app, case_id) == "registered"
    assert _leftovers(app) == before


def test_a_file_enveloped_for_the_wrong_people_is_refused(app, client, registered, tmp_path):
    case_id, token = registered
    (tmp_path / "p.csv").write_bytes(PLAINTEXT)
    wrong = openssl_encrypt(tmp_path / "p.csv", tmp_path / "w.p7m", staff("transfer.social").cert)
    both = openssl_encrypt(
        tmp_path / "p.csv", tmp_path / "b.p7m", staff("transfer.social").cert, staff("transfer.tax").cert
    )
    before = _leftovers(app)
    for f in (wrong, both):
        r = client.put(f"/api/v1/transfers/{case_id}/payload", data=f.read_bytes(), headers=bearer(token))
        assert r.status_code == 400, r.json
        assert "加密對象" in r.json["message"] or "wrong people" in r.json["message"]
    assert _state(app, case_id) == "registered" and _leftovers(app) == before
    # Enveloped by openssl for exactly the recipient: accepted (the platform does not need our kit).
    right = openssl_encrypt(tmp_path / "p.csv", tmp_path / "r.p7m", staff("transfer.tax").cert)
    r = client.put(f"/api/v1/transfers/{case_id}/payload", data=right.read_bytes(), headers=bearer(token))
    assert r.status_code == 200 and _state(app, case_id) == "uploaded"
    # ...and only once.
    r = client.put(f"/api/v1/transfers/{case_id}/payload", data=right.read_bytes(), headers=bearer(token))
    assert r.status_code == 409


class _Dropped(io.RawIOBase):
    """A client that goes away halfway through the upload."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def readable(self):
        return True

    def read(self, n=-1):
        if self.pos >= len(self.data) // 2:
            from werkzeug.exceptions import ClientDisconnected

            raise ClientDisconnected()
        chunk = self.data[self.pos : self.pos + min(n, 4096)]
        self.pos += len(chunk)
        return chunk


def test_a_connection_dropped_mid_upload_or_a_full_disk_registers_nothing(app, registered, tmp_path, monkeypatch):
    case_id, _token = registered
    (tmp_path / "p.csv").write_bytes(PLAINTEXT * 50)
    sealed = openssl_encrypt(tmp_path / "p.csv", tmp_path / "r.p7m", staff("transfer.tax").cert).read_bytes()
    before = _leftovers(app)
    with app.app_context():
        user = db.session.scalar(select(PlatformUser).where(PlatformUser.username == "transfer.social"))
        who = actors.for_user(user, session=db.session)
        with pytest.raises(Exception):  # noqa: B017 - the client's own disconnect error
            transfer.upload_payload(db.session, who, case_id, _Dropped(sealed), "api")
        db.session.rollback()
        assert _leftovers(app) == before

        real_fdopen = os.fdopen

        class FullDisk:
            def __init__(self, fh):
                self.fh, self.written = fh, 0

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.fh.close()

            def write(self, b):
                self.written += len(b)
                if self.written > 10_000:
                    raise OSError(errno.ENOSPC, "No space left on device")
                return self.fh.write(b)

            def __getattr__(self, name):
                return getattr(self.fh, name)

        monkeypatch.setattr(os, "fdopen", lambda fd, mode: FullDisk(real_fdopen(fd, mode)))
        with pytest.raises(DomainError) as err:
            transfer.upload_payload(db.session, who, case_id, io.BytesIO(sealed), "api")
        assert err.value.status == 507 and "已滿" in str(err.value) or "full" in str(err.value)
        db.session.rollback()
        assert db.session.get(TransferCase, case_id).state == "registered"
    assert _leftovers(app) == before


def test_only_transfer_officers_of_the_two_agencies_act_and_in_order(app, client, registered):
    case_id, social = registered
    tax = api_token(client, "transfer.tax")
    # The receiver cannot upload the payload; nothing to download yet; no result before receipt.
    assert client.put(f"/api/v1/transfers/{case_id}/payload", data=b"x", headers=bearer(tax)).status_code == 403
    assert client.get(f"/api/v1/transfers/{case_id}/payload", headers=bearer(tax)).status_code == 409
    assert client.put(f"/api/v1/transfers/{case_id}/result", data=b"x", headers=bearer(tax)).status_code == 409
    assert (
        client.post(f"/api/v1/transfers/{case_id}/notes", json={"notes": "x"}, headers=bearer(social)).status_code
        == 403
    )
    # A clerk (no transfer role) may not even list.
    clerk = api_token(client, "clerk")
    assert client.get("/api/v1/transfers/", headers=bearer(clerk)).status_code in (401, 403)


def test_registration_refuses_bad_input_with_clear_messages(app, client):
    social = api_token(client, "transfer.social")
    r = _register(client, social, record_count="很多")
    assert r.status_code == 400 and "筆數" in r.json["errors"]["record_count"][0]
    r = _register(client, social, source="")
    assert r.status_code == 400
    r = _register(client, social, recipients=[999999])
    assert r.status_code == 400
    r = _register(client, social, upload_no="DUP-001")
    assert r.status_code == 201
    r = _register(client, social, upload_no="DUP-001")
    assert r.status_code == 409
    # The receiving agency cannot register the sending agency's item.
    r = _register(client, api_token(client, "transfer.tax"))
    assert r.status_code == 403


# --- certificates --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "which, reason",
    [("revoked", "撤銷"), ("expired", "過期"), ("untrusted", "信任"), ("unsuitable", "用途")],
)
def test_unusable_certificates_are_refused_with_the_reason(app, client, which, reason):
    token = api_token(client, "transfer.social")
    pem = Path(getattr(pki(), which).cert).read_text()
    r = client.post("/api/v1/certificates/", json={"certificate": pem}, headers=bearer(token))
    assert r.status_code == 400, r.json
    assert reason in r.json["message"], r.json["message"]
    with app.app_context():
        refused = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "certificate.refused")).all()
        assert refused and refused[-1].outcome == "refused"


def test_a_file_that_is_not_a_certificate_is_refused(client):
    token = api_token(client, "transfer.social")
    r = client.post(
        "/api/v1/certificates/",
        json={"certificate": "-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----\n"},
        headers=bearer(token),
    )
    assert r.status_code == 400 and "憑證" in r.json["message"]


def test_a_valid_staff_certificate_is_recorded_with_its_details(app, client):
    from app.kit.demo_pki import StaffSpec, make_pki

    extra = make_pki(pki_dir(), [StaffSpec("transfer.spare", "示範縣政府社會處")], pin=PIN).staff["transfer.spare"]
    token = api_token(client, "transfer.social")
    r = client.post("/api/v1/certificates/", json={"certificate": Path(extra.cert).read_text()}, headers=bearer(token))
    assert r.status_code == 201, r.json
    cert = r.json["result"]
    assert cert["status"] == "valid" and set(cert["usage"]) == {"sign", "encrypt"} and len(cert["fingerprint"]) == 64
    with app.app_context():
        row = db.session.scalar(select(StaffCertificate).where(StaffCertificate.fingerprint == cert["fingerprint"]))
        assert row.user.username == "transfer.social"


def test_a_certificate_revoked_after_registration_is_marked_and_no_longer_proposed(app):
    """The revoked demo certificate slipped in before its CRL was published: the re-check catches it."""
    with app.app_context():
        with pytest.raises(InvalidInput):
            certificates.check(Path(pki().revoked.cert).read_bytes())
        tax = db.session.scalar(select(PlatformUser).where(PlatformUser.username == "transfer.tax"))
        der = certificates.parse(Path(pki().revoked.cert).read_bytes()).public_bytes(_DER)
        row = StaffCertificate(
            user_id=tax.id,
            der=der,
            serial="X",
            issuer="i",
            subject="s",
            usage="sign,encrypt",
            not_before=datetime.datetime(2020, 1, 1),
            not_after=datetime.datetime(2099, 1, 1),
            fingerprint=certificates.fingerprint(der),
            status="valid",
        )
        db.session.add(row)
        db.session.flush()
        item = db.session.scalar(select(TransferItem).where(TransferItem.description == "低收入戶財稅資料比對"))
        assert row.id in [c.id for c in transfer.proposed_recipients(db.session, item)]
        counts = certificates.recheck(db.session)
        assert counts["revoked"] == 1 and row.status == "revoked"
        assert row.id not in [c.id for c in transfer.proposed_recipients(db.session, item)]
        db.session.rollback()


# --- administrators ------------------------------------------------------------------------------


# FAB 5.3's relation select (search and add forms) yields WTForms choices as tuples, deprecated in WTForms 3.2.
@pytest.mark.filterwarnings("ignore:Yielding raw tuples from iter_choices:DeprecationWarning")
def test_an_administrator_sets_up_transfer_items_and_sees_the_certificate_registry(app, client):
    from tests.conftest import csrf_token, login

    login(client, "admin")
    page = client.get("/transferitemview/list/")
    assert page.status_code == 200 and "低收入戶財稅資料比對" in page.text
    with app.app_context():
        social = db.session.scalar(select(Agency).where(Agency.code == "SOCIAL")).id
    form = client.get("/transferitemview/add")
    r = client.post(
        "/transferitemview/add",
        data={
            "sending_agency": social,
            "receiving_agency": social,
            "description": "自己傳給自己",
            "csrf_token": csrf_token(form.text) or "",
        },
        follow_redirects=True,
    )
    assert "傳送機關與接收機關不可相同" in r.text
    with app.app_context():
        assert db.session.scalar(select(TransferItem).where(TransferItem.description == "自己傳給自己")) is None
    page = client.get("/staffcertificateview/list/")
    assert page.status_code == 200 and "transfer.social" in page.text and "有效" in page.text
    client.get("/logout/")


# --- malformed requests: a clear 4xx, nothing registered, never a 500 ----------------------------


def _cases(app) -> int:
    with app.app_context():
        return len(db.session.scalars(select(TransferCase.id)).all())


@pytest.mark.parametrize(
    "body, field",
    [
        ({"item": True}, "item"),  # a boolean is not an id
        ({"item": "1"}, "item"),  # nor is text
        ({"item": 2**64}, None),  # beyond 64 bits
        ({"record_count": True}, "record_count"),  # was taken as 1 once
        ({"record_count": 1.5}, "record_count"),
        ({"record_count": 10**30}, None),
        ({"record_count": 10**10}, "record_count"),  # within 64 bits, beyond the rule
        ({"source": 123}, "source"),  # a number where text is expected
        ({"source": "\ud800"}, None),  # a lone surrogate
        ({"remarks": "a\x00b"}, "remarks"),  # a NUL the database cannot store
        ({"upload_no": "x" * 41}, "upload_no"),
        ({"recipients": [{}]}, "recipients"),
        ({"recipients": [True]}, "recipients"),
        ({"recipients": "1"}, "recipients"),
        ({"colour": "red"}, "colour"),  # an unknown field
    ],
)
def test_a_malformed_registration_is_refused_by_field_and_registers_nothing(app, client, body, field):
    social = api_token(client, "transfer.social")
    before = _cases(app)
    r = _register(client, social, **body)
    assert r.status_code == 400, r.json
    if field is None:  # the JSON itself is refused before any view (app.web), with its reason
        assert r.json["message"]
    else:
        assert field in r.json["errors"], r.json
    assert _cases(app) == before


def test_bodies_that_are_not_a_json_object_are_refused(client):
    social = api_token(client, "transfer.social")
    headers = {**bearer(social), "Content-Type": "application/json"}
    for body in ("[" * 50000 + "]" * 50000, "[1, 2]", "null", "{not json", '"text"'):
        r = client.post("/api/v1/transfers/", data=body, headers=headers)
        assert r.status_code == 400, (body[:20], r.status_code)
        r = client.post("/api/v1/certificates/", data=body, headers=headers)
        assert r.status_code == 400, (body[:20], r.status_code)
    r = client.post("/api/v1/transfers/", data="item=1", headers={**bearer(social), "Content-Type": "text/plain"})
    assert r.status_code in (400, 415)


def test_ids_beyond_64_bits_are_not_found_rather_than_a_server_error(client, registered):
    case_id, social = registered
    for huge in ("99999999999999999999999", str(2**63), "0"):
        assert client.get(f"/api/v1/transfers/{huge}", headers=bearer(social)).status_code == 404
        assert client.get(f"/api/v1/transfers/{huge}/config", headers=bearer(social)).status_code == 404
        r = client.put(f"/api/v1/transfers/{huge}/payload", data=b"x", headers=bearer(social))
        assert r.status_code in (404, 405), r.status_code  # an id beyond 64 bits matches no route
        r = client.post(f"/api/v1/certificates/{huge}/withdraw", headers=bearer(social))
        assert r.status_code in (404, 405), r.status_code


@pytest.mark.parametrize(
    "body",
    [{"notes": 5}, {"notes": "\udfff"}, {"notes": "ok", "extra": 1}, {"notes": "x" * 4001}, {}],
)
def test_malformed_notes_are_refused_and_change_nothing(app, client, registered, body):
    case_id, _social = registered
    tax = api_token(client, "transfer.tax")
    r = client.post(f"/api/v1/transfers/{case_id}/notes", json=body, headers=bearer(tax))
    assert r.status_code == 400, r.json
    with app.app_context():
        assert db.session.get(TransferCase, case_id).notes is None


def test_a_malformed_certificate_upload_or_an_unknown_list_is_refused(client):
    social = api_token(client, "transfer.social")
    for body in ({"certificate": ["x"]}, {"certificate": "\ud800"}, {"certificate": "x", "user": 1}, {}):
        r = client.post("/api/v1/certificates/", json=body, headers=bearer(social))
        assert r.status_code == 400, (body, r.json)
    assert client.get("/api/v1/transfers/?box=nope", headers=bearer(social)).status_code == 400
    assert client.get("/api/v1/transfers/?box=all&limit=5", headers=bearer(social)).status_code == 400
    assert client.get("/api/v1/transfers/?box=incoming", headers=bearer(social)).status_code == 200


def test_a_transfer_officer_is_known_by_the_capability_not_by_the_role_name(app):
    """The transfer_files capability decides, so an administrator can grant or withdraw it on the role screens."""
    import dataclasses

    from app.services.errors import Forbidden
    from app.services.roles import TRANSFER_FILES

    with app.app_context():
        user = db.session.scalar(select(PlatformUser).where(PlatformUser.username == "transfer.social"))
        who = actors.for_user(user, session=db.session)
        assert TRANSFER_FILES in who.permissions and "Transferor" in who.roles
        named_only = dataclasses.replace(who, permissions=frozenset())
        item = db.session.scalar(select(TransferItem).where(TransferItem.description == "低收入戶財稅資料比對"))
        draft = transfer.TransferDraft(item_id=item.id, source="名冊", record_count=1)
        before = len(db.session.scalars(select(TransferCase.id)).all())
        with pytest.raises(Forbidden):
            transfer.register(db.session, named_only, draft)
        assert len(db.session.scalars(select(TransferCase.id)).all()) == before
        assert transfer.proposed_recipients(db.session, item)  # the tax bureau's officers, by their capability
        # Without the capability on the role, the tax bureau has no transfer officer to propose.
        sm = app.appbuilder.sm
        role = sm.find_role("Transferor")
        grant = next(pv for pv in role.permissions if pv.permission.name == TRANSFER_FILES)
        role.permissions.remove(grant)
        db.session.flush()
        try:
            assert transfer.proposed_recipients(db.session, item) == []
        finally:
            db.session.rollback()


# --- the screens: refusals flashed, nothing shown to another agency ------------------------------


def _page_csrf(html: str) -> str:
    import re

    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_on_the_screens_another_agency_is_turned_away_and_an_owner_withdraws_a_certificate(app, client, registered):
    from app.kit.demo_pki import StaffSpec, make_pki
    from tests.conftest import login

    case_id, social = registered
    other = _third_agency_officer(app)
    login(client, other)
    page = client.get(f"/transfer/case/{case_id}")
    assert page.status_code == 302  # flashed "no such case", the case is not shown
    assert "社政福利系統" not in client.get(page.headers["Location"]).text
    client.get("/logout/")

    extra = make_pki(pki_dir(), [StaffSpec("transfer.spare2", "示範縣政府社會處")], pin=PIN).staff["transfer.spare2"]
    r = client.post("/api/v1/certificates/", json={"certificate": Path(extra.cert).read_text()}, headers=bearer(social))
    assert r.status_code == 201, r.json
    cert_id = r.json["result"]["id"]
    login(client, "transfer.social")
    form = client.get("/transfer/certificates")
    r = client.post(f"/transfer/certificates/{cert_id}/withdraw", data={"csrf_token": _page_csrf(form.text)})
    assert r.status_code == 302
    with app.app_context():
        assert db.session.get(StaffCertificate, cert_id).status == "withdrawn"
        withdrawn = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "certificate.withdrawn", AuditEvent.object_id == str(cert_id))
        ).all()
        assert len(withdrawn) == 1
    client.get("/logout/")


def test_only_an_administrator_rechecks_the_certificate_registry_and_it_is_audited(app):
    from app.services.errors import Forbidden

    with app.app_context():
        users = {u.username: u for u in db.session.scalars(select(PlatformUser))}
        officer = actors.for_user(users["transfer.social"], session=db.session)
        admin = actors.for_user(users["admin"], session=db.session)
        with pytest.raises(Forbidden):
            transfer.recheck_certificates(db.session, officer)
        counts = transfer.recheck_certificates(db.session, admin)
        assert counts["valid"] >= 2 and counts["revoked"] == 0
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "certificate.rechecked").order_by(AuditEvent.id.desc())
        ).first()
        assert event is not None and event.outcome == "ok"


def test_the_case_page_loads_its_upload_script_from_a_file_and_holds_none_inline(app, client, registered):
    """The Content-Security-Policy can drop 'unsafe-inline' for this page's own script (REVIEW point 8)."""
    from tests.conftest import login

    case_id, _social = registered
    login(client, "transfer.social")
    page = client.get(f"/transfer/case/{case_id}")
    assert page.status_code == 200 and "upload-payload" in page.text
    assert "transfer-upload.js" in page.text and "XMLHttpRequest" not in page.text
    script = _download(client, "/static/transfer-upload.js", {})
    assert script.status_code == 200 and b"XMLHttpRequest" in script.data
    client.get("/logout/")


# --- complete or nothing: a cut-off, truncated or padded upload is never registered -----------------


def _openssl_sealed(plain: Path, out: Path, cert: Path, *options: str) -> bytes:
    """Enveloped by openssl for ``cert`` (``-stream``: BER with indefinite lengths; ``-aes-256-gcm``: AuthEnvelopedData)."""
    subprocess.run(
        ["openssl", "cms", "-encrypt", "-binary", *options, "-outform", "DER", "-in", plain, "-out", out, cert],
        check=True,
        capture_output=True,
    )
    return out.read_bytes()


def _traces(app, case_id) -> dict:
    """What a registered upload leaves: the case's state, its upload events, queued e-mails, stored files."""
    with app.app_context():
        case = db.session.get(TransferCase, case_id)
        uploaded = db.session.scalars(
            select(AuditEvent.action).where(
                AuditEvent.object_type == "TransferCase",
                AuditEvent.object_id == str(case_id),
                AuditEvent.action == "transfer.uploaded",
            )
        ).all()
        mails = db.session.scalar(select(sa_func.count(OutboxMessage.id)))
        return {"state": case.state, "uploaded": len(uploaded), "mails": mails, "files": _leftovers(app)}


@pytest.mark.parametrize("cipher", ["der-cbc", "ber-cbc", "der-gcm", "ber-gcm"])
def test_a_truncated_or_padded_encrypted_file_is_refused_and_the_case_stays_ready(
    app, client, registered, tmp_path, cipher
):
    """``head -c`` of a sealed file, or one with bytes after its end: 400 saying why, nothing registered, no e-mail;
    then the whole file goes through."""
    case_id, token = registered
    (tmp_path / "p.csv").write_bytes(PLAINTEXT * 30)
    options = (["-stream"] if cipher.startswith("ber") else []) + (
        ["-aes-256-gcm"] if cipher.endswith("gcm") else ["-aes-256-cbc"]
    )
    sealed = _openssl_sealed(tmp_path / "p.csv", tmp_path / "s.p7m", staff("transfer.tax").cert, *options)
    assert (sealed[1] == 0x80) == cipher.startswith("ber")
    before = _traces(app, case_id)
    spoilt = {
        "half": sealed[: len(sealed) // 2],
        "all but the last byte": sealed[:-1],
        "all but the last 2 bytes": sealed[:-2],  # a BER file loses its last end-of-contents
        "all but 1 KB": sealed[:-1024],
        "a byte after its end": sealed + b"\0",
        "garbage after its end": sealed + b"trailing garbage",
        "a second copy after it": sealed + sealed,
    }
    for what, body in spoilt.items():
        r = client.put(f"/api/v1/transfers/{case_id}/payload", data=body, headers=bearer(token))
        assert r.status_code == 400, (what, r.status_code, r.json)
        assert "不完整" in r.json["message"], (what, r.json["message"])
        assert _traces(app, case_id) == before, what
    # The case page's progress-bar upload, in English: the same refusal.
    login(client, "transfer.social")
    client.get("/lang/en")
    r = client.put(
        f"/transfer/case/{case_id}/upload/payload", data=spoilt["half"], headers={"Accept": "application/json"}
    )
    assert r.status_code == 400 and "incomplete" in r.json["message"], r.json
    assert _traces(app, case_id) == before
    client.get("/lang/zh_TW")
    client.get("/logout/")
    with app.app_context():  # each refusal is audited, with its reason
        refusals = db.session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "transfer.upload_refused", AuditEvent.object_id == str(case_id)
            )
        ).all()
        assert len(refusals) == len(spoilt) + 1 and {e.outcome for e in refusals} == {"refused"}
    r = client.put(f"/api/v1/transfers/{case_id}/payload", data=sealed, headers=bearer(token))
    assert r.status_code == 200, r.json
    after = _traces(app, case_id)
    assert after["state"] == "uploaded" and after["uploaded"] == 1 and after["mails"] > before["mails"]


def _process_env(app) -> dict:
    """The environment for ``tests.process_app`` to build this app in another process."""
    settings = {k: v for k, v in app.config.items() if isinstance(v, str | int | float | bool) or v is None}
    return {**os.environ, "TEST_APP_CONFIG": json.dumps(settings)}


class _Gunicorn:
    """The platform under gunicorn (as in production), on the test's own databases and folders."""

    def __init__(self, app):
        self.port = free_port()
        env = {**_process_env(app), "GUNICORN_CONTROL_SOCKET": "off"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{self.port}", "-w", "1", "--threads", "2"]
            + ["--log-level", "warning", "tests.process_app:app"],
            cwd=ROOT,
            env=env,
        )
        deadline = time.monotonic() + 60
        while True:  # until the worker has loaded the app and answers
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"GET /static/transfer-upload.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if s.recv(12).startswith(b"HTTP/1.1"):
                        break
            except OSError:
                pass
            assert self.proc.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.1)

    def close(self):
        self.proc.terminate()
        self.proc.wait(30)


class _Werkzeug:
    """The platform under Werkzeug's server (the tests' and development server)."""

    def __init__(self, app):
        from werkzeug.serving import make_server

        self.port = free_port()
        self.server = make_server("127.0.0.1", self.port, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture(params=["werkzeug", "gunicorn"])
def web_server(request, app):
    server = (_Werkzeug if request.param == "werkzeug" else _Gunicorn)(app)
    yield server
    server.close()


def _put_and_half_close(port: int, path: str, headers: dict, body: bytes, declared: int) -> tuple[int, dict]:
    """A client that declares ``declared`` bytes, sends ``body``, then half-closes (sends nothing more) and reads
    the answer."""
    import http.client

    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(
            f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {declared}\r\nAccept: application/json\r\nConnection: close\r\n{head}\r\n".encode()
            + body
        )
        sock.shutdown(socket.SHUT_WR)
        response = http.client.HTTPResponse(sock)
        response.begin()
        data = response.read()
        response.close()
    return response.status, json.loads(data or b"{}")


def test_a_body_shorter_than_declared_is_refused_on_the_api_and_the_page_and_the_case_stays_ready(
    app, client, registered, tmp_path, web_server
):
    """A client that half-closes after part of its declared body, through the real web server: a 400 saying the
    upload was cut off, nothing stored or registered, no e-mail; the whole file then goes through."""
    case_id, token = registered
    (tmp_path / "p.csv").write_bytes(PLAINTEXT * 30)
    sealed = openssl_encrypt(tmp_path / "p.csv", tmp_path / "r.p7m", staff("transfer.tax").cert).read_bytes()
    login(client, "transfer.social")
    cookie = client.get_cookie(app.config.get("SESSION_COOKIE_NAME", "session"))
    channels = {
        f"/api/v1/transfers/{case_id}/payload": {"Authorization": f"Bearer {token}"},
        f"/transfer/case/{case_id}/upload/payload": {"Cookie": f"{cookie.key}={cookie.value}"},
    }
    before = _traces(app, case_id)
    for path, headers in channels.items():
        for sent in (sealed[: len(sealed) // 2], sealed):  # half the file; the whole file, but less than declared
            status, answer = _put_and_half_close(web_server.port, path, headers, sent, len(sealed) + 1000)
            assert status == 400, (path, len(sent), status, answer)
            assert "中斷" in answer.get("message", ""), (path, answer)
            assert _traces(app, case_id) == before, path
    status, answer = _put_and_half_close(web_server.port, *channels.popitem(), sealed, len(sealed))
    assert status == 200, answer
    after = _traces(app, case_id)
    assert after["state"] == "uploaded" and after["uploaded"] == 1 and after["mails"] > before["mails"]
    client.get("/logout/")


# --- what killed processes leave is swept -------------------------------------------------------


def test_a_worker_killed_mid_upload_leaves_a_temporary_file_that_the_next_web_start_removes(app, registered):
    """The worker dies (SIGKILL) with a megabyte spooled; the next web process to start (gunicorn's
    worker, through gunicorn.conf.py) removes the ``.part``, and the case is still waiting for its file."""
    case_id, _token = registered
    tmp = Path(app.config["TRANSFER_DIR"]) / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    before = set(tmp.glob("*.part"))
    script = "\n".join(
        [
            "import sys",
            "from sqlalchemy import select",
            "from tests.process_app import app",
            "from app.extensions import db",
            "from app.models.org import PlatformUser",
            "from app.services import actors, transfer",
            "with app.app_context():",
            "    user = db.session.scalar(select(PlatformUser).where(PlatformUser.username == 'transfer.social'))",
            "    who = actors.for_user(user, session=db.session)",
            f"    transfer.upload_payload(db.session, who, {case_id}, sys.stdin.buffer, 'api')",
        ]
    )
    worker = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=_process_env(app), stdin=subprocess.PIPE)
    try:
        worker.stdin.write(b"\x30\x80" + b"\0" * (1 << 20))
        worker.stdin.flush()
        deadline = time.monotonic() + 60
        while not any(p.stat().st_size >= 1 << 20 for p in set(tmp.glob("*.part")) - before):
            assert worker.poll() is None and time.monotonic() < deadline, "the worker did not spool the upload"
            time.sleep(0.05)
    finally:
        worker.kill()
        worker.wait(30)
        worker.stdin.close()
    (left,) = set(tmp.glob("*.part")) - before
    assert left.stat().st_size >= 1 << 20
    web = _Gunicorn(app)  # answers once its worker has loaded the app and swept
    web.close()
    assert not left.exists()
    assert _state(app, case_id) == "registered"


def test_the_gunicorn_settings_serve_another_app_too(tmp_path, monkeypatch):
    """The benches serve their bare baseline with the same gunicorn settings: its worker starts
    (nothing of the platform's to sweep) and says it is ready."""
    import runpy
    from types import SimpleNamespace

    from flask import Flask

    monkeypatch.setenv("GUNICORN_READY_DIR", str(tmp_path))
    settings = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    settings["post_worker_init"](SimpleNamespace(wsgi=Flask("bare"), pid=4242))
    assert (tmp_path / "4242").exists()


def _row_counts(app) -> dict[str, int]:
    from flask_appbuilder import Model
    from sqlalchemy import func, select

    with app.app_context(), db.engine.connect() as conn:
        return {t.name: conn.scalar(select(func.count()).select_from(t)) for t in Model.metadata.sorted_tables}


def test_a_read_only_flask_command_starts_without_sweeping_or_writing_anything(app):
    """``flask audit verify`` in a process of its own (as an operator runs it): the application it
    starts removes no temporary upload (sweeping is the web start's and the ftp-poller's) and the
    database holds the same rows after it."""
    tmp = Path(app.config["TRANSFER_DIR"]) / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    abandoned = tmp / "left-by-a-killed-worker.part"
    abandoned.write_bytes(b"0" * 1000)
    long_ago = time.time() - app.config["TRANSFER_STALE_SECONDS"] - 60
    os.utime(abandoned, (long_ago, long_ago))
    with app.app_context():
        audit.seal_all(db.engine)  # nothing left for anyone to seal
    before = _row_counts(app)
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "tests.process_app", "audit", "verify"],
        cwd=ROOT, env=_process_env(app), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0 and "audit chain OK" in done.stdout, done.stdout + done.stderr
    assert abandoned.exists() and abandoned.stat().st_mtime == long_ago
    assert _row_counts(app) == before
    abandoned.unlink()


def test_the_sweep_removes_what_killed_processes_left_and_nothing_in_use(app, client, runner, registered, tmp_path):
    """``flask transfer sweep`` (and the ftp-poller worker, at start and every TRANSFER_SWEEP_SECONDS): a
    temporary file no process holds, a partial FTP upload and a stored file no case refers to go; an upload
    in progress, a registered file, a refused FTP file and its reason stay."""
    from app.services import ftp
    from app.services.transfer import storage

    case_id, token = registered
    (tmp_path / "p.csv").write_bytes(PLAINTEXT)
    sealed = openssl_encrypt(tmp_path / "p.csv", tmp_path / "r.p7m", staff("transfer.tax").cert).read_bytes()
    assert client.put(f"/api/v1/transfers/{case_id}/payload", data=sealed, headers=bearer(token)).status_code == 200
    with app.app_context():
        registered_file = Path(db.session.get(TransferCase, case_id).payload_path)
    long_ago = time.time() - app.config["TRANSFER_STALE_SECONDS"] - 60
    transfer_dir, home = Path(app.config["TRANSFER_DIR"]), Path(app.config["TRANSFER_FTP_ROOT"]) / "SOCIAL"
    home.mkdir(parents=True, exist_ok=True)
    abandoned = transfer_dir / "tmp" / "left-by-a-killed-worker.part"
    abandoned.write_bytes(b"0" * 1000)
    partial_ftp, fresh_ftp = home / "TR-OLD.p7m", home / "TR-NOW.p7m"
    refused, reason = home / "TR-X.p7m.rejected", home / "TR-X.p7m.rejected.txt"
    orphan = registered_file.with_name(f"payload-{'a' * 16}-{'b' * 8}.p7m")
    for path in (partial_ftp, fresh_ftp, refused, reason, orphan):
        path.write_bytes(b"x")
    for path in (partial_ftp, refused, reason, orphan, registered_file):
        os.utime(path, (long_ago, long_ago))
    with app.app_context(), storage.spooled(io.BytesIO(b"an upload in progress")) as (in_progress, _sha, _size):
        result = runner.invoke(args=["transfer", "sweep"])
        assert result.exit_code == 0, result.output
        assert in_progress.exists()
    assert "removed 1 temporary, 1 partial FTP and 1 orphan files" in result.output
    assert not abandoned.exists() and not partial_ftp.exists() and not orphan.exists()
    assert fresh_ftp.exists() and refused.exists() and reason.exists()
    assert registered_file.read_bytes() == sealed and _state(app, case_id) == "uploaded"

    # The ftp-poller worker sweeps at its start.
    partial_ftp.write_bytes(b"x")
    os.utime(partial_ftp, (long_ago, long_ago))
    stop = threading.Event()
    ftp.run_poller(app, stop, on_round=lambda counts: stop.set())
    assert not partial_ftp.exists() and fresh_ftp.exists()
    fresh_ftp.unlink()
