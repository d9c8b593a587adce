"""Managers' reports checked against figures worked out by hand on a small
world of March 2011 (ROC 100/03), on SQLite and on PostgreSQL alike; the
exports open and carry the same figures; the supervisors' weekly query log.

The world (times in Taipei; every dispatch is due 7 days after registration):

    case  category  clerk (agency)          LAND            TAX              case done   survey ratings
    c1    甲        notifier (HH-EAST)      closed +1 d     closed +3 d      +3 d        4, 5
    c2    甲        notifier (HH-EAST)      closed +2 d     closed +10 d *   +10 d *     2, 3
    c3    乙        notifier (HH-EAST)      open *          -                open *      -
    c4    乙        clerk.report (HH-WEST)  closed +4 d     -                +4 d        1, 1
    c5    甲        (April: outside the range)

    (* overdue; "now" is 2011-04-30; each survey is answered a day after the case is done)

The report summary was built at 03/04 20:00 (SUMMARY_CUTOFF): it holds c1 and
its dispatches and c2's LAND dispatch; the reports read the rest, and c1's
answers (03/05), from the live tables. Every figure below is checked that way.
"""

from __future__ import annotations

import datetime
import io
import subprocess
import uuid
from types import SimpleNamespace

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader
from sqlalchemy import delete, func, select

from app.extensions import db
from app.models.audit import AuditEvent
from app.models.notify import Dispatch, NotificationCase, NotificationCategory
from app.models.org import Agency
from app.models.queries import QueryLog
from app.models.reports import ReportSummary
from app.models.survey import Invitation, Questionnaire, Response
from app.models.transfer import StaffCertificate, TransferCase, TransferItem
from app.services import reports
from tests.conftest import ARTIFACTS, login

MARCH = {"from": "100/03/01", "to": "100/03/31"}
NOW = datetime.datetime(2011, 4, 30, 4, 0)
BASE = datetime.datetime(2011, 3, 1, 2, 0)  # 10:00 in Taipei
DAY = datetime.timedelta(days=1)
SUMMARY_CUTOFF = datetime.datetime(2011, 3, 4, 12, 0)  # UTC


def march(**extra) -> reports.Filters:
    return reports.Filters(datetime.date(2011, 3, 1), datetime.date(2011, 3, 31), **extra)


def _user(sm, username, role, agency):
    user = sm.find_user(username=username)
    if user is None:
        user = sm.add_user(
            username, "報表", "測", f"{username}@county.demo.gov.tw", sm.find_role(role), password="Demo-2026"
        )
        user.agency = agency
        db.session.commit()
    return user


