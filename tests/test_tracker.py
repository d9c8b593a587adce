"""Who read my data through its index (issue 15, items 4 and 6): each query that read someone's
data writes one query_subject row per data subject with the log entry (none for a refused query);
a household query names every member the e-gate answers with, so each member sees it and nobody
else does; the tracker answers a page at a time, newest first; a flag e-mails the querying
agency's Auditors through the outbox and shows on their home page; migration 0019 fills the
table from the log's existing entries."""

from __future__ import annotations

import datetime
import json
import re
import uuid

import pytest
from sqlalchemy import func, insert, select, text

from app.extensions import db
from app.models.outbox import OutboxMessage
from app.models.queries import QueryLog, QuerySubject
from app.services.query.record import subject_hash
from tests.conftest import api_token, bearer, login
from tests.test_notify import _deliver, _mails_to
from tests.test_portal import card_page_sign_in, citizen_token, pki, sim  # noqa: F401 (fixtures)

WANG, LIN = "A123456789", "U253416532"  # the demo cards' holders: one household (U1000128) in the e-gate


def run(client, form: str, id_no: str, item: str, **extra):
    body = {"form": form, "case_no": "1151203-0077", "reason": "", "business_item": item,
            "params": {"id_no": id_no}, **extra}  # fmt: skip
    return client.post("/api/v1/query/run", json=body, headers=bearer(api_token(client, "clerk")))


def seen_by(client, token: str, page: int | None = None) -> list[int]:
    r = client.get("/api/v1/me/accesses" + (f"?page={page}" if page else ""), headers=bearer(token))
    assert r.status_code == 200, r.json
    return [e["id"] for e in r.json["result"]]


def subjects_of(app, query_id: int) -> set[str]:
    with app.app_context():
        found = set(db.session.scalars(select(QuerySubject.subject_hash).where(QuerySubject.query_log_id == query_id)))
        db.session.remove()
        return found


def test_a_household_query_is_seen_by_each_member_and_by_nobody_else(app, pki, sim):  # noqa: F811
    client = app.test_client()
    wang, lin = citizen_token(client, sim, pki), citizen_token(client, sim, pki, "citizen-lin")
    r = run(client, "household.whole", WANG, "TAX-EXEMPT")  # the tax clerk asks for wang's whole household
    assert r.status_code == 200, r.json
    household_query = r.json["query_id"]
    members = r.json["sections"][0]["rows"]
    assert len(members) >= 3  # wang, his wife lin, his mother...
    r = run(client, "household.person", "A255371931", "TAX-EXEMPT")  # his mother alone
    assert r.status_code == 200, r.json
    mother_query = r.json["query_id"]
    # each member of the household is a subject of the household query, by keyed hash only
    with app.app_context():
        hashes = subjects_of(app, household_query)
        log = db.session.get(QueryLog, household_query)
        assert {subject_hash(WANG), subject_hash(LIN), subject_hash("A255371931")} <= hashes
        assert len(hashes) == len(members)
        assert set(log.subjects.split("\n")) == hashes
        assert WANG not in log.subjects and LIN not in log.subjects
        stored = db.session.execute(select(QuerySubject.subject_hash, QuerySubject.at)
                                    .where(QuerySubject.query_log_id == household_query)).all()  # fmt: skip
        assert {at for _h, at in stored} == {log.at}
        db.session.remove()
    # lin was never typed in, yet she sees the query of her household; the mother's alone she does not
    assert household_query in seen_by(client, lin)
    assert mother_query not in seen_by(client, lin)
    mine = seen_by(client, wang)
    assert mine[0] == household_query and mother_query not in mine
    r = client.get("/api/v1/me/accesses", headers=bearer(lin))
    entry = next(e for e in r.json["result"] if e["id"] == household_query)
    assert entry["form_title"] == "全戶戶籍資料（RQ01）" and entry["agency_code"] == "TAX"
    assert WANG not in json.dumps(r.json) and "王小明" not in json.dumps(r.json, ensure_ascii=False)
    # she can flag it as her own entry; another person's entry stays a 404
    assert client.post(f"/api/v1/me/accesses/{mother_query}/flag", json={}, headers=bearer(lin)).status_code == 404


def test_a_refused_query_writes_no_subject_row(app, pki, sim):  # noqa: F811
    client = app.test_client()
    wang = citizen_token(client, sim, pki)
    r = run(client, "household.person", WANG, "")  # no business item: refused
    assert r.status_code == 400
    with app.app_context():
        refused = db.session.scalar(select(func.max(QueryLog.id)).where(QueryLog.outcome == "refused"))
        assert subject_hash(WANG) in (db.session.get(QueryLog, refused).subjects or "")
        db.session.remove()
    assert subjects_of(app, refused) == set()
    assert refused not in seen_by(client, wang)
    r = run(client, "household.person", WANG, "TAX-EXEMPT")
    with app.app_context():
        wang_hash = subject_hash(WANG)
    assert r.status_code == 200 and subjects_of(app, r.json["query_id"]) == {wang_hash}


