"""The staff home page: what waits for me, by the capabilities I hold, with counts
(one small counting query each, no personal data). The page links each to its list."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from app.models.notify import Dispatch, NotificationCase
from app.models.sources import DataSource
from app.models.transfer import StaffCertificate, TransferCase
from app.services import actors, anomaly, portal
from app.services.actors import Actor
from app.services.roles import DISPATCH_HANDLE, DISPATCH_SUPERVISE, NOTIFY_CASES, TRANSFER_FILES

# A staff certificate this close to its end is named on the home page.
CERTIFICATE_WARNING_DAYS = 30
_OPEN_CASE = NotificationCase.status == "open"


@dataclass(frozen=True)
class Todo:
    """One thing that waits: ``key`` names it (and its link on the page), ``urgent`` when late."""

    key: str
    label: str
    count: int
    urgent: bool = False


def _count(session, stmt) -> int:
    return int(session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)


def _dispatches(actor: Actor, *where):
    return (
        select(Dispatch.id)
        .join(NotificationCase, NotificationCase.id == Dispatch.case_id)
        .where(Dispatch.agency_id == actor.agency_id, NotificationCase.status != "withdrawn", *where)
    )


def todo(session, actor: Actor, now: datetime.datetime | None = None) -> list[Todo]:
    """What waits for ``actor`` (a read: nothing recorded, nothing personal)."""
    now = now or datetime.datetime.utcnow()
    items: list[Todo] = []
    if actor.agency_id is not None and actor.can(DISPATCH_SUPERVISE):
        assign = _count(session, _dispatches(actor, Dispatch.state.in_(("sent", "received"))))
        review = _count(session, _dispatches(actor, Dispatch.state == "processed"))
        late = _count(session, _dispatches(actor, Dispatch.state != "closed", NotificationCase.due_at < now))
        items += [
            Todo("assign", str(_l("Dispatches to receive and assign")), assign),
            Todo("review", str(_l("Results to review")), review),
            Todo("overdue", str(_l("Overdue dispatches of my agency")), late, urgent=late > 0),
        ]
    if actor.user_id is not None and actor.can(DISPATCH_HANDLE):
        mine = Dispatch.handler_id == actor.user_id
        accept = _count(session, _dispatches(actor, mine, Dispatch.state == "assigned"))
        record = _count(session, _dispatches(actor, mine, Dispatch.state == "accepted"))
        items += [
            Todo("accept", str(_l("Dispatches assigned to me to accept")), accept),
            Todo("record", str(_l("Accepted dispatches waiting for my result")), record),
        ]
    if actor.agency_id is not None and actor.can(NOTIFY_CASES):
        cases = select(NotificationCase.id).where(NotificationCase.agency_id == actor.agency_id, _OPEN_CASE)
        late = cases.where(NotificationCase.due_at < now)
        n_late = _count(session, late)
        items += [
            Todo("cases", str(_l("My agency's open cases")), _count(session, cases)),
            Todo("cases_overdue", str(_l("My agency's overdue cases")), n_late, urgent=n_late > 0),
        ]
    if actor.agency_id is not None and actor.can(TRANSFER_FILES):
        download = select(TransferCase.id).where(
            TransferCase.receiving_agency_id == actor.agency_id, TransferCase.state == "uploaded"
        )
        results = select(TransferCase.id).where(
            TransferCase.sending_agency_id == actor.agency_id, TransferCase.state == "processed"
        )
        items += [
            Todo("transfers", str(_l("Encrypted files to download")), _count(session, download)),
            Todo("transfer_results", str(_l("Results to fetch")), _count(session, results)),
        ]
    if actor.user_id is not None and actor.can(TRANSFER_FILES):
        soon = now + datetime.timedelta(days=CERTIFICATE_WARNING_DAYS)
        ending = select(StaffCertificate.id).where(
            StaffCertificate.user_id == actor.user_id, StaffCertificate.status == "valid",
            StaffCertificate.not_after < soon,
        )  # fmt: skip
        n = _count(session, ending)
        if n:
            items.append(Todo("certificates", str(_l("My certificates ending within 30 days")), n, urgent=True))
    flags = portal.open_flag_count(session, actor)
    if flags is not None:
        items.append(Todo("flags", str(_l("Flags to answer (who read my data)")), flags, urgent=flags > 0))
    anomalies = anomaly.open_count(session, actor)
    if anomalies is not None:
        items.append(Todo("anomalies", str(_l("Anomaly flags to review")), anomalies, urgent=anomalies > 0))
    if actor.can(actors.ALL_AGENCIES):
        failing = select(DataSource.id).where(DataSource.enabled.is_(True), DataSource.last_ok.is_(False))
        n = _count(session, failing)
        items.append(Todo("sources", str(_l("Data sources failing their health check")), n, urgent=n > 0))
    return items
