"""The auditor's desk: open anomaly flags, overdue weekly reviews, the audit chain's state
(last verification, last signed checkpoint, last archive) and recent administrative changes,
on one page. Counts and names of records only; no personal data. The auditors are also told
of each overdue weekly review by e-mail, once (``report_overdue``, the retention worker's round)."""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.lib.rocdate import format_roc, utc_midnight
from app.models.anomaly import AnomalyCursor, AnomalyFlag, WeeklyReview, WeeklyReviewOverdue
from app.models.audit import AuditArchive, AuditEvent
from app.models.org import Agency
from app.models.queries import QueryLog
from app.services import audit, outbox
from app.services.actors import Actor
from app.services.command import transaction
from app.services.errors import Forbidden
from app.services.reports.filters import taipei_today
from app.services.reports.weekly import week_of
from app.services.roles import AUDIT_DESK, holders_of

WEEKS_BACK = 8  # overdue reviews are looked for over the last eight weeks
RECENT_CHANGES = 15
ADMIN_ACTIONS = ("create", "update", "delete")


def _last_archive(session) -> dict | None:
    """The last monthly archive of the audit trail (app.services.retention), if any."""
    row = session.execute(
        select(AuditArchive.created_at, AuditArchive.month, AuditArchive.file_name)
        .order_by(AuditArchive.id.desc())
        .limit(1)
    ).first()
    return {"at": row.created_at, "name": f"{row.month} {row.file_name}"} if row else None


@dataclass
class OverdueReview:
    agency_code: str
    agency_name: str
    week_start: datetime.date
    due: datetime.date
    queries: int


@dataclass
class Desk:
    open_flags: int
    open_by_severity: dict[str, int]
    open_by_agency: list[tuple[str, str, int]]  # code, name, count
    overdue_reviews: list[OverdueReview]
    last_verify: dict | None  # at, ok, checked, problems
    last_checkpoint: object | None  # app.services.audit.Checkpoint
    last_archive: dict | None
    last_evaluation: datetime.datetime | None
    changes: list[dict] = field(default_factory=list)


def overdue_reviews(session, today: datetime.date | None = None) -> list[OverdueReview]:
    """The weeks (of the last WEEKS_BACK) whose query log an agency has not had reviewed and
    signed WEEKLY_REVIEW_DAYS after the week ended (only weeks the agency queried in)."""
    today = today or taipei_today()
    grace = datetime.timedelta(days=current_app.config.get("WEEKLY_REVIEW_DAYS", 7))
    this_monday = week_of(today)[0]
    log = QueryLog.__table__
    names = dict(session.execute(select(Agency.code, Agency.name)).all())
    signed = {
        (r.agency_code, r.week_start)
        for r in session.execute(
            select(WeeklyReview.agency_code, WeeklyReview.week_start).where(
                WeeklyReview.week_start >= this_monday - datetime.timedelta(weeks=WEEKS_BACK),
                WeeklyReview.signed_at.is_not(None),
            )
        )
    }
    found = []
    for back in range(1, WEEKS_BACK + 1):
        monday = this_monday - datetime.timedelta(weeks=back)
        due = monday + datetime.timedelta(days=7) + grace
        if due >= today:
            continue
        start, end = utc_midnight(monday), utc_midnight(monday + datetime.timedelta(days=7))
        per_agency = session.execute(
            select(log.c.agency_code, func.count())
            .where(log.c.at >= start, log.c.at < end, log.c.agency_code.is_not(None))
            .group_by(log.c.agency_code)
        ).all()
        for code, count in per_agency:
            if (code, monday) not in signed:
                found.append(OverdueReview(code, names.get(code, code), monday, due, int(count)))
    return sorted(found, key=lambda r: (r.week_start, r.agency_code))


MAIL_TOPIC_OVERDUE = "anomaly:weekly-review-overdue"


def auditors(session) -> list[str]:
    """The e-mail addresses of the active accounts whose roles hold the auditor's desk."""
    return sorted({u.email for u in holders_of(session, AUDIT_DESK) if u.email})


def _overdue_mail(item: OverdueReview) -> tuple[str, str]:
    sunday = item.week_start + datetime.timedelta(days=6)
    subject = (
        f"【週查詢紀錄審查逾期】{item.agency_name} {format_roc(item.week_start)} / Weekly query-log review overdue"
    )
    body = (
        f"稽核人員您好：\n\n{item.agency_name}（{item.agency_code}）{format_roc(item.week_start)}–{format_roc(sunday)}"
        f" 一週之查詢紀錄（{item.queries} 筆查詢）應於 {format_roc(item.due)} 前由主管審查簽章，至今尚未簽章。"
        "請至平台「稽核工作台」查看。\n\n"
        f"The weekly query-log review of {item.agency_code} for the week of {item.week_start.isoformat()}"
        f" ({item.queries} queries) was due by {item.due.isoformat()} and is not signed. See the auditor's desk.\n"
    )
    return subject, body


