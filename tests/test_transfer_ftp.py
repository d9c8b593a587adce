"""The FTPS channel: a large transfer uploaded by FTP over TLS into the agency's
own folder, registered by the poller against its case by upload number."""

from __future__ import annotations

import ftplib
import io
import os
import socket
import ssl
import struct
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models.audit import AuditEvent
from app.models.org import PlatformUser
from app.models.transfer import TransferCase, TransferItem
from app.services import ftp
from tests.conftest import DEMO_PASSWORD, api_token
from tests.test_transfer import PLAINTEXT, _register, openssl_encrypt, staff


class _Server:
    """The FTPS server's worker loop (``ftp.serve``) in a thread, on a free port."""

    def __init__(self, app):
        self.server = ftp.build_server(app, host="127.0.0.1", port=0)
        self.port = self.server.address[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=ftp.serve, args=(app, self.stop, self.server), daemon=True)
        self.thread.start()

    def close(self):
        self.stop.set()
        self.thread.join(5)
        assert not self.thread.is_alive(), "the FTPS server did not stop"


@pytest.fixture
def ftps_server(app, tmp_path):
    """A server on folders of this test's own (no other test's uploads or rejections in them)."""
    saved = app.config["TRANSFER_FTP_ROOT"]
    app.config["TRANSFER_FTP_ROOT"] = str(tmp_path / "ftp")
    try:
        server = _Server(app)
        yield server
        server.close()
    finally:
        app.config["TRANSFER_FTP_ROOT"] = saved


def connect(app, server, user="transfer.social", password=DEMO_PASSWORD) -> ftplib.FTP_TLS:
    context = ssl.create_default_context(cafile=app.config["TRANSFER_FTP_TLS_CERT"])
    client = ftplib.FTP_TLS(context=context, timeout=10)
    client.connect("127.0.0.1", server.port)
    try:
        client.login(user, password)  # AUTH TLS first: the password never travels in clear
        client.prot_p()
    except BaseException:
        client.close()
        raise
    return client


def settle(app, *names, agency="SOCIAL") -> None:
    """Wait until the server has handed these uploads on (it answers 226 just before it does)."""
    home = Path(app.config["TRANSFER_FTP_ROOT"]) / agency
    deadline = time.monotonic() + 5
    while any((home / n).exists() for n in names) and time.monotonic() < deadline:
        time.sleep(0.02)


def _case(app, case_id) -> TransferCase:
    with app.app_context():
        case = db.session.get(TransferCase, case_id)
        db.session.expunge(case)
        return case


def test_an_encrypted_file_uploaded_by_ftps_is_registered_against_its_case(app, client, ftps_server, tmp_path):
    r = _register(client, api_token(client, "transfer.social"), upload_no="FTP-0001")
    case_id = r.json["result"]["id"]
    (tmp_path / "p.csv").write_bytes(PLAINTEXT * 20)
    sealed = openssl_encrypt(tmp_path / "p.csv", tmp_path / "x.p7m", staff("transfer.tax").cert).read_bytes()

    ftps = connect(app, ftps_server)
    ftps.storbinary("STOR FTP-0001.p7m", io.BytesIO(sealed))
    ftps.quit()
    settle(app, "FTP-0001.p7m")
    assert ftp.poll_once(app) == {"registered": 1, "rejected": 0}
    case = _case(app, case_id)
    assert case.state == "uploaded" and case.payload_channel == "ftp" and case.payload_size == len(sealed)
    assert Path(case.payload_path).read_bytes() == sealed
    # The folder is empty again: the file moved into the platform's storage.
    assert list((Path(app.config["TRANSFER_FTP_ROOT"]) / "SOCIAL").iterdir()) == []


