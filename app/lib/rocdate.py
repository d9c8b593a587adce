"""Dates in the Republic of China (民國) calendar, as clerks read them.

ROC year = AD year - 1911. Forms: ``115/11/26`` (slash), ``民國115年11月26日``
(long), ``1151126`` (compact, as many systems store it).
"""

import datetime as _dt
import re
from zoneinfo import ZoneInfo

ROC_OFFSET = 1911
TAIPEI = ZoneInfo("Asia/Taipei")


def roc_year(year: int) -> int:
    return year - ROC_OFFSET


def _as_date(value):
    if isinstance(value, _dt.datetime):
        return value
    if isinstance(value, _dt.date):
        return value
    raise TypeError("expected a date or datetime")


def to_local(value: _dt.datetime) -> _dt.datetime:
    """Naive datetimes are stored in UTC; clerks read Taipei time."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.UTC)
    return value.astimezone(TAIPEI)


def utc_midnight(day: _dt.date) -> _dt.datetime:
    """Midnight at the start of a Taipei day, as the naive UTC the tables store."""
    local = _dt.datetime.combine(day, _dt.time(0), tzinfo=TAIPEI)
    return local.astimezone(_dt.UTC).replace(tzinfo=None)


def format_roc(value, style: str = "slash") -> str:
    """Format a date as ``115/11/26``, ``民國115年11月26日`` or ``1151126``."""
    if value is None:
        return ""
    value = _as_date(value)
    if isinstance(value, _dt.datetime):
        value = to_local(value)
    y = roc_year(value.year)
    if y < 1:
        raise ValueError("date before the ROC era")
    if style == "slash":
        return f"{y:03d}/{value.month:02d}/{value.day:02d}"
    if style == "long":
        return f"民國{y}年{value.month}月{value.day}日"
    if style == "compact":
        return f"{y:03d}{value.month:02d}{value.day:02d}"
    raise ValueError(f"unknown ROC date style: {style}")


def format_roc_datetime(value, seconds: bool = True) -> str:
    """``115/11/26 14:05:09`` in Taipei time."""
    if value is None:
        return ""
    local = to_local(value) if isinstance(value, _dt.datetime) else value
    clock = local.strftime("%H:%M:%S" if seconds else "%H:%M")
    return f"{format_roc(local.date())} {clock}"


_SLASH = re.compile(r"^(?:民國)?\s*(\d{1,3})\s*[/.\-年]\s*(\d{1,2})\s*[/.\-月]\s*(\d{1,2})\s*日?$")
_COMPACT = re.compile(r"^(\d{2,3})(\d{2})(\d{2})$")


def parse_roc(text: str) -> _dt.date:
    """Parse ``115/11/26``, ``115-11-26``, ``民國115年11月26日`` or ``1151126``.

    Raises ValueError for anything else or an impossible date.
    """
    text = (text or "").strip()
    m = _SLASH.match(text) or _COMPACT.match(text)
    if not m:
        raise ValueError("not an ROC date")
    y, mo, d = (int(g) for g in m.groups())
    if y < 1:
        raise ValueError("not an ROC date")
    return _dt.date(y + ROC_OFFSET, mo, d)
