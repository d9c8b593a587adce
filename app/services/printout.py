"""Printouts of a stored query result: watermark, QR code and an A4 PDF.

The PDF is an official-use document: every page carries a diagonal watermark
(agency, user, Taipei date and time, 限公務使用) behind the content and a footer
with the page number, the verification code, the snapshot's SHA-256 and the
address where anyone holding the paper can check it; the first page carries a
QR code of that address.

Chinese needs a TrueType CJK font that reportlab can embed (Debian's
``fonts-arphic-uming``; Noto CJK is CFF-based, which reportlab cannot read).
The standard font directories are searched at run time; without such a font
the PDF falls back to the Adobe CID font ``MSung-Light``, which is not
embedded (viewers substitute a local Ming typeface).
"""

from __future__ import annotations

import datetime as _dt
import functools
import io
import logging
import os
import re
import threading
from xml.sax.saxutils import escape

import segno
from flask import current_app
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import cidfonts, pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    CondPageBreak,
    Flowable,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from app.lib.rocdate import format_roc_datetime

log = logging.getLogger(__name__)

OFFICIAL_USE = "限公務使用"

# --- fonts -----------------------------------------------------------------------

FONT_NAME = "PrintoutCJK"
CID_FALLBACK = "MSung-Light"
FONT_DIRS = (
    "/usr/share/fonts",
    "/usr/local/share/fonts",
    "~/.local/share/fonts",
    "~/.fonts",
    "/Library/Fonts",
    "/System/Library/Fonts",
    "C:/Windows/Fonts",
)
# TrueType-outline CJK fonts, best first: (file name, subfont name or index).
TTF_CANDIDATES = (
    ("uming.ttc", "UMingTW"),  # Debian fonts-arphic-uming: 明體, Taiwanese glyph forms
    ("ukai.ttc", "UKaiTW"),  # fonts-arphic-ukai: 楷體
    ("wqy-zenhei.ttc", 0),  # fonts-wqy-zenhei
    ("wqy-microhei.ttc", 0),  # fonts-wqy-microhei
    ("DroidSansFallbackFull.ttf", 0),  # fonts-droid-fallback
    ("mingliu.ttc", 0),  # Windows 細明體
    ("msjh.ttc", 0),  # Windows 微軟正黑體
)


def _find_font_files(dirs=FONT_DIRS) -> dict[str, str]:
    """Lower-case file name -> path of the candidate fonts present."""
    wanted = {name.lower() for name, _ in TTF_CANDIDATES}
    found: dict[str, str] = {}
    for base in dirs:
        base = os.path.expanduser(base)
        if not os.path.isdir(base):
            continue
        for root, _dirs, files in os.walk(base):
            for name in files:
                key = name.lower()
                if key in wanted and key not in found:
                    found[key] = os.path.join(root, name)
    return found


class _MSungLight(UnicodeCIDFont):
    """reportlab pairs MSung-Light (Adobe-CNS1) with the GB CMap UniGB-UCS2-H, so
    readers show nothing or wrong glyphs; use the matching UniCNS-UCS2-H."""

    def __init__(self):
        table = cidfonts.defaultUnicodeEncodings
        saved = table[CID_FALLBACK]
        table[CID_FALLBACK] = ("cht", "UniCNS-UCS2-H")
        try:
            super().__init__(CID_FALLBACK)
        finally:
            table[CID_FALLBACK] = saved


_SUBSET_LOCK = threading.Lock()


def _one_subset_at_a_time(font: TTFont) -> None:
    """reportlab's font file reads the glyphs for a document's subset by moving one
    shared read position, so two documents saved at once (two threads) interleave
    their reads and one of them fails (IndexError, KeyError). The font is registered
    once per process and shared, so its subsetting is serialised; laying out pages
    still runs in parallel."""
    face = font.face
    if getattr(face.makeSubset, "one_at_a_time", False):
        return

    def locked(subset):
        with _SUBSET_LOCK:
            return type(face).makeSubset(face, subset)

    locked.one_at_a_time = True
    face.makeSubset = locked


_REGISTER_LOCK = threading.Lock()


def cjk_font() -> str:
    """Register (once per process, even when threads ask at once) and return the
    name of the font the printout uses."""
    with _REGISTER_LOCK:
        return _register_cjk_font()


@functools.cache
def _register_cjk_font() -> str:
    found = _find_font_files()
    for name, subfont in TTF_CANDIDATES:
        path = found.get(name.lower())
        if not path:
            continue
        for index in dict.fromkeys((subfont, 0)):  # the preferred face, else the first
            try:
                font = TTFont(FONT_NAME, path, subfontIndex=index)
            except Exception as exc:  # CFF outlines, a broken file, a missing face
                log.debug("printout font %s[%s] unusable: %s", path, index, exc)
                continue
            pdfmetrics.registerFont(font)  # keeps the first font registered under the name
            _one_subset_at_a_time(pdfmetrics.getFont(FONT_NAME))
            log.info("printout font: %s[%s]", path, index)
            return FONT_NAME
    log.warning("no TrueType CJK font found (install fonts-arphic-uming); using %s, not embedded", CID_FALLBACK)
    pdfmetrics.registerFont(_MSungLight())
    return CID_FALLBACK


