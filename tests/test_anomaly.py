"""Anomaly rules over the query log (issue 19 items 1 and 5): an Admin configures the rules,
the office calendar and the protected list without code (nonsense is refused when saved);
the worker's round raises flags on a clerk's burst on a holiday, on a protected person and on
the clerk's own household (through the e-gate); the agency's supervisor and the auditors
resolve them with an outcome and a comment, audited; the auditor's desk sums it up."""

from __future__ import annotations

import datetime
import hashlib
import json
import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import delete, func, select

from app.extensions import db
from app.models.anomaly import AnomalyFlag, AnomalyRule, OfficeDay, ProtectedSubject, WeeklyReview
from app.models.audit import AuditEvent
from app.models.cards import CardBinding
from app.models.org import PlatformUser
from app.models.outbox import OutboxMessage
from app.models.queries import QueryLog
from app.services import anomaly
from app.services.actors import for_user
from app.services.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.services.query import subject_hash
from app.services.reports.filters import taipei_today
from app.services.roles import RESOLVE_ANOMALIES, holders_of
from tests.conftest import api_token, bearer, csrf_token, login

LETTERS = {"A": 10, "B": 11, "C": 12, "D": 13, "E": 14, "F": 15, "G": 16, "H": 17}


def valid_id(letter: str, n: int) -> str:
    """A national ID with a correct check digit (DOMAIN.md), the n-th of its letter."""
    body = f"1{n:07d}"
    v = LETTERS[letter]
    digits = [v // 10, v % 10] + [int(c) for c in body]
    total = sum(w * d for w, d in zip((1, 9, 8, 7, 6, 5, 4, 3, 2, 1), digits))
    return f"{letter}{body}{(10 - total % 10) % 10}"


def run_query(client, token, id_no, form="tax.income", case_no="1151203-0001", item="TAX-EXEMPT"):
    payload = {"form": form, "case_no": case_no, "reason": "", "business_item": item, "params": {"id_no": id_no}}
    r = client.post("/api/v1/query/run", json=payload, headers=bearer(token))
    assert r.status_code == 200, r.json
    return r.json


def evaluate(app) -> dict:
    """One round of the anomalies worker, as if ANOMALY_SETTLE_SECONDS had passed."""
    with app.app_context():
        later = datetime.datetime.utcnow() + datetime.timedelta(seconds=30)
        return anomaly.evaluate_round(db.session, now=later)


def actor(username: str):
    user = db.session.scalar(select(PlatformUser).where(PlatformUser.username == username))
    return for_user(user, session=db.session)


def flags_of(app, username: str, kind: str | None = None) -> list[AnomalyFlag]:
    with app.app_context():
        stmt = select(AnomalyFlag).where(AnomalyFlag.username == username).order_by(AnomalyFlag.id)
        if kind:
            stmt = stmt.where(AnomalyFlag.kind == kind)
        found = list(db.session.scalars(stmt))
        db.session.expunge_all()
        return found


def admin_post(client, path: str, data: dict):
    page = client.get(path)
    return client.post(path, data={**data, "csrf_token": csrf_token(page.text) or ""}, follow_redirects=True)


def test_a_rule_with_nonsense_thresholds_is_refused_when_saved(app):
    admin = app.test_client()
    login(admin, "admin")
    base = {"code": "TEST-MANY", "name": "測試：一小時多人", "kind": "many_subjects", "severity": "high",
            "threshold": "0", "window_minutes": "60", "active": "y"}  # fmt: skip
    nonsense = [
        ({"threshold": "0"}, "不同人數必須是 2 到 100000 的整數"),
        ({"threshold": "5", "window_minutes": "0"}, "期間必須是 1 到 10080 分鐘"),
        ({"threshold": "5", "window_minutes": "7"}, "期間必須能整除一天"),
        ({"threshold": "", "window_minutes": "60"}, "不同人數必須是 2 到 100000 的整數"),
        ({"kind": "off_hours", "office_start": "18:00", "office_end": "08:00"}, "上班時間的結束必須晚於開始"),
        ({"kind": "off_hours", "office_start": "25:00", "office_end": "08:00"}, "上班時間請以 HH:MM 表示"),
        ({"kind": "repeat_subject", "threshold": "1", "window_minutes": "1440"}, "重複次數必須是 2 到 1000 的整數"),
        ({"severity": "extreme", "threshold": "5"}, None),
    ]
    for change, message in nonsense:
        page = admin_post(admin, "/anomalyruleview/add", {**base, **change}).text
        if message:
            assert message in page, change
    with app.app_context():
        assert (
            db.session.scalar(select(func.count()).select_from(AnomalyRule).where(AnomalyRule.code == "TEST-MANY")) == 0
        )
    page = admin_post(admin, "/anomalyruleview/add", {**base, "threshold": "5", "office_start": "08:00"}).text
    with app.app_context():
        rule = db.session.scalar(select(AnomalyRule).where(AnomalyRule.code == "TEST-MANY"))
        assert rule is not None and (rule.threshold, rule.window_minutes) == (5, 60)
        assert rule.office_start is None  # not this kind's setting: not kept
        # a rule's change is audited like any configuration change
        assert db.session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.object_type == "AnomalyRule")
        )
        db.session.delete(rule)
        db.session.commit()
    # the calendar: a make-up workday on a weekday is nonsense; one date once
    monday = datetime.date(2026, 12, 7)
    page = admin_post(admin, "/officedayview/add", {"day": monday.isoformat(), "kind": "workday", "name": "補行上班"})
    assert "補行上班日必須是星期六或星期日" in page.text
    with app.app_context():
        assert db.session.scalar(select(OfficeDay).where(OfficeDay.day == monday)) is None


