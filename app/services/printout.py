"""Printouts of a stored query result: watermark, QR code and an A4 PDF.

The PDF is an official-use document: every page carries a diagonal watermark
(agency, user, Taipei date and time, 限公務使用) behind the content and a footer
with the page number, the verification code, the snapshot's SHA-256 and the
address where anyone holding the paper can check it; the first page carries a
QR code of that address.

The PDF primitives (the embedded CJK font, numbered pages, watermark, QR code,
column widths) live in app.services.pdf, shared with the report PDFs.
"""

from __future__ import annotations

import datetime as _dt
import re
from xml.sax.saxutils import escape

import segno
from flask import current_app
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import CondPageBreak, KeepTogether, SimpleDocTemplate, Spacer, Table, TableStyle

from app.lib.rocdate import format_roc_datetime
from app.services.pdf.figures import FigureFlowable
from app.services.pdf.fonts import CID_FALLBACK, FONT_NAME, cjk_font, find_font_files
from app.services.pdf.pages import PageNumbers, build_numbered, page_of
from app.services.pdf.qr import QrFlowable
from app.services.pdf.tables import column_widths, fit
from app.services.pdf.text import Paragraph, draw_text
from app.services.pdf.watermark import draw_watermark
from app.services.query.figures import drawing_notes, figure_of, scale_text

__all__ = ["CID_FALLBACK", "FONT_NAME", "cjk_font", "qr_data_uri", "render_pdf", "verify_url", "watermark_text"]

# Other areas imported the font search under its former private name.
_find_font_files = find_font_files

OFFICIAL_USE = "限公務使用"

# --- small public helpers -----------------------------------------------------------


def verify_url(code: str) -> str:
    base = current_app.config.get("PUBLIC_BASE_URL", "https://127.0.0.1:8443") or "https://127.0.0.1:8443"
    return base.rstrip("/") + "/verify/" + code


def _parse_at(value) -> _dt.datetime | None:
    """The snapshot's ISO time as a naive UTC datetime (None if unreadable)."""
    if isinstance(value, _dt.datetime):
        moment = value
    elif isinstance(value, str) and value.strip():
        try:
            moment = _dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(_dt.UTC).replace(tzinfo=None)
    return moment


def roc_moment(value, seconds: bool = True) -> str:
    """An ISO UTC time (``2026-12-02T15:51:46Z``) as Taipei time in ROC form (``115/12/02 23:51:46``)."""
    at = _parse_at(value)
    return format_roc_datetime(at, seconds=seconds) if at else _text(value)


def _when(snapshot: dict, seconds: bool = False) -> str:
    at = _parse_at(snapshot.get("at"))
    return format_roc_datetime(at, seconds=seconds) if at else _text(snapshot.get("at"))


def watermark_text(snapshot: dict) -> str:
    """``示範縣地方稅務局 clerk 115/11/26 23:04 限公務使用``."""
    parts = (_text(snapshot.get("agency")), _text(snapshot.get("user")), _when(snapshot), OFFICIAL_USE)
    return " ".join(p for p in parts if p)


def _qr(code: str) -> segno.QRCode:
    return segno.make_qr(verify_url(code), error="m", boost_error=False)


def qr_data_uri(code: str) -> str:
    """An SVG data URI of the code's verify address, for the HTML print page."""
    return _qr(code).svg_data_uri(scale=4, border=4, title=verify_url(code))


# --- PDF ---------------------------------------------------------------------------

PAGE_W, PAGE_H = A4
MARGIN_X = 16 * mm
MARGIN_TOP = 20 * mm
MARGIN_BOTTOM = 22 * mm
FRAME_W = PAGE_W - 2 * MARGIN_X
MAX_CELL_CHARS = 4000

INK = colors.HexColor("#1a1a1a")
MUTED = colors.HexColor("#555555")
RULE = colors.HexColor("#8c8c8c")
RED = colors.HexColor("#b00020")
# Translucent fills, so the watermark behind them stays visible.
HEAD_FILL = colors.Color(0.80, 0.84, 0.90, alpha=0.55)
LABEL_FILL = colors.Color(0.88, 0.88, 0.88, alpha=0.5)
ZEBRA_FILL = colors.Color(0.90, 0.90, 0.90, alpha=0.3)

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _text(value) -> str:
    if value is None:
        return ""
    return _CONTROL.sub("", str(value))


def _markup(value, limit: int = MAX_CELL_CHARS) -> str:
    """Paragraph markup for a display value: escaped, line breaks kept, capped."""
    text = _text(value)
    if len(text) > limit:
        text = text[:limit] + "…（以下省略）"
    return escape(text).replace("\r\n", "\n").replace("\n", "<br/>")


