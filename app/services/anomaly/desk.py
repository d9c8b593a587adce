"""The auditor's desk: open anomaly flags, overdue weekly reviews, the audit chain's state
(last verification, last signed checkpoint, last archive) and recent administrative changes,
on one page. Counts and names of records only; no personal data."""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from app.lib.rocdate import utc_midnight
from app.models.anomaly import AnomalyCursor, AnomalyFlag, WeeklyReview
from app.models.audit import AuditArchive, AuditEvent
from app.models.org import Agency
from app.models.queries import QueryLog
from app.services import audit
from app.services.actors import Actor
from app.services.command import transaction
from app.services.errors import Forbidden
from app.services.reports.filters import taipei_today
from app.services.reports.weekly import week_of
from app.services.roles import AUDIT_DESK

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
