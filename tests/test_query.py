"""The query gateway, told as the clerk, the auditor and the citizen see it."""

import datetime
import json
import uuid

import pytest
from sqlalchemy import event, select, text, update
from sqlalchemy.exc import DataError

from app.extensions import db
from app.models.audit import AuditEvent
from app.models.queries import FormSection, QueryLog, SectionColumn, SectionFilter
from app.services import query as query_service
from tests import factories
from tests.conftest import api_token, bearer, login


@pytest.fixture
def people_form(app, tmp_path):
    """A form over an agency's SQLite database, granted to tax-bureau clerks."""
    code = f"test.people.{uuid.uuid4().hex[:6]}"
    with app.app_context():
        src = factories.sqlite_source(f"SRC-{uuid.uuid4().hex[:6]}", factories.people_db(tmp_path / "people.db"))
        factories.people_form(code, src)
    return code


def _run(client, token, form, **body):
    payload = {"form": form, "case_no": "1151126-0001", "reason": "", "business_item": "TAX-CHECK",
               "params": {"id_no": "A123456789"}}  # fmt: skip
    payload.update(body)
    return client.post("/api/v1/query/run", json=payload, headers=bearer(token))


def _logs(app, form_code):
    with app.app_context():
        return db.session.scalars(select(QueryLog).where(QueryLog.form_code == form_code).order_by(QueryLog.id)).all()


def _reopenings(app, query_id) -> list[tuple]:
    """(who, outcome, how shown) of every reopening of a stored result, in order."""
    with app.app_context():
        events = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "query_reopen", AuditEvent.object_id == str(query_id))
            .order_by(AuditEvent.id)
        ).all()  # fmt: skip
        return [(e.actor, e.outcome, json.loads(e.detail)["as"]) for e in events]


def test_a_tax_clerk_looks_up_a_person_with_masks_and_gets_a_verification_code(app, client, people_form):
    token = api_token(client, "clerk")
    r = _run(client, token, people_form)
    assert r.status_code == 200, r.json
    section = r.json["sections"][0]
    assert section["columns"] == ["統一編號", "姓名", "區", "所得"]
    assert section["rows"] == [["******6789", "王○明", "東區", "NT$512,000"]]
    assert section["error"] is None
    assert query_service.verifycode.normalise(r.json["verification_code"]) == r.json["verification_code"]
    log = _logs(app, people_form)[-1]
    assert log.outcome == "ok" and log.row_count == 1 and log.case_no == "1151126-0001"
    assert log.business_item == "TAX-CHECK" and log.reason is None and log.duration_ms > 0
    assert json.loads(log.params) == {"id_no": "A123456789"} and log.error is None
    assert log.snapshot_sha256 == query_service.snapshot_digest(json.loads(log.snapshot))
    assert json.loads(log.snapshot)["sections"][0]["rows"] == [["******6789", "王○明", "東區", "NT$512,000"]]
    assert log.agency_code == "TAX" and log.username == "clerk" and log.client_ip == "127.0.0.1"
    # The subject is findable by keyed hash, never stored in clear.
    with app.app_context():
        assert log.subjects == query_service.subject_hash("A123456789")
        raw = db.session.execute(
            text("SELECT params, snapshot, subjects FROM query_log WHERE id = :i"), {"i": log.id}
        ).one()
        assert all("A123456789" not in (v or "") and "王小明" not in (v or "") for v in raw)
        event = db.session.scalar(
            select(AuditEvent).where(AuditEvent.action == "query", AuditEvent.object_id == str(log.id))
        )
        assert event is not None and event.actor == "clerk" and "A123456789" not in (event.detail or "")


def test_every_query_needs_a_case_number_or_reason_and_a_business_item(app, client, people_form):
    token = api_token(client, "clerk")
    r = _run(client, token, people_form, case_no="", reason="")
    assert r.status_code == 400 and "案號或事由" in r.json["message"]
    r = _run(client, token, people_form, business_item="")
    assert r.status_code == 400 and "業務項目" in r.json["message"]
    r = _run(client, token, people_form, business_item="NOT-ALLOWED")
    assert r.status_code == 400
    r = _run(client, token, people_form, case_no="", reason="民眾臨櫃申辦地價稅減免")
    assert r.status_code == 200
    outcomes = [log.outcome for log in _logs(app, people_form)]
    assert outcomes == ["refused", "refused", "refused", "ok"]