def test_the_protected_list_keeps_only_the_keyed_hash(app):
    admin = app.test_client()
    login(admin, "admin")
    number = valid_id("F", 77)
    page = admin_post(admin, "/protectedsubjectview/add", {"number": "A123456780", "label": "測試保護"}).text
    assert "不是有效的身分證號或統一編號" in page
    admin_post(admin, "/protectedsubjectview/add", {"number": number, "label": "家暴保護令個案"})
    with app.app_context():
        row = db.session.scalar(select(ProtectedSubject).where(ProtectedSubject.label == "家暴保護令個案"))
        assert row is not None and row.subject_hash == subject_hash(number)
        events = db.session.scalars(select(AuditEvent.detail).where(AuditEvent.object_type == "ProtectedSubject"))
        assert all(number not in (e or "") for e in events)
    assert number not in admin.get("/protectedsubjectview/list/").text


def test_a_clerks_burst_on_a_holiday_raises_flags_that_the_supervisor_resolves(app):
    client = app.test_client()
    today = taipei_today()
    with app.app_context():
        db.session.add(OfficeDay(day=today, kind="holiday", name="測試假日"))
        db.session.add(AnomalyRule(code="BURST-5", name="一小時五人以上", kind="many_subjects", severity="high",
                                   threshold=5, window_minutes=60, active=True))  # fmt: skip
        db.session.commit()
    evaluate(app)  # what was logged before the burst is behind the worker
    token = api_token(client, "clerk")
    for n in range(6):
        run_query(client, token, valid_id("B", n))
    counts = evaluate(app)
    assert counts["read"] == 6 and counts["flags"] >= 2
    burst = flags_of(app, "clerk", "many_subjects")
    burst = [f for f in burst if f.rule_name == "一小時五人以上"]
    assert len(burst) == 1 and burst[0].subject_count == 6 and burst[0].severity == "high"
    holiday = flags_of(app, "clerk", "off_hours")
    assert len(holiday) == 1 and holiday[0].query_count == 6 and holiday[0].agency_code == "TAX"
    # The round again, and one more query: no second flag, the open ones grow.
    assert evaluate(app)["flags"] == 0
    run_query(client, token, valid_id("B", 99))
    assert evaluate(app)["flags"] == 0
    assert flags_of(app, "clerk", "off_hours")[0].query_count == 7
    burst_id = burst[0].id
    with app.app_context():
        # the tax bureau's reviewers were told, without personal data
        mails = db.session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "anomaly_flags")).all()
        reviewers = holders_of(db.session, RESOLVE_ANOMALIES, "TAX")
        assert "supervisor.tax" in {u.username for u in reviewers}
        assert {m.recipient for m in mails} >= {u.email for u in reviewers}
        assert all("B1" not in m.body for m in mails)
        raised = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "anomaly.flag_raised")).all()
        assert str(burst_id) in {e.object_id for e in raised}
        # who sees them: the tax bureau's supervisor and the auditors; not the land office's, not a clerk
        sup = actor("supervisor.tax")
        assert burst_id in {f.id for f in anomaly.list_flags(db.session, sup)}
        assert burst_id in {f.id for f in anomaly.list_flags(db.session, actor("auditor"))}
        assert burst_id not in {f.id for f in anomaly.list_flags(db.session, actor("supervisor.land"))}
        with pytest.raises(NotFound):
            anomaly.resolve_flag(db.session, actor("supervisor.land"), burst_id, "justified", "看起來沒問題")
        with pytest.raises(Forbidden):
            anomaly.list_flags(db.session, actor("clerk"))
        with pytest.raises(InvalidInput):
            anomaly.resolve_flag(db.session, sup, burst_id, "fine", "說明")
        with pytest.raises(InvalidInput):
            anomaly.resolve_flag(db.session, sup, burst_id, "misconduct", "  ")
        assert anomaly.open_count(db.session, sup) >= 2
    # the supervisor resolves it on the flags' screen
    browser = app.test_client()
    login(browser, "supervisor.tax")
    home = browser.get("/").text
    assert re.search(r'id="todo-anomalies" href="/anomalyflags/">\s*<span class="badge">[1-9]', home)
    page = browser.get("/anomalyflags/").text
    assert f'id="flag-{burst_id}"' in page and "一小時五人以上" in page
    r = browser.post(f"/anomalyflags/{burst_id}/resolve", data={"outcome": "justified", "comment": "年度查核，已核對公文",
                     "csrf_token": csrf_token(page) or ""}, follow_redirects=True)  # fmt: skip
    assert "已記錄結果" in r.text
    with app.app_context():
        flag = db.session.get(AnomalyFlag, burst_id)
        assert (flag.outcome, flag.comment, flag.resolved_by_name) == (
            "justified",
            "年度查核，已核對公文",
            "supervisor.tax",
        )
        event = db.session.scalar(
            select(AuditEvent).where(AuditEvent.action == "anomaly.flag_resolved", AuditEvent.outcome == "ok",
                                     AuditEvent.object_id == str(burst_id))
        )  # fmt: skip
        assert event is not None and json.loads(event.detail)["outcome"] == "justified"
        assert "年度查核" not in (event.detail or "")
        with pytest.raises(Conflict):
            anomaly.resolve_flag(db.session, actor("supervisor.tax"), burst_id, "misconduct", "再改")
        db.session.execute(delete(OfficeDay).where(OfficeDay.day == today))
        db.session.execute(delete(AnomalyRule).where(AnomalyRule.code == "BURST-5"))
        db.session.commit()


