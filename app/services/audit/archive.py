"""Retention: a month of the audit trail and the query log archived to one
signed, compressed file, checked offline, then removed from the database; the
chain continues across the removal through a signed ``archive`` line in the
checkpoint file.

A file (``audit-archive-YYYY-MM.arc``)::

    AUDIT-ARCHIVE 1\\n
    <manifest: one line of compact JSON with sorted keys, signed>\\n
    <gzip body: JSON lines, the month's audit events by seq, then its
     query-log rows, their query_subject rows and their access flags>

The manifest names the month, the previous archive's month and the SHA-256 of
its file (so a missing month or months out of order show), the events'
``first_seq``..``last_seq`` with the link before the first (``prev_hash``)
and the last link (``last_hash``), the row counts, and the body's size and
SHA-256; ``sig`` is the Ed25519 signature (``AUDIT_SIGNING_KEY``, as the
checkpoints) of its other fields. One byte changed anywhere fails: in the
manifest its signature (or its canonical form), in the body its digest.
``tail -n +3 FILE | gunzip`` reads the body.

No month is ever held in memory: the rows stream from the database into the
compressed body (a file beside the archive, hashed as it is written), which is
then copied in pieces behind the signed manifest; ``verify_files`` reads a file
in pieces too (``bench/retention_bench.py --archive`` measures both).

Which events a month holds: those of the chain after the previous archive up
to the last event written before the month ended (``seq`` is given when an
event is sealed, so an event of the next month committed a moment earlier can
sit among them; it goes with this month's file, and the next file starts
after it). Every event of the month is in it; none is in two files.

Query-log values encrypted at rest (parameters, snapshots) are archived as
stored: the archive holds ciphertext under the field keys of the day
(``FIELD_ENCRYPTION_KEYS``: keep retired keys with the archives).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import gzip
import hashlib
import hmac
import json
import os
import shutil
import tempfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from flask import current_app
from sqlalchemy import Text, delete, func, select, type_coerce, update

from app.models.audit import AuditArchive, AuditEvent
from app.models.portal import AccessFlag
from app.models.queries import QueryLog, QuerySubject
from app.services.audit import checkpoints, partitions
from app.services.audit.chain import GENESIS, chain_key, digest, walk

MAGIC = b"AUDIT-ARCHIVE 1\n"
FORMAT = 1
ACTION = "audit_archive"
CHUNK = 1 << 20  # files are written, hashed and read back in pieces of this size, never whole
MAX_MANIFEST = 1 << 16  # a manifest line is a few hundred bytes


class ArchiveRefused(Exception):
    """The month cannot be archived (yet): the reason names what to do."""


# --- months -----------------------------------------------------------------


def parse_month(month: str) -> datetime.date:
    """``YYYY-MM`` as the first day of that month; raises ValueError."""
    if not isinstance(month, str) or len(month) != 7 or month[4] != "-":
        raise ValueError(f"{month!r} is not a month as YYYY-MM")
    return datetime.date(int(month[:4]), int(month[5:]), 1)


def next_month(month: str) -> str:
    day = parse_month(month)
    return f"{day.year + day.month // 12:04d}-{day.month % 12 + 1:02d}"


def bounds(month: str) -> tuple[datetime.datetime, datetime.datetime]:
    """The month as naive UTC times [start, end)."""
    start = parse_month(month)
    end = parse_month(next_month(month))
    return datetime.datetime(start.year, start.month, 1), datetime.datetime(end.year, end.month, 1)


def month_of(moment: datetime.datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def months_back(moment: datetime.datetime, months: int) -> datetime.datetime:
    """The first instant of the month ``months`` before ``moment``'s month."""
    index = moment.year * 12 + moment.month - 1 - months
    return datetime.datetime(index // 12, index % 12 + 1, 1)


# --- state ------------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveState:
    """The last month archived (for the auditors' desk and the status pages)."""

    month: str
    file_name: str
    file_sha256: str
    last_seq: int
    events: int
    query_logs: int
    created_at: datetime.datetime
    removed_at: datetime.datetime | None


def last_archive(session) -> ArchiveState | None:
    """The newest archive made, or None when nothing was ever archived."""
    row = session.scalar(select(AuditArchive).order_by(AuditArchive.month.desc()).limit(1))
    if row is None:
        return None
    return ArchiveState(row.month, row.file_name, row.file_sha256, row.last_seq, row.events, row.query_logs,
                        row.created_at, row.removed_at)  # fmt: skip


def _earliest_month(conn) -> str | None:
    """The month of the oldest row still in the audit trail or the query log."""
    first = [conn.scalar(select(func.min(AuditEvent.at))), conn.scalar(select(func.min(QueryLog.at)))]
    first = [moment for moment in first if moment is not None]
    return month_of(min(first)) if first else None


def due_months(session, now: datetime.datetime | None = None, config=None) -> list[str]:
    """The months older than the retention not yet archived, oldest first."""
    config = config or current_app.config
    now = now or datetime.datetime.utcnow()
    cutoff = months_back(now, int(config["AUDIT_RETENTION_MONTHS"]))
    last = last_archive(session)
    month = next_month(last.month) if last else _earliest_month(session.connection())
    due = []
    while month is not None and bounds(month)[1] <= cutoff:
        due.append(month)
        month = next_month(month)
    return due


# --- making an archive ------------------------------------------------------


def _iso(value):
    if isinstance(value, datetime.datetime):
        return value.isoformat(timespec="microseconds")
    return value


def _rows(conn, statement, kind: str):
    with conn.execute(statement.execution_options(yield_per=2000)) as result:
        for row in result.mappings():
            yield {"t": kind, **{k: _iso(v) for k, v in row.items()}}


def _columns(table):
    """Every column as stored (encrypted ones as their ciphertext)."""
    from app.lib.fieldcrypt import EncryptedText

    return [type_coerce(c, Text).label(c.key) if isinstance(c.type, EncryptedText) else c for c in table.columns]


@dataclass
class Made:
    month: str
    path: Path
    manifest: dict
    removed: bool = False


def _previous(session, month: str) -> tuple[AuditArchive | None, str | None]:
    last = session.scalar(select(AuditArchive).order_by(AuditArchive.month.desc()).limit(1))
    if last is not None:
        if last.month >= month:
            raise ArchiveRefused(f"{month} is already archived (the last archive is {last.month})")
        if next_month(last.month) != month:
            raise ArchiveRefused(f"archive {next_month(last.month)} first: months are archived in order")
        return last, None
    earliest = _earliest_month(session.connection())
    if earliest is not None and earliest < month:
        raise ArchiveRefused(f"archive {earliest} first: it holds the oldest rows")
    return None, earliest


def archive_month(session, actor, month: str, now: datetime.datetime | None = None, config=None) -> Made:
    """Write the month's signed archive file and its signed line in the checkpoint
    file, and index it (audited). Removes nothing (``remove_month`` does).

    Raises ValueError (not a month), ArchiveRefused (within the retention, not
    the next month in order, events of the month not yet sealed, a broken chain)."""
    from app.services import audit
    from app.services.command import transaction

    config = config or current_app.config
    now = now or datetime.datetime.utcnow()
    start, end = bounds(month)
    if end > months_back(now, int(config["AUDIT_RETENTION_MONTHS"])):
        raise ArchiveRefused(f"{month} is within the retention of {config['AUDIT_RETENTION_MONTHS']} months")
    key = checkpoints.signing_key(config["AUDIT_SIGNING_KEY"])
    chain = chain_key()
    folder = Path(config["AUDIT_ARCHIVE_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"audit-archive-{month}.arc"
    with transaction(session):
        previous, _ = _previous(session, month)
        conn = session.connection()
        t = AuditEvent.__table__
        waiting = conn.scalar(select(func.count()).select_from(t).where(t.c.seq.is_(None), t.c.at < end))
        if waiting:
            raise ArchiveRefused(
                f"{waiting} events written before the end of {month} are not sealed into the chain"
                " (see `flask audit verify`)"
            )
        prev_seq = previous.last_seq if previous else 0
        prev_hash = previous.last_hash if previous else GENESIS
        last_seq = conn.scalar(select(func.max(t.c.seq)).where(t.c.at < end)) or prev_seq
        last_seq = max(last_seq, prev_seq)
        w = walk(conn, chain, prev_seq, prev_hash, stop_seq=last_seq)
        if w.reason is not None or w.last_seq != last_seq:
            raise ArchiveRefused(f"the chain does not verify: seq {w.bad_seq}: {w.reason or 'rows missing'}")
        q, s = QueryLog.__table__, QuerySubject.__table__
        in_month = (q.c.at >= start) & (q.c.at < end)
        counts = {"events": 0, "query_logs": 0, "query_subjects": 0, "access_flags": 0}
        flags = AccessFlag.__table__
        parts = (
            ("events", select(*_columns(t)).where(t.c.seq > prev_seq, t.c.seq <= last_seq).order_by(t.c.seq),
             "audit_event"),
            ("query_logs", select(*_columns(q)).where(in_month).order_by(q.c.id), "query_log"),
            ("query_subjects", select(s).where(s.c.query_log_id.in_(select(q.c.id).where(in_month)))
             .order_by(s.c.query_log_id, s.c.subject_hash), "query_subject"),
            # "I don't recognise this" flags on the month's queries, removed with them
            ("access_flags", select(*_columns(flags)).where(
                flags.c.query_log_id.in_(select(q.c.id).where(in_month))).order_by(flags.c.id),
             "access_flag"),
        )  # fmt: skip
        # The body streams to a file beside the archive (hashed as it is written); the
        # manifest, which names its size and digest, then goes before it in the archive.
        with tempfile.TemporaryFile(dir=folder, prefix=".body-") as spool:
            body = _Hashing(spool)
            with gzip.GzipFile(filename="", fileobj=body, mode="wb", mtime=0) as gz:
                for name, statement, kind in parts:
                    for row in _rows(conn, statement, kind):
                        gz.write(json.dumps(row, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode())
                        gz.write(b"\n")
                        counts[name] += 1
            manifest = checkpoints.sign(
                {
                    "v": FORMAT,
                    "kind": "archive",
                    "month": month,
                    "prev_month": previous.month if previous else None,
                    "prev_file_sha256": previous.file_sha256 if previous else None,
                    "first_seq": prev_seq + 1,
                    "last_seq": last_seq,
                    "prev_hash": prev_hash,
                    "last_hash": w.last_hash,
                    **counts,
                    "body_size": body.size,
                    "body_sha256": body.sha256.hexdigest(),
                    "created": checkpoints.stamp_now(),
                },
                key,
            )
            spool.seek(0)
            partial = path.with_name(path.name + ".part")
            with open(partial, "wb") as fh:
                out = _Hashing(fh)
                out.write(MAGIC + _manifest_line(manifest))
                shutil.copyfileobj(spool, out, CHUNK)
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(partial, path)
        file_sha = out.sha256.hexdigest()
        # The chain continues from this line once the rows are gone.
        line = checkpoints.sign(
            {"v": checkpoints.FORMAT, "kind": "archive", "seq": last_seq, "hash": w.last_hash,
             "count": counts["events"], "at": checkpoints.stamp_now(), "month": month,
             "file_sha256": file_sha},
            key,
        )  # fmt: skip
        checkpoints.append_line(Path(config["AUDIT_CHECKPOINT_FILE"]), line)
        session.add(
            AuditArchive(month=month, file_name=path.name, file_sha256=file_sha, first_seq=prev_seq + 1,
                         last_seq=last_seq, last_hash=w.last_hash, created_at=now, events=counts["events"],
                         query_logs=counts["query_logs"], query_subjects=counts["query_subjects"])
        )  # fmt: skip
        audit.record(session, ACTION, object_type="AuditArchive", object_id=month,
                     detail={**counts, "file": path.name, "sha256": file_sha}, actor=actor)  # fmt: skip
    return Made(month, path, manifest)


class _Hashing:
    """A file written through: what goes in is hashed (SHA-256) and counted on its way."""

    def __init__(self, fh):
        self.fh, self.sha256, self.size = fh, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.fh.write(data)

    def flush(self) -> None:
        self.fh.flush()


def _manifest_line(manifest: dict) -> bytes:
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode() + b"\n"


def remove_month(session, actor, month: str) -> dict:
    """Remove the archived month's rows (its events, query-log rows and their
    subjects) in one transaction, audited; returns the counts removed.

    Raises ArchiveRefused when the month has no archive, or when the rows
    differ in number from what the archive holds (nothing is removed)."""
    from app.services import audit
    from app.services.command import transaction

    with transaction(session):
        made = session.scalar(select(AuditArchive).where(AuditArchive.month == month))
        if made is None:
            raise ArchiveRefused(f"{month} has no archive: nothing is removed before it is archived")
        if made.removed_at is not None:
            return {"events": 0, "query_logs": 0, "query_subjects": 0}
        removed = _remove_rows(session.connection(), made)
        expected = {"events": made.events, "query_logs": made.query_logs, "query_subjects": made.query_subjects}
        if removed != expected:
            raise ArchiveRefused(
                f"{month}: the database holds other rows than the archive ({removed} against {expected});"
                " nothing was removed"
            )
        session.execute(
            update(AuditArchive).where(AuditArchive.id == made.id).values(removed_at=datetime.datetime.utcnow())
        )
        audit.record(session, "audit_archive_removed", object_type="AuditArchive", object_id=month,
                     detail=removed, actor=actor)  # fmt: skip
    return removed


def _remove_rows(conn, made: AuditArchive) -> dict:
    """Remove the archived rows: on PostgreSQL by dropping the month's partitions
    (``partitions``), else (or for a month without partitions) by deleting them."""
    start, end = bounds(made.month)
    t, q, s = AuditEvent.__table__, QueryLog.__table__, QuerySubject.__table__
    in_month = (q.c.at >= start) & (q.c.at < end)
    logs = select(q.c.id).where(in_month)
    # "I don't recognise this" flags on the month's queries (no database cascade on a partitioned log)
    flags = AccessFlag.__table__
    conn.execute(delete(flags).where(flags.c.query_log_id.in_(logs)))
    subjects = partitions.drop_month(conn, "query_subject", made.month)
    if subjects is None:
        subjects = conn.execute(delete(s).where(s.c.query_log_id.in_(logs))).rowcount
    query_logs = partitions.drop_month(conn, "query_log", made.month)
    if query_logs is None:
        query_logs = conn.execute(delete(q).where(in_month)).rowcount
    in_range = (t.c.seq >= made.first_seq) & (t.c.seq <= made.last_seq)
    events = None
    if partitions.is_partitioned(conn, "audit_event") and partitions.has_partition(conn, "audit_event", made.month):
        # The events of the next month sealed among this month's go one by one; the month's partition
        # then holds only archived events (else nothing is dropped).
        stray = conn.execute(delete(t).where(in_range, (t.c.at < start) | (t.c.at >= end))).rowcount
        outside = conn.scalar(select(func.count()).select_from(t).where(t.c.at >= start, t.c.at < end, ~in_range))
        if not outside:
            events = stray + partitions.drop_month(conn, "audit_event", made.month)
    if events is None:
        events = conn.execute(delete(t).where(in_range)).rowcount
    return {"query_subjects": subjects, "query_logs": query_logs, "events": events}


def blank_old_snapshots(session, actor, now: datetime.datetime | None = None, config=None) -> int:
    """Blank the stored result snapshots older than QUERY_SNAPSHOT_RETENTION_MONTHS
    (their SHA-256 stays, so a printout still verifies by its digest); audited."""
    from app.services import audit
    from app.services.command import transaction

    config = config or current_app.config
    cutoff = months_back(now or datetime.datetime.utcnow(), int(config["QUERY_SNAPSHOT_RETENTION_MONTHS"]))
    q = QueryLog.__table__
    with transaction(session):
        count = session.execute(
            update(q).where(q.c.at < cutoff, q.c.snapshot.is_not(None)).values(snapshot=None)
        ).rowcount
        if count:
            audit.record(session, "query_snapshots_blanked", object_type="QueryLog",
                         detail={"count": count, "before": cutoff.date().isoformat()}, actor=actor)  # fmt: skip
    return count


def archive_due(session, actor, now: datetime.datetime | None = None, config=None) -> list[Made]:
    """The worker's round: blank the snapshots past their retention, then archive
    and remove every month past the retention, oldest first."""
    blank_old_snapshots(session, actor, now, config)
    done = []
    for month in due_months(session, now, config):
        made = archive_month(session, actor, month, now, config)
        remove_month(session, actor, month)
        made.removed = True
        done.append(made)
    return done


# --- verifying archives offline -------------------------------------------------


@dataclass
class FileCheck:
    path: Path
    month: str | None = None
    manifest: dict | None = None
    sha256: str | None = None
    problems: list[str] = field(default_factory=list)


@dataclass
class ArchiveCheck:
    files: list[FileCheck]

    @property
    def problems(self) -> list[str]:
        return [problem for check in self.files for problem in check.problems]

    @property
    def ok(self) -> bool:
        return not self.problems


def _read(check: FileCheck, public: Ed25519PublicKey) -> int | None:
    """Read the file once, in pieces: its SHA-256, and its manifest checked (signature, then the
    body's size and digest). The body's offset when both hold; None (a problem noted) otherwise."""
    name, whole, body = check.path.name, hashlib.sha256(), hashlib.sha256()
    with open(check.path, "rb") as fh:
        magic = fh.read(len(MAGIC))
        line = fh.readline(MAX_MANIFEST) if magic == MAGIC else b""
        whole.update(magic + line)
        size = 0
        while chunk := fh.read(CHUNK):
            whole.update(chunk)
            body.update(chunk)
            size += len(chunk)
    check.sha256 = whole.hexdigest()
    if magic != MAGIC:
        check.problems.append(f"{name}: not an audit archive (its first line is not {MAGIC.decode().strip()!r})")
        return None
    try:
        manifest = json.loads(line)
        if not isinstance(manifest, dict) or _manifest_line(manifest) != line:
            raise ValueError
        public.verify(base64.b64decode(manifest["sig"], validate=True), checkpoints.signed_bytes(manifest))
    except (ValueError, KeyError, TypeError, binascii.Error, InvalidSignature):
        check.problems.append(
            f"{name}: its manifest's signature does not verify under the given public key"
            " (the manifest was altered, or signed by another key)"
        )
        return None
    check.manifest = manifest
    check.month = manifest.get("month")
    if size != manifest.get("body_size") or body.hexdigest() != manifest.get("body_sha256"):
        check.problems.append(f"{name}: its content does not match the signed digest (the file was altered)")
        return None
    return len(MAGIC) + len(line)


def _body_rows(path: Path, offset: int):
    """The body's rows, one at a time (decompressed as they are read)."""
    with open(path, "rb") as fh:
        fh.seek(offset)
        with gzip.GzipFile(fileobj=fh, mode="rb") as gz:
            for line in gz:
                yield json.loads(line)


def _check_body(check: FileCheck, offset: int, key: bytes | None) -> None:
    name, m = check.path.name, check.manifest
    counts = {"events": 0, "query_logs": 0, "query_subjects": 0, "access_flags": 0}
    kinds = {"audit_event": "events", "query_log": "query_logs", "query_subject": "query_subjects",
             "access_flag": "access_flags"}  # fmt: skip
    expected_seq, prev = m["first_seq"], m["prev_hash"]
    start, end = bounds(m["month"])
    start_s, end_s = start.isoformat(timespec="microseconds"), end.isoformat(timespec="microseconds")
    try:
        for row in _body_rows(check.path, offset):
            found = row.get("t") if isinstance(row, dict) else row
            kind = kinds.get(found) if isinstance(found, str) else None
            if kind is None:
                check.problems.append(f"{name}: a row of unknown kind {found!r}")
                return
            counts[kind] += 1
            if kind == "events":
                seq = row.get("seq")
                if seq != expected_seq:
                    check.problems.append(f"{name}: event seq {expected_seq} is missing (next is seq {seq})")
                    return
                if row.get("prev_hash") != prev:
                    check.problems.append(
                        f"{name}: event seq {seq}: its previous-hash link does not match the row before"
                    )
                    return
                if key is not None and not hmac.compare_digest(digest(prev, row, key), row.get("hash") or ""):
                    check.problems.append(f"{name}: event seq {seq}: its content does not match its keyed hash")
                    return
                prev = row.get("hash")
                expected_seq += 1
            elif kind == "query_logs" and not (start_s <= (row.get("at") or "") < end_s):
                check.problems.append(f"{name}: query-log row {row.get('id')} is not of {m['month']}")
                return
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        check.problems.append(f"{name}: its content cannot be read ({type(exc).__name__})")
        return
    if expected_seq - 1 != m["last_seq"] or prev != m["last_hash"]:
        check.problems.append(f"{name}: its events end at seq {expected_seq - 1}, the manifest says {m['last_seq']}")
    wanted = {k: m.get(k) for k in counts}
    if counts != wanted:
        check.problems.append(f"{name}: it holds {counts}, its manifest says {wanted}")


def verify_files(paths: Iterable[str | Path], public: Ed25519PublicKey, key: bytes | None = None) -> ArchiveCheck:
    """Check archive files offline (no database): each file's signature, digest,
    rows and links (their keyed hashes too when ``key``, AUDIT_CHAIN_KEY, is
    given); and, in the order given, that each continues the one before
    (the next month, the previous file's SHA-256, the chain's link). Every
    problem names its file. A file is read in pieces, twice (its digest, then
    its rows), never held whole in memory."""
    checks = []
    for raw in paths:
        check = FileCheck(Path(raw))
        checks.append(check)
        try:
            offset = _read(check, public)
            if offset is not None:
                _check_body(check, offset, key)
        except OSError as exc:
            check.problems.append(f"{check.path.name}: cannot be read ({exc.strerror or type(exc).__name__})")
    for before, check in zip(checks, checks[1:], strict=False):
        if before.manifest is None or check.manifest is None:
            continue
        name, m, b = check.path.name, check.manifest, before.manifest
        if m["month"] <= b["month"]:
            check.problems.append(f"{name}: {m['month']} is out of order (it comes after {b['month']})")
        elif m["month"] != next_month(b["month"]):
            check.problems.append(
                f"{name}: {m['month']} does not follow {b['month']}: the archive of {next_month(b['month'])} is missing"
            )
        elif m.get("prev_month") != b["month"] or m.get("prev_file_sha256") != before.sha256:
            check.problems.append(f"{name}: it does not continue {before.path.name} (another file of {b['month']})")
        elif m["first_seq"] != b["last_seq"] + 1 or m["prev_hash"] != b["last_hash"]:
            check.problems.append(f"{name}: its chain does not continue from {before.path.name}")
    return ArchiveCheck(checks)
