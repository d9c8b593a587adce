"""Signed checkpoints: the chain's head, length and time, signed with an
Ed25519 key kept outside the database, appended to a file outside it
(``AUDIT_CHECKPOINT_FILE``, one JSON object a line) and e-mailed to the
auditors through the outbox.

A database writer who cuts rows off the chain's tail and winds its head back
leaves a chain that verifies on its own; the last checkpoint saw it longer,
and they cannot sign a shorter one. A checkpoint is written only when the
chain still holds the previous checkpoint's link and every link after it
verifies, so the sealer never signs a rewritten chain.

A line: ``{"v": 1, "kind": "checkpoint", "seq": N, "hash": "...", "count": N,
"at": "2026-12-03T06:00:00Z", "key": "<public key id>", "sig": "<base64>"}``;
``sig`` is the Ed25519 signature of the line's other fields as JSON with
sorted keys and no spaces. ``openssl pkeyutl -verify -pubin -inkey
audit-public.pem -rawin -in <those bytes> -sigfile <sig>`` checks one.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from flask import current_app
from sqlalchemy import func, select

from app.models.audit import AuditEvent, AuditHead
from app.models.outbox import OutboxMessage
from app.services.audit.chain import GENESIS, Checkpoint, chain_key, walk

log = logging.getLogger(__name__)
FORMAT = 1
MAIL_TOPIC = "audit:checkpoint"


class CheckpointRefused(Exception):
    """The chain does not extend the last signed checkpoint: nothing is signed."""


# --- keys -----------------------------------------------------------------


def signing_key(hex_key: str | None = None) -> Ed25519PrivateKey:
    """The Ed25519 private key of ``AUDIT_SIGNING_KEY`` (64 hex digits)."""
    hex_key = hex_key or current_app.config["AUDIT_SIGNING_KEY"]
    try:
        raw = bytes.fromhex(hex_key.strip())
        return Ed25519PrivateKey.from_private_bytes(raw)
    except ValueError:
        raise RuntimeError("AUDIT_SIGNING_KEY must be 64 hexadecimal digits (an Ed25519 private key)") from None


def public_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    """An auditor's copy of the public key (PEM, as `flask audit public-key` prints it)."""
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def key_id(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """A short name of the public key: the first 16 hex digits of SHA-256 of its raw bytes."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


# --- lines ----------------------------------------------------------------


def signed_bytes(fields: dict) -> bytes:
    """What the signature covers: every field but ``sig``, as compact JSON with sorted keys."""
    body = {k: v for k, v in fields.items() if k != "sig"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sign(fields: dict, key: Ed25519PrivateKey) -> dict:
    fields = {**fields, "key": key_id(key)}
    return {**fields, "sig": base64.b64encode(key.sign(signed_bytes(fields))).decode()}


def _parse(line: str, number: int, public: Ed25519PublicKey) -> Checkpoint:
    """One line as a checkpoint; raises ValueError when its signature does not verify."""
    try:
        fields = json.loads(line)
        sig = base64.b64decode(fields["sig"], validate=True)
        public.verify(sig, signed_bytes(fields))
        return Checkpoint(
            seq=int(fields["seq"]), hash=str(fields["hash"]), count=int(fields["count"]), at=str(fields["at"]),
            line=number, kind=str(fields.get("kind") or "checkpoint"),
        )  # fmt: skip
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error, InvalidSignature):
        raise ValueError(f"checkpoint line {number}") from None


def read(path: str | Path, public: Ed25519PublicKey) -> tuple[list[Checkpoint], list[str]]:
    """The checkpoints of a file whose signature verifies under ``public``,
    and a problem for each line that does not (forged, altered, another key)."""
    found, problems = [], []
    path = Path(path)
    if not path.exists():
        return found, problems
    with path.open(encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                found.append(_parse(line, number, public))
            except ValueError:
                problems.append(
                    f"checkpoint line {number} of {path.name}: its signature does not verify"
                    " under the given public key (forged, altered, or signed by another key)"
                )
    return found, problems


def latest(path: str | Path, public: Ed25519PublicKey, tail: int = 65536) -> Checkpoint | None:
    """The last line of the file that verifies (only its tail is read: the
    sealer asks every round, and the file grows for years)."""
    path = Path(path)
    if not path.exists():
        return None
    with path.open("rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - tail))
        lines = fh.read().decode("utf-8", errors="replace").splitlines()
    if size > tail:
        lines = lines[1:]  # the first may be cut
    for line in reversed(lines):
        if line.strip():
            try:
                return _parse(line, 0, public)
            except ValueError:
                continue
    return None


def append_line(path: Path, fields: dict) -> None:
    """One line, appended with O_APPEND in one write (two sealers never interleave)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(fields, sort_keys=True, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


# --- writing --------------------------------------------------------------


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def stamp_now() -> str:
    """The time of a signed line: now, UTC, to the second."""
    return _stamp(_now())


def _stamp(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def write(engine, config=None) -> dict | None:
    """Sign the chain's head as it is committed now and append it to the file.

    Returns the line written, or None when the head is the one last signed.
    Raises ``CheckpointRefused`` when the chain no longer holds the last
    checkpoint's link or a link after it does not verify.
    """
    config = config or current_app.config
    key = signing_key(config["AUDIT_SIGNING_KEY"])
    path = Path(config["AUDIT_CHECKPOINT_FILE"])
    last = latest(path, key.public_key())
    chain = chain_key()
    with engine.connect() as conn:
        head = conn.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).first()
        seq, tip = (head.seq, head.hash) if head is not None else (0, GENESIS)
        if last is not None and (last.seq, last.hash) == (seq, tip):
            return None
        start_seq, start_hash = 0, GENESIS
        if last is not None:
            if seq < last.seq:
                raise CheckpointRefused(
                    f"the chain's head is at seq {seq}, behind the checkpoint of {last.at} (seq {last.seq})"
                )
            held = conn.scalar(select(AuditEvent.hash).where(AuditEvent.seq == last.seq)) if last.seq else GENESIS
            if held is None:
                # The row was archived and removed: the chain continues from the
                # signed archive line of its month.
                last = _archived_base(conn, path, key.public_key(), last)
            elif held != last.hash:
                raise CheckpointRefused(f"row seq {last.seq} no longer holds the link signed on {last.at}")
            start_seq, start_hash = last.seq, last.hash
        # Only a chain that verifies up to the head is signed.
        w = walk(conn, chain, start_seq, start_hash, stop_seq=seq)
        if w.reason is not None:
            raise CheckpointRefused(f"seq {w.bad_seq}: {w.reason}")
        if w.last_seq != seq or w.last_hash != tip:
            raise CheckpointRefused(f"the chain's head (seq {seq}) does not match its last row (seq {w.last_seq})")
        count = conn.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.seq.is_not(None)))
    fields = sign(
        {"v": FORMAT, "kind": "checkpoint", "seq": seq, "hash": tip, "count": count, "at": _stamp(_now())}, key
    )
    append_line(path, fields)
    return fields


