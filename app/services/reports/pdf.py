"""PDF reports (reportlab, A4 landscape) in the printouts' embedded Ming font:
a management report (table + chart), and the weekly query log for
supervisors. Every page says what it is, for whom, and when it was produced."""

from __future__ import annotations

import datetime
import io
from xml.sax.saxutils import escape

from flask_babel import gettext
from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Image, KeepTogether, PageBreak, SimpleDocTemplate, Spacer, Table, TableStyle

from app.lib.rocdate import format_roc, format_roc_datetime
from app.services.pdf.fonts import cjk_font
from app.services.pdf.pages import PageNumbers, build_numbered
from app.services.pdf.tables import column_widths
from app.services.pdf.text import Paragraph, draw_text

PAGE = landscape(A4)
MARGIN = 14 * mm
FRAME_W = PAGE[0] - 2 * MARGIN
PLATFORM = "跨機關便民服務平台"

INK = colors.HexColor("#1a1a1a")
MUTED = colors.HexColor("#555555")
RULE = colors.HexColor("#8c8c8c")
HEAD_FILL = colors.HexColor("#dce6f1")
TOTAL_FILL = colors.HexColor("#eeeeee")
SUBTOTAL_FILL = colors.HexColor("#f6f6f6")


class _Styles:
    def __init__(self, font: str):
        def style(name, size, **kw):
            kw.setdefault("textColor", INK)
            return ParagraphStyle(name, fontName=font, fontSize=size, leading=size * 1.35, wordWrap="CJK", **kw)

        self.font = font
        self.title = style("title", 16, spaceAfter=2 * mm)
        self.meta = style("meta", 9, textColor=MUTED)
        self.section = style("section", 12.5, spaceBefore=3 * mm, spaceAfter=2 * mm)
        self.cell = style("cell", 8.5)
        self.num = style("num", 8.5, alignment=TA_RIGHT)
        self.note = style("note", 8.5, textColor=MUTED, spaceBefore=2 * mm)


def display(value, kind: str = "text") -> str:
    """A figure as a person reads it: thousands separators, two decimals, a dash when there is none."""
    if value is None or value == "":
        return "—" if kind != "text" else ""
    if kind == "int":
        return f"{int(value):,}"
    if kind in ("days", "rating"):
        return f"{float(value):,.2f}"
    if kind == "pct":
        return f"{float(value):.1f}%"
    if kind == "ms":
        return f"{float(value):,.1f}"
    return str(value)


def _doc(title: str, subject: str):
    def make_doc(buffer) -> SimpleDocTemplate:
        return SimpleDocTemplate(
            buffer,
            pagesize=PAGE,
            leftMargin=MARGIN,
            rightMargin=MARGIN,
            topMargin=16 * mm,
            bottomMargin=16 * mm,
            title=title,
            subject=subject,
            creator=PLATFORM,
            lang="zh-TW",
        )

    return make_doc


def _build(make_doc, story: list, font: str, running: str) -> bytes:
    """The document with, on every page, the running head (what it is, when it
    was produced) and the footer (page x of y, official use)."""
    produced = gettext("Produced %(at)s", at=format_roc_datetime(datetime.datetime.utcnow(), seconds=False))

    def on_page(canvas, page: int) -> None:
        canvas.saveState()
        canvas.setFont(font, 8)
        canvas.setFillColor(MUTED)
        draw_text(canvas, MARGIN, PAGE[1] - 10 * mm, f"{PLATFORM}　{running}"[:120], font, 8)
        canvas.drawRightString(PAGE[0] - MARGIN, PAGE[1] - 10 * mm, produced)
        canvas.setStrokeColor(RULE)
        canvas.setLineWidth(0.5)
        canvas.line(MARGIN, PAGE[1] - 11.5 * mm, PAGE[0] - MARGIN, PAGE[1] - 11.5 * mm)
        canvas.setFont(font, 8.5)
        canvas.setFillColor(INK)
        canvas.drawString(MARGIN, 9 * mm, "本報表限公務使用")
        canvas.restoreState()

    return build_numbered(make_doc, story, on_page, PageNumbers(font, 8.5, PAGE[0] - MARGIN, 9 * mm, INK))


def _table(head: list[str], body: list[list[str]], kinds: list[str], st: _Styles, fills=()) -> Table:
    texts = [[heading] + [row[index] for row in body[:200]] for index, heading in enumerate(head)]
    widths = column_widths(texts, st.font, 8.5, FRAME_W)
    data = [[Paragraph(escape(heading), st.cell) for heading in head]]
    for row in body:
        cells = zip(row, kinds, strict=False)
        data.append([Paragraph(escape(value), st.cell if kind == "text" else st.num) for value, kind in cells])
    table = Table(data, colWidths=widths, repeatRows=1, hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.4, RULE),
                ("BACKGROUND", (0, 0), (-1, 0), HEAD_FILL),
                ("LINEBELOW", (0, 0), (-1, 0), 0.9, INK),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                ("TOPPADDING", (0, 0), (-1, -1), 2),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
                *fills,
            ]
        )
    )
    return table