def test_plaintext_or_an_unknown_upload_number_comes_back_rejected_with_the_reason(app, client, ftps_server):
    r = _register(client, api_token(client, "transfer.social"), upload_no="FTP-0002")
    case_id = r.json["result"]["id"]
    ftps = connect(app, ftps_server)
    ftps.storbinary("STOR FTP-0002.p7m", io.BytesIO(PLAINTEXT))
    ftps.storbinary("STOR NO-SUCH-CASE.p7m", io.BytesIO(PLAINTEXT))
    settle(app, "FTP-0002.p7m", "NO-SUCH-CASE.p7m")
    assert ftp.poll_once(app) == {"registered": 0, "rejected": 2}
    listing = ftps.nlst()
    assert {"FTP-0002.p7m.rejected", "FTP-0002.p7m.rejected.txt", "NO-SUCH-CASE.p7m.rejected"} <= set(listing)
    reason = io.BytesIO()
    ftps.retrbinary("RETR FTP-0002.p7m.rejected.txt", reason.write)
    assert "明文" in reason.getvalue().decode("utf-8")
    ftps.quit()
    assert _case(app, case_id).state == "registered"


def test_an_account_cannot_leave_its_agency_folder(app, ftps_server):
    root = Path(app.config["TRANSFER_FTP_ROOT"])
    (root / "TAX").mkdir(parents=True, exist_ok=True)
    (root / "TAX" / "secret.p7m").write_bytes(b"tax bureau's file")
    ftps = connect(app, ftps_server)
    assert ftps.pwd() == "/"
    ftps.cwd("..")
    assert ftps.pwd() == "/"  # ".." of the home is the home
    for attempt in ("RETR ../TAX/secret.p7m", "RETR /../TAX/secret.p7m", "RETR ../../TAX/secret.p7m"):
        with pytest.raises(ftplib.error_perm):
            ftps.retrbinary(attempt, io.BytesIO().write)
    with pytest.raises(ftplib.error_perm):
        ftps.storbinary("STOR ../TAX/evil.p7m", io.BytesIO(b"x"))
    with pytest.raises(ftplib.error_perm):
        ftps.mkd("sub")
    ftps.quit()
    assert sorted(p.name for p in (root / "TAX").iterdir()) == ["secret.p7m"]


def test_a_wrong_password_or_a_non_transfer_account_cannot_sign_in(app, ftps_server):
    with pytest.raises(ftplib.error_perm):
        connect(app, ftps_server, password="wrong")
    with pytest.raises(ftplib.error_perm):
        connect(app, ftps_server, user="clerk")
    with app.app_context():
        failed = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "ftp.login_failed")).all()
        assert len(failed) >= 2


def test_plain_ftp_without_tls_is_refused(app, ftps_server):
    plain = ftplib.FTP(timeout=10)
    plain.connect("127.0.0.1", ftps_server.port)
    with pytest.raises(ftplib.error_perm):
        plain.login("transfer.social", DEMO_PASSWORD)
    plain.close()


def test_an_upload_cut_off_midway_leaves_nothing_to_register(app, client, ftps_server):
    _register(client, api_token(client, "transfer.social"), upload_no="FTP-0003")
    ftps = connect(app, ftps_server)
    conn = ftps.transfercmd("STOR FTP-0003.p7m")
    conn.sendall(b"0" * 200_000)
    # The line drops: a reset, not a clean end of file.
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    try:
        ftps.voidresp()
    except ftplib.all_errors:
        pass
    ftps.close()
    home = Path(app.config["TRANSFER_FTP_ROOT"]) / "SOCIAL"
    deadline = time.monotonic() + 5
    while (home / "FTP-0003.p7m").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not (home / "FTP-0003.p7m").exists()
    assert ftp.poll_once(app) == {"registered": 0, "rejected": 0}