@pytest.fixture(scope="module")
def world(app):
    """The small world of the module docstring, written once per platform database."""
    from flask import current_app

    with app.app_context():
        sm = current_app.appbuilder.sm
        ag = {a.code: a for a in db.session.scalars(select(Agency))}
        notifier = sm.find_user(username="notifier")
        other = _user(sm, "clerk.report", "Notifier", ag["HH-WEST"])
        q = Questionnaire(title="報表測試問卷", version=1, is_current=True, active=True)
        db.session.add(q)
        cats = {}
        for sub in ("甲", "乙"):
            cats[sub] = NotificationCategory(
                main_item="報表測試",
                sub_item=sub,
                kind="citizen",
                due_days=7,
                consent_required=False,
                active=True,
                notifying_agencies=[ag["HH-EAST"]],
                default_receivers=[ag["LAND"]],
            )
            db.session.add(cats[sub])
        db.session.flush()
        plan = [
            # case, category, clerk, agency, start, [(receiver, closed after)], done after, ratings
            ("c1", "甲", notifier, "HH-EAST", BASE, [("LAND", 1), ("TAX", 3)], 3, (4, 5)),
            ("c2", "甲", notifier, "HH-EAST", BASE + DAY, [("LAND", 2), ("TAX", 10)], 10, (2, 3)),
            ("c3", "乙", notifier, "HH-EAST", BASE + 2 * DAY, [("LAND", None)], None, ()),
            ("c4", "乙", other, "HH-WEST", BASE + 3 * DAY, [("LAND", 4)], 4, (1, 1)),
            ("c5", "甲", notifier, "HH-EAST", datetime.datetime(2011, 4, 5, 2), [("LAND", 1)], 1, (5,)),
        ]
        tag = uuid.uuid4().hex[:6]
        for name, sub, clerk, agency, start, dispatches, done, ratings in plan:
            # fractions of a second that a naive subtraction would turn into 0.99999 days
            created = start + datetime.timedelta(microseconds=400_000)
            due = start + 7 * DAY
            case = NotificationCase(
                case_no=f"R{tag}-{name}",
                category=cats[sub],
                agency=ag[agency],
                operator_id=clerk.id,
                status="completed" if done else "open",
                created_at=created,
                due_at=due,
                completed_at=start + done * DAY if done else None,
                citizen_email="c@example.tw",
            )
            db.session.add(case)
            for code, after in dispatches:
                db.session.add(
                    Dispatch(
                        case=case,
                        agency=ag[code],
                        state="closed" if after else "accepted",
                        sent_at=created,
                        due_at=due,
                        closed_at=start + after * DAY + datetime.timedelta(microseconds=300_000) if after else None,
                    )
                )
            if ratings:
                db.session.flush()
                inv = Invitation(
                    token_hash=uuid.uuid4().hex * 2,
                    questionnaire_id=q.id,
                    case_id=case.id,
                    category_id=cats[sub].id,
                    agency_id=ag[agency].id,
                    created_at=start + done * DAY,
                    expires_at=start + 40 * DAY,
                    used_at=start + (done + 1) * DAY,
                )
                db.session.add(inv)
                db.session.flush()
                db.session.add(
                    Response(
                        invitation_id=inv.id,
                        questionnaire_id=q.id,
                        case_id=case.id,
                        submitted_at=start + (done + 1) * DAY,
                        rating_sum=sum(ratings),
                        rating_count=len(ratings),
                    )
                )
        # the query log of the week of 100/03/02: five queries at the tax bureau, one at social affairs
        clerk = sm.find_user(username="clerk")
        logs = [
            ("clerk", clerk.id, "TAX", "ok", 10, 1),
            ("clerk", clerk.id, "TAX", "ok", 20, 2),
            ("clerk", clerk.id, "TAX", "refused", 30, 0),
            ("clerk.tax2", 999001, "TAX", "ok", 40, 3),
            ("clerk.tax2", 999001, "TAX", "source_error", 50, 0),
            ("clerk.social", 999002, "SOCIAL", "ok", 60, 1),
        ]
        for n, (username, uid, agency, outcome, ms, rows) in enumerate(logs):
            db.session.add(
                QueryLog(
                    at=BASE + DAY + n * datetime.timedelta(minutes=7),
                    user_id=uid,
                    username=username,
                    agency_code=agency,
                    form_code=f"report.test.{tag}",
                    form_title="地價稅籍查詢",
                    case_no=f"稅-{tag}-{n}",
                    reason="民眾申請減免",
                    business_item="TAX-LAND",
                    params='{"id_no": "A123456789"}',
                    subjects="deadbeef",
                    row_count=rows,
                    duration_ms=ms,
                    outcome=outcome,
                )
            )
        # two transfers, social affairs -> tax bureau, one processed after two days
        cert = db.session.scalar(
            select(StaffCertificate)
            .join(StaffCertificate.user)
            .where(StaffCertificate.user.has(username="transfer.social"))
        )
        item = db.session.scalar(select(TransferItem).where(TransferItem.sending_agency_id == ag["SOCIAL"].id))
        assert cert is not None and item is not None, "flask seed demo registers them"
        for n, (state, processed) in enumerate((("processed", 2), ("uploaded", None))):
            db.session.add(
                TransferCase(
                    item_id=item.id,
                    upload_no=f"U{tag}{n}",
                    source="社會處系統",
                    record_count=100 * (n + 1),
                    sending_agency_id=ag["SOCIAL"].id,
                    receiving_agency_id=ag["TAX"].id,
                    sender_id=cert.user_id,
                    sender_cert_id=cert.id,
                    state=state,
                    registered_at=BASE + (4 + n) * DAY,
                    processed_at=BASE + (4 + n + processed) * DAY if processed else None,
                )
            )
        db.session.commit()
        build = reports.summarise(db.session, cutoff=SUMMARY_CUTOFF)["build"]
        made = SimpleNamespace(
            tag=tag,
            cats={k: v.id for k, v in cats.items()},
            ag={k: v.id for k, v in ag.items()},
            questionnaire=q.id,
            build=build,
        )
    yield made  # outside the app context: requests must not share one
    with app.app_context():
        _drop_builds(build)


def _drop_builds(*ids):
    """Other modules' reports go on reading the live tables."""
    reports.drop_builds(db.session, ids)


def figures(row, *keys):
    return tuple(row[k] for k in keys)


STATS = ("n", "done", "open", "mean", "median", "p90", "late", "late_pct", "responses", "satisfaction")