@pytest.mark.parametrize(
    "value",
    ["A123456788", "a12345", "' OR 1=1 --", "A" * 5000, "A12345678X", "Ａ１２３４５６７８８"],
)
def test_bad_inputs_are_refused_before_any_source_is_touched_and_audited(app, client, people_form, value):
    token = api_token(client, "clerk")
    r = _run(client, token, people_form, params={"id_no": value})
    assert r.status_code == 400
    assert "身分證統一編號" in r.json["message"]
    assert value not in r.json["message"]
    log = _logs(app, people_form)[-1]
    assert log.outcome == "refused" and log.snapshot is None and log.verification_code is None


def test_an_id_typed_with_full_width_characters_is_accepted(client, people_form):
    r = _run(client, api_token(client, "clerk"), people_form, params={"id_no": "Ａ１２３４５６７８９"})
    assert r.status_code == 200 and r.json["sections"][0]["rows"][0][1] == "王○明"


def test_unknown_inputs_and_non_json_bodies_are_refused(client, people_form):
    token = api_token(client, "clerk")
    assert _run(client, token, people_form, params={"id_no": "A123456789", "x": "1"}).status_code == 400
    r = client.post("/api/v1/query/run", data="nonsense", headers=bearer(token), content_type="application/json")
    assert r.status_code == 400


def test_a_form_not_granted_to_your_agency_is_refused_and_audited(app, client, people_form):
    token = api_token(client, "clerk.social")
    r = _run(client, token, people_form)
    assert r.status_code == 403
    assert _logs(app, people_form)[-1].outcome == "refused"
    forms = client.get("/api/v1/query/forms", headers=bearer(token)).json["result"]
    assert people_form not in [f["code"] for f in forms]
    tax_forms = client.get("/api/v1/query/forms", headers=bearer(api_token(client, "clerk"))).json["result"]
    mine = next(f for f in tax_forms if f["code"] == people_form)
    assert mine["inputs"][0]["name"] == "id_no" and mine["business_items"][0]["code"] == "TAX-CHECK"


def test_field_level_authorisation_hides_income_from_other_agencies(app, client, people_form):
    with app.app_context():
        from app.models.queries import QueryForm

        form = db.session.scalar(select(QueryForm).where(QueryForm.code == people_form))
        form.granted_agencies.append(factories.agency("SOCIAL"))
        db.session.commit()
    r = _run(client, api_token(client, "clerk.social"), people_form)
    assert r.status_code == 200
    assert r.json["sections"][0]["columns"] == ["統一編號", "姓名", "區"]
    assert r.json["sections"][0]["rows"] == [["******6789", "王○明", "東區"]]


def test_a_failing_source_shows_its_error_in_its_own_section_while_the_others_show(app, client, tmp_path):
    code = f"test.partial.{uuid.uuid4().hex[:6]}"
    with app.app_context():
        good = factories.sqlite_source(f"OK-{uuid.uuid4().hex[:6]}", factories.people_db(tmp_path / "ok.db"))
        gone = factories.sqlite_source(f"GONE-{uuid.uuid4().hex[:6]}", str(tmp_path / "missing.db"))
        off = factories.sqlite_source(f"OFF-{uuid.uuid4().hex[:6]}", factories.people_db(tmp_path / "off.db"))
        off.enabled = False

        def section(title, src, order):
            s = FormSection(title=title, source=src, target="v_people", display="fields", sort_order=order)
            s.filters = [SectionFilter(column="id_no", op="eq", input_name="id_no")]
            s.columns = [SectionColumn(column="name", label="姓名", sort_order=1)]
            return s

        factories.people_form(code, good, extra_sections=[section("失聯來源", gone, 2), section("停用來源", off, 3)])
    r = _run(client, api_token(client, "clerk"), code)
    assert r.status_code == 200
    first, broken, disabled = r.json["sections"]
    assert first["error"] is None and first["rows"]
    assert broken["error"] and broken["rows"] == []
    assert "停用" in disabled["error"]
    assert r.json["outcome"] == "partial"
    log = _logs(app, code)[-1]
    assert log.outcome == "partial" and log.row_count == 1 and "停用" in log.error