# --- small public helpers -----------------------------------------------------------


def verify_url(code: str) -> str:
    base = current_app.config.get("PUBLIC_BASE_URL", "http://127.0.0.1:8080") or "http://127.0.0.1:8080"
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
WATERMARK_INK = colors.Color(0.45, 0.45, 0.45)

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
            return ParagraphStyle(name, fontName=font, fontSize=size, leading=leading or size * 1.3,
                                  wordWrap="CJK", **kw)  # fmt: skip

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


class _QrFlowable(Flowable):
    """A vector QR code (segno's matrix) on a white square with its quiet zone."""

    def __init__(self, qr: segno.QRCode, size: float, border: int = 4):
        super().__init__()
        self.matrix = qr.matrix
        self.width = self.height = size
        self.border = border

    def draw(self):
        c = self.canv
        n = len(self.matrix)
        module = self.width / (n + 2 * self.border)
        c.saveState()
        c.setFillColor(colors.white)
        c.rect(0, 0, self.width, self.height, fill=1, stroke=0)
        c.setFillColor(colors.black)
        for r, row in enumerate(self.matrix):
            y = self.height - (self.border + r + 1) * module
            col = 0
            while col < n:
                if not row[col]:
                    col += 1
                    continue
                start = col
                while col < n and row[col]:
                    col += 1
                x = (self.border + start) * module
                # a hair wider than the module so adjacent rows leave no seams
                c.rect(x, y, (col - start) * module + 0.01, module + 0.01, fill=1, stroke=0)
        c.restoreState()


