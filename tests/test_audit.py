"""The audit trail: sign-in events, CRUD events, and a chain that shows tampering."""

import base64
import datetime
import email
import email.policy
import hashlib
import json
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, text, update
from sqlalchemy import inspect as sa_inspect

from app.extensions import db
from app.models.audit import AuditEvent, AuditHead
from app.models.org import PlatformUser
from app.services import audit
from tests.conftest import api_token, bearer, login


def _events_after(app, seq):
    with app.app_context():
        audit.seal_all(db.engine)  # on PostgreSQL sealing is the sealer process's: seal here
        return db.session.scalars(select(AuditEvent).where(AuditEvent.seq > seq).order_by(AuditEvent.seq)).all()


def _last_seq(app):
    with app.app_context():
        audit.seal_all(db.engine)
        return db.session.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1)) or 0


def test_login_failed_login_and_logout_are_recorded_with_who_agency_and_ip(app, client):
    start = _last_seq(app)
    login(client, "clerk", "wrong-password")
    login(client, "A123456789", "whatever")  # someone typed an ID number as user name
    login(client, "clerk")
    client.get("/logout/")
    events = _events_after(app, start)
    actions = [(e.action, e.actor, e.outcome) for e in events]
    assert ("login_failed", "clerk", "refused") in actions
    assert ("login_failed", "anonymous", "refused") in actions
    assert ("login", "clerk", "ok") in actions
    assert ("logout", "clerk", "ok") in actions
    ok_login = next(e for e in events if e.action == "login")
    assert ok_login.agency_code == "TAX" and ok_login.client_ip == "127.0.0.1"
    # What was typed as a user name is not stored, only a keyed digest of it.
    assert not any("A123456789" in (e.detail or "") + (e.actor or "") for e in events)
    unknown = next(e for e in events if e.actor == "anonymous")
    assert json.loads(unknown.detail)["reason"] == "unknown_user"


def test_api_login_is_recorded_too(app, client):
    start = _last_seq(app)
    api_token(client, "manager")
    assert [e.action for e in _events_after(app, start)] == ["login"]


def test_every_change_through_screens_and_api_is_recorded_with_field_names_but_no_values(app, client):
    start = _last_seq(app)
    token = api_token(client, "admin")
    r = client.post(
        "/api/v1/agencies/", json={"code": "AUD-1", "name": "稽核測試機關", "kind": "other"}, headers=bearer(token)
    )
    pk = r.json["id"]
    client.put(f"/api/v1/agencies/{pk}", json={"email": "secret-mail@demo.gov.tw"}, headers=bearer(token))
    login(client, "admin")
    client.post(
        f"/agencyview/edit/{pk}",
        data={
            "code": "AUD-1",
            "name": "稽核測試機關二",
            "kind": "other",
            "email": "secret-mail@demo.gov.tw",
            "active": "y",
        },
    )
    client.get(f"/agencyview/delete/{pk}")
    client.post(f"/agencyview/delete/{pk}")
    events = [e for e in _events_after(app, start) if e.object_type == "Agency"]
    assert [e.action for e in events] == ["create", "update", "update", "delete"]
    assert all(e.actor == "admin" and e.agency_code == "COUNTY" and e.object_id == str(pk) for e in events)
    assert events[1].fields == "email"
    assert events[2].fields == "name"
    dump = json.dumps([[e.fields, e.detail, e.object_id] for e in events], ensure_ascii=False)
    assert "secret-mail" not in dump and "稽核測試機關" not in dump


def test_role_assignment_on_the_user_screen_is_recorded(app, client):
    from flask import current_app

    with app.app_context():
        sm = current_app.appbuilder.sm
        user = sm.find_user(username="manager")
        uid, manager_role, auditor_role = user.id, sm.find_role("Manager").id, sm.find_role("Auditor").id
    start = _last_seq(app)
    login(client, "admin")
    data = {"username": "manager", "first_name": "業務", "last_name": "謝", "email": "manager@county.demo.gov.tw",
            "active": "y"}  # fmt: skip
    client.post(f"/users/edit/{uid}", data={**data, "roles": [str(manager_role), str(auditor_role)]})
    client.post(f"/users/edit/{uid}", data={**data, "roles": [str(manager_role)]})
    events = [e for e in _events_after(app, start) if e.object_type == "User" and e.action == "update"]
    role_changes = [e for e in events if "roles" in e.fields.split(",")]
    assert len(role_changes) == 2 and all(e.object_id == str(uid) and e.actor == "admin" for e in role_changes)


def test_the_auditor_screen_lists_and_filters_events_but_a_clerk_cannot_see_it(app, client):
    login(client, "auditor")
    r = client.get("/auditeventview/list/?_flt_0_action=login")
    assert r.status_code == 200 and "稽核軌跡" in r.text and "login" in r.text
    # Dates read in ROC form (e.g. 115/11/26).
    import re

    assert re.search(r"\b1\d\d/\d\d/\d\d \d\d:\d\d:\d\d\b", r.text)
    client.get("/logout/")
    login(client, "clerk")
    r = client.get("/auditeventview/list/", follow_redirects=False)
    assert r.status_code in (302, 403)


def test_verify_passes_on_an_untouched_chain(app, runner):
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output


@pytest.fixture
def tamper_app(backend, tmp_path):
    """A copy of the seeded database of its own, for a test that damages it."""
    from tests.conftest import build_app

    database = backend.clone(tmp_path)
    application = build_app(
        database.url,
        migrate=False,
        DEMO_SOURCES_DIR=backend.sources_dir,
        AUDIT_CHECKPOINT_FILE=str(tmp_path / "checkpoints.jsonl"),
    )
    with application.app_context():
        for i in range(5):
            audit.record(db.session, "test_event", object_type="Test", object_id=i)
        db.session.commit()
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()
    database.drop()