def test_history_is_personal_and_reopens_the_stored_result_exactly(app, client, people_form):
    clerk = api_token(client, "clerk")
    first = _run(client, clerk, people_form, case_no="CASE-A").json
    _run(client, clerk, people_form, case_no="CASE-B")
    # The source changes afterwards: the stored result must not.
    with app.app_context():
        src = db.session.scalar(
            select(FormSection).join(FormSection.form).where(FormSection.form.has(code=people_form))
        ).source
        path = src.database
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE v_people SET district = '北區'"))
    engine.dispose()
    history = client.get(f"/api/v1/query/history?form={people_form}", headers=bearer(clerk)).json["result"]
    assert [h["case_no"] for h in history][:2] == ["CASE-B", "CASE-A"]
    again = client.get(f"/api/v1/query/history/{first['query_id']}", headers=bearer(clerk)).json
    assert again["result"]["sections"][0]["rows"] == first["sections"][0]["rows"]
    assert again["verification_code"] == first["verification_code"]
    filtered = client.get("/api/v1/query/history?case_no=CASE-A", headers=bearer(clerk)).json["result"]
    assert {h["case_no"] for h in filtered} == {"CASE-A"}

    # Nobody else may read it; the auditor may.
    other = api_token(client, "clerk.social")
    assert client.get(f"/api/v1/query/history/{first['query_id']}", headers=bearer(other)).status_code == 403
    assert _reopenings(app, first["query_id"]) == [("clerk", "ok", "api"), ("clerk.social", "refused", "api")]
    assert all(h["query_id"] != first["query_id"]
               for h in client.get("/api/v1/query/history", headers=bearer(other)).json["result"])  # fmt: skip
    auditor = api_token(client, "auditor")
    everyone = client.get("/api/v1/query/history?everyone=1&limit=200", headers=bearer(auditor)).json["result"]
    assert any(h["query_id"] == first["query_id"] and h["user"] == "clerk" for h in everyone)
    assert client.get(f"/api/v1/query/history/{first['query_id']}", headers=bearer(auditor)).status_code == 200
    # ...but an auditor never runs queries.
    assert _run(client, auditor, people_form).status_code in (401, 403)


def test_the_public_verification_confirms_a_code_without_personal_data(app, client, people_form):
    run = _run(client, api_token(client, "clerk"), people_form).json
    code = run["verification_code"]
    anonymous = app.test_client()
    r = anonymous.get(f"/api/v1/verify/{code}")
    assert r.status_code == 200 and r.json["valid"] is True
    body = json.dumps(r.json, ensure_ascii=False)
    assert "王" not in body and "6789" not in body and r.json["agency"] == "示範縣地方稅務局"
    page = anonymous.get(f"/verify/{code.lower()}")
    assert page.status_code == 200 and "真實" in page.text
    # The page shows Taipei time in ROC form as the printout does; the API keeps ISO UTC.
    from app.lib.rocdate import format_roc_datetime

    issued = datetime.datetime.fromisoformat(r.json["issued_at"].replace("Z", "+00:00")).replace(tzinfo=None)
    assert format_roc_datetime(issued) in page.text and r.json["issued_at"] not in page.text
    # A typo is caught by the check character, before any lookup.
    typo = code[:-1] + ("0" if code[-1] != "0" else "1")
    r = anonymous.get(f"/api/v1/verify/{typo}")
    assert r.status_code == 400 and r.json["valid"] is False
    # Unknown, expired and altered codes are refused.
    from app.lib.verifycode import new_code

    assert anonymous.get(f"/api/v1/verify/{new_code()}").status_code == 404
    with app.app_context():
        db.session.execute(update(QueryLog).where(QueryLog.id == run["query_id"]).values(snapshot_sha256="0" * 64))
        db.session.commit()
    assert anonymous.get(f"/api/v1/verify/{code}").status_code == 404
    with app.app_context():
        db.session.execute(
            update(QueryLog).where(QueryLog.id == run["query_id"]).values(valid_until=datetime.datetime(2020, 1, 1))
        )
        db.session.commit()
    r = anonymous.get(f"/api/v1/verify/{code}")
    assert r.status_code == 404 and "過期" in r.json["message"]


