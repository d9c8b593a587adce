"""Daily collections (每日收款): paid and refunded fees per day (Taipei), collecting agency,
fee item and method, for finance staff (the Manager role: READ_PAYMENTS), on screen and as
an Excel workbook (pandas + openpyxl: numbers stay numbers)."""

from __future__ import annotations

import datetime
import io
from dataclasses import dataclass

import pandas as pd
from flask_babel import lazy_gettext as _l
from openpyxl.styles import Font
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.lib.rocdate import format_roc
from app.models.payments import FeeItem, Payment
from app.services import audit
from app.services.actors import Actor
from app.services.command import transaction
from app.services.errors import Forbidden, InvalidInput
from app.services.payments.checkout import METHOD_LABELS
from app.services.reports.excel import fit_fonts
from app.services.roles import READ_PAYMENTS

TAIPEI = datetime.timedelta(hours=8)
NOT_ALLOWED = _l("Your role may not read the collections.")
BAD_RANGE = _l("Give a range of at most 366 days, the first day before the last.")


@dataclass
class CollectionRow:
    day: datetime.date
    agency: str
    fee_item: str
    method: str
    paid_count: int = 0
    paid_amount: int = 0
    refunded_count: int = 0
    refunded_amount: int = 0

    @property
    def net(self) -> int:
        return self.paid_amount - self.refunded_amount


def _local_day(moment: datetime.datetime) -> datetime.date:
    return (moment + TAIPEI).date()


def collections(session, actor: Actor, first: datetime.date, last: datetime.date) -> list[CollectionRow]:
    """Command: the collections of the days from ``first`` to ``last`` (audited). Raises Forbidden, InvalidInput."""
    if not actor.can(READ_PAYMENTS):
        raise Forbidden(NOT_ALLOWED)
    if last < first or (last - first).days > 366:
        raise InvalidInput(BAD_RANGE)
    start = datetime.datetime.combine(first, datetime.time()) - TAIPEI
    end = datetime.datetime.combine(last + datetime.timedelta(days=1), datetime.time()) - TAIPEI
    found = session.scalars(
        select(Payment)
        .where(
            ((Payment.paid_at >= start) & (Payment.paid_at < end))
            | ((Payment.refunded_at >= start) & (Payment.refunded_at < end))
        )
        .options(selectinload(Payment.fee_item).selectinload(FeeItem.agency))
    ).all()
    rows: dict[tuple, CollectionRow] = {}

    def row(moment, p: Payment) -> CollectionRow:
        key = (_local_day(moment), p.fee_item.agency.name if p.fee_item.agency else "", p.fee_item.name, p.method)
        return rows.setdefault(key, CollectionRow(*key))

    for p in found:
        if p.paid_at and start <= p.paid_at < end:
            r = row(p.paid_at, p)
            r.paid_count += 1
            r.paid_amount += p.amount
        if p.refunded_at and start <= p.refunded_at < end:
            r = row(p.refunded_at, p)
            r.refunded_count += 1
            r.refunded_amount += p.amount
    with transaction(session):
        audit.record(session, "payment.collections", actor=actor,
                     detail={"first": first.isoformat(), "last": last.isoformat(), "rows": len(rows)})  # fmt: skip
    return [rows[k] for k in sorted(rows)]


COLUMNS = ("日期", "收費機關", "規費項目", "繳費方式", "收款筆數", "收款金額", "退費筆數", "退費金額", "淨額")


def collections_xlsx(rows: list[CollectionRow], first: datetime.date, last: datetime.date) -> bytes:
    records = [[format_roc(r.day), r.agency, r.fee_item, str(METHOD_LABELS.get(r.method, r.method)), r.paid_count,
                r.paid_amount, r.refunded_count, r.refunded_amount, r.net] for r in rows]  # fmt: skip
    total = ["合計", "", "", "", sum(r.paid_count for r in rows), sum(r.paid_amount for r in rows),
             sum(r.refunded_count for r in rows), sum(r.refunded_amount for r in rows), sum(r.net for r in rows)]  # fmt: skip
    frame = pd.DataFrame([*records, total], columns=list(COLUMNS))
    buf = io.BytesIO()
    with pd.ExcelWriter(buf, engine="openpyxl") as writer:
        frame.to_excel(writer, sheet_name="每日收款", index=False, startrow=2)
        ws = writer.sheets["每日收款"]
        ws.cell(row=1, column=1, value=f"規費每日收款 {format_roc(first)}－{format_roc(last)}").font = Font(bold=True,
                                                                                                    size=14)  # fmt: skip
        for col in range(1, len(COLUMNS) + 1):
            ws.cell(row=3, column=col).font = Font(bold=True)
            ws.cell(row=3 + len(frame), column=col).font = Font(bold=True)
            ws.column_dimensions[ws.cell(row=3, column=col).column_letter].width = 18
        fit_fonts(ws)
    return buf.getvalue()