def _verify(app):
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    return result.exit_code, result.output


def _row(app, offset_from_end):
    with app.app_context():
        audit.seal_all(db.engine)
        rows = db.session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(5)).all()
        row = rows[offset_from_end]
        return row.id, row.seq


def test_editing_one_row_in_the_database_is_detected_and_named(tamper_app):
    assert _verify(tamper_app)[0] == 0
    row_id, seq = _row(tamper_app, 2)
    with tamper_app.app_context():
        db.session.execute(update(AuditEvent).where(AuditEvent.id == row_id).values(actor="someone-else"))
        db.session.commit()
    code, output = _verify(tamper_app)
    assert code != 0 and f"seq {seq}" in output and "edited" in output


def test_deleting_one_row_is_detected_and_named(tamper_app):
    row_id, seq = _row(tamper_app, 2)
    with tamper_app.app_context():
        db.session.execute(text("DELETE FROM audit_event WHERE id = :id"), {"id": row_id})
        db.session.commit()
    code, output = _verify(tamper_app)
    assert code != 0 and f"seq {seq}" in output and "missing" in output


def test_deleting_the_newest_row_is_detected_through_the_chain_head(tamper_app):
    row_id, seq = _row(tamper_app, 0)
    with tamper_app.app_context():
        db.session.execute(text("DELETE FROM audit_event WHERE id = :id"), {"id": row_id})
        db.session.commit()
    code, output = _verify(tamper_app)
    assert code != 0 and f"seq {seq}" in output


def test_reordering_two_rows_is_detected(tamper_app):
    a_id, a_seq = _row(tamper_app, 3)
    b_id, b_seq = _row(tamper_app, 2)
    with tamper_app.app_context():
        # Swap their positions in the chain.
        db.session.execute(update(AuditEvent).where(AuditEvent.id == a_id).values(seq=-1))
        db.session.execute(update(AuditEvent).where(AuditEvent.id == b_id).values(seq=a_seq))
        db.session.execute(update(AuditEvent).where(AuditEvent.id == a_id).values(seq=b_seq))
        db.session.commit()
    code, output = _verify(tamper_app)
    assert code != 0 and f"seq {a_seq}" in output


def test_concurrent_writers_never_fork_the_chain(app):
    errors = []

    def writer(n):
        try:
            with app.app_context():
                for i in range(10):
                    audit.record(db.session, "concurrency_test", object_type="Test", object_id=f"{n}-{i}")
                    db.session.commit()
                db.session.remove()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with app.app_context():
        audit.seal_all(db.engine)
        with db.engine.connect() as conn:
            result = audit.verify(conn)
            assert audit.pending(conn) == 0
            written = conn.scalar(
                select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "concurrency_test")
            )
    assert result.ok, result.reason
    assert written == 60 and result.checked >= 60


def _sealing_app(backend_name, tmp_path, **overrides):
    from tests.conftest import Database, build_app

    database = Database(backend_name, tmp_path)
    return database, build_app(database.url, seed=False, **overrides)


def _sealer_until_it_links(app) -> threading.Thread:
    """Run the sealer loop in a thread until a round has linked something, then stop it; the thread."""
    stop, sealed_some = threading.Event(), threading.Event()
    loop = threading.Thread(
        target=audit.sealer.run, args=(app, stop), kwargs={"on_round": lambda n: n and sealed_some.set()}
    )
    loop.start()
    try:
        assert sealed_some.wait(timeout=30), "the sealer linked nothing"
    finally:
        stop.set()
        loop.join(timeout=30)
    return loop


@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql"])
def test_in_background_mode_a_commit_returns_before_sealing_and_the_sealer_process_links_the_event(
    backend_name, tmp_path
):
    """The sealer is a loop of its own (``flask worker sealer`` runs it): here
    in a thread this test starts and stops; each round reports what it sealed."""
    database, app = _sealing_app(backend_name, tmp_path, AUDIT_SEALING="background", AUDIT_SEAL_SECONDS=0.05)
    try:
        with app.app_context():
            audit.record(db.session, "sealer_test", object_type="Test", object_id=1)
            db.session.commit()
            row = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "sealer_test"))
            # Committed with its change, not in the chain: no sealer runs in this process.
            assert row is not None and row.seq is None and row.hash is None
            db.session.remove()
        loop = _sealer_until_it_links(app)
        assert not loop.is_alive()  # it stops when told to
        with app.app_context(), db.engine.connect() as conn:
            assert audit.pending(conn) == 0
            result = audit.verify(conn)
            sealed = conn.execute(
                select(AuditEvent.seq, AuditEvent.hash).where(AuditEvent.action == "sealer_test")
            ).one()
        assert result.ok and sealed.seq == result.checked and len(sealed.hash) == 64
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        database.drop()


def test_the_sealer_seals_what_committed_after_it_was_told_to_stop_before_it_returns(tmp_path):
    database, app = _sealing_app("sqlite", tmp_path, AUDIT_SEALING="background", AUDIT_SEAL_SECONDS=3600)
    try:
        with app.app_context():
            audit.record(db.session, "late_event", object_type="Test", object_id=1)
            db.session.commit()
            db.session.remove()
        stop = threading.Event()
        stop.set()  # told to stop before its first round: it still seals once on the way out
        audit.sealer.run(app, stop)
        with app.app_context(), db.engine.connect() as conn:
            assert audit.pending(conn) == 0 and audit.verify(conn).ok
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        database.drop()


