"""Retention: old months of the audit trail and the query log archived to
signed files, checked offline, removed; the chain continues across the removal."""

from __future__ import annotations

import datetime
import gzip
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models.audit import AuditArchive, AuditEvent
from app.models.portal import AccessFlag
from app.models.queries import QueryLog, QuerySubject
from app.services import audit
from app.services.actors import OPERATOR
from app.services.audit import archive, partitions
from app.services.audit.recording import append, event_values

MONTHS = ("2020-01", "2020-02", "2020-03")


@pytest.fixture
def old_app(backend, tmp_path):
    """A copy of the seeded database holding three months of 2020 (events and query-log rows)."""
    from tests.conftest import build_app

    database = backend.clone(tmp_path)
    application = build_app(
        database.url,
        migrate=False,
        DEMO_SOURCES_DIR=backend.sources_dir,
        AUDIT_CHECKPOINT_FILE=str(tmp_path / "checkpoints.jsonl"),
        AUDIT_ARCHIVE_DIR=str(tmp_path / "archive"),
    )
    with application.app_context():
        for month in MONTHS:
            start, _ = archive.bounds(month)
            with db.engine.begin() as conn:
                events = []
                for day in range(1, 4):
                    ev = event_values("query", object_type="QueryLog", object_id=day, actor=OPERATOR)
                    ev["at"] = start + datetime.timedelta(days=day, microseconds=day)
                    events.append(ev)
                append(conn, events)
                new_id = conn.execute(
                    insert(QueryLog.__table__).returning(QueryLog.id),
                    {"at": start + datetime.timedelta(days=2), "username": "clerk", "form_code": "T",
                     "outcome": "ok", "row_count": 1, "params": '{"id_no": "A123456789"}'},
                ).scalar_one()  # fmt: skip
                conn.execute(insert(QuerySubject.__table__),
                             {"query_log_id": new_id, "subject_hash": "ab" * 32, "at": start})  # fmt: skip
                conn.execute(insert(AccessFlag.__table__),
                             {"query_log_id": new_id, "user_id": 1, "agency_code": "TAX", "note": "不認得",
                              "created_at": start, "due_at": start})  # fmt: skip
        audit.seal_all(db.engine)
        if db.engine.dialect.name == "postgresql":
            # Partitions for the months, made after their rows arrived (they move out of the default partition).
            with db.engine.begin() as conn:
                for month in MONTHS:
                    for table in partitions.TABLES:
                        assert partitions.create_month(conn, table, month)
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()
    database.drop()