def test_the_clerk_uses_the_query_page_and_history_page(app, client, people_form):
    login(client, "clerk")
    menu = client.get("/query/")
    assert menu.status_code == 200 and people_form in menu.text
    r = client.post(f"/query/form/{people_form}", data={"case_no": "", "reason": "", "business_item": "TAX-CHECK",
                                                        "id_no": "A123456789"})  # fmt: skip
    assert "案號或事由" in r.text and "query-result" not in r.text
    r = client.post(f"/query/form/{people_form}", data={"case_no": "PAGE-1", "reason": "", "business_item": "TAX-CHECK",
                                                        "id_no": "A123456789"})  # fmt: skip
    assert "王○明" in r.text and "NT$512,000" in r.text
    log = _logs(app, people_form)[-1]
    hist = client.get("/query/history/")
    assert "PAGE-1" in hist.text
    again = client.get(f"/query/result/{log.id}")
    assert "王○明" in again.text and log.verification_code in again.text
    printable = client.get(f"/query/result/{log.id}/print")
    assert printable.status_code == 200 and "限公務使用" in printable.text and log.verification_code in printable.text
    assert client.get(f"/query/result/{log.id}/pdf").status_code == 200
    client.get("/logout/")
    login(client, "clerk.social")
    assert client.get(f"/query/result/{log.id}").status_code == 403
    # A query sent from the page to a form not granted to this agency is refused and recorded.
    refused = client.post(f"/query/form/{people_form}", data={"case_no": "PAGE-2", "reason": "",
                                                              "business_item": "TAX-CHECK", "id_no": "A123456789"})  # fmt: skip
    assert refused.status_code == 403
    attempt = _logs(app, people_form)[-1]
    assert (attempt.username, attempt.outcome, attempt.case_no) == ("clerk.social", "refused", "PAGE-2")
    # Each reopening is recorded with how it was shown; so is the refused attempt.
    assert _reopenings(app, log.id) == [("clerk", "ok", "page"), ("clerk", "ok", "print"), ("clerk", "ok", "pdf"),
                                        ("clerk.social", "refused", "page")]  # fmt: skip


def test_a_source_that_hangs_times_out_in_its_own_section(app, client, tmp_path):
    """A web service that accepts the connection and never answers."""
    import socket
    import threading
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held = []
    stop = threading.Event()

    def accept_and_hold():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    threading.Thread(target=accept_and_hold, daemon=True).start()
    code = f"test.hang.{uuid.uuid4().hex[:6]}"
    try:
        with app.app_context():
            from app.models.sources import DataSource

            good = factories.sqlite_source(f"OK-{uuid.uuid4().hex[:6]}", factories.people_db(tmp_path / "ok.db"))
            hang = DataSource(code=f"HANG-{uuid.uuid4().hex[:6]}", name="不回應的服務", kind="rest", timeout=1,
                              row_cap=10, url=f"http://127.0.0.1:{listener.getsockname()[1]}", enabled=True)  # fmt: skip
            db.session.add(hang)
            slow = FormSection(title="不回應", source=hang, target="/people/{id_no}", display="table", sort_order=2)
            slow.filters = [SectionFilter(column="id_no", op="eq", input_name="id_no")]
            slow.columns = [SectionColumn(column="name", label="姓名", sort_order=1)]
            factories.people_form(code, good, extra_sections=[slow])
        started = time.monotonic()
        r = _run(client, api_token(client, "clerk"), code)
        elapsed = time.monotonic() - started
        assert r.status_code == 200
        first, hanging = r.json["sections"]
        assert first["rows"] and first["error"] is None
        assert hanging["error"] and hanging["rows"] == []
        assert elapsed < 4, "a hanging source must not hold the query much longer than its timeout"
        assert _logs(app, code)[-1].outcome == "partial"
    finally:
        stop.set()
        for s in held:
            s.close()
        listener.close()


