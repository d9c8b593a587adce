"""Citizen satisfaction questionnaires: the invitation that arrives by e-mail
when every agency has closed the case, answering on the public page through a
one-time link, the manager's statistics, and the versions that keep old
answers attached to the questions they answered."""

from __future__ import annotations

import datetime
import io
import re
import threading
import uuid
from email import message_from_bytes
from types import SimpleNamespace

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from app.extensions import db
from app.lib.rocdate import format_roc
from app.models.audit import AuditEvent
from app.models.notify import Dispatch, NotificationCase, NotificationCategory
from app.models.org import Agency
from app.models.reports import SurveySummary
from app.models.survey import Answer, Choice, Invitation, Question, Questionnaire, Response
from app.services import outbox, reports, survey
from tests.conftest import api_token, bearer, login
from tests.test_notify import run_to_close

TODAY = reports.taipei_today()


def make_survey(app, kind: str = "citizen", active: bool = True) -> SimpleNamespace:
    """A questionnaire with one question of each type, and a category (household
    office -> land office) whose citizens are invited to it."""
    with app.app_context():
        tag = uuid.uuid4().hex[:8]
        q = Questionnaire(
            title=f"服務滿意度 {tag}", version=1, is_current=True, active=active, introduction="請花 1 分鐘填寫。"
        )
        q.questions = [
            Question(sort_order=1, type="rating", text="整體而言，您對服務的滿意程度？", required=True),
            Question(
                sort_order=2,
                type="single",
                text="是否一次就辦好？",
                required=True,
                choices=[Choice(sort_order=1, text="是"), Choice(sort_order=2, text="否")],
            ),
            Question(
                sort_order=3,
                type="multiple",
                text="您從哪些管道得知進度？",
                required=False,
                choices=[
                    Choice(sort_order=1, text="電子郵件"),
                    Choice(sort_order=2, text="電話"),
                    Choice(sort_order=3, text="臨櫃"),
                ],
            ),
            Question(sort_order=4, type="text", text="其他建議", required=False),
        ]
        db.session.add(q)
        db.session.flush()
        q.series_id = q.id
        agencies = {a.code: a for a in db.session.scalars(select(Agency))}
        cat = NotificationCategory(
            main_item="滿意度測試",
            sub_item=tag,
            kind=kind,
            consent_required=False,
            due_days=7,
            active=True,
            notifying_agencies=[agencies["HH-EAST"]],
            default_receivers=[agencies["LAND"]],
            questionnaire=q,
        )
        db.session.add(cat)
        db.session.commit()
        questions = [x.id for x in q.questions]
        choices = {x.text: x.id for question in q.questions for x in question.choices}
        return SimpleNamespace(
            q=q.id,
            category=cat.id,
            tag=tag,
            rating=questions[0],
            single=questions[1],
            multiple=questions[2],
            text=questions[3],
            choices=choices,
        )


def a_case(app, s, created_at: datetime.datetime | None = None) -> int:
    """A completed case of the survey's category, written directly (no workflow)."""
    with app.app_context():
        cat = db.session.get(NotificationCategory, s.category)
        hh = db.session.scalar(select(Agency).where(Agency.code == "HH-EAST"))
        now = created_at or datetime.datetime.utcnow()
        case = NotificationCase(
            case_no=f"T{uuid.uuid4().hex[:12]}",
            category=cat,
            agency=hh,
            status="completed",
            citizen_email="citizen@example.tw",
            created_at=now,
            due_at=now,
            completed_at=now,
        )
        db.session.add(case)
        db.session.commit()
        return case.id


def a_link(app, s, created_at: datetime.datetime | None = None) -> str:
    """Invite the citizen of a new completed case; return the token of the link."""
    case_id = a_case(app, s, created_at)
    with app.app_context():
        text = survey.invite(db.session, db.session.get(NotificationCase, case_id), now=created_at)
        db.session.commit()
    return re.search(r"/survey/([A-Za-z0-9_-]+)", text).group(1)


