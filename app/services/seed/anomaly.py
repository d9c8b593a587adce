"""Demo anomaly rules and a few calendar days (the Admin keeps both on their screens;
a county loads the year's office calendar, 辦公日曆表, from the DGPA's)."""

from __future__ import annotations

import datetime

from sqlalchemy import select

from app.models.anomaly import AnomalyRule, OfficeDay

# code, name, kind, severity, threshold, window minutes, office hours
RULES = [
    ("MANY-HOUR", "一小時內查詢多人", "many_subjects", "high", 30, 60, None),
    ("MANY-DAY", "一日內查詢多人", "many_subjects", "medium", 100, 1440, None),
    ("OFF-HOURS", "非上班時間或假日查詢", "off_hours", "medium", None, None, ("08:00", "18:00")),
    ("SAME-PERSON", "同一案號反覆查詢同一人", "repeat_subject", "low", 5, 1440, None),
    ("PROTECTED", "查詢受保護名單人員", "protected_subject", "high", None, None, None),
    ("OWN-HOUSEHOLD", "查詢本人戶籍", "own_household", "high", None, None, None),
]
# A sample of fixed-date national holidays (the real calendar moves observed days and adds bridge days).
DAYS = [
    (datetime.date(2026, 10, 10), "holiday", "國慶日"),
    (datetime.date(2026, 12, 25), "holiday", "行憲紀念日"),
    (datetime.date(2027, 1, 1), "holiday", "開國紀念日"),
]


def seed_anomaly(session) -> int:
    """Add the demo rules and days missing (by code, by date); returns how many rules were added."""
    codes = set(session.scalars(select(AnomalyRule.code)))
    added = 0
    for code, name, kind, severity, threshold, window, hours in RULES:
        if code in codes:
            continue
        start, end = hours or (None, None)
        session.add(AnomalyRule(code=code, name=name, kind=kind, severity=severity, threshold=threshold,
                                window_minutes=window, office_start=start, office_end=end, active=True))  # fmt: skip
        added += 1
    days = set(session.scalars(select(OfficeDay.day)))
    for day, kind, name in DAYS:
        if day not in days:
            session.add(OfficeDay(day=day, kind=kind, name=name))
    return added
