"""The mail outbox: enqueue in the caller's transaction; a worker process sends.

Delivery: a worker (``flask worker outbox``, its own process) claims a batch of
messages with one conditional UPDATE over rows locked with SKIP LOCKED (only
one worker can move a message from queued to sending), commits the claim,
hands them to SMTP, then marks each sent. A failure puts it back to queued
with its last error and an exponential backoff; after OUTBOX_MAX_ATTEMPTS it
is marked failed and waits for an administrator to requeue it. A message left
"sending" by a worker that died is requeued after a lease; it keeps its
Message-ID so a receiving server can discard a duplicate.

Coalescing: a message may carry a coalescing key, its own line (``part``)
and the text of a combined mail (``digest_subject``/``digest_body``, the
lines at CHANGES). When the worker claims one, it takes every message of the
same key and recipient still queued (due or not; locked with SKIP LOCKED
on PostgreSQL, so two workers never take the same one) as "merged" into it
(``merged_into``) and sends one mail listing every line, in the claim's
transaction: each merged message's line goes out in exactly one mail, and
the combined text is written on the carrying message, so a retry or a
requeue sends the same mail again. The citizen's progress mails wait
CITIZEN_MAIL_WINDOW_MINUTES (``not_before``) so that what follows joins them.

Waking: on PostgreSQL a transaction that enqueued mail sends ``NOTIFY
platform_outbox`` as it commits (a rolled-back one sends nothing) and the
worker, LISTENing, starts a round at once; elsewhere, and as the fallback,
the worker looks every OUTBOX_POLL_SECONDS.
"""

from __future__ import annotations

import datetime
import functools
import logging
import smtplib
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, parseaddr
from types import SimpleNamespace

from flask import current_app
from sqlalchemy import Connection, and_, create_engine, event, func, or_, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from app.lib.logging import scrub
from app.models.outbox import FAILED, MERGED, NORMAL, QUEUED, SENDING, SENT, OutboxMessage
from app.services import audit
from app.services.actors import Actor
from app.services.command import transaction

log = logging.getLogger(__name__)
LEASE = datetime.timedelta(minutes=5)
CHANNEL = "platform_outbox"
CHANGES = "\x1echanges\x1e"  # where a combined mail lists its lines
# What a claim reads of each message (the sender needs nothing else).
CLAIMED_COLUMNS = ("id", "recipient", "subject", "body", "message_id", "attempts", "coalesce_key")


def _before_commit(session) -> None:
    if session.info.pop("outbox_pending", False) and session.get_bind().dialect.name == "postgresql":
        # Delivered when (and only if) the transaction commits.
        session.execute(text(f"NOTIFY {CHANNEL}"))


def _after_rollback(session, _transaction) -> None:
    session.info.pop("outbox_pending", None)


def install_wakeup(session) -> None:
    """Tell the worker processes when mail is committed (PostgreSQL NOTIFY; their poll stays the fallback)."""
    if not event.contains(session, "before_commit", _before_commit):
        event.listen(session, "before_commit", _before_commit)
        event.listen(session, "after_soft_rollback", _after_rollback)