def test_the_tracker_answers_a_page_at_a_time_newest_first(app, pki, sim):  # noqa: F811
    client = app.test_client()
    lin = citizen_token(client, sim, pki, "citizen-lin")
    base = datetime.datetime(2025, 1, 1, 8, 0)
    with app.app_context():  # 120 older entries of lin's data, an hour apart, and one of someone else
        table = QueryLog.__table__
        ids = []
        for n in range(121):
            values = {"at": base + datetime.timedelta(hours=n), "agency_code": "TAX", "form_code": "t", "outcome": "ok",
                      "form_title": "舊查詢", "row_count": 1}  # fmt: skip
            ids.append(db.session.execute(insert(table).returning(table.c.id), values).scalar_one())
        owner = [subject_hash(LIN)] * 120 + [subject_hash("A255371931")]
        db.session.execute(insert(QuerySubject.__table__), [
            {"query_log_id": i, "subject_hash": h, "at": base + datetime.timedelta(hours=n)}
            for n, (i, h) in enumerate(zip(ids, owner, strict=True))
        ])  # fmt: skip
        db.session.commit()
        db.session.remove()
    pages, page = [], 1
    while page:
        r = client.get(f"/api/v1/me/accesses?page={page}", headers=bearer(lin))
        assert r.status_code == 200 and r.json["page"] == page
        pages.append([e["id"] for e in r.json["result"]])
        page = r.json["next_page"]
    assert [len(p) for p in pages[:2]] == [50, 50]
    listed = [i for p in pages for i in p]
    assert len(listed) == len(set(listed))
    old = [i for i in listed if i in ids]
    assert old == list(reversed(ids[:120]))  # every one of lin's, newest first, and not the other person's
    for bad in ("0", "abc", "99999999"):
        r = client.get(f"/api/v1/me/accesses?page={bad}", headers=bearer(lin))
        assert r.status_code == 400 and "1" in r.json["message"]
    html = app.test_client()
    card_page_sign_in(html, sim, "citizen-lin")
    second = html.get("/portal/accesses/?page=2")
    assert second.status_code == 200 and 'id="accesses-newer"' in second.text and 'id="accesses-older"' in second.text


def test_a_flag_mails_the_querying_agencys_auditors_and_waits_on_their_home_page(app, pki, sim, smtp):  # noqa: F811
    client = app.test_client()
    wang = citizen_token(client, sim, pki)
    auditor = app.test_client()
    login(auditor, "auditor.tax")
    before = auditor.get("/").text
    assert 'id="todo-flags"' in before
    r = run(client, "household.person", WANG, "TAX-EXEMPT")
    query_id = r.json["query_id"]
    r = client.post(f"/api/v1/me/accesses/{query_id}/flag", json={"note": "不是我"}, headers=bearer(wang))
    assert r.status_code == 201, r.json
    with app.app_context():
        from app.models.org import PlatformUser
        from app.models.portal import AccessFlag

        flag_id = db.session.scalar(select(AccessFlag.id).where(AccessFlag.query_log_id == query_id))
        address = db.session.scalar(select(PlatformUser.email).where(PlatformUser.username == "auditor.tax"))
        queued = db.session.scalars(select(OutboxMessage).where(OutboxMessage.topic == f"access_flag:{flag_id}")).all()
        assert [m.recipient for m in queued] == [address]  # the tax bureau's Auditor, not the county's
        body = queued[0].body
        assert str(flag_id) in body and "/accessflags/" in body
        assert WANG not in body and "王小明" not in body and "不是我" not in body and "clerk" not in body
        open_flags = db.session.scalar(
            select(func.count()).select_from(AccessFlag)
            .where(AccessFlag.agency_code == "TAX", AccessFlag.answered_at.is_(None))
        )  # fmt: skip
        db.session.remove()
    assert _mails_to(_deliver(app, smtp, 1), address)
    home = auditor.get("/").text
    shown = re.search(r'id="todo-flags" href="/accessflags/">\s*<span class="badge">(\d+)</span>', home)
    assert shown and int(shown.group(1)) == open_flags
    # staff who answer no flags see no such work list; the clerk's home page has none
    clerk = app.test_client()
    login(clerk, "clerk")
    assert 'id="todo-flags"' not in clerk.get("/").text


@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql"])
def test_the_upgrade_fills_the_subject_table_from_the_log(backend_name, tmp_path):
    from flask_migrate import downgrade, upgrade

    from app import create_app
    from config import TestConfig
    from tests.conftest import Database

    database = Database(backend_name, tmp_path)

    class Cfg(TestConfig):
        SQLALCHEMY_DATABASE_URI = database.url
        AUDIT_CHECKPOINT_FILE = str(tmp_path / "checkpoints.jsonl")

    app = create_app(Cfg)
    a, b, c = (uuid.uuid4().hex * 2 for _ in range(3))
    at = datetime.datetime(2026, 11, 30, 9, 15)
    rows = [  # (outcome, subjects): only what read data gets rows
        ("ok", f"{a}\n{b}"), ("partial", c), ("refused", a), ("source_error", b), ("ok", None), ("ok", f"{a}\n"),
    ]  # fmt: skip
    try:
        with app.app_context():
            upgrade(revision="0018")
            with db.engine.begin() as conn:
                for n, (outcome, subjects) in enumerate(rows, start=1):
                    conn.execute(
                        text(
                            "INSERT INTO query_log (id, at, outcome, subjects, row_count) VALUES (:i, :at, :o, :s, 0)"
                        ),
                        {"i": n, "at": at + datetime.timedelta(minutes=n), "o": outcome, "s": subjects},
                    )
            upgrade()
            with db.engine.connect() as conn:
                found = set(conn.execute(select(QuerySubject.query_log_id, QuerySubject.subject_hash, QuerySubject.at)))
            expected = {(1, a), (1, b), (2, c), (6, a)}
            assert {(i, h) for i, h, _at in found} == expected
            assert all(found_at == at + datetime.timedelta(minutes=i) for i, _h, found_at in found)
            downgrade(revision="0018")
            with db.engine.connect() as conn:
                assert conn.execute(text("SELECT count(*) FROM query_log")).scalar_one() == len(rows)
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        database.drop()