def report_overdue(session, actor: Actor, today: datetime.date | None = None) -> list[OverdueReview]:
    """Command (the retention worker's round): tell the auditors by e-mail, once, of each
    overdue weekly review (``overdue_reviews``); each told in a transaction of its own with
    its marker row and audit event. The marker's unique (agency, week) keeps a second worker
    from telling them again. Returns the reviews told this time."""
    with transaction(session):  # the reads end here: each review is told in a transaction of its own
        found = overdue_reviews(session, today)
        if not found:
            return []
        told = set(
            session.execute(
                select(WeeklyReviewOverdue.agency_code, WeeklyReviewOverdue.week_start).where(
                    WeeklyReviewOverdue.week_start >= min(item.week_start for item in found)
                )
            ).all()
        )
    reported = []
    for item in found:
        if (item.agency_code, item.week_start) not in told and tell_overdue(session, actor, item):
            reported.append(item)
    return reported


def tell_overdue(session, actor: Actor, item: OverdueReview) -> bool:
    """Tell the auditors of one overdue review, unless it was told already (by this worker or
    another); False then, and nothing is sent."""
    try:
        with transaction(session):
            marker = WeeklyReviewOverdue(agency_code=item.agency_code, week_start=item.week_start,
                                         reported_at=datetime.datetime.utcnow())  # fmt: skip
            session.add(marker)
            session.flush()  # another worker's marker for the same week stops this one here
            to = auditors(session)
            subject, body = _overdue_mail(item)
            for address in to:
                outbox.enqueue(session, address, subject, body, topic=MAIL_TOPIC_OVERDUE)
            marker.recipients = len(to)
            audit.record(session, "weekly_review.overdue_reported", object_type="WeeklyReviewOverdue",
                         object_id=marker.id, detail={"agency": item.agency_code, "week": item.week_start.isoformat(),
                                                      "queries": item.queries, "recipients": len(to)},
                         actor=actor)  # fmt: skip
    except IntegrityError:
        return False
    return True


def _last_checkpoint():
    from app.services.audit import checkpoints

    try:
        return checkpoints.latest(current_app.config["AUDIT_CHECKPOINT_FILE"], checkpoints.signing_key().public_key())
    except (OSError, ValueError):
        return None


def desk(session, actor: Actor) -> Desk:
    """Command: the auditor's desk (audited). Raises Forbidden for anyone but an auditor."""
    if not actor.signed_in or not actor.can(AUDIT_DESK):
        raise Forbidden(_l("The auditor's desk is for auditors."))
    open_ = AnomalyFlag.resolved_at.is_(None)
    by_severity = dict(
        session.execute(select(AnomalyFlag.severity, func.count()).where(open_).group_by(AnomalyFlag.severity)).all()
    )
    names = dict(session.execute(select(Agency.code, Agency.name)).all())
    by_agency = [
        (code or "", names.get(code, code or ""), int(n))
        for code, n in session.execute(
            select(AnomalyFlag.agency_code, func.count()).where(open_).group_by(AnomalyFlag.agency_code)
        ).all()
    ]
    events = AuditEvent.__table__
    changes = [
        dict(row)
        for row in session.execute(
            select(events.c.at, events.c.actor, events.c.action, events.c.object_type, events.c.object_id,
                   events.c.fields)
            .where(events.c.action.in_(ADMIN_ACTIONS))
            .order_by(events.c.id.desc())
            .limit(RECENT_CHANGES)
        ).mappings()
    ]  # fmt: skip
    result = Desk(
        open_flags=sum(by_severity.values()),
        open_by_severity={k: int(v) for k, v in by_severity.items()},
        open_by_agency=sorted(by_agency, key=lambda a: -a[2]),
        overdue_reviews=overdue_reviews(session),
        last_verify=last_check(),
        last_checkpoint=_last_checkpoint(),
        last_archive=_last_archive(session),
        last_evaluation=session.scalar(select(AnomalyCursor.last_run_at).where(AnomalyCursor.id == 1)),
        changes=changes,
    )
    with transaction(session):
        audit.record(session, "audit.desk_viewed", detail={"open_flags": result.open_flags,
                     "overdue_reviews": len(result.overdue_reviews)}, actor=actor)  # fmt: skip
    return result


def _check_file() -> Path:
    """Beside the signed checkpoints: the last ``flask audit verify``'s verdict (verify writes
    no row: its transaction is read-only, and the database must stay as it found it)."""
    return Path(current_app.config["AUDIT_CHECKPOINT_FILE"]).with_suffix(".verified.json")


def record_check(ok: bool, checked: int, problems: int) -> None:
    """Keep the verdict of one run of ``flask audit verify`` for the desk (replaced atomically)."""
    path = _check_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.utcnow().isoformat(timespec="seconds")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"at": stamp, "ok": ok, "checked": checked, "problems": problems}), encoding="utf-8")
    os.replace(tmp, path)


def last_check() -> dict | None:
    """The last verdict kept by ``record_check`` (``at`` as naive UTC), or None."""
    try:
        found = json.loads(_check_file().read_text(encoding="utf-8"))
        found["at"] = datetime.datetime.fromisoformat(found["at"])
        return found
    except (OSError, ValueError, KeyError, TypeError):
        return None
