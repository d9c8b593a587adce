"""Performance by category: sub items, main-item subtotals and the overall figures."""

from __future__ import annotations

import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.models.notify import NotificationCategory
from app.services.reports.builds import current_build
from app.services.reports.casework import tallies
from app.services.reports.filters import Filters
from app.services.reports.shapes import CASE_COLUMNS, CASE_NOTE, CASE_SERIES, Column, Report, finish, scope
from app.services.reports.tally import overall, rollup


def by_category(session, filters: Filters, now: datetime.datetime | None = None, live: bool = False) -> Report:
    """Cases registered in the period, per main item and sub item, with main-item subtotals and the overall figures.
    ``live``: from the live tables alone, as if there were no summary."""
    now = now or datetime.datetime.utcnow()
    per_sub = tallies(session, "case", ["category_id"], filters, now, None if live else current_build(session))
    ids = [key[0] for key in per_sub]
    categories = {
        category.id: category
        for category in session.scalars(select(NotificationCategory).where(NotificationCategory.id.in_(ids)))
    }
    known = {key: tally for key, tally in per_sub.items() if key[0] in categories}
    per_main = rollup(known, lambda key: categories[key[0]].main_item)
    rows = []
    for main in sorted(per_main):
        subs = sorted(key[0] for key in known if categories[key[0]].main_item == main)
        for category_id in subs:  # sub items in the order they were set up
            tally = per_sub[(category_id,)]
            sub_item = categories[category_id].sub_item
            row = {"category_id": category_id, **tally.figures()}
            row.update(main_item=main, sub_item=sub_item, level="item", label=f"{main}－{sub_item}")
            rows.append(finish(row, tally.satisfaction))
        tally = per_main[main]
        subtotal = tally.figures()
        subtotal.update(
            main_item=main, sub_item=str(_l("Subtotal")), level="subtotal", label=f"{main}（{_l('Subtotal')}）"
        )
        rows.append(finish(subtotal, tally.satisfaction))
    everything = overall(per_sub)
    total = finish(everything.figures(), everything.satisfaction)
    total.update(main_item=str(_l("All categories")), sub_item="", label=str(_l("All categories")))
    return Report(
        "categories",
        _l("Performance by category"),
        filters,
        [Column("main_item", _l("Main item")), Column("sub_item", _l("Sub item")), *CASE_COLUMNS],
        rows,
        total,
        "label",
        CASE_SERIES,
        note=CASE_NOTE,
        scope=scope(session, filters, _l("Agency (notifying or receiving)")),
    )
