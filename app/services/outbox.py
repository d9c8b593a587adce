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

import datetime
import logging
import smtplib
import threading
import time
import uuid

from flask import current_app
from flask_mail import Message
from sqlalchemy import and_, or_, select, update
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
    domain = (current_app.config.get("MAIL_DEFAULT_SENDER") or "platform@localhost").split("@")[-1]
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
    if session.get_bind().dialect.update_returning:
        # The pick as a CTE, which PostgreSQL runs once: as an IN (subquery) it
        # was planned so that the LIMIT did not bound the UPDATE.
        picked = ids.cte("picked")
        claimed = session.execute(
            update(t).where(t.c.id == picked.c.id, _due(now)).values(status=SENDING, claimed_at=now)
            .returning(t.c.id)
        ).scalars().all()  # fmt: skip
    else:  # one conditional UPDATE per message
        claimed = []
        for msg_id in session.execute(ids).scalars().all():
            res = session.execute(update(t).where(t.c.id == msg_id, _due(now)).values(status=SENDING, claimed_at=now))
            if res.rowcount == 1:
                claimed.append(msg_id)
    session.commit()
    return sorted(claimed)


def backoff(attempts: int) -> datetime.timedelta:
    cfg = current_app.config
    base = cfg["OUTBOX_BACKOFF_SECONDS"]
    cap = cfg["OUTBOX_BACKOFF_MAX_SECONDS"]
    return datetime.timedelta(seconds=min(cap, base * (2 ** max(attempts - 1, 0))))


def _message(msg) -> Message:
    return Message(
        subject=msg.subject,
        recipients=[msg.recipient],
        body=msg.body,
        charset="utf-8",
        extra_headers={"Message-ID": msg.message_id},
    )


def _failed(session: Session, msg, exc: Exception, counts: dict) -> None:
    attempts = msg.attempts + 1
    values = {"attempts": attempts, "last_error": scrub(f"{type(exc).__name__}: {exc}")[:500], "claimed_at": None}
    if attempts >= current_app.config["OUTBOX_MAX_ATTEMPTS"]:
        values["status"] = FAILED
        counts["failed"] += 1
    else:
        values.update(status=QUEUED, next_attempt_at=_now() + backoff(attempts))
        counts["retried"] += 1
    _set(session, msg.id, values)
    log.warning("outbox message %s not sent (attempt %s): %s", msg.id, attempts, type(exc).__name__)


def _set(session: Session, msg_id: int, values: dict) -> None:
    t = OutboxMessage.__table__
    session.execute(update(t).where(t.c.id == msg_id).values(values))


def _release(session: Session, ids: list[int]) -> None:
    """Give claimed but untried messages back, untouched (SMTP is down)."""
    if ids:
        t = OutboxMessage.__table__
        session.execute(update(t).where(t.c.id.in_(ids), t.c.status == SENDING).values(status=QUEUED, claimed_at=None))


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

    def send(self, message) -> None:
        try:
            self.smtp.send(message)
        except smtplib.SMTPServerDisconnected:
            if not self.reused:
                raise
            self.close()  # the server had dropped the kept connection: once more on a new one
            self.open().send(message)
        self.reused = True
        self.used = time.monotonic()

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
    claimed = _claim_batch(session, limit)
    if not claimed:
        return counts
    # Plain rows, and plain UPDATEs below: a message is written once after its
    # try and never read back (ORM objects would be expired by every commit
    # and reloaded one by one).
    t = OutboxMessage.__table__
    messages = session.execute(
        select(t.c.id, t.c.recipient, t.c.subject, t.c.body, t.c.message_id, t.c.attempts)
        .where(t.c.id.in_(claimed))
        .order_by(t.c.id)
    ).all()
    own = link is None
    link = link or SmtpLink(current_app.extensions["mail"], idle=0)
    try:
        link.open()
    except Exception as exc:  # SMTP is down: one attempt counted, the rest untouched
        link.close()
        _failed(session, messages[0], exc, counts)
        _release(session, [m.id for m in messages[1:]])
        session.commit()
        return counts
    try:
        for i, msg in enumerate(messages):
            try:
                link.send(_message(msg))
            except Exception as exc:
                link.close()
                _failed(session, msg, exc, counts)
                if isinstance(exc, (ConnectionError, OSError, TimeoutError)):
                    _release(session, [m.id for m in messages[i + 1 :]])
                    session.commit()
                    break
                link.open()
            else:
                _set(session, msg.id, {"status": SENT, "sent_at": _now(), "attempts": msg.attempts + 1,
                                       "last_error": None, "claimed_at": None})  # fmt: skip
                counts["sent"] += 1
            # Record each outcome as it happens: a crash never re-sends a sent message.
            session.commit()
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
        self.link = SmtpLink(app.extensions["mail"], idle=float(app.config.get("OUTBOX_SMTP_IDLE_SECONDS", 30)))
        self.stopping = threading.Event()

    def run(self) -> None:
        from app.extensions import db

        while not self.stopping.is_set():
            with self.app.app_context():
                try:
                    work_once(db.session, link=self.link)
                except Exception as exc:
                    db.session.rollback()
                    self.link.close()
                    log.warning("outbox worker round failed: %s", type(exc).__name__)
                finally:
                    db.session.remove()
            if _wakeup.wait(self.poll):
                # Gather what other requests commit in the next moment into the same round.
                self.stopping.wait(self.gather)
                _wakeup.clear()
        self.link.close()

    def stop(self) -> None:
        self.stopping.set()
        _wakeup.set()