def good_answers(s, rating="4", single="是", multiple=("電子郵件", "臨櫃"), text="承辦人員很親切") -> dict:
    return {
        f"q{s.rating}": rating,
        f"q{s.single}": str(s.choices[single]),
        f"q{s.multiple}": [str(s.choices[m]) for m in multiple],
        f"q{s.text}": text,
    }


def responses_to(app, s) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Response).where(Response.questionnaire_id == s.q))


def today_filters(**extra):
    return reports.Filters(TODAY - datetime.timedelta(days=1), TODAY, **extra)


# --- the story ----------------------------------------------------------------------


def test_the_citizen_gets_a_link_when_every_agency_has_closed_answers_on_the_phone_and_the_manager_sees_it(
    app, client, smtp
):
    s = make_survey(app)
    email = f"citizen.{s.tag}@example.tw"
    notifier = api_token(client, "notifier")
    body = {
        "category": s.category,
        "content": "民眾辦理住址變更。",
        "citizen": {"name": "林小華", "id_no": "A123456789", "email": email, "address": "示範縣東區中正路1號"},
    }
    r = client.post("/api/v1/cases/", json=body, headers=bearer(notifier))
    assert r.status_code == 201, r.json
    dispatch = r.json["result"]["dispatches"][0]["id"]
    with app.app_context():
        assert (
            db.session.scalar(select(func.count()).select_from(Invitation).where(Invitation.questionnaire_id == s.q))
            == 0
        )
    run_to_close(client, "land", dispatch)

    with app.app_context():
        outbox.work_once(db.session, limit=500)
    mails = [m for m in smtp.sink.wait_for(1) if email in m.rcpt_tos]
    bodies = []
    for m in mails:
        msg = message_from_bytes(m.original_content)
        bodies.append(msg.get_payload(decode=True).decode(msg.get_content_charset() or "utf-8"))
    final = [b for b in bodies if "/survey/" in b]
    assert len(final) == 1, bodies  # only the "all closed" e-mail carries the link
    assert "均已辦結" in final[0] and "僅供您使用一次" in final[0]
    token = re.search(r"/survey/([A-Za-z0-9_-]{20,})", final[0]).group(1)
    with app.app_context():
        stored = db.session.scalar(select(Invitation).where(Invitation.questionnaire_id == s.q))
        assert stored.token_hash == survey.token_hash(token) and token not in stored.token_hash
        assert (stored.expires_at - stored.created_at).days == 30

    citizen = app.test_client()  # no sign-in
    page = citizen.get(f"/survey/{token}")
    assert page.status_code == 200
    assert 'name="viewport"' in page.text and "整體而言" in page.text and "臨櫃" in page.text
    assert page.headers["Cache-Control"] == "no-store"
    sent = citizen.post(f"/survey/{token}", data=good_answers(s))
    assert sent.status_code == 302 and sent.headers["Location"].endswith("/survey/thanks")
    assert "感謝" in citizen.get("/survey/thanks").text
    again = citizen.get(f"/survey/{token}")
    assert again.status_code == 410 and "已使用此連結填答" in again.text

    manager = app.test_client()
    login(manager, "manager")
    args = {"questionnaire": s.q, "from": format_roc(TODAY), "to": format_roc(TODAY)}
    stats_page = manager.get("/survey-stats/", query_string=args)
    assert stats_page.status_code == 200
    assert re.search(r'id="stat-invitations">1<', stats_page.text)
    assert re.search(r'id="stat-rate">100.0%<', stats_page.text)
    assert "承辦人員很親切" in stats_page.text and "平均 4.00" in stats_page.text
    assert "<img" in stats_page.text and "data:image/svg+xml;base64," in stats_page.text
    export = manager.get("/survey-stats/export", query_string=args)
    assert export.status_code == 200
    book = load_workbook(io.BytesIO(export.data))
    cells = [c for ws in book.worksheets for row in ws.iter_rows(values_only=True) for c in row]
    assert "承辦人員很親切" in cells and 100.0 in cells and 4.0 in cells


