"""The mail outbox: enqueue in the caller's transaction; a worker sends.

Delivery: a worker claims one message with a conditional UPDATE (only one
worker can move it from queued to sending), commits the claim, hands it to
SMTP, then marks it sent. A failure puts it back to queued with its last error
and an exponential backoff; after OUTBOX_MAX_ATTEMPTS it is marked failed and
waits for an administrator to requeue it. A message left "sending" by a
worker that died is requeued after a lease; it keeps its Message-ID so a
receiving server can discard a duplicate.
"""

from __future__ import annotations

import base64
import datetime
import functools
import logging
import smtplib
import threading
import time
import uuid
from email.header import Header
from email.utils import formataddr, formatdate, parseaddr

from flask import current_app
from sqlalchemy import Connection, and_, or_, select, update
from sqlalchemy.orm import Session

from app.lib.logging import scrub
from app.models.outbox import FAILED, NORMAL, QUEUED, SENDING, SENT, OutboxMessage

log = logging.getLogger(__name__)
LEASE = datetime.timedelta(minutes=5)
# Set when a transaction that enqueued mail commits: the worker thread of this
# process wakes at once instead of at its next poll.
_wakeup = threading.Event()


def _after_commit(session) -> None:
    if session.info.pop("outbox_pending", False):
        _wakeup.set()


def _after_rollback(session) -> None:
    session.info.pop("outbox_pending", None)


def install_wakeup(session) -> None:
    """Wake this process's worker when mail is committed (the poll stays the fallback)."""
    from sqlalchemy import event

    if not event.contains(session, "after_commit", _after_commit):
        event.listen(session, "after_commit", _after_commit)
        event.listen(session, "after_soft_rollback", lambda s, _tx: _after_rollback(s))


def enqueue(session: Session, recipient: str, subject: str, body: str, topic: str | None = None,
            priority: int = NORMAL) -> OutboxMessage:  # fmt: skip
    """Add a message to the caller's transaction: no commit, so a rollback sends nothing.

    Due messages go out by ``priority`` (lower first), then in order.
    """
    domain = _sender()[1].split("@")[-1] or "localhost"
    msg = OutboxMessage(
        recipient=recipient,
        subject=subject,
        body=body,
        topic=topic,
        status=QUEUED,
        attempts=0,
        next_attempt_at=datetime.datetime.utcnow(),
        message_id=f"<{uuid.uuid4().hex}@{domain}>",
        priority=priority,
    )
    session.info["outbox_pending"] = True
    session.add(msg)
    return msg


def _now() -> datetime.datetime:
    return datetime.datetime.utcnow()


def _due(now):
    t = OutboxMessage.__table__
    return or_(
        and_(t.c.status == QUEUED, t.c.next_attempt_at <= now),
        and_(t.c.status == SENDING, t.c.claimed_at < now - LEASE),
    )