def test_performance_by_receiving_agency_matches_the_hand_computed_figures(app, world):
    with app.app_context():
        report = reports.by_agency(db.session, march(), now=NOW)
        rows = {r["code"]: r for r in report.rows}
        assert set(rows) == {"LAND", "TAX"}
        # LAND: 1, 2, 4 days and one open past due; TAX: 3 and 10 days (late)
        assert figures(rows["LAND"], *STATS) == (4, 3, 1, 2.33, 2.0, 3.6, 1, 25.0, 3, 2.67)
        assert figures(rows["TAX"], *STATS) == (2, 2, 0, 6.5, 6.5, 9.3, 1, 50.0, 2, 3.5)
        # overall: [1, 2, 3, 4, 10] -> median 3, p90 = 4 + 0.6 * (10 - 4)
        assert figures(report.total, *STATS) == (6, 5, 1, 4.0, 3.0, 7.6, 2, 33.3, 3, 2.67)
        only_tax = reports.by_agency(db.session, march(agency_id=world.ag["TAX"]), now=NOW)
        assert [r["code"] for r in only_tax.rows] == ["TAX"] and only_tax.total["n"] == 2


def test_performance_by_category_has_sub_items_main_item_subtotals_and_the_overall_figures(app, world):
    with app.app_context():
        report = reports.by_category(db.session, march(), now=NOW)
        rows = {(r["main_item"], r["sub_item"]): r for r in report.rows}
        assert figures(rows[("報表測試", "甲")], *STATS) == (2, 2, 0, 6.5, 6.5, 9.3, 1, 50.0, 2, 3.5)
        assert figures(rows[("報表測試", "乙")], *STATS) == (2, 1, 1, 4.0, 4.0, 4.0, 1, 50.0, 1, 1.0)
        subtotal = next(r for r in report.rows if r["level"] == "subtotal")
        # [3, 4, 10] and one open -> mean 17/3, p90 = 4 + 0.8 * 6
        assert figures(subtotal, *STATS) == (4, 3, 1, 5.67, 4.0, 8.8, 2, 50.0, 3, 2.67)
        assert figures(report.total, *STATS) == figures(subtotal, *STATS)
        only_b = reports.by_category(db.session, march(category_id=world.cats["乙"]), now=NOW)
        assert [r["sub_item"] for r in only_b.rows if r["level"] == "item"] == ["乙"]
        with_tax = reports.by_category(db.session, march(agency_id=world.ag["TAX"]), now=NOW)
        assert with_tax.total["n"] == 2  # c1 and c2 were dispatched to the tax bureau


def test_performance_per_counter_clerk(app, world):
    with app.app_context():
        report = reports.by_clerk(db.session, march(), now=NOW)
        rows = {r["username"]: r for r in report.rows}
        assert figures(rows["notifier"], *STATS) == (3, 2, 1, 6.5, 6.5, 9.3, 2, 66.7, 2, 3.5)
        assert figures(rows["clerk.report"], *STATS) == (1, 1, 0, 4.0, 4.0, 4.0, 0, 0.0, 1, 1.0)
        assert rows["clerk.report"]["agency"].endswith("西區戶政事務所")


def test_query_statistics_per_agency_form_and_business_item(app, world):
    with app.app_context():
        report = reports.queries(db.session, march())
        mine = [r for r in report.rows if r["form"] == "地價稅籍查詢"]
        tax = next(r for r in mine if r["agency_code"] == "TAX")
        assert figures(tax, "n", "ok", "partial", "refused", "errors", "users", "rows", "mean_ms") == (
            5,
            3,
            0,
            1,
            1,
            2,
            6,
            30.0,
        )
        assert tax["item"] == "地價稅查核"
        assert figures(report.total, "n", "users") == (6, 3)  # clerk, clerk.tax2, clerk.social
        only_social = reports.queries(db.session, march(agency_id=world.ag["SOCIAL"]))
        assert only_social.total["n"] == 1


def test_transfer_counts(app, world):
    with app.app_context():
        report = reports.transfers(db.session, march())
        assert len(report.rows) == 1
        row = report.rows[0]
        assert figures(row, "n", "records", "st_processed", "st_uploaded", "done", "mean", "median") == (
            2,
            300,
            1,
            1,
            1,
            2.0,
            2.0,
        )
        empty = reports.transfers(db.session, march(agency_id=world.ag["FIRE"]))
        assert empty.empty


# --- the report summary -------------------------------------------------------------------


def _summarised(build_id, category_ids) -> dict:
    s = ReportSummary.__table__
    return {
        kind: (int(n), int(responses))
        for kind, n, responses in db.session.execute(
            select(s.c.kind, func.sum(s.c.n), func.sum(s.c.responses))
            .where(s.c.build_id == build_id, s.c.span == "day", s.c.category_id.in_(category_ids))
            .group_by(s.c.kind)
        )
    }


def test_the_summary_holds_the_work_finished_before_its_cutoff(app, world):
    with app.app_context():
        # c1, its two dispatches and c2's LAND one; c1's answers came in after the cutoff
        assert _summarised(world.build, world.cats.values()) == {"case": (1, 0), "dispatch": (3, 0)}


