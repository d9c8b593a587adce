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
import threading
import uuid

from flask import current_app
from flask_mail import Message
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from app.lib.logging import scrub
from app.models.outbox import FAILED, QUEUED, SENDING, SENT, OutboxMessage

log = logging.getLogger(__name__)
LEASE = datetime.timedelta(minutes=5)


def enqueue(session: Session, recipient: str, subject: str, body: str, topic: str | None = None) -> OutboxMessage:
    """Add a message to the caller's transaction: no commit, so a rollback sends nothing."""
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
    )
    session.add(msg)
    return msg


def _now() -> datetime.datetime:
    return datetime.datetime.utcnow()


def _claim(session: Session, msg_id: int) -> bool:
    t = OutboxMessage.__table__
    now = _now()
    res = session.execute(
        update(t)
        .where(
            t.c.id == msg_id,
            or_(
                and_(t.c.status == QUEUED, t.c.next_attempt_at <= now),
                and_(t.c.status == SENDING, t.c.claimed_at < now - LEASE),
            ),
        )
        .values(status=SENDING, claimed_at=now)
    )
    session.commit()
    return res.rowcount == 1


def backoff(attempts: int) -> datetime.timedelta:
    cfg = current_app.config
    base = cfg["OUTBOX_BACKOFF_SECONDS"]
    cap = cfg["OUTBOX_BACKOFF_MAX_SECONDS"]
    return datetime.timedelta(seconds=min(cap, base * (2 ** max(attempts - 1, 0))))


def _send(mail, msg: OutboxMessage) -> None:
    message = Message(
        subject=msg.subject,
        recipients=[msg.recipient],
        body=msg.body,
        charset="utf-8",
        extra_headers={"Message-ID": msg.message_id},
    )
    mail.send(message)


def work_once(session: Session, limit: int = 100) -> dict:
    """Send what is due. Returns counts: sent, retried, failed."""
    mail = current_app.extensions["mail"]
    now = _now()
    due = (
        session.execute(
            select(OutboxMessage.id)
            .where(
                or_(
                    and_(OutboxMessage.status == QUEUED, OutboxMessage.next_attempt_at <= now),
                    and_(OutboxMessage.status == SENDING, OutboxMessage.claimed_at < now - LEASE),
                )
            )
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(limit)
        )
        .scalars()
        .all()
    )
    session.commit()
    counts = {"sent": 0, "retried": 0, "failed": 0}
    connection_failed = False
    for msg_id in due:
        if connection_failed:
            break  # SMTP is down: leave the rest for the next round, untouched
        if not _claim(session, msg_id):
            continue  # another worker has it
        msg = session.get(OutboxMessage, msg_id)
        try:
            _send(mail, msg)
        except Exception as exc:  # SMTP refused, connection down, timeout...
            msg.attempts += 1
            msg.last_error = scrub(f"{type(exc).__name__}: {exc}")[:500]
            msg.claimed_at = None
            if msg.attempts >= current_app.config["OUTBOX_MAX_ATTEMPTS"]:
                msg.status = FAILED
                counts["failed"] += 1
            else:
                msg.status = QUEUED
                msg.next_attempt_at = _now() + backoff(msg.attempts)
                counts["retried"] += 1
            connection_failed = isinstance(exc, (ConnectionError, OSError, TimeoutError))
            log.warning("outbox message %s not sent (attempt %s): %s", msg.id, msg.attempts, type(exc).__name__)
        else:
            msg.status = SENT
            msg.sent_at = _now()
            msg.attempts += 1
            msg.last_error = None
            counts["sent"] += 1
        session.commit()
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
    """Runs the worker inside the demo web server."""

    def __init__(self, app, poll: float | None = None):
        super().__init__(name="outbox-worker", daemon=True)
        self.app = app
        self.poll = poll or app.config["OUTBOX_POLL_SECONDS"]
        self.stopping = threading.Event()

    def run(self) -> None:
        from app.extensions import db

        while not self.stopping.is_set():
            with self.app.app_context():
                try:
                    work_once(db.session)
                except Exception as exc:
                    db.session.rollback()
                    log.warning("outbox worker round failed: %s", type(exc).__name__)
                finally:
                    db.session.remove()
            self.stopping.wait(self.poll)

    def stop(self) -> None:
        self.stopping.set()