class _Styles:
    def __init__(self, font: str, cell_size: float = 9):
        def style(name, size, leading=None, **kw):
            kw.setdefault("textColor", INK)
            return ParagraphStyle(
                name, fontName=font, fontSize=size, leading=leading or size * 1.3, wordWrap="CJK", **kw
            )

        self.font = font
        self.title = style("title", 17, 22, alignment=TA_CENTER, spaceAfter=1 * mm)
        self.subtitle = style("subtitle", 9.5, alignment=TA_CENTER, textColor=MUTED, spaceAfter=4 * mm)
        self.label = style("label", 9)
        self.value = style("value", 9)
        self.section = style("section", 12, 16, spaceBefore=5 * mm, spaceAfter=1 * mm)
        self.source = style("source", 8, textColor=MUTED, spaceAfter=1.5 * mm)
        self.error = style("error", 10, textColor=RED, spaceAfter=2 * mm)
        self.note = style("note", 8.5, textColor=MUTED, spaceBefore=1 * mm)
        self.small = style("small", 7.5, alignment=TA_CENTER, textColor=MUTED)
        self.cell = style("cell", cell_size)
        self.head = style("head", cell_size)


def _value(row, index: int, column: dict):
    if isinstance(row, dict):
        return row.get(column.get("name"), row.get(column.get("label")))
    if isinstance(row, list | tuple):
        return row[index] if index < len(row) else None
    return row if index == 0 else None


def _columns(section: dict) -> list[dict]:
    given = section.get("columns") or []
    columns = [column if isinstance(column, dict) else {"name": str(column), "label": str(column)} for column in given]
    if not columns:  # rows without column headings: number them
        rows = section.get("rows") or []
        width = max((len(row) for row in rows if isinstance(row, list | tuple)), default=1)
        columns = [{"name": f"c{number}", "label": f"欄位 {number + 1}"} for number in range(width)]
    return columns


def _data_table(section: dict, font: str) -> Table:
    columns = _columns(section)
    rows = section.get("rows") or []
    size = 9 if len(columns) <= 6 else 8 if len(columns) <= 10 else 7
    st = _Styles(font, size)
    labels = [_text(column.get("label") or column.get("name")) for column in columns]
    texts = [
        [labels[index]] + [_text(_value(row, index, column)) for row in rows[:200]]
        for index, column in enumerate(columns)
    ]
    widths = column_widths(texts, font, size, FRAME_W)
    data = [[Paragraph(escape(label), st.head) for label in labels]]
    data += [
        [Paragraph(_markup(_value(row, index, column)), st.cell) for index, column in enumerate(columns)]
        for row in rows
    ]
    table = Table(data, colWidths=widths, repeatRows=1, splitInRow=1, hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.4, RULE),
                ("LINEBELOW", (0, 0), (-1, 0), 0.9, INK),
                ("BACKGROUND", (0, 0), (-1, 0), HEAD_FILL),
                ("ROWBACKGROUNDS", (0, 1), (-1, -1), [None, ZEBRA_FILL]),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LEFTPADDING", (0, 0), (-1, -1), 3),
                ("RIGHTPADDING", (0, 0), (-1, -1), 3),
                ("TOPPADDING", (0, 0), (-1, -1), 2),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
            ]
        )
    )
    return table


def _fields_table(section: dict, st: _Styles) -> Table:
    columns = _columns(section)
    rows = section.get("rows") or []
    data, commands = [], []
    for n, row in enumerate(rows, start=1):
        if len(rows) > 1:
            commands += [
                ("SPAN", (0, len(data)), (1, len(data))),
                ("BACKGROUND", (0, len(data)), (1, len(data)), HEAD_FILL),
            ]
            data.append([Paragraph(f"第 {n} 筆", st.label), ""])
        for i, column in enumerate(columns):
            data.append(
                [
                    Paragraph(escape(_text(column.get("label") or column.get("name"))), st.label),
                    Paragraph(_markup(_value(row, i, column)), st.value),
                ]
            )
    label_w = 34 * mm
    table = Table(data, colWidths=[label_w, FRAME_W - label_w], splitInRow=1, hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.4, RULE),
                ("BACKGROUND", (0, 0), (0, -1), LABEL_FILL),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LEFTPADDING", (0, 0), (-1, -1), 4),
                ("RIGHTPADDING", (0, 0), (-1, -1), 4),
                ("TOPPADDING", (0, 0), (-1, -1), 2.5),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 3.5),
                *commands,
            ]
        )
    )
    return table