RANGES = [
    (datetime.date(2011, 3, 1), datetime.date(2011, 3, 31)),  # one whole month: its month rows
    (datetime.date(2011, 3, 2), datetime.date(2011, 3, 20)),  # day rows
    (datetime.date(2011, 2, 15), datetime.date(2011, 4, 10)),  # days, a whole month, days (c5)
    (datetime.date(2011, 3, 2), datetime.date(2011, 4, 30)),  # days, a whole month (c5)
]


def _same_from_summary_and_live(world):
    for first, last in RANGES:
        for extra in (
            {},
            {"agency_id": world.ag["TAX"]},
            {"agency_id": world.ag["HH-WEST"]},
            {"category_id": world.cats["乙"]},
        ):
            f = reports.Filters(first, last, **extra)
            for report in (reports.by_agency, reports.by_category, reports.by_clerk, reports.queries):
                summary, live = report(db.session, f, now=NOW), report(db.session, f, now=NOW, live=True)
                assert (summary.rows, summary.total) == (live.rows, live.total), (report.__name__, f)


def test_every_report_reads_the_same_from_the_summary_as_from_the_live_tables(app, world):
    with app.app_context():
        _same_from_summary_and_live(world)


def test_work_finished_registered_or_answered_after_the_build_counts_once(app, world):
    """The summary of 2011-07-01 holds case A's LAND dispatch; afterwards A's TAX
    dispatch closes, A is answered, and case B of June is registered late."""
    from flask import current_app

    june = datetime.datetime(2011, 6, 1, 2, 0)
    july = datetime.datetime(2011, 7, 2, 2, 0)
    with app.app_context():
        ag = {a.code: a for a in db.session.scalars(select(Agency))}
        notifier = current_app.appbuilder.sm.find_user(username="notifier")
        cat = NotificationCategory(
            main_item="報表測試",
            sub_item=f"丙{world.tag}",
            kind="citizen",
            due_days=7,
            consent_required=False,
            active=True,
            notifying_agencies=[ag["HH-EAST"]],
        )
        db.session.add(cat)

        def case(name, start, dispatches):
            made = NotificationCase(
                case_no=f"S{world.tag}-{name}",
                category=cat,
                agency=ag["HH-EAST"],
                operator_id=notifier.id,
                status="open",
                created_at=start,
                due_at=start + 7 * DAY,
            )
            for code, closed in dispatches:
                db.session.add(
                    Dispatch(
                        case=made,
                        agency=ag[code],
                        state="closed" if closed else "accepted",
                        sent_at=start,
                        due_at=start + 7 * DAY,
                        closed_at=closed,
                    )
                )
            db.session.add(made)
            return made

        a = case("A", june, [("LAND", june + DAY), ("TAX", None)])
        db.session.commit()
        builds = [reports.summarise(db.session, cutoff=datetime.datetime(2011, 7, 1))["build"]]
        try:
            assert _summarised(builds[0], [cat.id]) == {"dispatch": (1, 0)}
            tax = next(d for d in a.dispatches if d.agency.code == "TAX")
            tax.state, tax.closed_at = "closed", july
            a.status, a.completed_at = "completed", july
            inv = Invitation(
                token_hash=uuid.uuid4().hex * 2,
                questionnaire_id=world.questionnaire,
                case_id=a.id,
                category_id=cat.id,
                agency_id=ag["HH-EAST"].id,
                created_at=july,
                expires_at=july + 30 * DAY,
                used_at=july + DAY,
            )
            db.session.add(inv)
            db.session.flush()
            db.session.add(
                Response(
                    invitation_id=inv.id,
                    questionnaire_id=world.questionnaire,
                    case_id=a.id,
                    submitted_at=july + DAY,
                    rating_sum=9,
                    rating_count=2,
                )
            )
            b = case("B", june + 2 * DAY, [("LAND", june + 3 * DAY)])
            b.status, b.completed_at = "completed", june + 3 * DAY
            db.session.commit()
            f = reports.Filters(datetime.date(2011, 6, 1), datetime.date(2011, 6, 30), category_id=cat.id)
            for report in (reports.by_agency, reports.by_category, reports.by_clerk):
                summary, live = report(db.session, f, now=NOW), report(db.session, f, now=NOW, live=True)
                assert (summary.rows, summary.total) == (live.rows, live.total), report.__name__
            # dispatches: A LAND 1 d, A TAX 31 d, B LAND 1 d; A's answer counts for both of A's
            agencies = reports.by_agency(db.session, f, now=NOW)
            assert figures(agencies.total, "n", "done", "median", "responses", "satisfaction") == (3, 3, 1.0, 1, 4.5)
            assert {r["code"]: r["responses"] for r in agencies.rows} == {"LAND": 1, "TAX": 1}
            # cases: A 31 d, B 1 d
            cases = reports.by_category(db.session, f, now=NOW)
            assert figures(cases.total, "n", "done", "mean", "responses") == (2, 2, 16.0, 1)
            # the next build holds them all
            builds.append(reports.summarise(db.session, cutoff=datetime.datetime(2011, 8, 1))["build"])
            assert _summarised(builds[1], [cat.id]) == {"case": (2, 1), "dispatch": (3, 2)}
            again = reports.by_agency(db.session, f, now=NOW)
            assert (again.rows, again.total) == (agencies.rows, agencies.total)
        finally:
            db.session.rollback()
            _drop_builds(*builds)
            cases = select(NotificationCase.id).where(NotificationCase.category_id == cat.id)
            for model in (Response, Invitation, Dispatch):
                db.session.execute(delete(model).where(model.case_id.in_(cases)))
            db.session.execute(delete(NotificationCase).where(NotificationCase.category_id == cat.id))
            db.session.delete(db.session.get(NotificationCategory, cat.id))
            db.session.commit()