def enqueue(
    session: Session,
    recipient: str,
    subject: str,
    body: str,
    topic: str | None = None,
    priority: int = NORMAL,
    *,
    coalesce_key: str | None = None,
    part: str | None = None,
    digest_subject: str | None = None,
    digest_body: str | None = None,
    not_before: datetime.datetime | None = None,
) -> OutboxMessage:
    """Add a message to the caller's transaction: no commit, so a rollback sends nothing.

    Due messages go out by ``priority`` (lower first), then in order, not before
    ``not_before`` (UTC). With a ``coalesce_key``, the messages of that key and
    recipient still queued when one goes are sent with it as one mail: the
    last one's ``digest_subject``/``digest_body`` (the last without a ``part``
    if any: a closing mail) with every ``part`` listed at CHANGES (or at its end).
    """
    domain = _sender()[1].split("@")[-1] or "localhost"
    msg = OutboxMessage(
        recipient=recipient,
        subject=subject,
        body=body,
        topic=topic,
        status=QUEUED,
        attempts=0,
        next_attempt_at=not_before or datetime.datetime.utcnow(),
        message_id=f"<{uuid.uuid4().hex}@{domain}>",
        priority=priority,
        coalesce_key=coalesce_key,
        part=part,
        digest_subject=digest_subject,
        digest_body=digest_body,
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
    columns = tuple(t.c[name] for name in CLAIMED_COLUMNS)
    if session.get_bind().dialect.update_returning:
        # The pick as a CTE, which PostgreSQL runs once: as an IN (subquery) it
        # was planned so that the LIMIT did not bound the UPDATE.
        picked = ids.cte("picked")
        claimed = session.execute(
            update(t).where(t.c.id == picked.c.id, _due(now)).values(status=SENDING, claimed_at=now).returning(*columns)
        ).all()
    else:  # one conditional UPDATE per message
        mine = []
        for msg_id in session.execute(ids).scalars().all():
            res = session.execute(update(t).where(t.c.id == msg_id, _due(now)).values(status=SENDING, claimed_at=now))
            if res.rowcount == 1:
                mine.append(msg_id)
        claimed = session.execute(select(*columns).where(t.c.id.in_(mine))).all() if mine else []
    claimed = _coalesce(session, sorted(claimed, key=lambda m: m.id), now)
    session.commit()
    return claimed


def _coalesce(session: Session, claimed: list, now: datetime.datetime) -> list:
    """In the claim's transaction: each claimed message with a coalescing key takes the
    queued messages of its key and recipient (and the others of this batch) as merged
    into it, and gets the combined text. Returns the messages to send."""
    t = OutboxMessage.__table__
    out, leaders = [], {}
    for msg in claimed:
        if msg.coalesce_key is None:
            out.append(msg)
            continue
        leader = leaders.get((msg.coalesce_key, msg.recipient))
        if leader is None:
            leaders[(msg.coalesce_key, msg.recipient)] = msg
        else:  # two of one key claimed together: the first carries the second
            _merge(session, msg.coalesce_key, [msg.id], leader.id, now)
    for (key, recipient), leader in leaders.items():
        waiting = (
            select(t.c.id)
            .where(t.c.coalesce_key == key, t.c.recipient == recipient, t.c.status == QUEUED, t.c.id != leader.id)
            .order_by(t.c.id)
            .with_for_update(skip_locked=True)
        )
        _merge(session, key, session.execute(waiting).scalars().all(), leader.id, now)
        rows = session.execute(
            select(t.c.id, t.c.subject, t.c.body, t.c.part, t.c.digest_subject, t.c.digest_body)
            .where(t.c.coalesce_key == key, or_(t.c.id == leader.id, t.c.merged_into == leader.id))
            .order_by(t.c.id)
        ).all()
        values = {name: getattr(leader, name) for name in CLAIMED_COLUMNS}
        if len(rows) > 1:
            values["subject"], values["body"] = _combined(rows)
            session.execute(update(t).where(t.c.id == leader.id).values(subject=values["subject"], body=values["body"]))
        out.append(SimpleNamespace(**values))
    return sorted(out, key=lambda m: m.id)


def _merge(session: Session, key: str, ids: list[int], leader_id: int, now: datetime.datetime) -> None:
    """``ids`` (queued or claimed in this batch) go out with ``leader_id``; what any of them
    carried (a message that had failed and was waiting) now goes with it too."""
    if not ids:
        return
    t = OutboxMessage.__table__
    session.execute(
        update(t)
        .where(t.c.id.in_(ids), t.c.status.in_((QUEUED, SENDING)))
        .values(status=MERGED, merged_into=leader_id, claimed_at=now)
    )
    session.execute(update(t).where(t.c.coalesce_key == key, t.c.merged_into.in_(ids)).values(merged_into=leader_id))


def _combined(rows) -> tuple[str, str]:
    """One mail of several: the closing one's text (the last without a line) or else the
    last one's, with every line listed at CHANGES (appended when the text has no place)."""
    frame = next((r for r in reversed(rows) if not r.part), rows[-1])
    lines = "\n".join(f"・{r.part}" for r in rows if r.part)
    subject = frame.digest_subject or frame.subject
    body = frame.digest_body or frame.body
    body = body.replace(CHANGES, lines) if CHANGES in body else (f"{body.rstrip()}\n\n{lines}" if lines else body)
    return subject[:255], body


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


def _message(msg, sender: tuple[str, str], recipient: str) -> EmailMessage:
    """The message as sent: plain UTF-8 text in base64, headers encoded by the email package.

    ``sender``: (display name, address) for the From header; ``recipient``: as
    ``_address`` gives it. A line break in a header raises ValueError.
    """
    if any(c in (msg.message_id or "") for c in "\r\n"):
        raise ValueError("line break in the Message-ID")
    mail = EmailMessage(policy=SMTP)
    name, address = sender
    local, _, domain = address.rpartition("@")
    mail["From"] = Address(display_name=name or "", username=local, domain=domain)
    mail["To"] = recipient
    mail["Subject"] = msg.subject
    mail["Date"] = formatdate(localtime=True)
    mail["Message-ID"] = msg.message_id
    mail.set_content(msg.body, charset="utf-8", cte="base64")
    return mail


def _sender() -> tuple[tuple[str, str], str]:
    """MAIL_DEFAULT_SENDER ("addr", "Name <addr>" or (name, addr)) as (name, address)
    for the From header, and the envelope address."""
    sender = current_app.config.get("MAIL_DEFAULT_SENDER")
    return _parse_sender(tuple(sender) if isinstance(sender, (tuple, list)) else str(sender))


@functools.lru_cache(maxsize=8)
def _parse_sender(sender: str | tuple) -> tuple[tuple[str, str], str]:
    name, address = sender if isinstance(sender, tuple) else parseaddr(sender)
    address = _address(address)
    return (name, address), address


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


def smtp_connect(config) -> smtplib.SMTP:
    """A logged-in SMTP connection as Flask-Mail's settings describe it
    (MAIL_SERVER, MAIL_PORT, MAIL_USE_SSL, MAIL_USE_TLS, MAIL_USERNAME,
    MAIL_PASSWORD), with MAIL_TIMEOUT; TLS certificates are verified."""
    host, port = config["MAIL_SERVER"], int(config["MAIL_PORT"])
    timeout = float(config.get("MAIL_TIMEOUT", 10))
    if config.get("MAIL_USE_SSL"):
        smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=ssl.create_default_context())
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
    try:
        if config.get("MAIL_USE_TLS") and not config.get("MAIL_USE_SSL"):
            smtp.starttls(context=ssl.create_default_context())
        if config.get("MAIL_USERNAME") and config.get("MAIL_PASSWORD"):
            smtp.login(config["MAIL_USERNAME"], config["MAIL_PASSWORD"])
    except BaseException:
        smtp.close()
        raise
    return smtp


