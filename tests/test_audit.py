"""The audit trail: sign-in events, CRUD events, and a chain that shows tampering."""

import datetime
import json
import threading

import pytest
from sqlalchemy import func, insert, select, text, update

from app.extensions import db
from app.models.audit import AuditEvent
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


@pytest.fixture(params=["sqlite", "postgresql"])
def tamper_app(request, tmp_path):
    from tests.conftest import Database, build_app

    database = Database(request.param, tmp_path)
    application = build_app(database.url)
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
            slow.execute(
                insert(AuditEvent.__table__).values(action="slow", at=datetime.datetime.utcnow(), outcome="ok")
            )
            with db.engine.begin() as fast:
                fast.execute(
                    insert(AuditEvent.__table__).values(action="fast", at=datetime.datetime.utcnow(), outcome="ok")
                )
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
    from app.models.audit import AuditHead

    with app.app_context():
        audit.seal_all(db.engine)
        with db.engine.begin() as conn:  # two events (no sealer runs in this process)
            ids = [conn.execute(insert(AuditEvent).values(action="vanish_test", actor="t", outcome="ok",
                                                           at=datetime.datetime.utcnow()).returning(AuditEvent.id)
                                ).scalar_one() for _ in range(2)]  # fmt: skip
        tip = db.session.execute(select(AuditHead.seq, AuditHead.hash)).one()
        db.session.rollback()
        original, gone = audit.digest, []

        def digest_while_one_row_goes(prev, values):
            if not gone:  # someone deletes the second row while the round holds the chain
                with db.engine.begin() as other:
                    other.execute(text("DELETE FROM audit_event WHERE id = :id"), {"id": ids[1]})
                gone.append(ids[1])
            return original(prev, values)

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