def _report_story(report, st: _Styles, chart_png: bytes | None) -> list:
    head = [str(column.label) for column in report.columns]
    kinds = [column.kind for column in report.columns]
    rows = [*report.rows, report.total or {}]
    body = [[display(row.get(column.key), column.kind) for column in report.columns] for row in rows]
    last = len(body)
    fills = [("BACKGROUND", (0, last), (-1, last), TOTAL_FILL), ("LINEABOVE", (0, last), (-1, last), 0.9, INK)]
    for number, row in enumerate(report.rows, start=1):
        if row.get("level") == "subtotal":
            fills.append(("BACKGROUND", (0, number), (-1, number), SUBTOTAL_FILL))
    story = [Paragraph(escape(str(report.title)), st.title)]
    story += [Paragraph(escape(f"{line.label}：{line.value}"), st.meta) for line in report.scope]
    story += [Spacer(0, 4 * mm), _table(head, body, kinds, st, fills)]
    if report.note:
        story.append(Paragraph(escape(str(report.note)), st.note))
    if chart_png:
        image = Image(io.BytesIO(chart_png))
        scale = min(FRAME_W * 0.6 / image.imageWidth, 100 * mm / image.imageHeight)
        image.drawWidth, image.drawHeight = image.imageWidth * scale, image.imageHeight * scale
        image.hAlign = "LEFT"
        story += [Spacer(0, 5 * mm), KeepTogether([image])]
    return story


def report_pdf(report, chart_png: bytes | None) -> bytes:
    """The report: title, scope, table with the overall row, chart, note."""
    font = cjk_font()
    st = _Styles(font)
    title, period = str(report.title), report.filters.period
    return _build(_doc(title, period), _report_story(report, st, chart_png), font, f"{title}　{period}")


OUTCOMES = {"ok": "成功", "partial": "部分成功", "refused": "拒絕", "source_error": "來源錯誤"}
WEEKLY_TITLE = "查詢紀錄週報表"
USER_HEAD = ["帳號", "姓名", "查詢次數", "遭拒次數"]
ENTRY_HEAD = ["查詢時間", "帳號", "查詢表單", "案號", "事由", "業務項目", "結果", "筆數"]


def _weekly_section(section, period: str, st: _Styles) -> list:
    agency = section.agency
    story = [
        Paragraph(escape(f"{WEEKLY_TITLE}　{agency.name}"), st.title),
        Paragraph(
            escape(
                f"期間：{period}（週一至週日）　查詢機關：{agency.name}（{agency.code}）"
                f"　查詢次數：{section.total:,}　查詢人員：{len(section.users)}"
            ),
            st.meta,
        ),
        Paragraph(
            "請主管審閱本週查詢是否均有案號或事由及業務項目，並與承辦業務相符；本表不含查詢參數及當事人身分證號。",
            st.meta,
        ),
    ]
    if not section.total:
        return story + [Spacer(0, 4 * mm), Paragraph("本週無查詢紀錄。", st.section)]
    story.append(Paragraph("依查詢人員統計", st.section))
    users = [
        [user["username"], user["name"], display(user["n"], "int"), display(user["refused"], "int")]
        for user in section.users
    ]
    story.append(_table(USER_HEAD, users, ["text", "text", "int", "int"], st))
    story.append(Paragraph("查詢明細（依人員、時間排序）", st.section))
    body = [
        [
            format_roc_datetime(entry["at"], seconds=False),
            entry["username"],
            entry["form"] or "",
            entry["case_no"] or "",
            entry["reason"] or "",
            entry["business_item"] or "",
            OUTCOMES.get(entry["outcome"], entry["outcome"] or ""),
            display(entry["rows"], "int"),
        ]
        for entry in section.entries
    ]
    story.append(_table(ENTRY_HEAD, body, ["text"] * 7 + ["int"], st))
    if len(section.entries) < section.total:
        shown = len(section.entries)
        story.append(Paragraph(f"※ 明細僅列前 {shown:,} 筆，共 {section.total:,} 筆。", st.note))
    return story


def weekly_pdf(sections, monday: datetime.date, sunday: datetime.date) -> bytes:
    """One section per agency: queries per user, then every query with its purpose."""
    font = cjk_font()
    st = _Styles(font)
    period = f"{format_roc(monday)}–{format_roc(sunday)}"

    def story() -> list:
        out = []
        for number, section in enumerate(sections):
            if number:
                out.append(PageBreak())
            out += _weekly_section(section, period, st)
        if not sections:
            out.append(Paragraph("沒有符合的機關。", st.section))
        return out

    return _build(_doc(f"{WEEKLY_TITLE} {period}", period), story(), font, f"{WEEKLY_TITLE}　{period}")