def _header(entry, snapshot: dict, st: _Styles) -> list:
    code = _text(getattr(entry, "verification_code", ""))
    at = _when(snapshot, seconds=True) or format_roc_datetime(getattr(entry, "at", None))
    pairs = [
        ("查詢機關", snapshot.get("agency")),
        ("查詢人員", snapshot.get("user")),
        ("查詢時間", at),
        ("業務項目", snapshot.get("business_item")),
        ("案號", snapshot.get("case_no")),
        ("事由", snapshot.get("reason")),
        ("查詢編號", snapshot.get("query_id", getattr(entry, "id", ""))),
        ("驗證碼", code),
    ]
    qr_size = 30 * mm
    info_w = FRAME_W - qr_size - 4 * mm
    label_w = 17 * mm
    value_w = info_w / 2 - label_w
    grid = []
    for i in range(0, len(pairs), 2):
        line = []
        for label, value in pairs[i : i + 2]:
            line += [Paragraph(label, st.label), Paragraph(_markup(value, 300), st.value)]
        grid.append(line)
    info = Table(grid, colWidths=[label_w, value_w] * 2, hAlign="LEFT")
    info.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.4, RULE),
                ("BOX", (0, 0), (-1, -1), 0.9, INK),
                ("BACKGROUND", (0, 0), (0, -1), LABEL_FILL),
                ("BACKGROUND", (2, 0), (2, -1), LABEL_FILL),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                ("TOPPADDING", (0, 0), (-1, -1), 3),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 4),
            ]
        )
    )
    qr = [QrFlowable(_qr(code), qr_size), Paragraph("掃描 QR Code<br/>驗證本文件", st.small)]
    top = Table([[info, qr]], colWidths=[info_w + 4 * mm, qr_size], hAlign="LEFT")
    top.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LEFTPADDING", (0, 0), (-1, -1), 0),
                ("RIGHTPADDING", (0, 0), (-1, -1), 0),
                ("TOPPADDING", (0, 0), (-1, -1), 0),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 0),
            ]
        )
    )
    return [
        Paragraph(_markup(snapshot.get("title") or snapshot.get("form") or "查詢結果", 200), st.title),
        Paragraph("跨機關資料查詢結果　本文件限公務使用", st.subtitle),
        top,
    ]


def _grouped_tables(section: dict, st: _Styles) -> list:
    """Each group's title over its rows (a parcel's or building's owners under it)."""
    rows, start, parts = section.get("rows") or [], 0, []
    for group in section.get("groups") or []:
        count = group.get("count") if isinstance(group, dict) and isinstance(group.get("count"), int) else 0
        parts.append(Paragraph("■ " + _markup(group.get("title") or "", 200), st.source))
        parts.append(_data_table({**section, "rows": rows[start : start + count]}, st.font))
        start += count
    return parts


def _section(section: dict, st: _Styles) -> list:
    rows = section.get("rows") or []
    title = Paragraph(_markup(section.get("title") or "（未命名區段）", 200), st.section)
    meta = []
    if section.get("source"):
        meta.append(f"資料來源：{_markup(section.get('source'), 200)}")
    if not section.get("error"):
        meta.append(f"共 {len(rows)} 筆")
    head = [title] + ([Paragraph("　".join(meta), st.source)] if meta else [])
    if section.get("error"):
        return [KeepTogether(head + [Paragraph("※ " + _markup(section["error"], 1000), st.error)])]
    if not rows:
        return [KeepTogether(head + [Paragraph("查無資料。", st.value)])]
    if section.get("display") in ("map", "plan") and (figure_of(section) or drawing_notes(section)):
        return _drawing(section, head, st)
    if section.get("display") == "table" and section.get("groups"):
        body = _grouped_tables(section, st)
    elif section.get("display") == "table":
        body = [_data_table(section, st.font)]
    else:  # fields, map, plan: label / value pairs per record
        body = [_fields_table(section, st)]
    if len(rows) <= 5:
        out = [KeepTogether(head + body)]
    else:  # a long table splits; only keep its heading off the foot of a page
        out = [CondPageBreak(40 * mm), *head, *body]
    if section.get("truncated"):
        out.append(Paragraph("※ 資料筆數超過上限，僅列出部分結果；完整資料請洽資料來源機關。", st.note))
    return out


def _drawing(section: dict, head: list, st: _Styles) -> list:
    """A map or plan: its figure as vector graphics with its scale, what it says
    about itself (rows not drawn, areas off, cut), then its rows as a table."""
    figure = figure_of(section)
    parts = list(head)
    if figure is not None:
        flowable = FigureFlowable(
            figure,
            min(FRAME_W, (PAGE_H - MARGIN_TOP - MARGIN_BOTTOM - 40 * mm) * figure.width / figure.height),
            st.font,
        )
        parts.append(flowable)
        if flowable.metres_per_point:
            parts.append(Paragraph(scale_text(flowable.metres_per_point) + "（以 A4 原尺寸列印）", st.note))
    notes = [Paragraph("※ " + _markup(note, 500), st.note) for note in drawing_notes(section)]
    out = [CondPageBreak(60 * mm), KeepTogether(parts + notes)]
    if section.get("groups"):
        out += _grouped_tables(section, st)
    else:
        out.append(Spacer(0, 2 * mm))
        out.append(_data_table(section, st.font))
    if section.get("truncated"):
        out.append(Paragraph("※ 資料筆數超過上限，僅列出部分結果；完整資料請洽資料來源機關。", st.note))
    return out


