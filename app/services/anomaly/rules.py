"""What an Admin configures without code: anomaly rules (checked when saved: a rule
with nonsense thresholds is refused), the office calendar, and the protected list
(an ID or business number entered once, kept as its keyed hash only)."""

from __future__ import annotations

import datetime
import re

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.lib.identifiers import is_business_number, is_person_id
from app.lib.rocdate import TAIPEI
from app.models.anomaly import DAY_KINDS, RULE_KINDS, SEVERITIES, AnomalyRule, OfficeDay, ProtectedSubject
from app.services.errors import InvalidInput
from app.services.query.record import subject_hash

KIND_LABELS = {
    "many_subjects": _l("Many different people in an hour or a day"),
    "off_hours": _l("Outside office hours or on a holiday"),
    "repeat_subject": _l("The same person again and again under one case number"),
    "protected_subject": _l("A person on the protected list"),
    "own_household": _l("The user's own household"),
}
SEVERITY_LABELS = {"low": _l("Low"), "medium": _l("Medium"), "high": _l("High")}
DAY_KIND_LABELS = {"holiday": _l("Day off"), "workday": _l("Make-up workday")}
MAX_WINDOW = 7 * 24 * 60  # a week, in minutes
MAX_SUBJECTS = 100_000
MAX_REPEATS = 1_000
_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
USES_THRESHOLD = ("many_subjects", "repeat_subject")


def to_local(at: datetime.datetime) -> datetime.datetime:
    """A naive UTC time of the log as the county's wall-clock time (naive)."""
    return at.replace(tzinfo=datetime.UTC).astimezone(TAIPEI).replace(tzinfo=None)


def to_utc(local: datetime.datetime) -> datetime.datetime:
    return local.replace(tzinfo=TAIPEI).astimezone(datetime.UTC).replace(tzinfo=None)


def _whole(value, low: int, high: int, message) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(message, low=low, high=high)
    return value


def validate_rule(session, rule: AnomalyRule) -> None:
    """A rule the worker can apply, or InvalidInput saying what is wrong (nothing saved)."""
    rule.code = (rule.code or "").strip()
    rule.name = (rule.name or "").strip()
    if not _CODE.match(rule.code):
        raise InvalidInput(_l("The code is 1 to 40 letters, digits, '_', '.' or '-'."))
    if not rule.name:
        raise InvalidInput(_l("Name the rule."))
    if rule.kind not in RULE_KINDS:
        raise InvalidInput(_l("Choose what the rule looks for."))
    if rule.severity not in SEVERITIES:
        raise InvalidInput(_l("Choose the severity: low, medium or high."))
    if rule.kind in USES_THRESHOLD:
        if rule.kind == "many_subjects":
            _whole(rule.threshold, 2, MAX_SUBJECTS,
                   _l("The number of different people must be a whole number from %(low)s to %(high)s."))  # fmt: skip
        else:
            _whole(rule.threshold, 2, MAX_REPEATS,
                   _l("The number of repeats must be a whole number from %(low)s to %(high)s."))  # fmt: skip
        _whole(rule.window_minutes, 1, MAX_WINDOW,
               _l("The period must be from %(low)s to %(high)s minutes (60 an hour, 1440 a day)."))  # fmt: skip
        if 1440 % rule.window_minutes and rule.window_minutes % 1440:
            raise InvalidInput(_l("The period must divide a day evenly (such as 30 or 60) or be whole days (1440)."))
    else:
        rule.threshold = rule.window_minutes = None
    if rule.kind == "off_hours":
        start, end = (rule.office_start or "").strip(), (rule.office_end or "").strip()
        if not _HHMM.match(start) or not _HHMM.match(end):
            raise InvalidInput(_l("Give office hours as HH:MM, such as 08:00 and 17:30."))
        if start >= end:
            raise InvalidInput(_l("Office hours must end after they start."))
        rule.office_start, rule.office_end = start, end
    else:
        rule.office_start = rule.office_end = None
    clash = session.scalar(
        select(AnomalyRule.id).where(AnomalyRule.code == rule.code, AnomalyRule.id != (rule.id or 0))
    )
    if clash:
        raise InvalidInput(_l("Another rule has this code."))


def validate_day(session, day: OfficeDay) -> None:
    """A calendar day: a date, a name, a kind; one entry per date."""
    if not isinstance(day.day, datetime.date):
        raise InvalidInput(_l("Give the date."))
    day.name = (day.name or "").strip()
    if not day.name:
        raise InvalidInput(_l("Name the day (such as 國慶日 or 補行上班)."))
    if day.kind not in DAY_KINDS:
        raise InvalidInput(_l("Choose whether it is a day off or a make-up workday."))
    if day.kind == "workday" and day.day.weekday() < 5:
        raise InvalidInput(_l("A make-up workday falls on a Saturday or Sunday."))
    clash = session.scalar(select(OfficeDay.id).where(OfficeDay.day == day.day, OfficeDay.id != (day.id or 0)))
    if clash:
        raise InvalidInput(_l("This date is in the calendar already."))


def validate_protected(session, item: ProtectedSubject, number: str | None) -> None:
    """The protected list keeps the keyed hash of ``number`` (an ID or business number,
    checked) and a label; never the number."""
    item.label = (item.label or "").strip()
    if not item.label:
        raise InvalidInput(_l("Say why the person is protected (never their name or number)."))
    number = (number or "").strip().upper()
    if number:
        if not (is_person_id(number) or is_business_number(number)):
            raise InvalidInput(_l("This is not a valid ID number or business number."))
        item.subject_hash = subject_hash(number)
    if not item.subject_hash:
        raise InvalidInput(_l("Give the ID number or business number to protect."))
    clash = session.scalar(
        select(ProtectedSubject.id).where(
            ProtectedSubject.subject_hash == item.subject_hash, ProtectedSubject.id != (item.id or 0)
        )
    )
    if clash:
        raise InvalidInput(_l("This person is on the protected list already."))
    if item.added_at is None:
        item.added_at = datetime.datetime.utcnow()


def is_office_time(local: datetime.datetime, start: str, end: str, days: dict[datetime.date, str]) -> bool:
    """Whether a local wall-clock time falls in office hours on a working day, by the calendar
    (``days``: date -> holiday | workday)."""
    kind = days.get(local.date())
    if kind == "holiday":
        return False
    if local.weekday() >= 5 and kind != "workday":
        return False
    return start <= local.strftime("%H:%M") < end