def test_queries_logged_after_the_build_count_once_and_each_user_once(app, world):
    """September 2011: the clerk queries on the 5th; the build of the 10th holds
    that; then a query of the 6th commits late (another user) and the clerk
    queries again on the 12th."""
    form = f"report.late.{world.tag}"

    def log(day, uid, outcome="ok"):
        db.session.add(
            QueryLog(
                at=datetime.datetime(2011, 9, day, 3, 0),
                user_id=uid,
                username=f"u{uid}",
                agency_code="TAX",
                form_code=form,
                form_title="逾時查詢",
                case_no=f"L-{day}",
                reason="民眾申請減免",
                business_item="TAX-LAND",
                row_count=day,
                duration_ms=10 * day,
                outcome=outcome,
            )
        )
        db.session.commit()

    sept = reports.Filters(datetime.date(2011, 9, 1), datetime.date(2011, 9, 30))
    with app.app_context():
        log(5, 999101)
        builds = [reports.summarise(db.session, cutoff=datetime.datetime(2011, 9, 10))["build"]]
        try:
            log(6, 999102, "refused")
            log(12, 999101)
            summary, live = reports.queries(db.session, sept), reports.queries(db.session, sept, live=True)
            assert (summary.rows, summary.total) == (live.rows, live.total)
            row = next(r for r in summary.rows if r["form_code"] == form)
            assert figures(row, "n", "ok", "refused", "users", "rows", "mean_ms") == (3, 2, 1, 2, 23, 76.7)
            builds.append(reports.summarise(db.session, cutoff=datetime.datetime(2011, 10, 1))["build"])
            again = reports.queries(db.session, sept)
            assert (again.rows, again.total) == (summary.rows, summary.total)
        finally:
            db.session.rollback()
            _drop_builds(*builds)
            db.session.execute(delete(QueryLog).where(QueryLog.form_code == form))
            db.session.commit()


def test_the_nightly_command_summarises_what_was_finished_an_hour_ago(app, runner, world):
    result = runner.invoke(args=["report", "summarise"])
    assert result.exit_code == 0, result.output
    assert "report summary:" in result.output
    with app.app_context():
        build = reports.current_build(db.session)
        try:
            age = datetime.datetime.utcnow() - build.cutoff
            assert datetime.timedelta(minutes=59) < age < datetime.timedelta(minutes=61)
            # every world case but the open c3, and their answers (one per case, counted for each dispatch)
            assert _summarised(build.id, world.cats.values()) == {"case": (4, 4), "dispatch": (6, 6)}
            _same_from_summary_and_live(world)
        finally:
            _drop_builds(build.id)


# --- the screens and the exports --------------------------------------------------------


@pytest.fixture
def manager(app):
    c = app.test_client()
    login(c, "manager")
    return c


def test_the_manager_reads_the_report_with_its_chart_in_roc_dates(manager, world):
    r = manager.get("/reports/", query_string={"report": "agencies", **MARCH})
    assert r.status_code == 200
    assert "100/03/01–100/03/31" in r.text and "示範縣地政事務所" in r.text
    assert 'id="report-chart"' in r.text and "data:image/svg+xml;base64," in r.text
    assert ">2.33<" in r.text and ">3.60<" in r.text and ">7.60<" in r.text