def test_statistics_per_question_match_the_answers_counted_by_hand(app):
    s = make_survey(app)
    links = [a_link(app, s) for _ in range(4)]
    citizen = app.test_client()
    answers = [
        good_answers(s, rating="5", single="是", multiple=("電子郵件",), text="很快"),
        good_answers(s, rating="4", single="是", multiple=("電子郵件", "電話"), text=""),
        {f"q{s.rating}": "2", f"q{s.single}": str(s.choices["否"])},  # the optional ones left empty
    ]
    for token, data in zip(links, answers, strict=False):
        assert citizen.post(f"/survey/{token}", data=data).status_code == 302
    with app.app_context():
        st = reports.survey_statistics(db.session, s.q, today_filters())
        assert (st.invitations, st.responses, st.response_rate) == (4, 3, 75.0)
        rating, single, multiple, text = st.questions
        assert rating.respondents == 3 and rating.mean == pytest.approx(3.67)
        assert rating.rows == [("5", 1, 33.3), ("4", 1, 33.3), ("3", 0, 0.0), ("2", 1, 33.3), ("1", 0, 0.0)]
        assert single.rows == [("是", 2, 66.7), ("否", 1, 33.3)]
        assert multiple.respondents == 2  # percentages of those who answered it
        assert multiple.rows == [("電子郵件", 2, 100.0), ("電話", 1, 50.0), ("臨櫃", 0, 0.0)]
        assert [t for _, t in text.texts] == ["很快"]
        by_category = reports.survey_statistics(db.session, s.q, today_filters(category_id=s.category))
        assert by_category.responses == 3
        land = db.session.scalar(select(Agency.id).where(Agency.code == "LAND"))
        social = db.session.scalar(select(Agency.id).where(Agency.code == "SOCIAL"))
        assert reports.survey_statistics(db.session, s.q, today_filters(agency_id=social)).invitations == 0
        assert (
            reports.survey_statistics(db.session, s.q, today_filters(agency_id=land)).invitations == 0
        )  # no dispatches
        east = db.session.scalar(select(Agency.id).where(Agency.code == "HH-EAST"))
        assert reports.survey_statistics(db.session, s.q, today_filters(agency_id=east)).responses == 3
        last_year = reports.Filters(TODAY - datetime.timedelta(days=400), TODAY - datetime.timedelta(days=370))
        assert reports.survey_statistics(db.session, s.q, last_year).empty


# --- the nightly summary -----------------------------------------------------------------


def _answered(app, s, token: str, when: datetime.datetime, rating: str) -> None:
    with app.app_context():
        form = {k: v if isinstance(v, list) else [v] for k, v in good_answers(s, rating=rating).items()}
        survey.submit(db.session, token, form, now=when)
        db.session.commit()


def _dispatched_to(app, token: str, code: str, when: datetime.datetime) -> None:
    with app.app_context():
        case_id = db.session.scalar(select(Invitation.case_id).where(Invitation.token_hash == survey.token_hash(token)))
        agency = db.session.scalar(select(Agency.id).where(Agency.code == code))
        db.session.add(
            Dispatch(case_id=case_id, agency_id=agency, state="closed", sent_at=when, due_at=when, closed_at=when)
        )
        db.session.commit()


def _held(build_id: int, questionnaire_id: int) -> dict:
    """What a build counted: invitations and responses (day rows)."""
    ss = SurveySummary.__table__
    return {
        kind: int(n)
        for kind, n in db.session.execute(
            select(ss.c.kind, func.sum(ss.c.n))
            .where(
                ss.c.build_id == build_id,
                ss.c.questionnaire_id == questionnaire_id,
                ss.c.span == "day",
                ss.c.question_id.is_(None),
            )
            .group_by(ss.c.kind)
        )
    }