def _suppressed(config) -> bool:
    """MAIL_SUPPRESS_SEND, defaulting to TESTING as in Flask-Mail: nothing leaves."""
    return bool(config.get("MAIL_SUPPRESS_SEND", config.get("TESTING", False)))


class SmtpLink:
    """One SMTP connection kept open across a worker's rounds.

    Opening one (TCP, greeting, EHLO, STARTTLS, login) costs more than sending
    a short message, so a worker that sends every few milliseconds keeps it;
    it is closed on any error, and reopened after OUTBOX_SMTP_IDLE_SECONDS
    without mail (servers drop idle clients).
    """

    def __init__(self, config, idle: float):
        self.config, self.idle = config, idle
        self.smtp: smtplib.SMTP | None = None
        self.used = 0.0
        self.reused = False

    def open(self) -> None:
        if self.smtp is not None and time.monotonic() - self.used < self.idle:
            self.reused = True
            return
        self.close()
        self.smtp = None if _suppressed(self.config) else smtp_connect(self.config)
        self.reused = False
        self.used = time.monotonic()

    def send(self, envelope: str, recipient: str, message: EmailMessage) -> None:
        try:
            self._send(envelope, recipient, message)
        except smtplib.SMTPServerDisconnected:
            if not self.reused:
                raise
            self.close()  # the server had dropped the kept connection: once more on a new one
            self.open()
            self._send(envelope, recipient, message)
        self.reused = True
        self.used = time.monotonic()

    def _send(self, envelope: str, recipient: str, message: EmailMessage) -> None:
        if self.smtp is not None:  # None: MAIL_SUPPRESS_SEND
            self.smtp.send_message(message, from_addr=envelope, to_addrs=[recipient])

    def close(self) -> None:
        smtp, self.smtp = self.smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()


def work_once(session: Session, limit: int = 100, link: SmtpLink | None = None) -> dict:
    """Send what is due over one SMTP connection (``link``'s, kept open, or a
    new one closed after the round). Returns counts: sent, retried, failed."""
    counts = {"sent": 0, "retried": 0, "failed": 0}
    sender, envelope = _sender()  # a bad MAIL_DEFAULT_SENDER fails here, before anything is claimed
    messages = _claim_batch(session, limit)
    if not messages:
        return counts
    own = link is None
    link = link or SmtpLink(current_app.config, idle=0)
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
                    try:
                        link.open()
                    except Exception as down:  # SMTP went away meanwhile: the rest wait, untouched
                        log.warning("outbox cannot reconnect to SMTP: %s", type(down).__name__)
                        _release(out, [m.id for m in messages[i + 1 :]])
                        break
                else:
                    _set(
                        out,
                        msg.id,
                        {
                            "status": SENT,
                            "sent_at": _now(),
                            "attempts": msg.attempts + 1,
                            "last_error": None,
                            "claimed_at": None,
                        },
                    )
                    counts["sent"] += 1
        finally:
            if own:
                link.close()
    return counts