def test_no_audit_sealer_thread_runs_inside_the_web_process(app, client):
    """Sealing in the background belongs to the sealer process, not to web workers."""
    login(client, "admin")
    client.get("/query/history/")
    assert not [t for t in threading.enumerate() if "seal" in t.name]


@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql"])
def test_a_rolled_back_change_leaves_no_event_to_seal(backend_name, tmp_path):
    database, app = _sealing_app(backend_name, tmp_path, AUDIT_SEALING="background")
    try:
        with app.app_context():
            audit.record(db.session, "rolled_back", object_type="Test", object_id=1)
            db.session.rollback()
            assert audit.seal_all(db.engine) == 0
            assert (
                db.session.scalar(
                    select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "rolled_back")
                )
                == 0
            )
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        database.drop()


def test_an_event_that_commits_after_a_later_one_is_sealed_after_it_and_the_chain_holds(tmp_path):
    """PostgreSQL: two writers at once. The chain order is the order of sealing,
    not of insertion, so a slow transaction is linked when it commits."""
    database, app = _sealing_app("postgresql", tmp_path, AUDIT_SEALING="background")
    try:
        with app.app_context():
            slow = db.engine.connect()
            slow_tx = slow.begin()
            audit.recording.append(slow, [audit.event_values("slow")])
            with db.engine.begin() as fast:
                audit.recording.append(fast, [audit.event_values("fast")])
            assert audit.seal_all(db.engine) == 1  # the slow one is not visible yet
            slow_tx.commit()
            slow.close()
            assert audit.seal_all(db.engine) == 1
            with db.engine.connect() as conn:
                order = (
                    conn.execute(
                        select(AuditEvent.action)
                        .where(AuditEvent.action.in_(["slow", "fast"]))
                        .order_by(AuditEvent.seq)
                    )
                    .scalars()
                    .all()
                )
                fast_id, slow_id = (
                    conn.scalar(select(AuditEvent.id).where(AuditEvent.action == a)) for a in ("fast", "slow")
                )
                assert audit.verify(conn).ok
        assert order == ["fast", "slow"] and slow_id < fast_id
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        database.drop()


def test_sealing_more_events_than_one_batch_takes_them_all_in_order(app):
    with app.app_context():
        audit.seal_all(db.engine)
        for i in range(5):
            audit.record(db.session, "batch_test", object_type="Test", object_id=i)
        db.session.commit()
        audit.seal_all(db.engine, limit=2)  # batches of 2, 2, 1 (and 0 when the last batch was full)
        with db.engine.connect() as conn:
            assert audit.pending(conn) == 0
            assert audit.verify(conn).ok
        ids = db.session.scalars(
            select(AuditEvent.object_id).where(AuditEvent.action == "batch_test").order_by(AuditEvent.seq)
        ).all()
        assert ids[-5:] == ["0", "1", "2", "3", "4"]


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)  # the one-statement batch is PostgreSQL's
def test_a_sealing_round_that_cannot_link_every_row_it_read_keeps_nothing(app, backend, monkeypatch):
    """PostgreSQL links a batch in one statement; should a row it read be gone
    by then, the round is rolled back whole instead of moving the chain's tip
    past a row that was never linked."""
    with app.app_context():
        audit.seal_all(db.engine)
        with db.engine.begin() as conn:  # two events (no sealer runs in this process)
            audit.recording.append(conn, [audit.event_values("vanish_test"), audit.event_values("vanish_test")])
            ids = conn.scalars(
                select(AuditEvent.id).where(AuditEvent.action == "vanish_test").order_by(AuditEvent.id)
            ).all()
        tip = db.session.execute(select(AuditHead.seq, AuditHead.hash)).one()
        db.session.rollback()
        original, gone = audit.digest, []

        def digest_while_one_row_goes(prev, values, *key):
            if not gone:  # someone deletes the second row while the round holds the chain
                with db.engine.begin() as other:
                    other.execute(text("DELETE FROM audit_event WHERE id = :id"), {"id": ids[1]})
                gone.append(ids[1])
            return original(prev, values, *key)

        monkeypatch.setattr(audit.chain, "digest", digest_while_one_row_goes)
        with pytest.raises(RuntimeError, match="did not link every row"):
            audit.seal_all(db.engine)
        monkeypatch.undo()
        assert db.session.execute(select(AuditHead.seq, AuditHead.hash)).one() == tip
        assert db.session.scalar(select(AuditEvent.seq).where(AuditEvent.id == ids[0])) is None
        audit.seal_all(db.engine)  # the next round links what is there
        with db.engine.connect() as conn:
            assert audit.pending(conn) == 0 and audit.verify(conn).ok