def test_a_protected_person_and_the_clerks_own_household_are_flagged(app):
    from seed_data.world import build_world

    world = build_world()
    household = next(h for h in world.households if len(world.members(h.household_no)) >= 2)
    me, relative = world.members(household.household_no)[:2]
    client = app.test_client()
    protected = valid_id("G", 5)
    with app.app_context():
        db.session.add(ProtectedSubject(subject_hash=subject_hash(protected), label="測試保護"))
        clerk = db.session.scalar(select(PlatformUser).where(PlatformUser.username == "clerk.social"))
        # the clerk bound their own citizen card: the platform knows their keyed ID, never the number
        db.session.add(CardBinding(user_id=clerk.id, kind="citizen", fingerprint="f" * 64, issuer="CN=MOICA test",
                                   serial="1", subject_hash=subject_hash(me.id_no), not_after=datetime.datetime(2030, 1, 1),
                                   certificate=b"-", created_at=datetime.datetime.utcnow()))  # fmt: skip
        db.session.commit()
    evaluate(app)
    token = api_token(client, "clerk.social")
    run_query(client, token, protected, form="social.welfare", item="SOC-AID")
    run_query(client, token, relative.id_no, form="household.whole", item="SOC-AID")  # the e-gate names the members
    evaluate(app)
    assert [f.query_count for f in flags_of(app, "clerk.social", "protected_subject")] == [1]
    own = flags_of(app, "clerk.social", "own_household")
    assert len(own) == 1 and own[0].severity == "high"