def requeue(session: Session, actor: Actor, ids: list[int]) -> int:
    """An administrator puts failed messages back in the queue (a command: its own
    transaction, audited with the count). Returns how many were requeued."""
    t = OutboxMessage.__table__
    with transaction(session):
        done = session.execute(
            update(t)
            .where(t.c.id.in_(ids), t.c.status == FAILED)
            .values(status=QUEUED, attempts=0, next_attempt_at=_now(), claimed_at=None)
        ).rowcount
        audit.record(session, "outbox.requeue", object_type="OutboxMessage", detail={"requeued": done}, actor=actor)
        session.info["outbox_pending"] = bool(done)
    return done


def queue_counts(session: Session) -> dict:
    rows = session.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all()
    return {status: n for status, n in rows}


# --- the worker process ----------------------------------------------------


class _Waiter:
    """Waits for the next round: a NOTIFY on PostgreSQL (LISTEN on a connection
    of its own, psycopg 3), else the poll interval; never longer than ``poll``."""

    SLICE = 0.25  # how often a LISTENing wait looks at the stop event

    def __init__(self, engine, stop: threading.Event):
        self.stop = stop
        self.url = engine.url if engine.dialect.name == "postgresql" else None
        self.engine = self.raw = self.listener = None
        if self.url is not None:
            self._listen()  # before the first round: no commit after it goes unheard

    def _listen(self) -> None:
        try:
            self.engine = create_engine(self.url, poolclass=NullPool)
            self.raw = self.engine.raw_connection()
            listener = self.raw.driver_connection
            if not callable(getattr(listener, "notifies", None)):  # another driver: poll only
                self.url = None
                self.close()
                return
            listener.autocommit = True
            listener.execute(f"LISTEN {CHANNEL}")
            self.listener = listener
        except Exception as exc:  # the database is away: poll, and LISTEN again next time
            log.warning("outbox worker cannot LISTEN: %s", type(exc).__name__)
            self.close()

    def wait(self, poll: float) -> bool:
        """True when woken by a commit, False after ``poll`` seconds or on stop."""
        if self.listener is None and self.url is not None:
            self._listen()
        if self.listener is None:
            self.stop.wait(poll)
            return False
        deadline = time.monotonic() + poll
        try:
            while not self.stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                if any(True for _ in self.listener.notifies(timeout=min(left, self.SLICE), stop_after=1)):
                    for _ in self.listener.notifies(timeout=0):  # drain: one round serves them all
                        pass
                    return True
        except Exception as exc:  # the LISTENing connection broke: the next round looks anyway
            log.warning("outbox worker lost its LISTEN connection: %s", type(exc).__name__)
            self.close()
        return False

    def close(self) -> None:
        raw, engine = self.raw, self.engine
        self.engine = self.raw = self.listener = None
        if raw is not None:
            try:
                raw.close()
            except Exception:
                pass
        if engine is not None:
            engine.dispose()


def run(
    app, stop: threading.Event, *, poll: float | None = None, on_round: Callable[[dict], None] | None = None
) -> None:
    """The outbox worker (``flask worker outbox``): send rounds until ``stop`` is set.

    The round in hand is finished before it returns. One SMTP connection is
    kept across rounds. A round that found a full batch is followed at once by
    the next; otherwise it waits for a commit's NOTIFY or ``poll`` seconds
    (OUTBOX_POLL_SECONDS). ``on_round`` is called with each round's counts
    (the tests wait on it). Logs counts and error types only.
    """
    from app.extensions import db

    cfg = app.config
    poll = poll or cfg["OUTBOX_POLL_SECONDS"]
    gather = float(cfg.get("OUTBOX_GATHER_SECONDS", 0.01))
    limit = int(cfg.get("OUTBOX_ROUND_LIMIT", 10))
    link = SmtpLink(cfg, idle=float(cfg.get("OUTBOX_SMTP_IDLE_SECONDS", 30)))
    with app.app_context():
        waiter = _Waiter(db.engine, stop)
    try:
        while not stop.is_set():
            counts = {"sent": 0, "retried": 0, "failed": 0}
            with app.app_context():
                try:
                    counts = work_once(db.session, limit=limit, link=link)
                except Exception as exc:  # the database or SMTP went away: the next round retries
                    db.session.rollback()
                    link.close()
                    log.warning("outbox round failed: %s", type(exc).__name__)
                finally:
                    db.session.remove()
            if counts["sent"] or counts["retried"] or counts["failed"]:
                log.info("outbox: sent %(sent)s, retried %(retried)s, failed %(failed)s", counts)
            if on_round is not None:
                on_round(counts)
            if sum(counts.values()) >= limit:  # more may be due: the next round at once
                continue
            if waiter.wait(poll):
                # Gather what other requests commit in the next moment into the same round.
                stop.wait(gather)
    finally:
        link.close()
        waiter.close()
