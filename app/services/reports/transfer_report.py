"""Transfer counts: transfer cases registered in the period per sending and
receiving agency (a few thousand a year: read live, never summarised)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from sqlalchemy import case, func, or_, select

from app.models.org import Agency
from app.models.transfer import TransferCase
from app.services.reports.filters import Filters
from app.services.reports.shapes import Column, Report, Series, round_days, scope
from app.services.reports.tally import Timing, live_tallies, overall

TRANSFER_STATES = ("registered", "uploaded", "received", "processed", "result_received")
STATE_LABELS = {
    "registered": _l("Registered"),
    "uploaded": _l("Uploaded"),
    "received": _l("Received"),
    "processed": _l("Processed"),
    "result_received": _l("Result received"),
}
COLUMNS = [
    Column("sending", _l("Sending agency")),
    Column("receiving", _l("Receiving agency")),
    Column("n", _l("Transfers"), "int"),
    Column("records", _l("Records"), "int"),
    *(Column(f"st_{state}", STATE_LABELS[state], "int") for state in TRANSFER_STATES),
    Column("mean", _l("Mean days to processed"), "days"),
    Column("median", _l("Median days"), "days"),
    Column("p90", _l("90th percentile days"), "days"),
]
COUNTED = ("n", "done", "records", *(f"st_{state}" for state in TRANSFER_STATES))


def _tidy(row: dict) -> dict:
    for key in COUNTED:
        row[key] = int(row.get(key) or 0)
    round_days(row)
    return row


def transfers(session, filters: Filters, now=None) -> Report:
    """Transfer cases registered in the period per sending and receiving agency."""
    transfer = TransferCase.__table__
    start, end = filters.bounds()
    where = [transfer.c.registered_at >= start, transfer.c.registered_at < end]
    if filters.agency_id:
        agency_id = filters.agency_id
        where.append(or_(transfer.c.sending_agency_id == agency_id, transfer.c.receiving_agency_id == agency_id))
    sums = {"records": func.coalesce(transfer.c.record_count, 0)}
    sums.update({f"st_{state}": case((transfer.c.state == state, 1), else_=0) for state in TRANSFER_STATES})
    keys = [transfer.c.sending_agency_id, transfer.c.receiving_agency_id]
    timing = Timing(transfer.c.registered_at, transfer.c.processed_at)
    groups = live_tallies(session, transfer, keys, where, timing, sums=sums)
    ids = {agency_id for pair in groups for agency_id in pair}
    names = {a.id: a.name for a in session.scalars(select(Agency).where(Agency.id.in_(ids)))}
    rows = []
    for (sender, receiver), tally in groups.items():
        row = {"sender": sender, "receiver": receiver, **tally.figures()}
        row.update(sending=names.get(sender, ""), receiving=names.get(receiver, ""))
        row["label"] = f"{row['sending']} → {row['receiving']}"
        rows.append(_tidy(row))
    rows.sort(key=lambda row: (-row["n"], row["label"]))
    total = _tidy(overall(groups).figures())
    total.update(sending=str(_l("All agencies")), receiving="", label=str(_l("All agencies")))
    return Report(
        "transfers",
        _l("Transfer counts"),
        filters,
        COLUMNS,
        rows,
        total,
        "label",
        [Series("n", _l("Transfers")), Series("st_processed", _l("Processed"))],
        note=_l(
            "Transfer cases registered in the period; days from registration until the receiving "
            "agency recorded it as processed."
        ),
        scope=scope(session, filters.without_category(), _l("Agency (sending or receiving)")),
    )