def test_the_one_statement_write_says_what_a_connection_would_when_the_database_is_lost():
    """Straight on the driver, a database that cannot be reached or a
    connection the server ended surface as SQLAlchemy's OperationalError,
    seen by the engine's handle_error listeners (the 503 "database down"
    answer rests on them); the dead connection leaves the pool."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.exc import OperationalError

    from tests.conftest import PG_ADMIN_URL

    seen = []

    def listen(engine):
        event.listen(
            engine, "handle_error", lambda ctx: seen.append((type(ctx.sqlalchemy_exception), ctx.is_disconnect))
        )

    unreachable = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/nothing")
    listen(unreachable)
    with pytest.raises(OperationalError):
        audit.execute_autocommitted(unreachable, "SELECT 1", {})
    assert seen and seen[-1][0] is OperationalError
    unreachable.dispose()

    engine, admin = create_engine(PG_ADMIN_URL, pool_size=1), create_engine(PG_ADMIN_URL)
    listen(engine)
    try:
        pid = audit.execute_autocommitted(engine, "SELECT pg_backend_pid()", {})
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        with pytest.raises(OperationalError) as lost:
            audit.execute_autocommitted(engine, "SELECT 1", {})
        assert lost.value.connection_invalidated and seen[-1] == (OperationalError, True)
        assert audit.execute_autocommitted(engine, "SELECT pg_backend_pid()", {}) != pid  # a new connection
    finally:
        engine.dispose()
        admin.dispose()


# --- a database writer rewriting the chain --------------------------------------
#
# What someone who can write the platform database (but holds none of the
# instance's secrets) can do: edit rows and recompute every link with the
# chain's published formula (SHA-256 of the previous hash and the row's
# canonical form), move the head, delete, insert and renumber rows.


def _attacker_relinks(conn, from_seq):
    t, head = AuditEvent.__table__, AuditHead.__table__
    prev = conn.scalar(select(t.c.hash).where(t.c.seq == from_seq - 1)) if from_seq > 1 else audit.GENESIS
    rows = conn.execute(select(t).where(t.c.seq >= from_seq).order_by(t.c.seq)).mappings().all()
    for row in rows:
        new = hashlib.sha256((prev + "|" + audit.canonical(dict(row))).encode()).hexdigest()
        conn.execute(update(t).where(t.c.id == row["id"]).values(prev_hash=prev, hash=new))
        prev = new
    conn.execute(update(head).where(head.c.id == 1).values(seq=rows[-1]["seq"] if rows else from_seq - 1, hash=prev))


def _sealed_tip(app):
    with app.app_context():
        audit.seal_all(db.engine)
        return db.session.execute(select(AuditHead.seq, AuditHead.hash)).one()


def _cli(app, *args):
    result = app.test_cli_runner().invoke(args=list(args))
    return result.exit_code, result.output


def test_editing_a_row_and_recomputing_every_later_hash_and_the_head_is_detected(tamper_app):
    tip = _sealed_tip(tamper_app)
    target = tip.seq - 2
    with tamper_app.app_context(), db.engine.begin() as conn:
        conn.execute(update(AuditEvent).where(AuditEvent.seq == target).values(actor="someone-else"))
        _attacker_relinks(conn, target)
    code, output = _verify(tamper_app)
    assert code == 1 and f"seq {target}" in output and "edited" in output, output


def test_cutting_off_the_last_50_rows_and_winding_back_the_head_is_detected_against_the_signed_checkpoint(
    tamper_app,
):
    tip = _sealed_tip(tamper_app)
    assert tip.seq > 60
    code, output = _cli(tamper_app, "audit", "checkpoint")
    assert code == 0, output
    keep = tip.seq - 50
    with tamper_app.app_context(), db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_event WHERE seq > :keep"), {"keep": keep})
        kept_hash = conn.scalar(select(AuditEvent.hash).where(AuditEvent.seq == keep))
        conn.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=keep, hash=kept_hash))
    code, output = _verify(tamper_app)
    assert code == 1 and f"seq {tip.seq}" in output and "checkpoint" in output, output


def test_a_backdated_row_inserted_unsealed_is_reported_and_neither_verify_nor_the_sealer_chains_it(tamper_app):
    _sealed_tip(tamper_app)
    three_days_ago = datetime.datetime.utcnow() - datetime.timedelta(days=3)
    with tamper_app.app_context(), db.engine.begin() as conn:
        forged = conn.execute(
            insert(AuditEvent.__table__)
            .values(action="login", actor="clerk", agency_code="TAX", at=three_days_ago, outcome="ok")
            .returning(AuditEvent.id)
        ).scalar_one()
    code, output = _verify(tamper_app)
    assert code == 1 and f"id {forged}" in output and "not written by the platform" in output, output
    with tamper_app.app_context():
        audit.seal_all(db.engine)  # the sealer's round
        assert db.session.scalar(select(AuditEvent.seq).where(AuditEvent.id == forged)) is None
    code, output = _verify(tamper_app)
    assert code == 1 and f"id {forged}" in output, output


@pytest.fixture
def replay_app(backend, tmp_path):
    """A copy of the seeded database whose events wait for the sealer (as on PostgreSQL in production)."""
    from tests.conftest import copied_app

    checkpoint_file = str(tmp_path / "checkpoints.jsonl")
    with copied_app(backend, tmp_path, AUDIT_SEALING="background", AUDIT_CHECKPOINT_FILE=checkpoint_file) as app:
        with app.app_context():
            audit.seal_all(db.engine)
        yield app


def _pending_event(app, action):
    """Record one event (left for the sealer); its row as an attacker reads it while it waits."""
    with app.app_context():
        audit.record(db.session, action, object_type="Report", object_id=7)
        db.session.commit()
        db.session.remove()
        with db.engine.connect() as conn:
            t = AuditEvent.__table__
            return dict(conn.execute(select(t).where(t.c.action == action)).mappings().one())


def _insert_copy(conn, row, **changes):
    """The attacker inserts ``row`` again (a new id), with ``changes``; the copy's id."""
    t = AuditEvent.__table__
    values = {k: v for k, v in row.items() if k != "id"} | changes
    return conn.execute(insert(t).values(values).returning(t.c.id)).scalar_one()


def _drop_entry_seal_index(conn):
    """An attacker who may also change the schema removes the unique index on the entry seal."""
    conn.execute(text("DROP INDEX IF EXISTS ux_audit_event_entry_mac"))


def _seq_of(app, row_id):
    with app.app_context():
        return db.session.scalar(select(AuditEvent.seq).where(AuditEvent.id == row_id))