def _figures(st) -> tuple:
    return (
        st.invitations,
        st.responses,
        [(q.respondents, q.rows, q.mean, q.texts_total, [t for _, t in q.texts]) for q in st.questions],
    )


def test_statistics_read_the_same_from_the_nightly_summary_as_from_the_live_tables(app):
    """May 2012: links A and B answered before the build of June 1st, C answered
    after it, D never; G sent at 01:00 Taipei on June 1st (still May 31st in
    UTC, before the cutoff). After the build: E sent and answered, and F, sent
    on May 28th by a transaction that committed late, answered."""
    s = make_survey(app)
    at = lambda month, day, hour=2: datetime.datetime(2012, month, day, hour, 0)  # noqa: E731 (UTC)
    a, b, c, d = (a_link(app, s, at(5, day)) for day in (10, 12, 20, 25))
    a_link(app, s, at(5, 31, 17))  # G
    _answered(app, s, a, at(5, 11), "5")
    _answered(app, s, b, at(5, 13), "4")
    _dispatched_to(app, a, "LAND", at(5, 10))
    _dispatched_to(app, c, "LAND", at(5, 20))
    _dispatched_to(app, c, "TAX", at(5, 20))
    builds = []
    try:
        with app.app_context():
            builds.append(reports.summarise(db.session, cutoff=at(6, 1, 0))["build"])
            assert _held(builds[0], s.q) == {"invited": 5, "responded": 2}  # A B C D G; A B
        _answered(app, s, c, at(6, 5), "2")
        e = a_link(app, s, at(6, 2))
        _answered(app, s, e, at(6, 3), "3")
        f = a_link(app, s, at(5, 28))
        _answered(app, s, f, at(6, 4), "4")
        with app.app_context():
            ids = {
                x: db.session.scalar(select(Agency.id).where(Agency.code == x))
                for x in ("LAND", "TAX", "HH-EAST", "SOCIAL")
            }
            ranges = [
                (datetime.date(2012, 5, 1), datetime.date(2012, 5, 31)),  # a whole month: its month rows
                (datetime.date(2012, 5, 11), datetime.date(2012, 5, 25)),  # day rows
                (datetime.date(2012, 4, 15), datetime.date(2012, 6, 10)),  # days, a month, days
                (datetime.date(2012, 6, 1), datetime.date(2012, 6, 30)),
            ]
            for first, last in ranges:
                for extra in ({}, {"category_id": s.category}, *({"agency_id": i} for i in ids.values())):
                    f = reports.Filters(first, last, **extra)
                    summary, live = (
                        reports.survey_statistics(db.session, s.q, f),
                        reports.survey_statistics(db.session, s.q, f, live=True),
                    )
                    assert _figures(summary) == _figures(live), (first, last, extra)
            # by hand: 7 links, 5 answers rated 5 4 2 3 4
            whole = reports.survey_statistics(
                db.session, s.q, reports.Filters(datetime.date(2012, 4, 15), datetime.date(2012, 6, 30))
            )
            assert (whole.invitations, whole.responses, whole.response_rate) == (7, 5, 71.4)
            rating = whole.questions[0]
            assert rating.rows == [("5", 1, 20.0), ("4", 2, 40.0), ("3", 1, 20.0), ("2", 1, 20.0), ("1", 0, 0.0)]
            assert rating.mean == pytest.approx(3.6)
            may = reports.survey_statistics(
                db.session, s.q, reports.Filters(datetime.date(2012, 5, 1), datetime.date(2012, 5, 31))
            )
            assert (may.invitations, may.responses) == (5, 4)  # A B C D F; G is a June 1st link in Taipei
            land = reports.survey_statistics(
                db.session,
                s.q,
                reports.Filters(datetime.date(2012, 5, 1), datetime.date(2012, 5, 31), agency_id=ids["LAND"]),
            )
            assert (land.invitations, land.responses, land.questions[0].mean) == (2, 2, 3.5)  # A and C
            # the next build holds them all and reads the same
            builds.append(reports.summarise(db.session, cutoff=at(7, 1, 0))["build"])
            assert _held(builds[1], s.q) == {"invited": 7, "responded": 5}
            again = reports.survey_statistics(
                db.session, s.q, reports.Filters(datetime.date(2012, 4, 15), datetime.date(2012, 6, 30))
            )
            assert _figures(again) == _figures(whole)
    finally:
        with app.app_context():
            reports.drop_builds(db.session, builds)