class _NumberedCanvas(Canvas):
    """Keeps pages until save() so each footer can say 第 x 頁／共 y 頁."""

    def __init__(self, *args, footer=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._footer = footer
        self._saved_pages: list[dict] = []

    def showPage(self):
        self._saved_pages.append(dict(self.__dict__))
        self._startPage()

    def save(self):
        total = len(self._saved_pages)
        for state in self._saved_pages:
            self.__dict__.update(state)
            if self._footer:
                self._footer(self, self._pageNumber, total)
            super().showPage()
        super().save()


def _fit(text: str, font: str, size: float, width: float) -> float:
    """The largest font size <= size at which text fits the width."""
    w = pdfmetrics.stringWidth(text, font, size)
    return size if w <= width or w == 0 else max(4.5, size * width / w)


def _column_widths(texts: list[list[str]], font: str, size: float, avail: float) -> list[float]:
    """Fill the width: narrow columns keep their natural width, wide ones share the rest."""
    pad = 8
    natural = []
    for column in texts:
        widest = max((pdfmetrics.stringWidth(t[:200], font, size) for t in column), default=0)
        natural.append(min(max(widest, size * 2), 220) + pad)
    total = sum(natural)
    if total <= avail:
        return [w * avail / total for w in natural]
    widths: list[float | None] = [None] * len(natural)
    free, remaining = list(range(len(natural))), avail
    while free:
        share = remaining / len(free)
        narrow = [i for i in free if natural[i] <= share]
        if not narrow:
            break
        for i in narrow:
            widths[i] = natural[i]
            remaining -= natural[i]
        free = [i for i in free if i not in narrow]
    for i in free:
        widths[i] = remaining / len(free)
    return widths  # type: ignore[return-value]


def _value(row, index: int, column: dict):
    if isinstance(row, dict):
        return row.get(column.get("name"), row.get(column.get("label")))
    if isinstance(row, list | tuple):
        return row[index] if index < len(row) else None
    return row if index == 0 else None


def _columns(section: dict) -> list[dict]:
    columns = [c if isinstance(c, dict) else {"name": str(c), "label": str(c)} for c in section.get("columns") or []]
    if not columns:  # rows without column headings: number them
        width = max((len(r) for r in section.get("rows") or [] if isinstance(r, list | tuple)), default=1)
        columns = [{"name": f"c{i}", "label": f"欄位 {i + 1}"} for i in range(width)]
    return columns


def _data_table(section: dict, font: str) -> Table:
    columns = _columns(section)
    rows = section.get("rows") or []
    size = 9 if len(columns) <= 6 else 8 if len(columns) <= 10 else 7
    st = _Styles(font, size)
    labels = [_text(c.get("label") or c.get("name")) for c in columns]
    texts = [[labels[i]] + [_text(_value(r, i, c)) for r in rows[:200]] for i, c in enumerate(columns)]
    widths = _column_widths(texts, font, size, FRAME_W)
    data = [[Paragraph(escape(label), st.head) for label in labels]]
    data += [[Paragraph(_markup(_value(r, i, c)), st.cell) for i, c in enumerate(columns)] for r in rows]
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
            data.append([Paragraph(escape(_text(column.get("label") or column.get("name"))), st.label),
                         Paragraph(_markup(_value(row, i, column)), st.value)])  # fmt: skip
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
    qr = [_QrFlowable(_qr(code), qr_size), Paragraph("掃描 QR Code<br/>驗證本文件", st.small)]
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
    if section.get("display") == "table":
        body = _data_table(section, st.font)
    else:  # fields, map, plan: label / value pairs per record
        body = _fields_table(section, st)
    if len(rows) <= 5:
        out = [KeepTogether(head + [body])]
    else:  # a long table splits; only keep its heading off the foot of a page
        out = [CondPageBreak(40 * mm), *head, body]
    if section.get("truncated"):
        out.append(Paragraph("※ 資料筆數超過上限，僅列出部分結果；完整資料請洽資料來源機關。", st.note))
    return out


def render_pdf(entry, snapshot: dict) -> bytes:
    """The stored result as an A4 PDF for the record."""
    snapshot = snapshot or {}
    font = cjk_font()
    st = _Styles(font)
    code = _text(getattr(entry, "verification_code", ""))
    url = verify_url(code)
    mark = watermark_text(snapshot)
    title = _text(snapshot.get("title") or snapshot.get("form") or "查詢結果")
    agency = _text(snapshot.get("agency"))
    sha = _text(getattr(entry, "snapshot_sha256", ""))
    valid_until = getattr(entry, "valid_until", None)
    valid = format_roc_datetime(valid_until, seconds=False) if isinstance(valid_until, _dt.datetime) else ""

    def on_page(canvas: Canvas, doc) -> None:
        # Watermark first, so it lies behind everything the page draws later.
        canvas.saveState()
        size = 12
        canvas.setFont(font, size)
        canvas.setFillColor(WATERMARK_INK)
        canvas.setFillAlpha(0.16)
        step_x = pdfmetrics.stringWidth(mark, font, size) + 50
        canvas.translate(PAGE_W / 2, PAGE_H / 2)
        canvas.rotate(32)
        reach = (PAGE_W**2 + PAGE_H**2) ** 0.5 / 2 + step_x
        y, line = -reach, 0
        while y < reach:
            x = -reach + (line % 2) * step_x / 2
            while x < reach:
                canvas.drawString(x, y, mark)
                x += step_x
            y += 64
            line += 1
        canvas.restoreState()
        # Running head.
        canvas.saveState()
        top = PAGE_H - 12 * mm
        canvas.setFont(font, 8)
        canvas.setFillColor(MUTED)
        canvas.drawString(MARGIN_X, top, f"{agency}　{title}"[:80])
        canvas.setFillColor(RED)
        canvas.drawRightString(PAGE_W - MARGIN_X, top, f"本文件{OFFICIAL_USE}")
        canvas.setStrokeColor(RULE)
        canvas.setLineWidth(0.5)
        canvas.line(MARGIN_X, top - 2 * mm, PAGE_W - MARGIN_X, top - 2 * mm)
        canvas.restoreState()

    def footer(canvas: Canvas, page: int, total: int) -> None:
        canvas.saveState()
        canvas.setStrokeColor(RULE)
        canvas.setLineWidth(0.5)
        canvas.line(MARGIN_X, 16 * mm, PAGE_W - MARGIN_X, 16 * mm)
        canvas.setFillColor(INK)
        right = f"第 {page} 頁／共 {total} 頁"
        canvas.setFont(font, 8.5)
        canvas.drawRightString(PAGE_W - MARGIN_X, 11.5 * mm, right)
        room = FRAME_W - pdfmetrics.stringWidth(right, font, 8.5) - 6 * mm
        short = sha[:16] + ("…" if len(sha) > 16 else "")
        line1 = f"驗證碼：{code}　SHA-256：{short}　驗證期限：{valid or '—'}"
        line2 = f"驗證網址：{url}　本文件{OFFICIAL_USE}"
        for text, y in ((line1, 11.5 * mm), (line2, 7.5 * mm)):
            canvas.setFont(font, _fit(text, font, 8, room))
            canvas.drawString(MARGIN_X, y, text)
        canvas.restoreState()

    story = _header(entry, snapshot, st)
    sections = snapshot.get("sections") or []
    for section in sections:
        story += _section(section if isinstance(section, dict) else {"title": _text(section)}, st)
    if not sections:
        story.append(Paragraph("本查詢沒有任何資料區段。", st.value))
    story += [Spacer(0, 6 * mm), Paragraph("—— 以下空白 ——", st.small)]

    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=MARGIN_X,
        rightMargin=MARGIN_X,
        topMargin=MARGIN_TOP,
        bottomMargin=MARGIN_BOTTOM,
        title=f"{title}（驗證碼 {code}）",
        author=agency,
        subject=f"{title} 查詢結果，{OFFICIAL_USE}",
        creator="跨機關資料查詢平台",
        keywords=[OFFICIAL_USE, code],
        lang="zh-TW",
    )
    doc.build(
        story, onFirstPage=on_page, onLaterPages=on_page, canvasmaker=functools.partial(_NumberedCanvas, footer=footer)
    )
    return buf.getvalue()