def test_a_pending_event_copied_with_its_entry_seal_is_refused_by_the_database_the_sealer_and_verify(replay_app):
    from sqlalchemy.exc import IntegrityError

    row = _pending_event(replay_app, "replay_me")
    with replay_app.app_context():
        with pytest.raises(IntegrityError), db.engine.begin() as conn:
            _insert_copy(conn, row)  # the database refuses a second row with the same entry seal
        with db.engine.begin() as conn:
            _drop_entry_seal_index(conn)
            copy = _insert_copy(conn, row)
    code, output = _verify(replay_app)
    assert code == 1 and f"id {copy} (a copy of id {row['id']})" in output and "replayed" in output, output
    with replay_app.app_context():
        assert audit.sealer.seal_round(db.engine, set()) == 1  # the original only
        alert = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "audit_replayed_rows"))
        assert alert is not None and json.loads(alert.detail) == {"count": 1, "ids": [copy]}
        db.session.remove()
    assert _seq_of(replay_app, row["id"]) is not None and _seq_of(replay_app, copy) is None
    code, output = _verify(replay_app)
    assert code == 1 and f"id {copy} (a copy of seq {_seq_of(replay_app, row['id'])}" in output, output


def test_a_sealed_event_inserted_again_with_the_entry_seal_it_had_while_pending_is_never_chained(replay_app):
    row = _pending_event(replay_app, "replay_me_later")
    with replay_app.app_context():
        assert audit.seal_all(db.engine) == 1
        with db.engine.begin() as conn:
            _drop_entry_seal_index(conn)
            copy = _insert_copy(conn, row)  # as it was read while pending: no seq, no links
    code, output = _verify(replay_app)
    assert code == 1 and f"id {copy}" in output and "replayed" in output, output
    with replay_app.app_context():
        refused: set[int] = set()
        audit.seal_all(db.engine, refused=refused)
        assert copy in refused
    assert _seq_of(replay_app, copy) is None


def test_an_event_linked_twice_into_the_chain_is_named_by_verify(replay_app):
    """A replay that a sealer without the duplicate check linked: every link holds; verify names the repeat."""
    row = _pending_event(replay_app, "linked_twice")
    with replay_app.app_context():
        audit.seal_all(db.engine)
        first = _seq_of(replay_app, row["id"])
        tip = db.session.execute(select(AuditHead.seq, AuditHead.hash)).one()
        db.session.remove()
        with db.engine.begin() as conn:
            _drop_entry_seal_index(conn)
            sealed = dict(conn.execute(select(AuditEvent.__table__).where(AuditEvent.id == row["id"])).mappings().one())
            repeat = {**sealed, "seq": tip.seq + 1, "prev_hash": tip.hash}
            repeat["hash"] = audit.digest(tip.hash, repeat)
            _insert_copy(conn, repeat)
            conn.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=tip.seq + 1, hash=repeat["hash"]))
    code, output = _verify(replay_app)
    assert code == 1 and f"seq {tip.seq + 1}" in output and f"repeats seq {first}" in output, output


def test_unsealing_and_editing_the_newest_row_is_detected(tamper_app):
    tip = _sealed_tip(tamper_app)
    with tamper_app.app_context(), db.engine.begin() as conn:
        row_id = conn.scalar(select(AuditEvent.id).where(AuditEvent.seq == tip.seq))
        conn.execute(
            update(AuditEvent)
            .where(AuditEvent.id == row_id)
            .values(seq=None, prev_hash=None, hash=None, actor="someone-else")
        )
        before = conn.scalar(select(AuditEvent.hash).where(AuditEvent.seq == tip.seq - 1))
        conn.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=tip.seq - 1, hash=before))
    code, output = _verify(tamper_app)
    assert code == 1 and f"id {row_id}" in output and "not written by the platform" in output, output
    with tamper_app.app_context():
        audit.seal_all(db.engine)
        assert db.session.scalar(select(AuditEvent.seq).where(AuditEvent.id == row_id)) is None


def test_deleting_a_row_and_renumbering_and_relinking_the_rest_is_detected(tamper_app):
    tip = _sealed_tip(tamper_app)
    gone = tip.seq - 3
    with tamper_app.app_context(), db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_event WHERE seq = :s"), {"s": gone})
        for seq in range(gone + 1, tip.seq + 1):
            conn.execute(update(AuditEvent).where(AuditEvent.seq == seq).values(seq=seq - 1))
        _attacker_relinks(conn, gone)
    code, output = _verify(tamper_app)
    assert code == 1 and f"seq {gone}" in output, output


def test_reordering_two_rows_and_relinking_is_detected(tamper_app):
    tip = _sealed_tip(tamper_app)
    a, b = tip.seq - 3, tip.seq - 2
    with tamper_app.app_context(), db.engine.begin() as conn:
        conn.execute(update(AuditEvent).where(AuditEvent.seq == a).values(seq=-1))
        conn.execute(update(AuditEvent).where(AuditEvent.seq == b).values(seq=a))
        conn.execute(update(AuditEvent).where(AuditEvent.seq == -1).values(seq=b))
        _attacker_relinks(conn, a)
    code, output = _verify(tamper_app)
    assert code == 1 and f"seq {a}" in output, output