def test_a_date_range_that_ends_before_it_begins_is_refused_with_a_clear_message(manager, world):
    r = manager.get("/reports/", query_string={"report": "agencies", "from": "100/03/31", "to": "100/03/01"})
    assert r.status_code == 400 and "早於" in r.text and 'id="report-table"' not in r.text
    r = manager.get("/reports/", query_string={"from": "100/13/45"})
    assert r.status_code == 400 and "115/11/01" in r.text
    r = manager.get(
        "/reports/export/xlsx", query_string={"from": "100/03/31", "to": "100/03/01"}, follow_redirects=True
    )
    assert "早於" in r.text


@pytest.mark.parametrize(
    "args",
    [{"agency": "abc"}, {"category": "1e9"}, {"from": "1" * 50}, {"nickname": "x"}],
    ids=["an agency that is no id", "a category that is no id", "a date far too long", "an unknown parameter"],
)
def test_a_report_asked_with_malformed_parameters_is_refused_clearly_and_nothing_is_exported(app, manager, world, args):
    r = manager.get("/reports/", query_string={"report": "agencies", **MARCH, **args})
    assert r.status_code == 400 and "報表條件不正確" in r.text and 'id="report-table"' not in r.text
    with app.app_context():
        before = db.session.scalar(
            select(db.func.count()).select_from(AuditEvent).where(AuditEvent.action == "report_export")
        )
    r = manager.get("/reports/export/pdf", query_string={"report": "agencies", **MARCH, **args})
    assert r.status_code == 302
    with app.app_context():
        after = db.session.scalar(
            select(db.func.count()).select_from(AuditEvent).where(AuditEvent.action == "report_export")
        )
    assert after == before


def test_exporting_an_empty_range_says_there_is_nothing_to_export(app, manager, world):
    with app.app_context():
        before = db.session.scalar(
            select(db.func.count()).select_from(AuditEvent).where(AuditEvent.action == "report_export")
        )
    for fmt in ("xlsx", "pdf"):
        r = manager.get(f"/reports/export/{fmt}", query_string={"from": "090/01/01", "to": "090/01/31"})
        assert r.status_code == 302
        page = manager.get(r.headers["Location"])
        assert "沒有可匯出的資料" in page.text and "090/01/01–090/01/31" in page.text
    with app.app_context():
        after = db.session.scalar(
            select(db.func.count()).select_from(AuditEvent).where(AuditEvent.action == "report_export")
        )
    assert after == before  # nothing was exported


def test_the_excel_export_opens_and_carries_the_figures(app, manager, world):
    r = manager.get("/reports/export/xlsx", query_string={"report": "agencies", **MARCH})
    assert r.status_code == 200 and r.mimetype.endswith("spreadsheetml.sheet")
    ws = load_workbook(io.BytesIO(r.data)).active
    rows = [row for row in ws.iter_rows(values_only=True)]
    assert rows[0][0] == "各受文機關辦理績效"
    head = next(i for i, row in enumerate(rows) if row and row[0] == "受文機關")
    table = {row[0]: row for row in rows[head + 1 :]}
    land = table["示範縣地政事務所"]
    assert list(land[1:11]) == [4, 3, 1, 2.33, 2.0, 3.6, 1, 25.0, 3, 2.67]
    assert list(table["全部受文機關"][1:7]) == [6, 5, 1, 4.0, 3.0, 7.6]
    with app.app_context():
        event = db.session.scalar(
            select(AuditEvent).where(AuditEvent.action == "report_export").order_by(AuditEvent.id.desc())
        )
        assert event.actor == "manager" and event.object_id == "agencies" and '"format": "xlsx"' in event.detail


def test_the_pdf_export_opens_renders_chinese_and_carries_the_figures(manager, world):
    r = manager.get("/reports/export/pdf", query_string={"report": "categories", **MARCH})
    assert r.status_code == 200 and r.data.startswith(b"%PDF")
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(r.data)).pages)
    for needle in ("各類別辦理績效", "報表測試", "小計", "5.67", "8.80", "50.0%", "2.67"):
        assert needle in text, needle
    ARTIFACTS.mkdir(exist_ok=True)
    pdf = ARTIFACTS / "report-categories.pdf"
    pdf.write_bytes(r.data)
    subprocess.run(
        ["pdftoppm", "-png", "-r", "70", "-f", "1", "-l", "1", str(pdf), str(ARTIFACTS / "report-categories")],
        check=True,
    )


def test_only_managers_read_reports(app):
    clerk = app.test_client()
    login(clerk, "clerk")
    assert clerk.get("/reports/").status_code in (302, 403)
    assert clerk.get("/reports/export/xlsx").status_code in (302, 403)


# --- charts ----------------------------------------------------------------------------

CJK_FAMILIES = ("CJK", "UMing", "UKai", "WenQuanYi", "Droid Sans Fallback")


