"""The retention worker (`flask worker retention`): once a RETENTION_ROUND_SECONDS
(a day by default), archive and remove the months past the retention, warn and
disable dormant accounts, and tell the auditors of overdue account reviews and
of overdue weekly reviews of the query log. Each step is a command of its own
(``audit.archive``, ``account_review``, ``anomaly.report_overdue``); a failed
step is logged and retried next round."""

from __future__ import annotations

import logging
import threading

from app.services.actors import OPERATOR

log = logging.getLogger(__name__)


def round_once(session) -> dict:
    from app.services import account_review, anomaly
    from app.services.audit import archive

    done: dict = {}

    def ensure_partitions():
        from app.services.audit import partitions

        with session.get_bind().begin() as conn:
            return partitions.ensure(conn)

    steps = (
        ("partitions", ensure_partitions),
        ("archived", lambda: [m.month for m in archive.archive_due(session, OPERATOR)]),
        ("dormant", lambda: account_review.dormant_round(session, OPERATOR)),
        ("overdue_reviews", lambda: account_review.report_overdue(session, OPERATOR)),
        (
            "overdue_weekly_reviews",
            lambda: [f"{r.agency_code} {r.week_start.isoformat()}" for r in anomaly.report_overdue(session, OPERATOR)],
        ),
    )
    for name, step in steps:
        try:
            done[name] = step()
        except Exception as exc:  # one failed step never stops the others
            session.rollback()
            log.error("retention step %s failed: %s: %s", name, type(exc).__name__, str(exc)[:200])
            done[name] = None
    return done


def run(app, stop_event: threading.Event) -> None:
    from app.extensions import db

    interval = float(app.config.get("RETENTION_ROUND_SECONDS", 86400))
    with app.app_context():
        while not stop_event.is_set():
            log.info("retention round: %s", round_once(db.session))
            db.session.remove()
            stop_event.wait(interval)