def test_replacing_the_newest_row_and_the_head_with_a_made_up_event_is_detected(tamper_app):
    tip = _sealed_tip(tamper_app)
    with tamper_app.app_context(), db.engine.begin() as conn:
        newest = conn.execute(select(AuditEvent.__table__).where(AuditEvent.seq == tip.seq)).mappings().one()
        conn.execute(text("DELETE FROM audit_event WHERE seq = :s"), {"s": tip.seq})
        made_up = {k: v for k, v in newest.items() if k not in ("id", "entry_mac")}
        made_up.update(actor="someone-else", action="login")
        conn.execute(insert(AuditEvent.__table__).values(made_up))
        _attacker_relinks(conn, tip.seq)
    code, output = _verify(tamper_app)
    assert code == 1 and f"seq {tip.seq}" in output and "edited" in output, output


@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql"])
def test_verify_never_seals_and_reports_events_waiting_longer_than_the_grace_period(backend_name, tmp_path):
    database, app = _sealing_app(backend_name, tmp_path, AUDIT_SEALING="background")
    try:
        with app.app_context():
            for i in range(2):
                audit.record(db.session, "waiting_event", object_type="Test", object_id=i)
            db.session.commit()
        code, output = _verify(app)
        assert code == 0 and "2 events wait for the sealer" in output, output
        code, output = _cli(app, "audit", "verify", "--grace", "0")
        assert code == 1 and "2 unsealed events waited longer than 0 s" in output, output
        with app.app_context(), db.engine.connect() as conn:
            assert audit.pending(conn) == 2  # verify sealed nothing
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        database.drop()


