"""The mail outbox: same transaction as the change, real SMTP, retries, never twice."""

import datetime
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, text, update

from app.extensions import db
from app.models.audit import AuditEvent
from app.models.org import Agency
from app.models.outbox import FAILED, QUEUED, SENT, OutboxMessage
from app.services import actors, outbox


def _clear(app):
    with app.app_context():
        db.session.execute(delete(OutboxMessage))
        db.session.commit()


def _make_due(app):
    with app.app_context():
        db.session.execute(update(OutboxMessage).values(next_attempt_at=datetime.datetime.utcnow()))
        db.session.commit()


def test_a_message_enqueued_with_a_change_is_delivered_once_in_chinese(app, smtp):
    _clear(app)
    with app.app_context():
        agency = Agency(code="MAIL-1", name="郵件測試機關", kind="other", active=True)
        db.session.add(agency)
        outbox.enqueue(
            db.session,
            "citizen@example.tw",
            "案件 1151126-0001 已受理",
            "王小明 您好：您的案件已受理。",
            topic="case:1",
        )
        db.session.commit()
        counts = outbox.work_once(db.session)
        assert counts["sent"] == 1
        again = outbox.work_once(db.session)
        assert again["sent"] == 0
        msg = db.session.scalar(select(OutboxMessage))
        assert msg.status == SENT and msg.sent_at is not None
        db.session.delete(db.session.scalar(select(Agency).where(Agency.code == "MAIL-1")))
        db.session.commit()
    received = smtp.sink.wait_for(1)
    assert len(received) == 1
    assert received[0].rcpt_tos == ["citizen@example.tw"]
    from email import message_from_bytes
    from email.header import decode_header, make_header

    parsed = message_from_bytes(received[0].original_content)
    assert "1151126-0001" in str(make_header(decode_header(parsed["Subject"])))
    assert "案件已受理" in parsed.get_payload(decode=True).decode("utf-8")


def test_the_message_is_well_formed_mime_with_the_senders_chinese_name_and_an_idna_domain(app, smtp):
    """What a mail client reads: the email package's EmailMessage, sent by smtplib."""
    from email import message_from_bytes
    from email.header import decode_header, make_header
    from email.utils import parseaddr

    _clear(app)
    sender = app.config["MAIL_DEFAULT_SENDER"]
    app.config["MAIL_DEFAULT_SENDER"] = ("示範縣政府", "platform@county.gov.tw")
    try:
        with app.app_context():
            body = "林小華 您好：\n您的案件已受理。\n" + "詳細內容。" * 200  # base64 lines wrap
            outbox.enqueue(db.session, "citizen@範例.台灣", "案件 1151130-0007 已受理", body)
            db.session.commit()
            assert outbox.work_once(db.session)["sent"] == 1
        received = smtp.sink.wait_for(1)
    finally:
        app.config["MAIL_DEFAULT_SENDER"] = sender
    assert received[0].rcpt_tos == ["citizen@xn--fsqy19h.xn--kpry57d"]
    assert received[0].mail_from == "platform@county.gov.tw"
    parsed = message_from_bytes(received[0].original_content)
    assert str(make_header(decode_header(parsed["Subject"]))) == "案件 1151130-0007 已受理"
    name, address = parseaddr(str(make_header(decode_header(parsed["From"]))))
    assert (name, address) == ("示範縣政府", "platform@county.gov.tw")
    assert parsed.get_content_type() == "text/plain" and parsed.get_content_charset() == "utf-8"
    # Text travels in its canonical form (RFC 2046: CRLF line breaks, a final one): the same text read.
    assert parsed.get_payload(decode=True).decode("utf-8") == body.replace("\n", "\r\n") + "\r\n"
    assert parsed["Message-ID"].startswith("<") and parsed["Date"]


