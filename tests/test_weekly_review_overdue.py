"""Overdue weekly reviews of the query log go to the auditors by e-mail, once: the retention
worker's round tells them (holders of the auditor's desk) of each agency's week not signed in
time, with a marker row and an audit event; the next round, or a second worker, tells nobody
again. The mail goes through the outbox to a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import datetime
from email import message_from_bytes
from email.header import decode_header, make_header

from sqlalchemy import delete, func, select

from app.extensions import db
from app.models.anomaly import WeeklyReview, WeeklyReviewOverdue
from app.models.audit import AuditEvent
from app.models.outbox import OutboxMessage
from app.models.queries import QueryLog
from app.services import anomaly, outbox, retention
from app.services.actors import OPERATOR
from app.services.anomaly.desk import MAIL_TOPIC_OVERDUE, tell_overdue
from app.services.anomaly.desk import auditors as desk_auditors
from app.services.reports.filters import taipei_today

SUBJECT = "【週查詢紀錄審查逾期】"


def _received(smtp) -> list[tuple[list[str], str, str]]:
    """(recipients, subject, body) of each overdue-review mail the SMTP server received."""
    with smtp.sink.lock:
        received = list(smtp.sink.messages)
    out = []
    for env in received:
        msg = message_from_bytes(env.original_content)
        subject = str(make_header(decode_header(msg["Subject"])))
        if subject.startswith(SUBJECT):
            body = msg.get_payload(decode=True).decode(msg.get_content_charset() or "utf-8")
            out.append((list(env.rcpt_tos), subject, body))
    return out


def _forget_told() -> None:
    """Start from no overdue review told and none queued (whatever ran before in this module)."""
    db.session.execute(delete(WeeklyReviewOverdue))
    db.session.execute(delete(OutboxMessage).where(OutboxMessage.topic == MAIL_TOPIC_OVERDUE))
    db.session.commit()


def _send(app) -> None:
    with app.app_context():
        outbox.work_once(db.session, limit=500)
        db.session.remove()


def test_each_overdue_weekly_review_is_mailed_once_to_the_auditors_across_rounds_and_workers(app, smtp):
    with app.app_context():
        today = taipei_today()
        monday = today - datetime.timedelta(days=today.weekday(), weeks=3)
        # Three weeks ago the tax bureau's log was reviewed and signed; the land office's was not.
        db.session.add(WeeklyReview(agency_code="TAX", week_start=monday, pdf_sha256="0" * 64, method="password",
                                    signed_by_name="supervisor.tax", signed_at=datetime.datetime.utcnow()))  # fmt: skip
        that_day = datetime.datetime.combine(monday + datetime.timedelta(days=2), datetime.time(3))
        for agency in ("TAX", "LAND"):
            db.session.add(QueryLog(at=that_day, agency_code=agency, username="old", form_code="x", outcome="ok"))
        _forget_told()
        overdue = {(r.agency_code, r.week_start): r for r in anomaly.overdue_reviews(db.session)}
        assert ("LAND", monday) in overdue and ("TAX", monday) not in overdue
        auditors = desk_auditors(db.session)
        assert "auditor" in " ".join(auditors) and len(auditors) >= 1
        queued_before = db.session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.topic == MAIL_TOPIC_OVERDUE)
        )

        # The worker's round, twice: the first tells of every overdue review, the second of none.
        first = retention.round_once(db.session)
        second = retention.round_once(db.session)
        assert sorted(first["overdue_weekly_reviews"]) == sorted(f"{a} {w.isoformat()}" for a, w in overdue)
        assert second["overdue_weekly_reviews"] == []
        # A second worker that read the same overdue weeks before the first told them: the marker stops it.
        assert not tell_overdue(db.session, OPERATOR, overdue[("LAND", monday)])
        assert anomaly.report_overdue(db.session, OPERATOR) == []

        markers = db.session.scalars(select(WeeklyReviewOverdue)).all()
        assert {(m.agency_code, m.week_start) for m in markers} == set(overdue)
        assert all(m.recipients == len(auditors) for m in markers)
        queued = db.session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.topic == MAIL_TOPIC_OVERDUE)
        )
        assert queued - queued_before == len(overdue) * len(auditors)
        events = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "weekly_review.overdue_reported")
        ).all()  # fmt: skip
        assert len(events) == len(overdue)
        assert all(e.actor == "operator" and e.object_type == "WeeklyReviewOverdue" for e in events)
        land_name = overdue[("LAND", monday)].agency_name
        db.session.remove()

    _send(app)
    mails = _received(smtp)
    # exactly one mail per overdue review to each auditor
    per_auditor = {address: [s for to, s, _ in mails if address in to] for address in auditors}
    for address, subjects in per_auditor.items():
        assert len(subjects) == len(overdue), (address, subjects)
        assert len(set(subjects)) == len(subjects)
    land = [(s, b) for to, s, b in mails if land_name in s and f"{monday.year - 1911}/{monday:%m/%d}" in s]
    assert len(land) == len(auditors)
    subject, body = land[0]
    assert subject.endswith("/ Weekly query-log review overdue")
    lines = [line for line in body.splitlines() if line.strip()]
    assert lines[0] == "稽核人員您好："
    assert "（LAND）" in lines[1] and "尚未簽章" in lines[1]
    assert lines[2].startswith(f"The weekly query-log review of LAND for the week of {monday.isoformat()}")

    # Another round after the mails went: still nothing more.
    with app.app_context():
        assert retention.round_once(db.session)["overdue_weekly_reviews"] == []
        db.session.remove()
    _send(app)
    assert len(_received(smtp)) == len(mails)


def test_the_command_line_tells_the_auditors_of_overdue_reviews(app, runner):
    with app.app_context():
        today = taipei_today()
        monday = today - datetime.timedelta(days=today.weekday(), weeks=4)
        that_day = datetime.datetime.combine(monday + datetime.timedelta(days=1), datetime.time(2))
        db.session.add(QueryLog(at=that_day, agency_code="SOCIAL", username="old", form_code="x", outcome="ok"))
        db.session.commit()
        _forget_told()
        db.session.remove()
    result = runner.invoke(args=["anomaly", "review-overdue"])
    assert result.exit_code == 0, result.output
    assert f"SOCIAL {monday.isoformat()}" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(WeeklyReviewOverdue).where(
            WeeklyReviewOverdue.agency_code == "SOCIAL", WeeklyReviewOverdue.week_start == monday)) == 1  # fmt: skip
        db.session.remove()
    result = runner.invoke(args=["anomaly", "review-overdue"])
    assert result.exit_code == 0 and "reported: none" in result.output, result.output