# --- bad links, bad answers ----------------------------------------------------------------


@pytest.mark.parametrize("token", ["x" * 43, "short", "a" * 200, "abc$def!"])
def test_a_forged_link_says_it_is_not_valid_and_stores_nothing(app, token):
    citizen = app.test_client()
    r = citizen.get(f"/survey/{token}")
    assert r.status_code == 404 and "連結無效" in r.text
    r = citizen.post(f"/survey/{token}", data={"q1": "5"})
    assert r.status_code == 404 and "連結無效" in r.text


def test_an_expired_link_says_so_and_refuses_answers(app):
    s = make_survey(app)
    token = a_link(app, s, created_at=datetime.datetime.utcnow() - datetime.timedelta(days=31))
    citizen = app.test_client()
    r = citizen.get(f"/survey/{token}")
    assert r.status_code == 410 and "已於" in r.text and "到期" in r.text
    r = citizen.post(f"/survey/{token}", data=good_answers(s))
    assert r.status_code == 410 and responses_to(app, s) == 0


def test_a_closed_questionnaire_says_so(app):
    s = make_survey(app)
    token = a_link(app, s)
    with app.app_context():
        db.session.get(Questionnaire, s.q).active = False
        db.session.commit()
    r = app.test_client().get(f"/survey/{token}")
    assert r.status_code == 410 and "問卷已結束" in r.text


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda s, d: d.pop(f"q{s.rating}"), "此題必須作答"),
        (lambda s, d: d.update({f"q{s.rating}": "6"}), "請選擇 1 到 5 分"),
        (lambda s, d: d.update({f"q{s.rating}": "4.5"}), "請選擇 1 到 5 分"),
        (lambda s, d: d.update({f"q{s.single}": [str(s.choices["是"]), str(s.choices["否"])]}), "只能選擇一個"),
        (lambda s, d: d.update({f"q{s.single}": str(s.choices["電話"])}), "請從列出的選項中選擇"),
        (lambda s, d: d.update({f"q{s.multiple}": ["999999"]}), "請從列出的選項中選擇"),
        (lambda s, d: d.update({f"q{s.text}": "長" * 2001}), "2000"),
        (lambda s, d: d.update({f"q{s.text}": "第一行\x00\x1b[31m"}), "控制字元"),
    ],
)
def test_answers_outside_the_allowed_ones_are_refused_with_the_question_marked_and_the_link_stays_usable(
    app, change, message
):
    s = make_survey(app)
    token = a_link(app, s)
    data = good_answers(s)
    change(s, data)
    citizen = app.test_client()
    r = citizen.post(f"/survey/{token}", data=data)
    assert r.status_code == 400 and message in r.text and 'class="card question has-error"' in r.text
    assert responses_to(app, s) == 0
    assert citizen.post(f"/survey/{token}", data=good_answers(s)).status_code == 302
    assert responses_to(app, s) == 1