def test_an_address_with_a_line_break_is_never_sent_and_the_next_message_still_goes(app, smtp):
    _clear(app)
    with app.app_context():
        outbox.enqueue(db.session, "citizen@example.tw\r\nBcc: everyone@example.tw", "注入", "不應寄出")
        outbox.enqueue(db.session, "citizen2@example.tw", "案件 1151130-0008 已受理", "您好")
        db.session.commit()
        counts = outbox.work_once(db.session)
        assert (counts["sent"], counts["retried"]) == (1, 1)
        bad = db.session.scalar(select(OutboxMessage).where(OutboxMessage.subject == "注入"))
        assert bad.status == QUEUED and "line break" in bad.last_error
    received = smtp.sink.wait_for(1)
    assert [env.rcpt_tos for env in received] == [["citizen2@example.tw"]]


def test_when_smtp_cannot_be_reached_again_after_a_refused_address_the_rest_wait_untouched(app, smtp, monkeypatch):
    _clear(app)
    with app.app_context():
        outbox.enqueue(db.session, "citizen@example.tw\r\nBcc: x@example.tw", "注入", "不應寄出")
        outbox.enqueue(db.session, "next1@example.tw", "稍後寄出", "內容")
        outbox.enqueue(db.session, "next2@example.tw", "稍後寄出", "內容")
        db.session.commit()
        connects = []
        real = outbox.smtp_connect

        def down_after_the_first(config):  # the server goes away after the first connection
            connects.append(config)
            if len(connects) > 1:
                raise ConnectionRefusedError("connection refused")
            return real(config)

        monkeypatch.setattr(outbox, "smtp_connect", down_after_the_first)
        assert outbox.work_once(db.session) == {"sent": 0, "retried": 1, "failed": 0}
        rows = {m.recipient: m for m in db.session.scalars(select(OutboxMessage))}
        assert all(m.status == QUEUED and m.claimed_at is None for m in rows.values())
        assert rows["next1@example.tw"].attempts == 0 and rows["next2@example.tw"].attempts == 0
    assert smtp.sink.wait_for(1, timeout=0.5) == []
    _clear(app)


def test_an_address_that_cannot_be_encoded_waits_with_a_reason_that_does_not_repeat_it(app, smtp):
    _clear(app)
    long_label = "長" * 70  # longer than a DNS label may be
    with app.app_context():
        outbox.enqueue(db.session, f"citizen@{long_label}.台灣", "案件", "內容")
        db.session.commit()
        assert outbox.work_once(db.session)["retried"] == 1
        msg = db.session.scalar(select(OutboxMessage))
        assert msg.status == QUEUED and "cannot be encoded" in msg.last_error
        assert long_label not in msg.last_error and "citizen" not in msg.last_error


def test_a_change_that_rolls_back_sends_nothing(app, smtp):
    _clear(app)
    with app.app_context():
        db.session.add(Agency(code="ROLL-1", name="回滾測試機關", kind="other", active=True))
        outbox.enqueue(db.session, "nobody@example.tw", "不應寄出", "不應寄出")
        db.session.rollback()
        assert outbox.work_once(db.session)["sent"] == 0
        assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 0
        assert db.session.scalar(select(Agency).where(Agency.code == "ROLL-1")) is None
    assert smtp.sink.wait_for(1, timeout=0.5) == []


def test_the_body_is_encrypted_at_rest(app):
    _clear(app)
    with app.app_context():
        outbox.enqueue(db.session, "c@example.tw", "主旨", "王小明的地址")
        db.session.commit()
        raw = db.session.execute(text("SELECT body FROM outbox_message")).scalar_one()
    assert "王小明" not in raw
    _clear(app)


def test_with_smtp_down_twenty_messages_wait_and_each_arrives_once_when_it_is_back(app, smtp_down):
    _clear(app)
    with app.app_context():
        for i in range(20):
            outbox.enqueue(db.session, f"citizen{i}@example.tw", f"通知 {i}", f"內容 {i}")
        db.session.commit()
        tried_at = datetime.datetime.utcnow()
        counts = outbox.work_once(db.session)
        assert counts["sent"] == 0 and counts["retried"] >= 1
        waiting = db.session.scalars(select(OutboxMessage)).all()
        assert len(waiting) == 20 and all(m.status == QUEUED for m in waiting)
        failed_once = [m for m in waiting if m.attempts == 1]
        assert failed_once and all(m.last_error for m in failed_once)
        # Backed off: the next attempt is later than the failed one (the test
        # backoff is short, so compare with the attempt, not with "now").
        assert all(m.next_attempt_at > tried_at for m in failed_once)
    smtp_down.start()
    _make_due(app)
    with app.app_context():
        # Two workers at once, as two gunicorn processes would run.
        results = []

        def worker():
            with app.app_context():
                results.append(outbox.work_once(db.session))
                db.session.remove()

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(r["sent"] for r in results) == 20
        assert all(m.status == SENT for m in db.session.scalars(select(OutboxMessage)))
    received = smtp_down.sink.wait_for(20)
    recipients = sorted(r for env in received for r in env.rcpt_tos)
    assert recipients == sorted(f"citizen{i}@example.tw" for i in range(20))
    _clear(app)