def _cli(app, *args):
    result = app.test_cli_runner().invoke(args=list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def _count(model, *where):
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def test_old_months_are_archived_verified_offline_removed_and_the_chain_continues(old_app, tmp_path):
    with old_app.app_context():
        assert archive.due_months(db.session)[:3] == list(MONTHS)
        # Within the retention, or out of order: refused, nothing written.
        with pytest.raises(archive.ArchiveRefused):
            archive.archive_month(db.session, OPERATOR, "2026-11")
        with pytest.raises(archive.ArchiveRefused):
            archive.archive_month(db.session, OPERATOR, "2020-02")
        with pytest.raises(ValueError):
            archive.bounds("2020-13")

    for month in MONTHS:
        code, output = _cli(old_app, "audit", "archive", "--month", month)
        assert code == 0, output
        assert "removed from the database" in output
    files = [str(tmp_path / "archive" / f"audit-archive-{m}.arc") for m in MONTHS]

    with old_app.app_context():
        start, _ = archive.bounds(MONTHS[0])
        _, end = archive.bounds(MONTHS[-1])
        assert _count(QueryLog, QueryLog.at < end) == 0
        assert _count(QuerySubject, QuerySubject.at < end) == 0
        assert _count(AccessFlag, AccessFlag.created_at < end) == 0
        assert _count(AuditEvent, AuditEvent.at < end, AuditEvent.at >= start) == 0
        with db.engine.connect() as conn:  # on PostgreSQL the months' partitions were dropped
            assert not any(partitions.has_partition(conn, t, m) for t in partitions.TABLES for m in MONTHS
                           if partitions.is_partitioned(conn, t))  # fmt: skip
        made = db.session.scalars(select(AuditArchive).order_by(AuditArchive.month)).all()
        assert [m.month for m in made] == list(MONTHS) and all(m.removed_at for m in made)
        assert [m.query_logs for m in made] == [1, 1, 1]
        assert archive.last_archive(db.session).month == MONTHS[-1]
        # every step is audited
        actions = set(db.session.scalars(select(AuditEvent.action).where(AuditEvent.object_type == "AuditArchive")))
        assert {"audit_archive", "audit_archive_removed"} <= actions
        audit.record(db.session, "test_event", object_type="Test", object_id=1)
        db.session.commit()
        audit.seal_all(db.engine)

    # The chain in the database continues from the signed archive line.
    code, output = _cli(old_app, "audit", "checkpoint", "--no-mail")
    assert code == 0, output
    code, output = _cli(old_app, "audit", "verify")
    assert code == 0, output

    code, output = _cli(old_app, "audit", "verify", "--archive", *files)
    assert code == 0, output
    assert "3 files" in output
    manifest = json.loads(Path(files[0]).read_bytes().split(b"\n")[1])
    assert (manifest["query_logs"], manifest["query_subjects"], manifest["access_flags"]) == (1, 1, 1)

    # One byte changed in the body, in the manifest; a missing month; months out of order.
    body_changed = tmp_path / "body.arc"
    data = bytearray(Path(files[1]).read_bytes())
    data[-30] ^= 0x01
    body_changed.write_bytes(bytes(data))
    code, output = _cli(old_app, "audit", "verify", "--archive", files[0], str(body_changed), files[2])
    assert code == 1 and "body.arc" in output and "digest" in output, output

    head_changed = tmp_path / "head.arc"
    data = bytearray(Path(files[1]).read_bytes())
    data[data.index(b'"events":') + 9] ^= 0x01
    head_changed.write_bytes(bytes(data))
    code, output = _cli(old_app, "audit", "verify", "--archive", str(head_changed))
    assert code == 1 and "head.arc" in output and "signature" in output, output

    code, output = _cli(old_app, "audit", "verify", "--archive", files[0], files[2])
    assert code == 1 and "audit-archive-2020-03.arc" in output and "2020-02 is missing" in output, output

    code, output = _cli(old_app, "audit", "verify", "--archive", files[1], files[0])
    assert code == 1 and "audit-archive-2020-01.arc" in output and "out of order" in output, output

    # A body cut short (or rows altered) under a manifest signed again with the platform's key: the
    # digest holds, and the rows, read as they are decompressed, say what is wrong.
    with old_app.app_context():
        from app.services.audit import checkpoints

        key = checkpoints.signing_key(old_app.config["AUDIT_SIGNING_KEY"])
        public = key.public_key()
        data = Path(files[1]).read_bytes()
        head_end = data.index(b"\n", len(archive.MAGIC)) + 1
        original = json.loads(data[len(archive.MAGIC) : head_end])
        body = data[head_end:]
        unsigned = {k: v for k, v in original.items() if k not in ("sig", "key")}
        for name, changed, says in (
            ("cut.arc", body[: len(body) // 2], "cannot be read"),
            ("rows.arc", gzip.compress(gzip.decompress(body).replace(b'"t":"query_log"', b'"t":"nonsense"')),
             "unknown kind 'nonsense'"),
        ):  # fmt: skip
            manifest = checkpoints.sign(
                {**unsigned, "body_size": len(changed), "body_sha256": hashlib.sha256(changed).hexdigest()}, key
            )
            target = tmp_path / name
            target.write_bytes(archive.MAGIC + archive._manifest_line(manifest) + changed)
            checked = archive.verify_files([target], public)
            assert not checked.ok and any(name in p and says in p for p in checked.problems), checked.problems
        assert archive.verify_files(files, public).ok

    # An archive swapped for another's copy under the same name does not continue the chain either.
    renamed = tmp_path / "copy.arc"
    shutil.copyfile(files[0], renamed)
    code, output = _cli(old_app, "audit", "verify", "--archive", files[0], str(renamed))
    assert code == 1 and "copy.arc" in output, output


def test_rows_removed_without_an_archive_are_reported_by_verify(old_app):
    with old_app.app_context(), db.engine.begin() as conn:
        first = conn.scalar(select(func.min(AuditEvent.seq)))
        conn.execute(AuditEvent.__table__.delete().where(AuditEvent.seq <= first + 2))
    code, output = _cli(old_app, "audit", "verify")
    assert code == 1 and "no signed archive line" in output, output


def test_stored_snapshots_past_their_shorter_retention_are_blanked_but_their_digest_kept(old_app):
    with old_app.app_context():
        db.session.execute(QueryLog.__table__.update().values(snapshot="{}", snapshot_sha256="f" * 64))
        db.session.commit()
        old_app.config["QUERY_SNAPSHOT_RETENTION_MONTHS"] = 12
        assert archive.blank_old_snapshots(db.session, OPERATOR) == 3
        assert _count(QueryLog, QueryLog.snapshot.is_not(None)) == _count(QueryLog) - 3
        assert _count(QueryLog, QueryLog.snapshot_sha256.is_(None)) == 0


def _shape(conn) -> dict:
    """What partitioning changes of the three tables: their kind, keys, indexes, the foreign keys to them."""
    shape = {}
    for table in partitions.TABLES:
        shape[table] = (
            conn.scalar(text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"), {"t": table}),
            sorted(conn.execute(text("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
                                     " WHERE conrelid = to_regclass(:t)"), {"t": table}).all()),
            sorted(conn.execute(text("SELECT indexname, indexdef FROM pg_indexes"
                                     " WHERE tablename = :t AND schemaname = current_schema()"), {"t": table}).all()),
            sorted(conn.execute(text("SELECT conname, conrelid::regclass::text FROM pg_constraint"
                                     " WHERE contype = 'f' AND confrelid = to_regclass(:t)"), {"t": table}).all()),
        )  # fmt: skip
    return shape


def _rows(conn) -> dict:
    return {
        table: sorted(tuple(r) for r in conn.execute(text(f"SELECT * FROM {table}")).all())
        for table in partitions.TABLES
    }


def test_the_downgrade_below_0023_leaves_the_tables_plain_as_they_were_on_postgresql(tmp_path):
    """Migration 0023 partitions the query log, its subjects and the audit trail on PostgreSQL; its
    downgrade makes them plain tables again, with their rows, keys, indexes and foreign keys as
    0022 had them; and the upgrade partitions them again."""
    from flask_migrate import downgrade, upgrade

    from app import create_app
    from config import TestConfig
    from tests.conftest import Database

    database = Database("postgresql", tmp_path)

    class Cfg(TestConfig):
        SQLALCHEMY_DATABASE_URI = database.url
        AUDIT_CHECKPOINT_FILE = str(tmp_path / "checkpoints.jsonl")

    app = create_app(Cfg)
    at = datetime.datetime(2026, 10, 5, 9, 30)
    try:
        with app.app_context():
            upgrade(revision="0022")
            with db.engine.begin() as conn:
                for n in (1, 2):
                    log_id = conn.execute(text("INSERT INTO query_log (at, outcome, row_count, username) VALUES"
                                               " (:at, 'ok', 1, 'clerk') RETURNING id"), {"at": at}).scalar_one()  # fmt: skip
                    conn.execute(text("INSERT INTO query_subject (query_log_id, subject_hash, at) VALUES (:n, :h, :at)"),
                                 {"n": log_id, "h": f"{n:02d}" * 32, "at": at})  # fmt: skip
                    conn.execute(text("INSERT INTO audit_event (at, actor, action, outcome) VALUES"
                                      " (:at, 'clerk', 'query', 'ok')"), {"at": at})  # fmt: skip
                plain, rows = _shape(conn), _rows(conn)
            assert {kind for kind, *_ in plain.values()} == {"r"}
            upgrade()
            with db.engine.connect() as conn:
                assert {kind for kind, *_ in _shape(conn).values()} == {"p"}
            downgrade(revision="0022")
            with db.engine.connect() as conn:
                assert _shape(conn) == plain and _rows(conn) == rows
                assert not conn.scalar(text("SELECT count(*) FROM pg_class WHERE relname ~ '_p(default|[0-9]{6})$'"))
            with pytest.raises(IntegrityError), db.engine.begin() as conn:  # the subjects' key to their query again
                conn.execute(text("INSERT INTO query_subject (query_log_id, subject_hash, at) VALUES (:n, :h, :at)"),
                             {"n": log_id + 100, "h": "ff" * 32, "at": at})  # fmt: skip
            with db.engine.begin() as conn:  # new rows take the next ids of the same sequences
                new = conn.execute(text("INSERT INTO query_log (at, outcome, row_count) VALUES (:at, 'ok', 0)"
                                        " RETURNING id"), {"at": at}).scalar_one()  # fmt: skip
                assert new == log_id + 1
                conn.execute(text("DELETE FROM query_log WHERE id = :n"), {"n": new})
            upgrade()
            with db.engine.connect() as conn:
                assert {kind for kind, *_ in _shape(conn).values()} == {"p"} and _rows(conn) == rows
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        database.drop()