def test_a_form_edited_in_one_process_reaches_another_within_the_check_interval(app, tmp_path):
    """Two web processes on one database: the one that edits sees the edit at
    once; the other keeps its cached plan at most FORM_PLAN_CHECK_SECONDS."""
    import time

    from app import create_app
    from app.models.queries import QueryForm
    from app.services.query import plan as formplan

    code = f"test.plan.{uuid.uuid4().hex[:6]}"
    with app.app_context():
        src = factories.sqlite_source(f"SRC-{uuid.uuid4().hex[:6]}", factories.people_db(tmp_path / "people.db"))
        factories.people_form(code, src)
    other = create_app(type("OtherProcess", (), {**app.config, "FORM_PLAN_CHECK_SECONDS": 0.5}))
    with other.app_context():
        assert formplan.plan(db.session, code).title == f"測試表單 {code}"
        db.session.remove()
    with app.app_context():
        form = db.session.scalar(select(QueryForm).where(QueryForm.code == code))
        form.title = "改過的標題"
        db.session.commit()
        assert formplan.plan(db.session, code).title == "改過的標題"  # the editing process: at once
    deadline = time.monotonic() + 5
    with other.app_context():
        while formplan.plan(db.session, code).title != "改過的標題" and time.monotonic() < deadline:
            db.session.remove()
            time.sleep(0.1)
        assert formplan.plan(db.session, code).title == "改過的標題"
        db.session.remove()
        db.engine.dispose()
    assert time.monotonic() < deadline


def test_on_postgresql_a_query_writes_its_log_and_audit_event_in_one_statement_that_the_sealer_chains(
    app, client, people_form, backend
):
    from app.services import audit

    token = api_token(client, "clerk")
    r = _run(client, token, people_form)
    assert r.status_code == 200, r.json
    with app.app_context():
        bind = db.session.get_bind()
        # PostgreSQL with background sealing takes the one-statement path; SQLite the session's.
        assert audit.can_write_with_event(bind) == (backend.backend == "postgresql")
        event = db.session.scalar(
            select(AuditEvent).where(AuditEvent.action == "query", AuditEvent.object_id == str(r.json["query_id"]))
        )
        log = db.session.get(QueryLog, r.json["query_id"])
        assert event is not None and log is not None
        assert event.actor == "clerk" and event.agency_code == "TAX" and event.outcome == "ok"
        assert json.loads(event.detail) == {"form": people_form, "rows": 1}
        if backend.backend == "postgresql":  # one statement: the event carries the log's own time
            assert event.at == log.at
        db.session.rollback()
        audit.seal_all(db.engine)
        with db.engine.connect() as conn:
            assert audit.pending(conn) == 0
            assert audit.verify(conn).ok
        sealed = db.session.scalar(select(AuditEvent.seq).where(AuditEvent.id == event.id))
        assert sealed is not None


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)  # the one-statement write is PostgreSQL's
def test_on_postgresql_a_log_row_whose_audit_event_fails_is_not_written_either(app, backend):
    from app.services import actors, audit

    with app.app_context():
        table = QueryLog.__table__
        code = f"ATOMIC{uuid.uuid4().hex[:8]}".upper()[:24]
        values = {c.key: None for c in table.columns if c.key != "id"}
        values.update(at=datetime.datetime.utcnow(), form_code="atomic.test", outcome="ok", row_count=0,
                      verification_code=code)  # fmt: skip
        too_long = actors.Actor(user_id=None, username="x" * 500)  # the event's actor column holds 128
        # The statement runs in autocommit straight on a pooled connection:
        # whatever happens, the connection goes back to the pool out of it.
        returned = []
        on_checkin = lambda driver, record: returned.append(driver.autocommit)  # noqa: E731
        event.listen(db.engine, "checkin", on_checkin)
        try:
            with pytest.raises(DataError):
                audit.insert_with_event(db.engine, table, values, "query", object_type="QueryLog", actor=too_long)
            assert db.session.scalar(select(QueryLog.id).where(QueryLog.verification_code == code)) is None
            # ...and a good one writes both rows, the parameters and snapshot encrypted at rest.
            values.update(params='{"id_no": "A123456789"}', snapshot='{"sections": ["王小明"]}')
            new_id = audit.insert_with_event(db.engine, table, values, "query", object_type="QueryLog",
                                             actor=actors.Actor(user_id=None, username="atomic"))  # fmt: skip
        finally:
            event.remove(db.engine, "checkin", on_checkin)
        assert returned.count(False) >= 2 and True not in returned
        assert db.session.scalar(select(QueryLog.verification_code).where(QueryLog.id == new_id)) == code
        stored = db.session.execute(text("SELECT params, snapshot FROM query_log WHERE id = :id"), {"id": new_id}).one()
        assert "A123456789" not in stored.params and "王小明" not in stored.snapshot
        entry = db.session.get(QueryLog, new_id)
        assert (entry.params, entry.snapshot) == (values["params"], values["snapshot"])
        assert (
            db.session.scalar(
                select(AuditEvent.actor).where(
                    AuditEvent.object_type == "QueryLog", AuditEvent.object_id == str(new_id)
                )
            )
            == "atomic"
        )
        db.session.rollback()