class _Page:
    """What every page of a printout carries: the watermark behind, the running
    head, and the footer with the page number and how to verify the paper."""

    def __init__(self, entry, snapshot: dict, font: str):
        self.font = font
        self.code = _text(getattr(entry, "verification_code", ""))
        self.url = verify_url(self.code)
        self.mark = watermark_text(snapshot)
        self.title = _text(snapshot.get("title") or snapshot.get("form") or "查詢結果")
        self.agency = _text(snapshot.get("agency"))
        self.sha = _text(getattr(entry, "snapshot_sha256", ""))
        valid_until = getattr(entry, "valid_until", None)
        self.valid = format_roc_datetime(valid_until, seconds=False) if isinstance(valid_until, _dt.datetime) else ""

    def __call__(self, canvas: Canvas, page: int) -> None:
        # Watermark first, so it lies behind everything the page draws later.
        draw_watermark(canvas, self.mark, self.font, (PAGE_W, PAGE_H))
        self.running_head(canvas)
        self.footer(canvas, page)

    def running_head(self, canvas: Canvas) -> None:
        canvas.saveState()
        top = PAGE_H - 12 * mm
        canvas.setFont(self.font, 8)
        canvas.setFillColor(MUTED)
        draw_text(canvas, MARGIN_X, top, f"{self.agency}　{self.title}"[:80], self.font, 8)
        canvas.setFillColor(RED)
        canvas.drawRightString(PAGE_W - MARGIN_X, top, f"本文件{OFFICIAL_USE}")
        canvas.setStrokeColor(RULE)
        canvas.setLineWidth(0.5)
        canvas.line(MARGIN_X, top - 2 * mm, PAGE_W - MARGIN_X, top - 2 * mm)
        canvas.restoreState()

    def footer(self, canvas: Canvas, page: int) -> None:
        """The rule, the verification lines; the page number (第 x 頁／共 y 頁) at
        the right is placed by app.services.pdf.pages (PAGE_NUMBERS)."""
        font = self.font
        canvas.saveState()
        canvas.setStrokeColor(RULE)
        canvas.setLineWidth(0.5)
        canvas.line(MARGIN_X, 16 * mm, PAGE_W - MARGIN_X, 16 * mm)
        canvas.setFillColor(INK)
        # room for the page number, its total taken as long as a 4-digit one
        room = FRAME_W - pdfmetrics.stringWidth(page_of(page, 9999), font, 8.5) - 6 * mm
        short = self.sha[:16] + ("…" if len(self.sha) > 16 else "")
        line1 = f"驗證碼：{self.code}　SHA-256：{short}　驗證期限：{self.valid or '—'}"
        line2 = f"驗證網址：{self.url}　本文件{OFFICIAL_USE}"
        for text, y in ((line1, 11.5 * mm), (line2, 7.5 * mm)):
            canvas.setFont(font, fit(text, font, 8, room))
            canvas.drawString(MARGIN_X, y, text)
        canvas.restoreState()


def _story(entry, snapshot: dict, st: _Styles) -> list:
    story = _header(entry, snapshot, st)
    sections = snapshot.get("sections") or []
    for section in sections:
        story += _section(section if isinstance(section, dict) else {"title": _text(section)}, st)
    if not sections:
        story.append(Paragraph("本查詢沒有任何資料區段。", st.value))
    story += [Spacer(0, 6 * mm), Paragraph("—— 以下空白 ——", st.small)]
    return story


def render_pdf(entry, snapshot: dict) -> bytes:
    """The stored result as an A4 PDF for the record."""
    snapshot = snapshot or {}
    font = cjk_font()
    st = _Styles(font)
    page = _Page(entry, snapshot, font)

    def make_doc(buffer) -> SimpleDocTemplate:
        return SimpleDocTemplate(
            buffer,
            pagesize=A4,
            leftMargin=MARGIN_X,
            rightMargin=MARGIN_X,
            topMargin=MARGIN_TOP,
            bottomMargin=MARGIN_BOTTOM,
            title=f"{page.title}（驗證碼 {page.code}）",
            author=page.agency,
            subject=f"{page.title} 查詢結果，{OFFICIAL_USE}",
            creator="跨機關資料查詢平台",
            keywords=[OFFICIAL_USE, page.code],
            lang="zh-TW",
        )

    numbers = PageNumbers(font, 8.5, PAGE_W - MARGIN_X, 11.5 * mm, INK)
    return build_numbered(make_doc, _story(entry, snapshot, st), page, numbers)