def test_a_message_that_keeps_failing_is_marked_failed_with_its_error_and_can_be_requeued(app, smtp_down):
    _clear(app)
    app.config["OUTBOX_MAX_ATTEMPTS"], saved = 2, app.config["OUTBOX_MAX_ATTEMPTS"]
    try:
        with app.app_context():
            outbox.enqueue(db.session, "late@example.tw", "稍後", "稍後寄出")
            db.session.commit()
            outbox.work_once(db.session)
        _make_due(app)
        with app.app_context():
            outbox.work_once(db.session)
            msg = db.session.scalar(select(OutboxMessage))
            assert msg.status == FAILED and msg.attempts == 2 and "Connection" in msg.last_error
            assert "late@example.tw" not in msg.last_error
            assert outbox.requeue(db.session, actors.SYSTEM, [msg.id]) == 1
            assert db.session.get(OutboxMessage, msg.id).status == QUEUED
            assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "outbox.requeue")) is not None
        smtp_down.start()
        with app.app_context():
            assert outbox.work_once(db.session)["sent"] == 1
        assert len(smtp_down.sink.wait_for(1)) == 1
    finally:
        app.config["OUTBOX_MAX_ATTEMPTS"] = saved
        _clear(app)


def test_the_cli_worker_sends_the_queue(app, runner, smtp):
    _clear(app)
    with app.app_context():
        outbox.enqueue(db.session, "cli@example.tw", "CLI", "由指令寄出")
        db.session.commit()
    result = runner.invoke(args=["outbox", "work"])
    assert result.exit_code == 0 and "sent 1" in result.output
    assert len(smtp.sink.wait_for(1)) == 1
    _clear(app)


def test_the_admin_sees_the_queue_with_masked_recipients(app, client):
    from tests.conftest import login

    _clear(app)
    with app.app_context():
        outbox.enqueue(db.session, "citizen.wang@example.tw", "佇列顯示", "內容")
        db.session.commit()
    login(client, "admin")
    r = client.get("/outboxview/list/")
    assert r.status_code == 200 and "郵件佇列" in r.text and "佇列顯示" in r.text
    assert "citizen.wang@example.tw" not in r.text and "c***@example.tw" in r.text
    _clear(app)


class _Worker:
    """The outbox worker loop (``outbox.run``) in a thread this test starts and stops."""

    def __init__(self, app, poll):
        self.stop = threading.Event()
        self.rounds = 0
        self.changed = threading.Condition()
        self.thread = threading.Thread(
            target=outbox.run, args=(app, self.stop), kwargs={"poll": poll, "on_round": self._round}, daemon=True
        )

    def _round(self, counts):
        with self.changed:
            self.rounds += 1
            self.changed.notify_all()

    def wait_rounds(self, n, timeout=10.0):
        with self.changed:
            assert self.changed.wait_for(lambda: self.rounds >= n, timeout), f"{self.rounds} rounds, not {n}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive(), "the worker did not stop"


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)  # NOTIFY is PostgreSQL's; SQLite: the next test
def test_the_worker_sends_as_soon_as_mail_is_committed_not_at_its_next_poll(app, smtp):
    _clear(app)
    with _Worker(app, poll=60) as worker:  # a poll this long would miss the 5 s below
        worker.wait_rounds(1)  # its first round has run and found nothing
        with app.app_context():
            outbox.enqueue(db.session, "wake@example.tw", "立即寄出", "內容")
            db.session.rollback()  # a rolled-back message neither wakes nor sends
            outbox.enqueue(db.session, "wake@example.tw", "立即寄出", "內容")
            db.session.commit()
        got = smtp.sink.wait_for(1, timeout=5)
        assert len(got) == 1 and got[0].rcpt_tos == ["wake@example.tw"]
        worker.wait_rounds(2)
    assert worker.rounds == 2  # one wake, one round: the rollback sent no NOTIFY
    _clear(app)