@pytest.fixture
def font_cache_from_before_the_cjk_fonts():
    """matplotlib's font list as a cache built before the CJK fonts were installed:
    it knows none of them, so looking fonts up by name finds no Chinese font."""
    from matplotlib import font_manager

    from app.services.reports import charts

    manager = font_manager.fontManager
    saved = list(manager.ttflist)
    manager.ttflist[:] = [font for font in saved if not any(part in font.name for part in CJK_FAMILIES)]
    manager._findfont_cached.cache_clear()  # matplotlib's lookup cache (a test may reach into it)
    charts._families.cache_clear()
    yield
    manager.ttflist[:] = saved
    manager._findfont_cached.cache_clear()
    charts._families.cache_clear()


def _chart_report() -> SimpleNamespace:
    labels = ["示範縣地政事務所", "戶政事務所－出生登記（小計）", "地方稅務局／地價稅查詢", "社會處 → 地政事務所"]
    rows = [{"label": label, "n": 4 - n, "late": n % 2} for n, label in enumerate(labels)]
    return SimpleNamespace(
        rows=rows, label_key="label", series=[reports.Series("n", "案件數"), reports.Series("late", "逾期")]
    )


@pytest.mark.filterwarnings("error")
def test_report_charts_draw_chinese_with_a_cjk_font_even_when_matplotlibs_font_cache_predates_it(
    font_cache_from_before_the_cjk_fonts,
):
    """A glyph missing from the font warns ("Glyph ... missing from font(s) DejaVu Sans") and draws an
    empty box: here every warning is an error, so a chart with boxes fails."""
    from app.services.reports import charts

    report = _chart_report()
    svg = charts.report_chart(report)
    png = charts.report_chart(report, fmt="png")
    assert svg.startswith(b"<?xml") and png.startswith(b"\x89PNG")
    assert charts.font_families()[0] in ("Noto Sans CJK TC", "AR PL UMing TW")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "report-chart.png").write_bytes(png)


@pytest.mark.filterwarnings("error")
def test_the_survey_charts_draw_chinese_without_a_missing_glyph():
    from app.services.reports import charts

    rows = [reports.DistributionRow("非常滿意", 3, 60.0), reports.DistributionRow("不滿意（請說明）", 2, 40.0)]
    assert charts.question_chart(SimpleNamespace(rows=rows, respondents=5), fmt="png").startswith(b"\x89PNG")


RARE_FONT_FILES = ("uming.ttc", "TW-Sung-98_1.ttf", "TW-Sung-Ext-B-98_1.ttf")


@pytest.fixture
def only_uming_and_the_cns_fonts(tmp_path, monkeypatch, font_cache_from_before_the_cjk_fonts):
    """A machine with AR PL UMing and the CNS 11643 全字庫 fonts but no Noto Sans CJK (the PDFs'
    fonts): UMing, the charts' first font then, lacks Extension A and B."""
    from matplotlib import font_manager

    from app.services.pdf.fonts import FONT_DIRS, find_font_files
    from app.services.reports import charts

    found = find_font_files(FONT_DIRS, wanted_names=RARE_FONT_FILES)
    if len(found) < len(RARE_FONT_FILES):
        pytest.skip("needs fonts-arphic-uming and fonts-cns11643-sung")
    for path in found.values():
        (tmp_path / path.rsplit("/", 1)[-1]).symlink_to(path)
    manager = font_manager.fontManager
    manager.ttflist[:] = [font for font in manager.ttflist if not font.name.startswith("TW-")]
    monkeypatch.setattr(charts, "FONT_DIRS", (str(tmp_path),))
    yield


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("fonts", ["as installed", "UMing and 全字庫 only"])
def test_charts_draw_the_rare_characters_of_names_and_addresses(request, fonts):
    """王䶵明 (Extension A), 陳𠀋華 and 𤧛興路 (Extension B): a missing glyph warns, and warnings are errors."""
    from seed_data.world import RARE_NAMES, RARE_ROAD, RARE_VILLAGE

    if fonts != "as installed":
        request.getfixturevalue("only_uming_and_the_cns_fonts")
    from app.services.reports import charts

    labels = [*RARE_NAMES, RARE_VILLAGE, RARE_ROAD]
    png = charts.bars(labels, [("案件數", [3, 2, 1, 1, 1])], title="難字：" + "、".join(labels), fmt="png")
    svg = charts.bars(labels, [("案件數", [3, 2, 1, 1, 1])])
    assert png.startswith(b"\x89PNG") and svg.startswith(b"<?xml")
    if fonts != "as installed":
        assert charts.font_families()[0] == "AR PL UMing TW" and "TW-Sung-Ext-B" in charts.font_families()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"chart-rare-{'installed' if fonts == 'as installed' else 'uming'}.png").write_bytes(png)