def test_the_same_person_again_and_again_under_one_case_number(app):
    client = app.test_client()
    token = api_token(client, "clerk")
    person = valid_id("H", 3)
    evaluate(app)
    for _ in range(5):
        run_query(client, token, person, case_no="1151203-0099")
    run_query(client, token, person, case_no="1151203-0100")  # a new case number: its own count
    evaluate(app)
    repeats = [f for f in flags_of(app, "clerk", "repeat_subject")]
    assert [(f.query_count, f.subject_count) for f in repeats] == [(5, 1)]


def test_the_auditors_desk(app, runner):
    with app.app_context():
        last_week = taipei_today() - datetime.timedelta(days=21)
        monday = last_week - datetime.timedelta(days=last_week.weekday())
        # the tax bureau's log of three weeks ago was reviewed; another agency's queries that week were not
        db.session.add(WeeklyReview(agency_code="TAX", week_start=monday, pdf_sha256="0" * 64, method="password",
                                    signed_by_name="supervisor.tax", signed_at=datetime.datetime.utcnow()))  # fmt: skip
        that_day = datetime.datetime.combine(monday + datetime.timedelta(days=2), datetime.time(3))
        for agency in ("TAX", "LAND"):
            db.session.add(QueryLog(at=that_day, agency_code=agency, username="old", form_code="x", outcome="ok"))
        db.session.commit()
    assert runner.invoke(args=["audit", "verify"]).exit_code in (0, 1)
    with app.app_context():
        assert anomaly.last_check() is not None
    auditor = app.test_client()
    login(auditor, "auditor")
    page = auditor.get("/auditdesk/")
    assert page.status_code == 200
    assert "稽核工作台" in page.text and 'id="open-flags"' in page.text and 'id="last-verify"' in page.text
    assert "從未" not in re.search(r'id="last-verify">(.*?)</dd>', page.text, re.S).group(1)
    with app.app_context():
        desk = anomaly.desk(db.session, actor("auditor"))
        assert desk.open_flags == anomaly.open_count(db.session, actor("auditor"))
        overdue = {(r.agency_code, r.week_start) for r in desk.overdue_reviews}
        assert ("LAND", monday) in overdue and ("TAX", monday) not in overdue
        assert desk.changes and desk.last_verify is not None
        with pytest.raises(Forbidden):
            anomaly.desk(db.session, actor("supervisor.tax"))
    clerk = app.test_client()
    login(clerk, "supervisor.tax")
    assert clerk.get("/auditdesk/").status_code in (302, 403)