def test_items_without_ftp_refuse_ftp_uploads(app, client, ftps_server, tmp_path):
    with app.app_context():
        item = db.session.scalar(select(TransferItem).where(TransferItem.description == "低收入戶財稅資料比對"))
        item.ftp_allowed = False
        db.session.commit()
    try:
        r = _register(client, api_token(client, "transfer.social"), upload_no="FTP-0004")
        (tmp_path / "p.csv").write_bytes(PLAINTEXT)
        sealed = openssl_encrypt(tmp_path / "p.csv", tmp_path / "x.p7m", staff("transfer.tax").cert).read_bytes()
        ftps = connect(app, ftps_server)
        ftps.storbinary("STOR FTP-0004.p7m", io.BytesIO(sealed))
        ftps.quit()
        settle(app, "FTP-0004.p7m")
        assert ftp.poll_once(app) == {"registered": 0, "rejected": 1}
        assert _case(app, r.json["result"]["id"]).state == "registered"
    finally:
        with app.app_context():
            item = db.session.scalar(select(TransferItem).where(TransferItem.description == "低收入戶財稅資料比對"))
            item.ftp_allowed = True
            db.session.commit()


def _upload_sealed(app, client, ftps_server, tmp_path, upload_no):
    r = _register(client, api_token(client, "transfer.social"), upload_no=upload_no)
    (tmp_path / "p.csv").write_bytes(PLAINTEXT)
    sealed = openssl_encrypt(tmp_path / "p.csv", tmp_path / "x.p7m", staff("transfer.tax").cert).read_bytes()
    ftps = connect(app, ftps_server)
    ftps.storbinary(f"STOR {upload_no}.p7m", io.BytesIO(sealed))
    ftps.quit()
    settle(app, f"{upload_no}.p7m")
    return r.json["result"]["id"]