def test_the_worker_finds_committed_mail_at_its_next_poll(app, smtp):
    _clear(app)
    with _Worker(app, poll=0.1) as worker:
        worker.wait_rounds(1)
        with app.app_context():
            outbox.enqueue(db.session, "poll@example.tw", "稍後寄出", "內容")
            db.session.commit()
        got = smtp.sink.wait_for(1, timeout=5)
        assert [env.rcpt_tos for env in got] == [["poll@example.tw"]]
    _clear(app)


def test_two_workers_running_side_by_side_send_each_message_once(app, smtp):
    _clear(app)
    with app.app_context():
        for i in range(30):
            outbox.enqueue(db.session, f"pair{i}@example.tw", f"通知 {i}", "內容")
        db.session.commit()
    with _Worker(app, poll=0.05) as one, _Worker(app, poll=0.05) as two:
        received = smtp.sink.wait_for(30)
        one.wait_rounds(one.rounds + 1)  # a round after the last mail: nothing left to send twice
        two.wait_rounds(two.rounds + 1)
    recipients = sorted(r for env in received for r in env.rcpt_tos)
    assert recipients == sorted(f"pair{i}@example.tw" for i in range(30))
    assert len(smtp.sink.messages) == 30
    with app.app_context():
        assert all(m.status == SENT and m.attempts == 1 for m in db.session.scalars(select(OutboxMessage)))
    _clear(app)


def test_two_workers_send_each_coalesced_change_in_exactly_one_mail(app, smtp):
    """Several hosts' workers on one queue: the messages of one coalescing key go out
    combined, and every message's line is in exactly one mail, never two, never none."""
    from email import message_from_bytes

    _clear(app)
    with app.app_context():
        for k in range(20):
            for j in range(4):
                outbox.enqueue(db.session, f"case{k}@example.tw", f"案件 {k} 第 {j} 項", f"單封 {k}-{j}",
                               coalesce_key=f"citizen:{k}", part=f"變更 {k}-{j}。", digest_subject=f"案件 {k} 辦理進度",
                               digest_body=f"案件 {k}：\n{outbox.CHANGES}\n")  # fmt: skip
        db.session.commit()
    with _Worker(app, poll=0.05) as one, _Worker(app, poll=0.05) as two:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with app.app_context():
                left = db.session.scalar(
                    select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status.in_((QUEUED, "sending")))
                )
                db.session.remove()
            if not left:
                break
            time.sleep(0.05)
        one.wait_rounds(one.rounds + 1)
        two.wait_rounds(two.rounds + 1)
    bodies = []
    for env in list(smtp.sink.messages):
        msg = message_from_bytes(env.original_content)
        bodies.append(msg.get_payload(decode=True).decode("utf-8"))
    # a combined mail lists its lines; a message that went alone is its own mail
    lines = [line for b in bodies for line in b.splitlines() if line.startswith("・變更")]
    lines += [f"・變更 {b.split()[1]}。" for b in bodies if b.startswith("單封 ")]
    assert sorted(lines) == sorted(f"・變更 {k}-{j}。" for k in range(20) for j in range(4)), bodies
    assert 20 <= len(bodies) < 80 and not any(outbox.CHANGES in b for b in bodies)
    with app.app_context():
        rows = db.session.scalars(select(OutboxMessage)).all()
        assert {m.status for m in rows} == {SENT, "merged"}
        assert sum(m.status == SENT for m in rows) == len(bodies)
    _clear(app)