@pytest.mark.filterwarnings("error")
def test_the_manager_reads_the_chart_drawn_without_a_missing_glyph(manager, world):
    r = manager.get("/reports/", query_string={"report": "categories", **MARCH})
    assert r.status_code == 200 and 'id="report-chart"' in r.text


# --- the weekly query log ----------------------------------------------------------------


def _pdf_text(data: bytes) -> str:
    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_the_weekly_query_log_of_one_agency_lists_each_query_with_its_purpose_and_no_id_numbers(
    app, runner, world, tmp_path
):
    out = tmp_path / "tax.pdf"
    result = runner.invoke(
        args=["report", "weekly-queries", "--agency", "TAX", "--week", "100/03/02", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "100/02/28–100/03/06" in result.output and "5 queries" in result.output
    text = _pdf_text(out.read_bytes())
    assert "查詢紀錄週報表" in text and "示範縣地方稅務局" in text
    for needle in (
        "clerk",
        "clerk.tax2",
        f"稅-{world.tag}-0",
        f"稅-{world.tag}-4",
        "民眾申請減免",
        "地價稅查核",
        "拒絕",
    ):
        assert needle in text, needle
    assert "A123456789" not in text and "deadbeef" not in text
    assert f"稅-{world.tag}-5" not in text  # social affairs' query is in its own section
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "weekly-queries-TAX.pdf").write_bytes(out.read_bytes())
    subprocess.run(
        ["pdftoppm", "-png", "-r", "80", "-f", "1", "-l", "1", str(out), str(ARTIFACTS / "weekly-queries-TAX")],
        check=True,
    )


def test_the_weekly_query_log_of_all_agencies_has_one_section_each(app, runner, world, tmp_path):
    out = tmp_path / "all.pdf"
    result = runner.invoke(args=["report", "weekly-queries", "--week", "100/03/02", "--out", str(out)])
    assert result.exit_code == 0, result.output
    reader = PdfReader(io.BytesIO(out.read_bytes()))
    with app.app_context():
        agencies = db.session.scalars(select(Agency).where(Agency.active.is_(True))).all()
    text = "".join(p.extract_text() for p in reader.pages)
    assert len(reader.pages) >= len(agencies)
    for a in agencies:
        assert a.name in text
    assert "本週無查詢紀錄" in text
    bad = runner.invoke(args=["report", "weekly-queries", "--agency", "NOPE", "--out", str(out)])
    assert bad.exit_code == 2 and "NOPE" in bad.output


def test_the_weekly_logs_reach_is_the_own_agency_unless_the_actor_may_read_every_agency():
    from app.services import actors
    from app.services.errors import Forbidden

    supervisor = actors.Actor(user_id=7, username="supervisor.tax", agency_id=3, agency_code="TAX")
    assert reports.weekly_reach(supervisor, "100/03/02", "SOCIAL").agency_code == "TAX"
    assert reports.weekly_reach(supervisor, "100/03/02", "").agency_code == "TAX"
    auditor = actors.Actor(user_id=8, username="auditor", permissions=frozenset({actors.WEEKLY_ALL_AGENCIES}))
    assert reports.weekly_reach(auditor, "100/03/02", "SOCIAL").agency_code == "SOCIAL"
    assert reports.weekly_reach(auditor, "100/03/02", "").agency_code is None  # every agency
    reach = reports.weekly_reach(auditor, "100/03/02", None)
    assert (reach.monday, reach.sunday) == (datetime.date(2011, 2, 28), datetime.date(2011, 3, 6))
    with pytest.raises(Forbidden):
        reports.weekly_reach(actors.Actor(user_id=9, username="nobody"), "100/03/02", "TAX")


def test_a_supervisor_downloads_the_weekly_log_of_their_own_agency_only_and_the_download_is_audited(app, world):
    sup = app.test_client()
    login(sup, "supervisor.tax")
    page = sup.get("/reports/weekly-queries/", query_string={"week": "100/03/02", "agency": "SOCIAL"})
    assert page.status_code == 200
    assert "示範縣地方稅務局" in page.text and "示範縣政府社會處" not in page.text
    r = sup.get("/reports/weekly-queries/pdf", query_string={"week": "100/03/02", "agency": "SOCIAL"})
    assert r.status_code == 200
    text = _pdf_text(r.data)
    assert "示範縣地方稅務局" in text and "社會處" not in text
    with app.app_context():
        event = db.session.scalar(
            select(AuditEvent)
            .where(AuditEvent.action == "report_export", AuditEvent.object_id == "weekly-queries")
            .order_by(AuditEvent.id.desc())
        )
        assert event.actor == "supervisor.tax" and '"agency": "TAX"' in event.detail
    handler = app.test_client()
    login(handler, "handler.tax")
    assert handler.get("/reports/weekly-queries/").status_code in (302, 403)