def test_the_platform_engine_and_pending_changes_are_told_without_opening_a_session(app):
    from app.extensions import has_pending_changes, platform_bind

    with app.app_context():
        db.session.remove()
        engine = platform_bind(db.session)
        assert not has_pending_changes(db.session)
        assert not db.session.registry.has()  # neither question opened the request's session
        assert engine is db.session.get_bind()
        from app.models.org import Agency

        db.session.add(Agency(code=f"P{uuid.uuid4().hex[:5]}".upper(), name="待存機關"))
        assert has_pending_changes(db.session)
        db.session.rollback()
        assert not has_pending_changes(db.session)


def test_parcel_numbers_dates_numbers_and_purpose_lengths_are_checked_before_any_source(app):
    """Typed as clerks type them (full-width too) and normalised; refused with
    the input's label and an example when malformed."""
    from types import SimpleNamespace

    from app.services.errors import InvalidInput

    def field(name, label, type_):
        return SimpleNamespace(name=name, label=label, type=type_, required=False, max_length=None, pattern=None,
                               choices=None)  # fmt: skip

    form = SimpleNamespace(inputs=[field("parcel", "地號", "land_parcel"), field("day", "登記日期", "date"),
                                   field("floors", "樓層數", "number")])  # fmt: skip
    with app.test_request_context():
        ok = query_service.validate_inputs
        assert ok(form, {"parcel": "18-1", "day": "115/11/26", "floors": "7"}) == {
            "parcel": "00180001", "day": "2026-11-26", "floors": "7"}  # fmt: skip
        assert ok(form, {"parcel": "１８－１", "day": "2026-11-26"}) == {"parcel": "00180001", "day": "2026-11-26"}
        assert ok(form, {"parcel": "00180001", "day": "民國115年11月26日"})["parcel"] == "00180001"
        for params, words in (({"parcel": "18-1-2"}, "18-1"), ({"parcel": "12345"}, "18-1"), ({"parcel": "甲"}, "地號"),
                              ({"day": "115/13/40"}, "115/11/26"), ({"day": "2026-02-30"}, "登記日期"),
                              ({"floors": "3F"}, "樓層數")):  # fmt: skip
            with pytest.raises(InvalidInput) as refused:
                ok(form, params)
            assert words in str(refused.value), params
        item = SimpleNamespace(code="TAX-CHECK", active=True, name="稅籍查核", agency=None)
        purpose_form = SimpleNamespace(business_items=[item])
        assert query_service.check_purpose(purpose_form, "1151126-0001", "", "TAX-CHECK", agency_code="TAX") is item
        for case_no, reason in (("C" * 61, ""), ("", "因" * 201)):
            with pytest.raises(InvalidInput) as refused:
                query_service.check_purpose(purpose_form, case_no, reason, "TAX-CHECK", agency_code="TAX")
            assert "過長" in str(refused.value)