def test_flask_worker_outbox_sends_and_stops_gracefully_on_sigterm_without_logging_addresses(app, smtp):
    _clear(app)
    with app.app_context():
        outbox.enqueue(db.session, "process@example.tw", "由工作程序寄出", "內容")
        db.session.commit()
    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "FLASK_APP": "run.py",
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": str(app.config["MAIL_PORT"]),
        "OUTBOX_POLL_SECONDS": "0.2",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "flask", "worker", "outbox"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        got = smtp.sink.wait_for(1, timeout=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            output, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
    assert [env.rcpt_tos for env in got] == [["process@example.tw"]], output
    assert proc.returncode == 0, output
    assert "outbox worker stopped" in output and "sent 1" in output
    assert "process@example.tw" not in output
    _clear(app)


class _PeerSink:
    """Records which client connection (its address and port) delivered each message."""

    def __init__(self):
        self.peers = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.peers.append((session.peer, envelope.rcpt_tos[0]))
        return "250 OK"

    def wait_for(self, count, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.peers) < count:
            time.sleep(0.02)
        with self.lock:
            return list(self.peers)


def _server(app):
    from tests.conftest import SmtpServer

    server = SmtpServer(app.config["MAIL_PORT"])
    server.sink = _PeerSink()
    server.start()
    return server


def _send_one(app, recipient):
    with app.app_context():
        outbox.enqueue(db.session, recipient, "保持連線", "內容")
        db.session.commit()


def test_the_worker_keeps_one_smtp_connection_across_rounds_and_reconnects_when_the_server_drops_it(app):
    _clear(app)
    server = _server(app)
    worker = _Worker(app, poll=0.05).__enter__()
    try:
        worker.wait_rounds(1)
        for i in range(3):  # three rounds, each finding its own commit
            _send_one(app, f"keep{i}@example.tw")
            assert len(server.sink.wait_for(i + 1)) == i + 1
        peers = {peer for peer, _ in server.sink.peers}
        assert len(peers) == 1  # one connection served all three rounds
        # The server goes away and comes back: the kept connection is dead.
        server.stop()
        server = _server(app)
        _send_one(app, "after-restart@example.tw")
        got = server.sink.wait_for(1)
        assert [rcpt for _, rcpt in got] == ["after-restart@example.tw"]
        # The server has the mail before the worker records it: the round that sent it ends first.
        worker.wait_rounds(worker.rounds + 2)
        with app.app_context():
            msg = db.session.scalar(select(OutboxMessage).where(OutboxMessage.recipient == "after-restart@example.tw"))
            assert msg.status == SENT and msg.attempts == 1 and msg.last_error is None
    finally:
        worker.__exit__(None, None, None)
        server.stop()
    assert len(server.sink.peers) == 1  # sent once, never twice (the worker has stopped)
    _clear(app)


def test_a_round_sends_at_most_its_limit_and_leaves_the_rest_queued(app, smtp):
    _clear(app)
    with app.app_context():
        for i in range(5):
            outbox.enqueue(db.session, f"limit{i}@example.tw", "分批寄出", "內容")
        db.session.commit()
        assert outbox.work_once(db.session, limit=2)["sent"] == 2
        statuses = sorted(m.status for m in db.session.scalars(select(OutboxMessage)))
        assert statuses == [QUEUED, QUEUED, QUEUED, SENT, SENT]
        assert outbox.work_once(db.session, limit=10)["sent"] == 3
    assert len(smtp.sink.wait_for(5)) == 5
    _clear(app)


def test_a_citizens_receipt_goes_out_before_staff_notices_queued_earlier(app, smtp):
    from app.models.outbox import CITIZEN

    _clear(app)
    with app.app_context():
        for i in range(3):
            outbox.enqueue(db.session, f"staff{i}@demo.gov.tw", "新分文通知", "內容")
        db.session.commit()
        outbox.enqueue(db.session, "citizen@example.tw", "案件已受理", "內容", priority=CITIZEN)
        db.session.commit()
        assert outbox.work_once(db.session, limit=1)["sent"] == 1
        assert outbox.work_once(db.session, limit=10)["sent"] == 3
    order = [env.rcpt_tos[0] for env in smtp.sink.wait_for(4)]
    assert order == ["citizen@example.tw", "staff0@demo.gov.tw", "staff1@demo.gov.tw", "staff2@demo.gov.tw"]
    _clear(app)
