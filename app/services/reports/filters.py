"""What a report covers: a period of whole Taipei days (ROC dates on the forms,
115/11/01), and optionally one agency and one category."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l

from app.lib.rocdate import TAIPEI, format_roc, parse_roc, utc_midnight
from app.services.errors import InvalidInput

DEFAULT_DAYS = 30
MAX_DAYS = 366 * 10


def taipei_today() -> datetime.date:
    return datetime.datetime.now(TAIPEI).date()


@dataclass(frozen=True)
class Filters:
    date_from: datetime.date
    date_to: datetime.date
    agency_id: int | None = None
    category_id: int | None = None

    def bounds(self) -> tuple[datetime.datetime, datetime.datetime]:
        """[start, end) in UTC covering whole Taipei days."""
        return utc_midnight(self.date_from), utc_midnight(self.date_to + datetime.timedelta(days=1))

    @property
    def period(self) -> str:
        return f"{format_roc(self.date_from)}–{format_roc(self.date_to)}"

    def args(self) -> dict:
        """The filters as form values (for links and exports)."""
        out = {"from": format_roc(self.date_from), "to": format_roc(self.date_to)}
        if self.agency_id:
            out["agency"] = str(self.agency_id)
        if self.category_id:
            out["category"] = str(self.category_id)
        return out

    def without_category(self) -> Filters:
        return Filters(self.date_from, self.date_to, self.agency_id)


def parse_day(text: str, which) -> datetime.date:
    """An ROC date (115/11/01) or an ISO one. Raises InvalidInput naming ``which`` date."""
    try:
        return parse_roc(text)
    except ValueError:
        try:
            return datetime.date.fromisoformat(text)
        except ValueError:
            raise InvalidInput(_l("The %(which)s date is not a date like 115/11/01."), which=which) from None


def parse_id(value) -> int | None:
    """An agency or category id from a form (blank: none)."""
    text = str(value or "").strip()
    if not text:
        return None
    if not text.isdigit() or len(text) > 9:
        raise InvalidInput(_l("Choose an agency and a category from the lists."))
    return int(text)


def parse_filters(args: Mapping, today: datetime.date | None = None) -> Filters:
    """Filters from a form (``from``, ``to`` as ROC dates; ``agency``, ``category`` ids).

    Blank dates mean the last 30 days. Raises InvalidInput for a date that is
    not one, or a range that ends before it begins.
    """
    today = today or taipei_today()
    text_from = str(args.get("from") or "").strip()
    text_to = str(args.get("to") or "").strip()
    date_to = parse_day(text_to, _l("end")) if text_to else today
    date_from = parse_day(text_from, _l("start")) if text_from else date_to - datetime.timedelta(days=DEFAULT_DAYS - 1)
    if date_to < date_from:
        raise InvalidInput(
            _l("The date range ends (%(to)s) before it begins (%(from)s)."),
            to=format_roc(date_to),
            **{"from": format_roc(date_from)},
        )
    if (date_to - date_from).days > MAX_DAYS:
        raise InvalidInput(_l("Choose a date range of at most ten years."))
    return Filters(date_from, date_to, parse_id(args.get("agency")), parse_id(args.get("category")))