def test_a_form_granted_to_the_agency_but_not_to_the_clerks_role_is_refused_and_recorded(app, client, tmp_path):
    code = f"test.role.{uuid.uuid4().hex[:6]}"
    with app.app_context():
        src = factories.sqlite_source(f"ROLE-{uuid.uuid4().hex[:6]}", factories.people_db(tmp_path / "role.db"))
        factories.people_form(code, src, agencies=("TAX",), roles=("Supervisor",))
    r = _run(client, api_token(client, "clerk"), code)
    assert r.status_code == 403 and "角色" in r.json["message"]
    log = _logs(app, code)[-1]
    assert (log.username, log.outcome, log.snapshot) == ("clerk", "refused", None)


def test_when_every_source_fails_the_query_is_recorded_as_a_source_error_with_what_each_said(app, client, tmp_path):
    code = f"test.allfail.{uuid.uuid4().hex[:6]}"
    with app.app_context():
        off = factories.sqlite_source(f"OFF-{uuid.uuid4().hex[:6]}", factories.people_db(tmp_path / "off.db"))
        off.enabled = False
        factories.people_form(code, off)
    r = _run(client, api_token(client, "clerk"), code)
    assert r.status_code == 200 and r.json["outcome"] == "source_error"
    assert "停用" in r.json["sections"][0]["error"] and r.json["sections"][0]["rows"] == []
    log = _logs(app, code)[-1]
    assert log.outcome == "source_error" and log.row_count == 0 and "停用" in log.error
    assert log.verification_code == r.json["verification_code"] and log.snapshot_sha256
    with app.app_context():
        assert db.session.scalar(
            select(AuditEvent.outcome).where(AuditEvent.action == "query", AuditEvent.object_id == str(log.id))
        ) == "source_error"  # fmt: skip


def test_the_history_filters_by_taipei_days_typed_in_roc_or_iso_form(app, client, people_form):
    """07:30 in Taipei on 26 November is still 25 November in UTC; 00:30 on
    the 27th is still the 26th: the clerk's day is Taipei's."""
    clerk = api_token(client, "clerk")
    early = _run(client, clerk, people_form, case_no="DAY-EARLY").json["query_id"]
    late = _run(client, clerk, people_form, case_no="DAY-LATE").json["query_id"]
    with app.app_context():
        for query_id, at in (
            (early, datetime.datetime(2026, 11, 25, 23, 30)),
            (late, datetime.datetime(2026, 11, 26, 16, 30)),
        ):
            db.session.execute(update(QueryLog).where(QueryLog.id == query_id).values(at=at))
        db.session.commit()

    def cases(**filters):
        args = "&".join(f"{k}={v}" for k, v in {"form": people_form, **filters}.items())
        return {h["case_no"] for h in client.get(f"/api/v1/query/history?{args}", headers=bearer(clerk)).json["result"]}

    assert cases(**{"from": "115/11/26", "to": "115/11/26"}) == {"DAY-EARLY"}
    assert cases(**{"from": "2026-11-27", "to": "2026-11-27"}) == {"DAY-LATE"}
    assert cases(**{"from": "115/11/26", "to": "115/11/27"}) == {"DAY-EARLY", "DAY-LATE"}


@pytest.mark.parametrize(
    "body",
    [
        {"case_no": 123},
        {"reason": True},
        {"business_item": ["TAX-CHECK"]},
        {"params": {"id_no": 123456789}},
        {"params": {"id_no": True}},
        {"params": ["A123456789"]},
        {"form": {"code": "x"}},
        {"surprise": "field"},
        {"params": {"id_no": "A12345678\x00"}},
    ],
)
def test_a_query_with_a_wrong_json_type_or_an_unknown_field_is_a_400_naming_the_field_never_coerced(
    app, client, people_form, body
):
    before = len(_logs(app, people_form))
    payload = {
        "form": people_form,
        "case_no": "1151126-0001",
        "business_item": "TAX-CHECK",
        "params": {"id_no": "A123456789"},
        **body,
    }
    r = client.post("/api/v1/query/run", json=payload, headers=bearer(api_token(client, "clerk")))
    assert r.status_code == 400, r.json
    assert set(r.json["errors"]) == set(body)  # the field at fault is named
    assert len(_logs(app, people_form)) == before  # nothing ran, nothing was coerced into a query