class _MariaDB:
    """A throwaway platform database on the MariaDB server (TEST_MARIADB_URL)."""

    def __init__(self):
        import os
        import uuid

        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        self.admin_url = os.environ.get("TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/")
        self.name = f"platform_test_{uuid.uuid4().hex[:10]}"
        admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE `{self.name}` CHARACTER SET utf8mb4"))
        admin.dispose()
        url = make_url(self.admin_url).set(database=self.name, query={"charset": "utf8mb4"})
        self.url = url.render_as_string(hide_password=False)

    def drop(self):
        from sqlalchemy import create_engine

        admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{self.name}`"))
        admin.dispose()


def _row_counts(app) -> dict[str, int]:
    from flask_appbuilder import Model

    with app.app_context(), db.engine.connect() as conn:
        return {t.name: conn.scalar(select(func.count()).select_from(t)) for t in Model.metadata.sorted_tables}


@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql", "mariadb"])
def test_verify_reads_in_a_transaction_the_database_itself_keeps_read_only(backend_name, tmp_path, monkeypatch):
    """`flask audit verify` on each platform database: it verifies, a write tried inside its transaction
    is refused by the database, no row changes, and the connection goes back to the pool writable."""
    from sqlalchemy.exc import DBAPIError

    from tests.conftest import Database, build_app

    database = _MariaDB() if backend_name == "mariadb" else Database(backend_name, tmp_path)
    app = build_app(database.url, seed=False, AUDIT_SEALING="background")
    try:
        with app.app_context():
            for i in range(3):
                audit.record(db.session, "read_only_test", object_type="Test", object_id=i)
            db.session.commit()
            assert audit.seal_all(db.engine) == 3
            audit.record(db.session, "read_only_test", object_type="Test", object_id=3)  # left for the sealer
            db.session.commit()
            db.session.remove()
        before = _row_counts(app)
        refused, real_verify = [], audit.verify

        def verify_after_trying_to_write(conn, *args, **kwargs):
            try:
                with conn.begin_nested():  # a savepoint: PostgreSQL's transaction outlives the refusal
                    conn.execute(
                        insert(AuditEvent.__table__).values(
                            action="login", actor="clerk", at=datetime.datetime.utcnow(), outcome="ok"
                        )
                    )
            except DBAPIError as exc:
                refused.append(str(exc.orig).splitlines()[0])
            else:
                refused.append(None)
            return real_verify(conn, *args, **kwargs)

        monkeypatch.setattr(audit, "verify", verify_after_trying_to_write)
        code, output = _verify(app)
        monkeypatch.undo()
        assert code == 0 and "3 events verified" in output and "1 events wait for the sealer" in output, output
        assert refused and refused[0] is not None and "read" in refused[0].lower(), refused
        assert _row_counts(app) == before
        with app.app_context():  # the pooled connection writes again
            audit.record(db.session, "after_verify", object_type="Test", object_id=1)
            db.session.commit()
            assert audit.seal_all(db.engine) == 2
            db.session.remove()
        code, output = _verify(app)
        assert code == 0 and "5 events verified" in output, output
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        database.drop()


# --- signed checkpoints outside the database -------------------------------------


def _checkpoint_lines(app):
    path = Path(app.config["AUDIT_CHECKPOINT_FILE"])
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_checkpoint_is_signed_appended_to_its_file_and_mailed_to_the_auditors_who_check_it_with_openssl(
    tamper_app, tmp_path
):
    from app.services import outbox
    from tests.conftest import SmtpServer

    tip = _sealed_tip(tamper_app)
    with tamper_app.app_context():  # every active Auditor with an address, in any agency
        users = db.session.scalars(select(PlatformUser).where(PlatformUser.active.is_(True))).all()
        auditors = sum(1 for u in users if u.email and any(r.name == "Auditor" for r in u.roles))
        db.session.remove()
    assert auditors >= 2  # the demo has the county's and the tax bureau's
    code, output = _cli(tamper_app, "audit", "checkpoint")
    assert code == 0 and f"mailed to {auditors} auditors" in output, output
    public = tmp_path / "audit-public.pem"
    assert _cli(tamper_app, "audit", "public-key", "--out", str(public))[0] == 0
    [line] = _checkpoint_lines(tamper_app)
    assert (line["seq"], line["hash"], line["count"]) == (tip.seq, tip.hash, tip.seq) and line["at"].endswith("Z")
    # The auditor needs nothing of the platform to check a line: openssl and the public key.
    signed, sig = tmp_path / "signed.json", tmp_path / "line.sig"
    signed.write_bytes(json.dumps({k: v for k, v in line.items() if k != "sig"}, sort_keys=True,
                                  separators=(",", ":")).encode())  # fmt: skip
    sig.write_bytes(base64.b64decode(line["sig"]))
    args = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", public, "-rawin", "-in", signed, "-sigfile", sig]
    done = subprocess.run(args, capture_output=True, timeout=60)
    assert done.returncode == 0 and b"Signature Verified Successfully" in done.stdout, done.stderr
    signed.write_bytes(signed.read_bytes().replace(f'"seq":{tip.seq}'.encode(), f'"seq":{tip.seq + 9}'.encode()))
    assert subprocess.run(args, capture_output=True, timeout=60).returncode != 0
    # Nothing moved since: the next checkpoint signs nothing new.
    assert "nothing signed" in _cli(tamper_app, "audit", "checkpoint")[1]
    smtp = SmtpServer(tamper_app.config["MAIL_PORT"])  # the port this app was built with
    smtp.start()
    try:
        with tamper_app.app_context():
            outbox.work_once(db.session)
            db.session.remove()
        received = [m for m in smtp.sink.wait_for(1) if "auditor@county.demo.gov.tw" in m.rcpt_tos]
    finally:
        smtp.stop()
    assert len(received) == 1
    body = email.message_from_bytes(received[0].content, policy=email.policy.default).get_body().get_content()
    body = body.replace("\r\n", "\n")
    assert line["sig"] in body and public.read_text().strip() in body


def test_an_auditor_verifies_offline_with_a_copy_of_the_checkpoints_and_the_public_key(tamper_app, tmp_path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from app.services.audit import checkpoints

    _sealed_tip(tamper_app)
    assert _cli(tamper_app, "audit", "checkpoint", "--no-mail")[0] == 0
    public = tmp_path / "audit-public.pem"
    _cli(tamper_app, "audit", "public-key", "--out", str(public))
    copy = tmp_path / "auditor-copy.jsonl"
    shutil.copy(tamper_app.config["AUDIT_CHECKPOINT_FILE"], copy)
    code, output = _cli(tamper_app, "audit", "verify", "--checkpoints", str(copy), "--public-key", str(public))
    assert code == 0 and "1 signed checkpoints matched" in output, output
    # A line someone wrote without the signing key (a shorter chain "signed" by them) is named.
    [line] = _checkpoint_lines(tamper_app)
    with copy.open("a") as fh:
        fh.write(json.dumps({**line, "seq": line["seq"] - 10, "count": line["count"] - 10}) + "\n")
    code, output = _cli(tamper_app, "audit", "verify", "--checkpoints", str(copy), "--public-key", str(public))
    assert code == 1 and "checkpoint line 2" in output and "signature does not verify" in output, output
    # Checked against another key, no line of this platform's is taken as signed.
    other = tmp_path / "other.pem"
    other.write_text(checkpoints.public_pem(Ed25519PrivateKey.generate()))
    code, output = _cli(tamper_app, "audit", "verify", "--checkpoints", str(copy), "--public-key", str(other))
    assert code == 1 and "checkpoint line 1" in output, output


def test_the_sealer_never_signs_a_chain_cut_back_behind_its_last_checkpoint(tamper_app):
    tip = _sealed_tip(tamper_app)
    assert _cli(tamper_app, "audit", "checkpoint", "--no-mail")[0] == 0
    with tamper_app.app_context(), db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_event WHERE seq > :keep"), {"keep": tip.seq - 5})
        kept = conn.scalar(select(AuditEvent.hash).where(AuditEvent.seq == tip.seq - 5))
        conn.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=tip.seq - 5, hash=kept))
    code, output = _cli(tamper_app, "audit", "checkpoint")
    assert code == 1 and "refused" in output and "behind" in output, output
    # Refilled past the signed length with new events, the chain still lacks the signed link.
    with tamper_app.app_context():
        for i in range(10):
            audit.record(db.session, "refill", object_type="Test", object_id=i)
        db.session.commit()
        audit.seal_all(db.engine)
    code, output = _cli(tamper_app, "audit", "checkpoint")
    assert code == 1 and f"row seq {tip.seq} no longer holds the link" in output, output
    assert len(_checkpoint_lines(tamper_app)) == 1
    code, output = _verify(tamper_app)
    assert code == 1 and f"seq {tip.seq}" in output and "signed checkpoint" in output, output


@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql"])
def test_the_sealer_writes_signed_checkpoints_and_records_the_forged_rows_it_refuses(backend_name, tmp_path):
    database, app = _sealing_app(
        backend_name, tmp_path, AUDIT_SEALING="background", AUDIT_SEAL_SECONDS=0.05, AUDIT_CHECKPOINT_SECONDS=0,
        AUDIT_CHECKPOINT_FILE=str(tmp_path / "sealer-checkpoints.jsonl"),
    )  # fmt: skip
    try:
        with app.app_context():
            audit.record(db.session, "sealer_test", object_type="Test", object_id=1)
            db.session.commit()
            with db.engine.begin() as conn:
                forged = conn.execute(
                    insert(AuditEvent.__table__)
                    .values(action="login", actor="clerk", at=datetime.datetime.utcnow(), outcome="ok")
                    .returning(AuditEvent.id)
                ).scalar_one()
            db.session.remove()
        _sealer_until_it_links(app)
        with app.app_context():
            audit.seal_all(db.engine, refused=set())
            seq = db.session.scalar(select(AuditEvent.seq).where(AuditEvent.action == "sealer_test"))
            refusal = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "audit_forged_rows"))
            assert db.session.scalar(select(AuditEvent.seq).where(AuditEvent.id == forged)) is None
            assert refusal is not None and json.loads(refusal.detail) == {"count": 1, "ids": [forged]}
        lines = _checkpoint_lines(app)
        assert lines and lines[0]["seq"] >= seq and lines[0]["kind"] == "checkpoint"
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        database.drop()


# --- upgrading a chain written before it was keyed -------------------------------


def _legacy_chain(conn, n, repeated=None):
    """Rows as the platform sealed them before the chain was keyed: plain SHA-256 links
    (``repeated``: a seq whose event the next row repeats, a replay the old sealer linked)."""
    prev = audit.GENESIS
    start = datetime.datetime(2026, 11, 1, 8, 0, 0, 123456)
    for seq in range(1, n + 1):
        minutes = seq - 1 if repeated is not None and seq == repeated + 1 else seq
        values = {"seq": seq, "at": start + datetime.timedelta(minutes=minutes), "actor": "clerk", "actor_id": 3,
                  "agency_code": "TAX", "client_ip": "127.0.0.1", "action": "login", "outcome": "ok",
                  "object_type": None, "object_id": None, "fields": None, "detail": '{"n": 1}'}  # fmt: skip
        link = hashlib.sha256((prev + "|" + audit.canonical(values)).encode()).hexdigest()
        conn.execute(
            text(
                "INSERT INTO audit_event (seq, at, actor_id, actor, agency_code, client_ip, action, object_type,"
                " object_id, fields, outcome, detail, prev_hash, hash) VALUES (:seq, :at, :actor_id, :actor,"
                " :agency_code, :client_ip, :action, :object_type, :object_id, :fields, :outcome, :detail,"
                " :prev, :hash)"
            ),
            {**values, "prev": prev, "hash": link},
        )
        prev = link
    conn.execute(text("UPDATE audit_head SET seq = :s, hash = :h WHERE id = 1"), {"s": n, "h": prev})
    conn.execute(  # an event the old sealer had not linked yet
        text("INSERT INTO audit_event (at, actor, action, outcome) VALUES (:at, 'clerk', 'logout', 'ok')"),
        {"at": datetime.datetime.utcnow()},
    )


@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql"])
def test_a_chain_written_before_keying_is_rekeyed_by_the_upgrade_and_verifies(backend_name, tmp_path):
    from flask_migrate import downgrade, upgrade

    from app import create_app
    from config import TestConfig
    from tests.conftest import Database

    database = Database(backend_name, tmp_path)

    class Cfg(TestConfig):
        SQLALCHEMY_DATABASE_URI = database.url
        AUDIT_CHECKPOINT_FILE = str(tmp_path / "checkpoints.jsonl")

    app = create_app(Cfg)
    try:
        with app.app_context():
            upgrade(revision="0013")
            with db.engine.begin() as conn:
                _legacy_chain(conn, 30)
            upgrade()
        code, output = _cli(app, "audit", "verify")
        assert code == 0 and "30 events verified" in output and "1 events wait for the sealer" in output, output
        with app.app_context():
            assert audit.seal_all(db.engine) == 1
        code, output = _cli(app, "audit", "verify")
        assert code == 0 and "31 events verified" in output, output
        with app.app_context():  # and back: plain SHA-256 links again
            downgrade(revision="0013")
            with db.engine.connect() as conn:
                t = AuditEvent.__table__
                columns = [t.c.hash, *(t.c[name] for name in audit.CHAIN_FIELDS)]
                first = conn.execute(select(*columns).where(t.c.seq == 1)).mappings().one()
            assert (
                first["hash"]
                == hashlib.sha256((audit.GENESIS + "|" + audit.canonical(dict(first))).encode()).hexdigest()
            )
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        database.drop()


def test_a_replay_linked_before_the_upgrade_is_named_by_verify(tmp_path):
    """A copy the sealer linked before events had a nonce: each link holds; verify names the repeat."""
    from flask_migrate import upgrade

    from tests.conftest import Database, build_app

    database = Database("sqlite", tmp_path)
    app = build_app(database.url, migrate=False)
    try:
        with app.app_context():
            upgrade(revision="0013")
            with db.engine.begin() as conn:
                _legacy_chain(conn, 10, repeated=6)
            upgrade()
        code, output = _cli(app, "audit", "verify")
        assert code == 1 and "seq 7 repeats seq 6 (the same content)" in output, output
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        database.drop()


@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql"])
def test_an_upgrade_does_not_rekey_a_chain_that_was_already_broken(backend_name, tmp_path, capfd):
    from flask_migrate import upgrade

    from app import create_app
    from config import TestConfig
    from tests.conftest import Database

    database = Database(backend_name, tmp_path)

    class Cfg(TestConfig):
        SQLALCHEMY_DATABASE_URI = database.url

    app = create_app(Cfg)
    try:
        with app.app_context():
            upgrade(revision="0013")
            with db.engine.begin() as conn:
                _legacy_chain(conn, 10)
                conn.execute(text("UPDATE audit_event SET actor = 'someone-else' WHERE seq = 4"))
            with pytest.raises(SystemExit):  # Flask-Migrate logs the migration's error and exits 1
                upgrade()
            assert "audit chain broken at seq 4" in capfd.readouterr().err
            with db.engine.connect() as conn:
                assert conn.scalar(text("SELECT version_num FROM alembic_version")) == "0013"
                assert "entry_mac" not in [c["name"] for c in sa_inspect(conn).get_columns("audit_event")]
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        database.drop()