def test_the_weekly_review_signed_with_the_password_and_with_the_card_and_verified_later(app):
    import base64

    from app.services.anomaly import reviews
    from tests.cards import card, responders, sign_pkcs7
    from tests.conftest import DEMO_PASSWORD

    responders()
    with app.app_context():
        sup, auditor = actor("supervisor.tax"), actor("auditor")
        weeks = reviews.weeks(db.session, sup)
        assert len(weeks) == reviews.WEEKS and not weeks[0].signed and not weeks[1].signed
        with pytest.raises(Forbidden):
            reviews.weeks(db.session, actor("clerk"))
        with pytest.raises(InvalidInput):
            reviews.prepare(db.session, sup, taipei_today())  # this week is not finished
        review = reviews.prepare(db.session, sup, weeks[0].monday)
        assert review.pdf.startswith(b"%PDF") and review.pdf_sha256 == hashlib.sha256(review.pdf).hexdigest()
        with pytest.raises(Forbidden):
            reviews.sign(db.session, sup, review.id, password="not-the-password")
        refused = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "weekly_review.signed",
                                                             AuditEvent.outcome == "refused"))  # fmt: skip
        assert refused is not None and "not-the-password" not in (refused.detail or "")
        with pytest.raises(NotFound):
            reviews.sign(db.session, actor("supervisor.land"), review.id, password=DEMO_PASSWORD)
        signed = reviews.sign(db.session, sup, review.id, password=DEMO_PASSWORD, comment="已逐筆核對")
        assert (signed.method, signed.signed_by_name) == ("password", "supervisor.tax")
        with pytest.raises(Conflict):
            reviews.sign(db.session, sup, review.id, password=DEMO_PASSWORD)
        assert reviews.verify(db.session, auditor, review.id).ok
        # The card: the supervisor's own, bound to the account, signs the statement of the PDF's digest.
        gov = card("gov-clerk-social")
        cert = x509.load_pem_x509_certificate(Path(gov["sign_cert"]).read_bytes())
        der = cert.public_bytes(serialization.Encoding.DER)
        db.session.add(CardBinding(user_id=sup.user_id, kind="government", fingerprint=hashlib.sha256(der).hexdigest(),
                                   issuer=cert.issuer.rfc4514_string(), serial=format(cert.serial_number, "X"),
                                   not_after=cert.not_valid_after_utc.replace(tzinfo=None), certificate=der,
                                   created_at=datetime.datetime.utcnow()))  # fmt: skip
        db.session.commit()
        second = reviews.prepare(db.session, sup, weeks[1].monday)
        text = reviews.statement("TAX", weeks[1].monday, second.pdf_sha256)
        other = base64.b64encode(sign_pkcs7("gov-clerk-card", text)).decode()  # clerk.card's card, not hers
        with pytest.raises(Forbidden):
            reviews.sign(db.session, sup, second.id, signature=other)
        wrong = base64.b64encode(sign_pkcs7("gov-clerk-social", text.replace(b"TAX", b"LAND"))).decode()
        with pytest.raises(Forbidden):
            reviews.sign(db.session, sup, second.id, signature=wrong)
        good = base64.b64encode(sign_pkcs7("gov-clerk-social", text)).decode()
        by_card = reviews.sign(db.session, sup, second.id, signature=good)
        assert by_card.method == "card" and by_card.signer_fingerprint == hashlib.sha256(der).hexdigest()
        check = reviews.verify(db.session, auditor, second.id)
        assert check.ok and check.method == "card", check.problems
        # Later, the kept PDF altered: the check says so.
        by_card.pdf = by_card.pdf + b"%tampered"
        db.session.commit()
        broken = reviews.verify(db.session, auditor, second.id)
        assert not broken.ok and broken.problems
        by_card.pdf = by_card.pdf[: -len(b"%tampered")]
        db.session.commit()
        # Signed weeks are no longer overdue on the desk.
        overdue = {(r.agency_code, r.week_start) for r in anomaly.overdue_reviews(db.session)}
        assert ("TAX", weeks[0].monday) not in overdue and ("TAX", weeks[1].monday) not in overdue
    # the page: open a week, sign it with the password, verify it
    browser = app.test_client()
    login(browser, "supervisor.tax")
    page = browser.get("/weeklyreview/").text
    third = next(w for w in weeks[2:] if w.review is None).monday.isoformat()
    assert f'id="open-{third}"' in page
    page = browser.post(f"/weeklyreview/week/{third}", data={"csrf_token": csrf_token(page)},
                        follow_redirects=True).text  # fmt: skip
    review_id = int(re.search(r'id="sign-(\d+)"', page).group(1))
    page = browser.post(f"/weeklyreview/{review_id}/sign", data={"csrf_token": csrf_token(page), "password": DEMO_PASSWORD,
                        "signature": "", "comment": "本週無異常"}, follow_redirects=True).text  # fmt: skip
    assert "週查詢紀錄審查已簽章" in page
    page = browser.get(f"/weeklyreview/{review_id}/verify").text
    assert 'id="review-ok"' in page
