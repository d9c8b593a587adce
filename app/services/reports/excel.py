"""Excel exports (pandas + openpyxl): a few heading lines saying what the
figures are, then the table; numbers stay numbers so they can be summed.

A cell whose text has rare characters (CJK Extension A and B: 王䶵明, 陳𠀋華)
that the common Ming font lacks names a font that has them, chosen along the
PDFs' font chain (``app.services.pdf.fonts``): the whole cell in the first font
of the chain that has every character of it (TW-Sung for 王䶵明), else the rare
characters as runs in the font that has each (陳 and 華 in the cell's font,
𠀋 in TW-Sung-Ext-B), as the PDF draws them."""

from __future__ import annotations

import copy
import datetime
import io
import re

import pandas as pd
from flask_babel import gettext
from openpyxl.cell.rich_text import CellRichText, TextBlock
from openpyxl.cell.text import InlineFont
from openpyxl.styles import Font, PatternFill

from app.lib.rocdate import format_roc, format_roc_datetime
from app.services.pdf.fonts import chain_of, cjk_font

HEAD_FILL = PatternFill("solid", fgColor="DCE6F1")
TOTAL_FILL = PatternFill("solid", fgColor="F2F2F2")
_SHEET_BAD = re.compile(r"[\[\]:*?/\\]")


def _sheet(name: str) -> str:
    return _SHEET_BAD.sub(" ", str(name))[:31] or "Sheet"


def _cell(value):
    if value is None:
        return None
    if isinstance(value, float):
        return round(value, 2)
    return value if isinstance(value, (int, str)) else str(value)


def _rare_text_font(cell, chain) -> None:
    text = cell.value
    font = chain.covering(text)
    if font is not None:
        named = copy.copy(cell.font)
        named.name = chain.family(font)
        named.scheme = None  # a theme's font scheme would override the name in Excel
        cell.font = named
        return
    bold, size = cell.font.b, cell.font.sz
    cell.value = CellRichText(
        *(
            piece if name == chain.primary else TextBlock(InlineFont(rFont=chain.family(name), b=bold, sz=size), piece)
            for name, piece in chain.runs(text)
        )
    )


def fit_fonts(ws) -> None:
    """Name, on each cell whose text the first font of the PDFs' chain lacks characters of, the
    font that has them (the whole cell's, or each rare character's run)."""
    chain = None
    for row in ws.iter_rows():
        for cell in row:
            text = cell.value
            if not isinstance(text, str) or text.isascii():
                continue
            chain = chain or chain_of(cjk_font())
            if not chain.all_primary(text):
                _rare_text_font(cell, chain)


def _write(writer, sheet: str, heading: list[str], frame: pd.DataFrame, total_rows: int = 0) -> None:
    """``heading`` lines, a blank line, the frame; the last ``total_rows`` rows bold."""
    start = len(heading) + 1
    frame.to_excel(writer, sheet_name=sheet, index=False, startrow=start)
    ws = writer.sheets[sheet]
    for i, line in enumerate(heading, start=1):
        ws.cell(row=i, column=1, value=line).font = Font(bold=i == 1, size=14 if i == 1 else 11)
    header_row = start + 1
    for col in range(1, len(frame.columns) + 1):
        cell = ws.cell(row=header_row, column=col)
        cell.fill, cell.font = HEAD_FILL, Font(bold=True)
    last = header_row + len(frame)
    for r in range(last - total_rows + 1, last + 1):
        for col in range(1, len(frame.columns) + 1):
            cell = ws.cell(row=r, column=col)
            cell.fill, cell.font = TOTAL_FILL, Font(bold=True)
    for col_idx, name in enumerate(frame.columns, start=1):
        values = [str(name)] + [str(v) for v in frame.iloc[:, col_idx - 1].tolist()[:500] if v is not None]
        # CJK characters are about twice as wide as Latin ones
        width = max(len(v) + sum(1 for ch in v if ord(ch) > 0x2E80) for v in values)
        ws.column_dimensions[ws.cell(row=header_row, column=col_idx).column_letter].width = min(max(width + 2, 8), 60)
    ws.freeze_panes = ws.cell(row=header_row + 1, column=1)
    fit_fonts(ws)


def write_sheet(writer, sheet: str, heading: list[str], frame: pd.DataFrame) -> None:
    """One sheet: ``heading`` lines, a blank line, the frame (for exports outside the reports)."""
    _write(writer, _sheet(sheet), heading, frame)


def _generated() -> str:
    return gettext("Produced %(at)s", at=format_roc_datetime(datetime.datetime.utcnow(), seconds=False))


def report_xlsx(report) -> bytes:
    """The report's table (rows, then the overall row) on one sheet."""
    labels = [str(c.label) for c in report.columns]
    records = [[_cell(row.get(c.key)) for c in report.columns] for row in [*report.rows, report.total or {}]]
    frame = pd.DataFrame(records, columns=labels)
    heading = [str(report.title), *(f"{label}：{value}" for label, value in report.scope), _generated()]
    if report.note:
        heading.append(str(report.note))
    buf = io.BytesIO()
    with pd.ExcelWriter(buf, engine="openpyxl") as writer:
        _write(writer, _sheet(gettext("Report")), heading, frame, total_rows=1)
    return buf.getvalue()


def survey_xlsx(stats) -> bytes:
    """Summary, per-question distributions, and the free-text answers, one sheet each."""
    questionnaire = stats.questionnaire
    heading = [
        f"{questionnaire.title}（{gettext('version %(n)s', n=questionnaire.version)}）",
        f"{gettext('Period')}：{stats.filters.period}",
        _generated(),
    ]
    summary = pd.DataFrame(
        [
            [gettext("Invitations sent"), stats.invitations],
            [gettext("Responses"), stats.responses],
            [gettext("Response rate (%)"), stats.response_rate],
        ],
        columns=[gettext("Figure"), gettext("Value")],
    )
    dist = []
    for number, question in enumerate(stats.questions, start=1):
        for row in question.rows:
            text = question.question.text
            dist.append([number, text, row.label, row.count, row.percent, question.respondents, question.mean])
    distribution = pd.DataFrame(
        dist,
        columns=[
            gettext("No."),
            gettext("Question"),
            gettext("Answer"),
            gettext("Count"),
            gettext("Percent of respondents"),
            gettext("Respondents"),
            gettext("Mean rating"),
        ],
    )
    texts = []
    for number, question in enumerate(stats.questions, start=1):
        for answer in question.texts:
            texts.append([number, question.question.text, format_roc(answer.at), answer.text])
    free = pd.DataFrame(texts, columns=[gettext("No."), gettext("Question"), gettext("Answered on"), gettext("Answer")])
    buf = io.BytesIO()
    with pd.ExcelWriter(buf, engine="openpyxl") as writer:
        _write(writer, _sheet(gettext("Summary")), heading, summary)
        _write(writer, _sheet(gettext("Distribution")), heading, distribution)
        _write(writer, _sheet(gettext("Free-text answers")), heading, free)
    return buf.getvalue()