def _archived_base(conn, path: Path, public: Ed25519PublicKey, last: Checkpoint) -> Checkpoint:
    """The signed archive line the chain in the database continues from, when
    ``last``'s row is gone: the newest archive line at or after ``last``, whose
    seq is just before the first row left. Raises CheckpointRefused otherwise."""
    signed, _ = read(path, public)
    archives = [cp for cp in signed if cp.kind == "archive" and cp.seq >= last.seq]
    first = conn.scalar(select(func.min(AuditEvent.seq)))
    for cp in sorted(archives, key=lambda cp: cp.seq, reverse=True):
        if first is None or cp.seq == first - 1:
            return cp
    raise CheckpointRefused(f"row seq {last.seq}, signed on {last.at}, is gone and no signed archive line covers it")


# --- the sealer's schedule ---------------------------------------------


def last_mailed(engine) -> datetime.datetime | None:
    """When a checkpoint was last queued for the auditors (naive UTC), if ever."""
    with engine.connect() as conn:
        return conn.scalar(select(func.max(OutboxMessage.created_at)).where(OutboxMessage.topic == MAIL_TOPIC))


@dataclass
class Schedule:
    """The sealer's checkpoints: one to the file when the chain has grown and
    ``AUDIT_CHECKPOINT_SECONDS`` have passed, one to the auditors every
    ``AUDIT_CHECKPOINT_MAIL_SECONDS`` through ``mailer(engine, fields)``
    (``app.services.checkpoint_mail.mail``; none: no mail). A refusal is
    logged and recorded once per reason."""

    file_seconds: float
    mail_seconds: float
    mailer: Callable[..., int] | None = None
    written_at: datetime.datetime | None = None
    mailed_at: datetime.datetime | None = None
    refused: str | None = None

    @classmethod
    def from_config(cls, config, mailer: Callable[..., int] | None = None) -> Schedule:
        return cls(float(config["AUDIT_CHECKPOINT_SECONDS"]), float(config["AUDIT_CHECKPOINT_MAIL_SECONDS"]), mailer)

    def tick(self, engine, config=None) -> dict | None:
        config = config or current_app.config
        now = _now()
        if self.mailed_at is None:
            before = last_mailed(engine)
            self.mailed_at = (
                before.replace(tzinfo=datetime.UTC) if before else datetime.datetime.min.replace(tzinfo=datetime.UTC)
            )
        if self.written_at is not None and (now - self.written_at).total_seconds() < self.file_seconds:
            return None
        try:
            fields = write(engine, config)
        except CheckpointRefused as exc:
            if str(exc) != self.refused:
                self.refused = str(exc)
                log.error("audit checkpoint refused: %s", exc)
                _record_refusal(str(exc))
            self.written_at = now
            return None
        self.refused = None
        self.written_at = now
        due = (now - self.mailed_at).total_seconds() >= self.mail_seconds
        if fields is not None and self.mailer is not None and due:
            self.mailer(engine, fields, config)
            self.mailed_at = now
        return fields


def _record_refusal(reason: str) -> None:
    """A security event: the chain no longer extends what was signed."""
    from app.extensions import db
    from app.services.audit.recording import record

    try:
        record(db.session, "audit_checkpoint_refused", object_type="AuditChain", outcome="error",
               detail={"reason": reason[:300]})  # fmt: skip
        db.session.commit()
    except Exception as exc:
        db.session.rollback()
        log.warning("could not record the refused checkpoint: %s", type(exc).__name__)
    finally:
        db.session.remove()