def _claim_batch(session: Session, limit: int) -> list[int]:
    """Move up to ``limit`` due messages to "sending" for this worker only.

    One UPDATE over rows locked with SKIP LOCKED (PostgreSQL): two workers
    never claim the same message and never wait for each other. Elsewhere
    (SQLite: one writer at a time) the same statement is atomic as it is.
    """
    t = OutboxMessage.__table__
    now = _now()
    ids = (
        select(t.c.id)
        .where(_due(now))
        .order_by(t.c.priority, t.c.next_attempt_at, t.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    columns = (t.c.id, t.c.recipient, t.c.subject, t.c.body, t.c.message_id, t.c.attempts)
    if session.get_bind().dialect.update_returning:
        # The pick as a CTE, which PostgreSQL runs once: as an IN (subquery) it
        # was planned so that the LIMIT did not bound the UPDATE.
        picked = ids.cte("picked")
        claimed = session.execute(
            update(t).where(t.c.id == picked.c.id, _due(now)).values(status=SENDING, claimed_at=now)
            .returning(*columns)
        ).all()  # fmt: skip
    else:  # one conditional UPDATE per message
        mine = []
        for msg_id in session.execute(ids).scalars().all():
            res = session.execute(update(t).where(t.c.id == msg_id, _due(now)).values(status=SENDING, claimed_at=now))
            if res.rowcount == 1:
                mine.append(msg_id)
        claimed = session.execute(select(*columns).where(t.c.id.in_(mine))).all() if mine else []
    session.commit()
    return sorted(claimed, key=lambda m: m.id)


def backoff(attempts: int) -> datetime.timedelta:
    cfg = current_app.config
    base = cfg["OUTBOX_BACKOFF_SECONDS"]
    cap = cfg["OUTBOX_BACKOFF_MAX_SECONDS"]
    return datetime.timedelta(seconds=min(cap, base * (2 ** max(attempts - 1, 0))))


def _address(address: str) -> str:
    """An address as SMTP takes it: a non-ASCII domain in its IDNA form."""
    if any(c in address for c in "\r\n"):
        raise ValueError("line break in an address")
    if address.isascii():
        return address
    local, _, domain = address.rpartition("@")
    if not local.isascii():
        raise ValueError("non-ASCII characters before the @ of an address")
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        raise ValueError("the domain of an address cannot be encoded") from None  # never the address itself


def _message(msg, sender: str, recipient: str) -> bytes:
    """The message as sent: plain UTF-8 text, base64 (what Flask-Mail's Message
    made, built directly: the email package took a millisecond a mail).
    ``sender``: the From header; ``recipient``: as ``_address`` gives it."""
    if any(c in (msg.message_id or "") for c in "\r\n"):
        raise ValueError("line break in the Message-ID")
    headers = [f"From: {sender}", f"To: {recipient}", f"Subject: {Header(msg.subject, 'utf-8').encode()}",
               f"Date: {formatdate(localtime=True)}", f"Message-ID: {msg.message_id}", "MIME-Version: 1.0",
               'Content-Type: text/plain; charset="utf-8"', "Content-Transfer-Encoding: base64"]  # fmt: skip
    body = base64.encodebytes(msg.body.encode("utf-8")).decode("ascii").replace("\n", "\r\n")
    return ("\r\n".join(headers) + "\r\n\r\n" + body).encode("ascii")


def _sender() -> tuple[str, str]:
    """MAIL_DEFAULT_SENDER ("addr", "Name <addr>" or (name, addr)) as the From
    header (a non-ASCII name encoded) and the envelope address."""
    sender = current_app.config.get("MAIL_DEFAULT_SENDER")
    return _parse_sender(tuple(sender) if isinstance(sender, (tuple, list)) else str(sender))


@functools.lru_cache(maxsize=8)
def _parse_sender(sender: str | tuple) -> tuple[str, str]:
    name, address = sender if isinstance(sender, tuple) else parseaddr(sender)
    address = _address(address)
    return formataddr((name, address), charset="utf-8"), address


def _failed(out: Connection, msg, exc: Exception, counts: dict) -> None:
    attempts = msg.attempts + 1
    values = {"attempts": attempts, "last_error": scrub(f"{type(exc).__name__}: {exc}")[:500], "claimed_at": None}
    if attempts >= current_app.config["OUTBOX_MAX_ATTEMPTS"]:
        values["status"] = FAILED
        counts["failed"] += 1
    else:
        values.update(status=QUEUED, next_attempt_at=_now() + backoff(attempts))
        counts["retried"] += 1
    _set(out, msg.id, values)
    log.warning("outbox message %s not sent (attempt %s): %s", msg.id, attempts, type(exc).__name__)


def _set(out: Connection, msg_id: int, values: dict) -> None:
    t = OutboxMessage.__table__
    out.execute(update(t).where(t.c.id == msg_id).values(values))


def _release(out: Connection, ids: list[int]) -> None:
    """Give claimed but untried messages back, untouched (SMTP is down)."""
    if ids:
        t = OutboxMessage.__table__
        out.execute(update(t).where(t.c.id.in_(ids), t.c.status == SENDING).values(status=QUEUED, claimed_at=None))


class SmtpLink:
    """One SMTP connection kept open across a worker's rounds.

    Opening one (TCP, greeting, EHLO, STARTTLS, login) costs more than sending
    a short message, so a worker that sends every few milliseconds keeps it;
    it is closed on any error, and reopened after OUTBOX_SMTP_IDLE_SECONDS
    without mail (servers drop idle clients).
    """

    def __init__(self, mail, idle: float):
        self.mail, self.idle = mail, idle
        self.connection = self.smtp = None
        self.used = 0.0
        self.reused = False

    def open(self):
        if self.smtp is not None and time.monotonic() - self.used < self.idle:
            self.reused = True
            return self.smtp
        self.close()
        connection = self.mail.connect()
        self.smtp = connection.__enter__()
        self.connection, self.reused = connection, False
        return self.smtp

    def send(self, sender: str, recipient: str, message: bytes) -> None:
        try:
            self._send(sender, recipient, message)
        except smtplib.SMTPServerDisconnected:
            if not self.reused:
                raise
            self.close()  # the server had dropped the kept connection: once more on a new one
            self.open()
            self._send(sender, recipient, message)
        self.reused = True
        self.used = time.monotonic()

    def _send(self, sender: str, recipient: str, message: bytes) -> None:
        if self.smtp.host is not None:  # None: MAIL_SUPPRESS_SEND
            self.smtp.host.sendmail(sender, [recipient], message)

    def close(self) -> None:
        if self.connection is not None:
            try:
                self.connection.__exit__(None, None, None)
            except Exception:
                pass
        self.connection = self.smtp = None


def work_once(session: Session, limit: int = 100, link: SmtpLink | None = None) -> dict:
    """Send what is due over one SMTP connection (``link``'s, kept open, or a
    new one closed after the round). Returns counts: sent, retried, failed."""
    counts = {"sent": 0, "retried": 0, "failed": 0}
    sender, envelope = _sender()  # a bad MAIL_DEFAULT_SENDER fails here, before anything is claimed
    messages = _claim_batch(session, limit)
    if not messages:
        return counts
    own = link is None
    link = link or SmtpLink(current_app.extensions["mail"], idle=0)
    # Each outcome is written as it happens, by one statement that commits at
    # once (one round trip): a crash never re-sends a sent message.
    with session.get_bind().connect().execution_options(isolation_level="AUTOCOMMIT") as out:
        try:
            link.open()
        except Exception as exc:  # SMTP is down: one attempt counted, the rest untouched
            link.close()
            _failed(out, messages[0], exc, counts)
            _release(out, [m.id for m in messages[1:]])
            return counts
        try:
            for i, msg in enumerate(messages):
                try:
                    recipient = _address(msg.recipient)
                    link.send(envelope, recipient, _message(msg, sender, recipient))
                except Exception as exc:
                    link.close()
                    _failed(out, msg, exc, counts)
                    if isinstance(exc, (ConnectionError, OSError, TimeoutError)):
                        _release(out, [m.id for m in messages[i + 1 :]])
                        break
                    link.open()
                else:
                    _set(out, msg.id, {"status": SENT, "sent_at": _now(), "attempts": msg.attempts + 1,
                                       "last_error": None, "claimed_at": None})  # fmt: skip
                    counts["sent"] += 1
        finally:
            if own:
                link.close()
    return counts


def requeue(session: Session, msg: OutboxMessage) -> None:
    """An administrator puts a failed message back in the queue."""
    if msg.status != FAILED:
        return
    msg.status = QUEUED
    msg.attempts = 0
    msg.next_attempt_at = _now()


def queue_counts(session: Session) -> dict:
    from sqlalchemy import func

    rows = session.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all()
    return {status: n for status, n in rows}


class OutboxThread(threading.Thread):
    """Runs the worker inside the web server, on one kept SMTP connection."""

    def __init__(self, app, poll: float | None = None):
        super().__init__(name="outbox-worker", daemon=True)
        self.app = app
        self.poll = poll or app.config["OUTBOX_POLL_SECONDS"]
        self.gather = float(app.config.get("OUTBOX_GATHER_SECONDS", 0.01))
        self.limit = int(app.config.get("OUTBOX_ROUND_LIMIT", 10))
        self.link = SmtpLink(app.extensions["mail"], idle=float(app.config.get("OUTBOX_SMTP_IDLE_SECONDS", 30)))
        self.stopping = threading.Event()

    def run(self) -> None:
        from app.extensions import db

        while not self.stopping.is_set():
            full = False
            with self.app.app_context():
                try:
                    counts = work_once(db.session, limit=self.limit, link=self.link)
                    full = sum(counts.values()) >= self.limit
                except Exception as exc:
                    db.session.rollback()
                    self.link.close()
                    log.warning("outbox worker round failed: %s", type(exc).__name__)
                finally:
                    db.session.remove()
            if full:  # more may be due: the next round at once
                continue
            if _wakeup.wait(self.poll):
                # Gather what other requests commit in the next moment into the same round.
                self.stopping.wait(self.gather)
                _wakeup.clear()
        self.link.close()

    def stop(self) -> None:
        self.stopping.set()
        _wakeup.set()