def test_a_stored_result_id_beyond_64_bits_or_not_a_number_is_not_found_never_a_server_error(client):
    clerk = api_token(client, "clerk")
    for query_id in ("99999999999999999999999", "9223372036854775808", "0"):
        assert client.get(f"/api/v1/query/history/{query_id}", headers=bearer(clerk)).status_code == 404
    assert client.get("/api/v1/query/history/abc", headers=bearer(clerk)).status_code == 404


def test_history_filters_that_are_not_dates_or_numbers_are_refused_with_a_400(client):
    clerk = api_token(client, "clerk")
    for args in ("from=yesterday", "to=115/13/40", "limit=many", "limit=100000", "everyone=yes", "sort=at"):
        r = client.get(f"/api/v1/query/history?{args}", headers=bearer(clerk))
        assert r.status_code == 400, args


def test_each_input_type_is_one_normaliser_in_the_registry_and_every_model_type_has_one():
    from app.models.queries import INPUT_TYPES

    assert set(query_service.INPUT_TYPES) == set(INPUT_TYPES)


def test_the_query_api_is_described_in_the_served_openapi_document(app):
    from tests.openapi_check import errors_of, served_spec

    spec = served_spec(app)
    paths = {p: v for p, v in spec["paths"].items() if p.startswith(("/api/v1/query/", "/api/v1/verify/"))}
    assert {"/api/v1/query/run", "/api/v1/query/history/{query_id}", "/api/v1/verify/{code}"} <= set(paths)
    stored = paths["/api/v1/query/history/{query_id}"]["get"]
    assert stored["parameters"][0]["schema"]["maximum"] == 9223372036854775807
    assert paths["/api/v1/query/run"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/QueryRunSchema"
    }
    assert [e for e in errors_of(spec) if e.startswith(("paths/~1api~1v1~1query", "paths/~1api~1v1~1verify"))] == []


def test_a_lone_surrogate_in_a_query_is_a_400_and_runs_nothing(app, client, people_form):
    before = len(_logs(app, people_form))
    token = api_token(client, "clerk")
    for body in ({"reason": "\ud800"}, {"params": {"id_no": "\udfff"}}, {"form": "x\ud800"}):
        payload = {"form": people_form, "case_no": "C-1", "business_item": "TAX-CHECK", **body}
        assert client.post("/api/v1/query/run", json=payload, headers=bearer(token)).status_code == 400, body
    assert len(_logs(app, people_form)) == before


def test_a_designer_change_is_one_command_checked_by_its_rule_and_committed_whole(app):
    from app.models.queries import QueryForm
    from app.services.errors import InvalidInput
    from app.services.query import design

    code = f"test.design.{uuid.uuid4().hex[:6]}"
    with app.app_context():
        with pytest.raises(InvalidInput):
            design.save(db.session, QueryForm(code=code, title="  "))  # a form needs a title
        assert db.session.scalar(select(QueryForm.id).where(QueryForm.code == code)) is None
        saved = design.save(db.session, QueryForm(code=code, title="設計測試", active=False))
        saved_id = saved.id
        db.session.rollback()  # nothing left to roll back: the command committed
        assert db.session.scalar(select(QueryForm.id).where(QueryForm.code == code)) == saved_id
        created = db.session.scalar(
            select(AuditEvent).where(
                AuditEvent.action == "create",
                AuditEvent.object_type == "QueryForm",
                AuditEvent.object_id == str(saved.id),
            )
        )
        assert created is not None
        design.remove(db.session, [saved])
        assert db.session.scalar(select(QueryForm.id).where(QueryForm.code == code)) is None