@pytest.mark.parametrize(
    "extra",
    [{"nickname": "小明"}, {"q999999999": "5"}, {"q": "5"}],
    ids=["a field no questionnaire has", "a question of another questionnaire", "a bare q"],
)
def test_an_answer_with_a_field_the_questionnaire_does_not_ask_is_refused_and_does_not_use_up_the_link(app, extra):
    s = make_survey(app)
    token = a_link(app, s)
    citizen = app.test_client()
    r = citizen.post(f"/survey/{token}", data={**good_answers(s), **extra})
    assert r.status_code == 400 and "與此問卷不符" in r.text and 'id="survey-form"' in r.text
    assert responses_to(app, s) == 0
    with app.app_context():
        invitation = db.session.scalar(select(Invitation).where(Invitation.token_hash == survey.token_hash(token)))
        assert invitation.used_at is None
    assert citizen.post(f"/survey/{token}", data=good_answers(s)).status_code == 302
    assert responses_to(app, s) == 1


def test_one_response_per_link_even_when_sent_twice_at_once(app):
    s = make_survey(app)
    token = a_link(app, s)
    barrier = threading.Barrier(2)
    statuses = []

    def send(rating):
        c = app.test_client()
        barrier.wait()
        statuses.append(c.post(f"/survey/{token}", data=good_answers(s, rating=rating)).status_code)

    threads = [threading.Thread(target=send, args=(r,)) for r in ("5", "1")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [302, 410]
    assert responses_to(app, s) == 1
    assert app.test_client().get(f"/survey/{token}").status_code == 410


def test_the_public_form_needs_its_csrf_token(app):
    s = make_survey(app)
    token = a_link(app, s)
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        citizen = app.test_client()
        page = citizen.get(f"/survey/{token}")
        assert citizen.post(f"/survey/{token}", data=good_answers(s)).status_code == 400
        assert responses_to(app, s) == 0
        data = {**good_answers(s), "csrf_token": _hidden_token(page.text)}
        assert citizen.post(f"/survey/{token}", data=data).status_code == 302
    finally:
        app.config["WTF_CSRF_ENABLED"] = False


def _hidden_token(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_the_audit_trail_records_the_response_but_nothing_the_citizen_wrote(app):
    s = make_survey(app)
    token = a_link(app, s)
    app.test_client().post(f"/survey/{token}", data=good_answers(s, text="我的電話是0912345678"))
    with app.app_context():
        response = db.session.scalar(select(Response).where(Response.questionnaire_id == s.q))
        event = db.session.scalar(
            select(AuditEvent).where(AuditEvent.action == "survey_response", AuditEvent.object_id == str(response.id))
        )
        assert event.actor == "citizen" and event.client_ip is None and event.actor_id is None
        assert '"answers": 5' in event.detail and f'"questionnaire": {s.q}' in event.detail
        details = db.session.scalars(select(AuditEvent.detail).where(AuditEvent.detail.is_not(None))).all()
        assert not any("0912345678" in d for d in details)
        stored = db.session.scalar(
            select(Answer.__table__.c.text).where(Answer.response_id == response.id, Answer.question_id == s.text)
        )
        assert stored == "我的電話是0912345678"  # read through the cipher
        raw = db.session.execute(
            select(func.count())
            .select_from(Answer.__table__)
            .where(Answer.__table__.c.text.cast(db.String).like("%0912345678%"))
        ).scalar()
        assert raw == 0  # encrypted at rest


def test_no_invitation_for_agency_notifications_or_categories_without_an_active_questionnaire(app):
    for s in (make_survey(app, kind="agency"), make_survey(app, active=False)):
        case_id = a_case(app, s)
        with app.app_context():
            assert survey.invite(db.session, db.session.get(NotificationCase, case_id)) is None
            db.session.commit()
            assert (
                db.session.scalar(select(func.count()).select_from(Invitation).where(Invitation.case_id == case_id))
                == 0
            )


def test_a_case_is_invited_once(app):
    s = make_survey(app)
    case_id = a_case(app, s)
    with app.app_context():
        case = db.session.get(NotificationCase, case_id)
        assert survey.invite(db.session, case) is not None
        db.session.commit()
        assert survey.invite(db.session, case) is None


# --- versions -----------------------------------------------------------------------


def answered_survey(app) -> SimpleNamespace:
    s = make_survey(app)
    token = a_link(app, s)
    assert app.test_client().post(f"/survey/{token}", data=good_answers(s)).status_code == 302
    return s


def manager_client(app):
    c = app.test_client()
    login(c, "manager")
    return c


def test_editing_an_answered_question_on_the_screen_makes_version_2_and_old_answers_keep_their_question(app):
    s = answered_survey(app)
    manager = manager_client(app)
    r = manager.post(
        f"/questionview/edit/{s.rating}",
        data={"sort_order": "1", "type": "rating", "text": "您對這次服務的整體評價？", "required": "y"},
    )
    assert r.status_code == 302 and "/questionnaireview/show/" in r.headers["Location"]
    new_id = int(r.headers["Location"].rstrip("/").split("/")[-1])
    assert new_id != s.q
    page = manager.get(r.headers["Location"])
    assert "第 2 版" in page.text and "您對這次服務的整體評價？" in page.text
    with app.app_context():
        old, new = db.session.get(Questionnaire, s.q), db.session.get(Questionnaire, new_id)
        assert (old.version, old.is_current, new.version, new.is_current) == (1, False, 2, True)
        assert new.series_id == old.series_id == s.q
        assert db.session.get(Question, s.rating).text == "整體而言，您對服務的滿意程度？"
        assert [q.text for q in new.questions][0] == "您對這次服務的整體評價？"
        assert [len(q.choices) for q in new.questions] == [0, 2, 3, 0]
        assert db.session.get(NotificationCategory, s.category).questionnaire_id == new_id
        answered = {
            a.question_id
            for a in db.session.scalars(select(Answer).join(Response).where(Response.questionnaire_id == s.q))
        }
        assert answered <= {q.id for q in old.questions}
        second = new.questions[1].id
    # version 2 has no answers yet: it changes in place
    r = manager.post(
        f"/questionview/edit/{second}",
        data={"sort_order": "2", "type": "single", "text": "是否一次辦好？", "required": "y"},
    )
    assert r.status_code == 302
    with app.app_context():
        assert db.session.scalar(select(func.max(Questionnaire.version)).where(Questionnaire.series_id == s.q)) == 2
        assert db.session.get(Question, second).text == "是否一次辦好？"
    # the old version is read-only
    r = manager.post(
        f"/questionview/edit/{s.single}",
        data={"sort_order": "2", "type": "single", "text": "改舊版", "required": "y"},
        follow_redirects=True,
    )
    assert "舊版本" in r.text
    with app.app_context():
        assert db.session.get(Question, s.single).text == "是否一次就辦好？"


def test_adding_or_deleting_on_an_answered_questionnaire_makes_a_new_version_and_the_answered_one_stays(app):
    s = answered_survey(app)
    manager = manager_client(app)
    r = manager.post(
        f"/questionview/add?_flt_0_questionnaire={s.q}",
        data={"questionnaire": str(s.q), "sort_order": "5", "type": "rating", "text": "等候時間", "required": "y"},
    )
    assert r.status_code == 302
    saying = manager.get(r.headers["Location"]).text  # the flashed outcome, shown on the next page
    assert "另存為第 2 版" in saying, re.findall(r'class="alert[^"]*"[^>]*>(.*?)</div>', saying, re.S)
    with app.app_context():
        v2 = db.session.scalar(select(Questionnaire).where(Questionnaire.series_id == s.q, Questionnaire.version == 2))
        assert [q.text for q in v2.questions][-1] == "等候時間" and len(v2.questions) == 5
        assert len(db.session.get(Questionnaire, s.q).questions) == 4
        phone_v2 = next(c.id for q in v2.questions for c in q.choices if c.text == "電話")
    # v2 is not answered: deleting its choice is immediate
    r = manager.post(f"/choiceview/delete/{phone_v2}")
    assert r.status_code == 302
    with app.app_context():
        assert db.session.get(Choice, phone_v2) is None
        assert db.session.get(Choice, s.choices["電話"]) is not None  # v1 keeps its choice
    # v1 is answered but old: deleting its choice is refused
    r = manager.post(f"/choiceview/delete/{s.choices['臨櫃']}", follow_redirects=True)
    assert "舊版本" in r.text
    with app.app_context():
        assert db.session.get(Choice, s.choices["臨櫃"]) is not None


def test_deleting_a_choice_of_the_answered_current_version_makes_a_new_version_without_it(app):
    s = answered_survey(app)
    manager = manager_client(app)
    r = manager.post(f"/choiceview/delete/{s.choices['電話']}")
    assert r.status_code == 302 and "/questionnaireview/show/" in r.headers["Location"]
    page = manager.get(r.headers["Location"])
    assert "第 2 版" in page.text
    with app.app_context():
        assert db.session.get(Choice, s.choices["電話"]) is not None  # the answered version keeps it
        v2 = db.session.scalar(select(Questionnaire).where(Questionnaire.series_id == s.q, Questionnaire.version == 2))
        assert v2.is_current and not db.session.get(Questionnaire, s.q).is_current
        assert [c.text for c in v2.questions[2].choices] == ["電子郵件", "臨櫃"]
        assert db.session.get(NotificationCategory, s.category).questionnaire_id == v2.id


def test_changing_the_title_of_an_answered_questionnaire_makes_a_new_version_but_switching_it_off_does_not(app):
    s = answered_survey(app)
    manager = manager_client(app)
    with app.app_context():
        title = db.session.get(Questionnaire, s.q).title
    r = manager.post(
        f"/questionnaireview/edit/{s.q}",
        data={"title": title, "introduction": "請花 1 分鐘填寫。", "categories": [str(s.category)]},
    )
    assert r.status_code == 302
    with app.app_context():
        q = db.session.get(Questionnaire, s.q)
        assert not q.active and q.is_current  # switched off in place
    r = manager.post(
        f"/questionnaireview/edit/{s.q}",
        data={
            "title": title + "（修訂）",
            "active": "y",
            "introduction": "請花 1 分鐘填寫。",
            "categories": [str(s.category)],
        },
    )
    assert r.status_code == 302
    with app.app_context():
        v2 = db.session.scalar(select(Questionnaire).where(Questionnaire.series_id == s.q, Questionnaire.version == 2))
        assert v2.title == title + "（修訂）" and v2.active
        assert db.session.get(Questionnaire, s.q).title == title


def test_an_answered_questionnaire_cannot_be_deleted(app):
    s = answered_survey(app)
    r = manager_client(app).post(f"/questionnaireview/delete/{s.q}", follow_redirects=True)
    assert "停用" in r.text
    with app.app_context():
        assert db.session.get(Questionnaire, s.q) is not None


def test_a_questionnaire_cannot_be_activated_without_questions(app):
    manager = manager_client(app)
    r = manager.post("/questionnaireview/add", data={"title": f"空白問卷 {uuid.uuid4().hex[:6]}", "introduction": ""})
    assert r.status_code == 302
    with app.app_context():
        q = db.session.scalar(select(Questionnaire).order_by(Questionnaire.id.desc()))
        assert q.series_id == q.id and not q.active
    r = manager.post(f"/questionnaireview/edit/{q.id}", data={"title": q.title, "active": "y"}, follow_redirects=True)
    assert "請先新增題目" in r.text
    with app.app_context():
        assert not db.session.get(Questionnaire, q.id).active


def test_only_managers_and_administrators_design_questionnaires(app):
    clerk = app.test_client()
    login(clerk, "clerk")
    assert clerk.get("/questionnaireview/list/").status_code in (302, 403)
    assert clerk.get("/survey-stats/").status_code in (302, 403)
    assert manager_client(app).get("/questionnaireview/list/").status_code == 200
