"""Accountability of the query log (issue 19): anomaly rules an Admin configures, the
worker that applies them, the flags supervisors and auditors resolve, and the auditor's desk.

Modules: ``rules`` (validation of rules, calendar and protected list; local time),
``evaluate`` (the worker's round, ``flask worker anomalies``), ``flags`` (list and resolve),
``desk`` (the auditor's desk), ``reviews`` (the signed weekly review).
"""

from app.services.anomaly.desk import (
    Desk,
    OverdueReview,
    desk,
    last_check,
    overdue_reviews,
    record_check,
    report_overdue,
)
from app.services.anomaly.evaluate import evaluate_round, run
from app.services.anomaly.flags import OUTCOME_LABELS, FlagView, list_flags, open_count, resolve_flag
from app.services.anomaly.rules import (
    DAY_KIND_LABELS,
    KIND_LABELS,
    SEVERITY_LABELS,
    validate_day,
    validate_protected,
    validate_rule,
)

__all__ = [
    "DAY_KIND_LABELS",
    "KIND_LABELS",
    "OUTCOME_LABELS",
    "SEVERITY_LABELS",
    "Desk",
    "FlagView",
    "OverdueReview",
    "desk",
    "evaluate_round",
    "last_check",
    "list_flags",
    "open_count",
    "overdue_reviews",
    "record_check",
    "report_overdue",
    "resolve_flag",
    "run",
    "validate_day",
    "validate_protected",
    "validate_rule",
]