def test_two_pollers_at_once_register_an_upload_once(app, client, ftps_server, tmp_path):
    case_id = _upload_sealed(app, client, ftps_server, tmp_path, "FTP-0005")
    start = threading.Barrier(2)
    results = []

    def poller():
        start.wait()
        results.append(ftp.poll_once(app))

    threads = [threading.Thread(target=poller) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(r["registered"] for r in results) == 1 and sum(r["rejected"] for r in results) == 0
    assert _case(app, case_id).state == "uploaded"
    assert list((Path(app.config["TRANSFER_FTP_ROOT"]) / ftp.READY).iterdir()) == []


def test_the_poller_worker_registers_uploads_until_it_is_stopped(app, client, ftps_server, tmp_path):
    app.config["TRANSFER_FTP_POLL_SECONDS"], saved = 0.05, app.config["TRANSFER_FTP_POLL_SECONDS"]
    stop, rounds = threading.Event(), []
    registered = threading.Event()

    def on_round(counts):
        rounds.append(counts)
        if counts["registered"]:
            registered.set()

    worker = threading.Thread(target=ftp.run_poller, args=(app, stop), kwargs={"on_round": on_round}, daemon=True)
    worker.start()
    try:
        case_id = _upload_sealed(app, client, ftps_server, tmp_path, "FTP-0006")
        assert registered.wait(10)
        assert _case(app, case_id).state == "uploaded"
    finally:
        stop.set()
        worker.join(5)
        app.config["TRANSFER_FTP_POLL_SECONDS"] = saved
    assert not worker.is_alive()
    assert sum(c["registered"] for c in rounds) == 1


def test_a_claim_left_by_a_poller_that_died_is_taken_up_again_after_its_lease(app, client, ftps_server, tmp_path):
    case_id = _upload_sealed(app, client, ftps_server, tmp_path, "FTP-0007")
    root = Path(app.config["TRANSFER_FTP_ROOT"])
    (ready,) = (root / ftp.READY).iterdir()
    (root / ftp.WORKING).mkdir()
    claimed = root / ftp.WORKING / ready.name
    os.replace(ready, claimed)  # a poller claimed it (just now), then died
    assert ftp.poll_once(app) == {"registered": 0, "rejected": 0}  # another poller leaves it alone meanwhile
    long_ago = time.time() - ftp.CLAIM_LEASE_SECONDS - 60
    os.utime(claimed, (long_ago, long_ago))
    assert ftp.poll_once(app) == {"registered": 1, "rejected": 0}
    assert _case(app, case_id).state == "uploaded"


def _thread_cpu_seconds(thread: threading.Thread) -> float:
    """CPU time (user + system) the kernel has counted for one thread of this process."""
    fields = Path(f"/proc/self/task/{thread.native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize("ending", ["half-close", "close"])
def test_a_data_connection_ended_without_close_notify_is_answered_426_within_seconds_and_spins_no_thread(
    app, client, ftps_server, ending
):
    """A client (or a line) that ends the data connection with a bare TCP FIN, no TLS close_notify, and
    keeps listening (half-close) or goes (close): the upload is discarded and said so (426) within
    seconds; no server thread is left spinning."""
    upload_no = f"FTP-0008-{ending}"
    _register(client, api_token(client, "transfer.social"), upload_no=upload_no)
    before = set(threading.enumerate())
    ftps = connect(app, ftps_server)
    try:
        conn = ftps.transfercmd(f"STOR {upload_no}.p7m")  # a TLS socket (PROT P)
        (handler,) = set(threading.enumerate()) - before  # the server's thread for this client
        conn.sendall(b"0" * 200_000)
        cpu_at_cut = _thread_cpu_seconds(handler)
        cut = time.monotonic()
        if ending == "half-close":  # FIN without close_notify (no unwrap); the client still listens
            conn.shutdown(socket.SHUT_WR)
        else:  # FIN without close_notify, and the socket is gone
            conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        ftps.sock.settimeout(15)
        with pytest.raises(ftplib.error_temp, match="^426"):
            ftps.voidresp()
        waited = time.monotonic() - cut
        # A window in which a spinning thread would burn a second of CPU (a measurement, not a wait for an event).
        time.sleep(1.0)
        cpu = (_thread_cpu_seconds(handler) - cpu_at_cut) / (time.monotonic() - cut)
        print(f"\nFTPS {ending} without close_notify: 426 after {waited:.3f} s; server thread CPU {cpu:.1%}")
        assert waited < 5, waited
        assert cpu < 0.2, cpu
        ftps.quit()
    finally:
        ftps.close()
        conn.close()
    handler.join(5)
    assert not handler.is_alive(), "the server's thread for that client did not end"
    home = Path(app.config["TRANSFER_FTP_ROOT"]) / "SOCIAL"
    assert not (home / f"{upload_no}.p7m").exists()
    assert ftp.poll_once(app) == {"registered": 0, "rejected": 0}


def test_a_truncated_file_sent_whole_by_ftps_comes_back_rejected_and_the_case_stays_ready(
    app, client, ftps_server, tmp_path
):
    """``head -c`` of a sealed file, uploaded cleanly (close_notify): the poller reads it to its end, sends
    it back rejected with the reason, and the case still waits for its file, which then goes through."""
    r = _register(client, api_token(client, "transfer.social"), upload_no="FTP-0009")
    case_id = r.json["result"]["id"]
    (tmp_path / "p.csv").write_bytes(PLAINTEXT * 20)
    sealed = openssl_encrypt(tmp_path / "p.csv", tmp_path / "x.p7m", staff("transfer.tax").cert).read_bytes()
    ftps = connect(app, ftps_server)
    ftps.storbinary("STOR FTP-0009.p7m", io.BytesIO(sealed[: len(sealed) // 2]))
    settle(app, "FTP-0009.p7m")
    assert ftp.poll_once(app) == {"registered": 0, "rejected": 1}
    reason = io.BytesIO()
    ftps.retrbinary("RETR FTP-0009.p7m.rejected.txt", reason.write)
    assert "不完整" in reason.getvalue().decode("utf-8")
    assert _case(app, case_id).state == "registered"
    ftps.storbinary("STOR FTP-0009.p7m", io.BytesIO(sealed))
    ftps.quit()
    settle(app, "FTP-0009.p7m")
    assert ftp.poll_once(app) == {"registered": 1, "rejected": 0}
    assert _case(app, case_id).state == "uploaded"


def _api_login(client, username: str, password: str) -> int:
    body = {"username": username, "password": password, "provider": "db"}
    return client.post("/api/v1/security/login", json=body).status_code


def test_ftps_sign_ins_count_with_the_form_and_api_ones_and_a_locked_account_waits_there_too(app, client, ftps_server):
    from app.services import signin

    threshold = app.config["LOGIN_LOCK_AFTER_FAILURES"]
    with app.app_context():
        user_id = db.session.scalar(select(PlatformUser.id).where(PlatformUser.username == "transfer.tax"))
    try:
        # One wrong password over FTPS and the rest over the API: the account now waits.
        with pytest.raises(ftplib.error_perm):
            connect(app, ftps_server, user="transfer.tax", password="wrong")
        for _ in range(threshold - 1):
            assert _api_login(client, "transfer.tax", "wrong") == 401
        assert _api_login(client, "transfer.tax", DEMO_PASSWORD) == 429
        # ... and over FTPS the right password is not even looked at meanwhile.
        with pytest.raises(ftplib.error_perm, match="try again later"):
            connect(app, ftps_server, user="transfer.tax")
        with app.app_context():
            actions = db.session.scalars(
                select(AuditEvent.action).where(AuditEvent.object_id == str(user_id)).order_by(AuditEvent.id)
            ).all()
            assert "account_locked" in actions and "login_refused" in actions
    finally:
        with app.app_context():
            signin.clear(db.session, [signin.account_key("transfer.tax", user_id)])
            db.session.remove()
    assert connect(app, ftps_server, user="transfer.tax").quit()


def test_a_failed_ftps_sign_in_under_an_unknown_name_is_audited_by_its_digest_only(app, ftps_server):
    typed = "A123456789"  # what a citizen's ID number looks like: it must not be stored as typed
    with pytest.raises(ftplib.error_perm):
        connect(app, ftps_server, user=typed, password="wrong")
    with app.app_context():
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "ftp.login_failed").order_by(AuditEvent.id.desc())
        ).first()
        assert typed not in (event.actor or "") and typed not in str(event.detail)


def test_an_ftps_upload_cut_without_close_notify_is_audited_and_answered_in_chinese(app, client, ftps_server):
    """The 426 says why in the user's language; the audit trail says who, which case and why (no file name,
    nothing of the file)."""
    import json

    upload_no = "FTP-0010"
    r = _register(client, api_token(client, "transfer.social"), upload_no=upload_no)
    case_id = r.json["result"]["id"]
    ftps = connect(app, ftps_server)
    try:
        conn = ftps.transfercmd(f"STOR {upload_no}.p7m")
        conn.sendall(b"0" * 200_000)
        conn.shutdown(socket.SHUT_RDWR)  # FIN without close_notify
        conn.close()
        ftps.sock.settimeout(15)
        with pytest.raises(ftplib.error_temp) as answer:
            ftps.voidresp()
        assert str(answer.value).startswith("426") and "重新" in str(answer.value), str(answer.value)
        ftps.quit()
    finally:
        ftps.close()
    with app.app_context():
        event = db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "transfer.upload_refused", AuditEvent.object_id == str(case_id))
            .order_by(AuditEvent.id.desc())
        ).first()
        assert event is not None, "the cut upload left no audit event"
        assert event.outcome == "refused" and event.actor == "transfer.social" and event.object_type == "TransferCase"
        detail = json.loads(event.detail)
        assert {k: detail[k] for k in ("channel", "kind", "cause")} == {
            "channel": "ftp",
            "kind": "payload",
            "cause": "no_close_notify",
        }
        assert upload_no not in event.detail and "p7m" not in event.detail
    assert _case(app, case_id).state == "registered"
