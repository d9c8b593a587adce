"""Charts drawn on the server with matplotlib: SVG for the pages (glyphs as
paths, so the browser needs no font and nothing comes from the internet), PNG
for the PDFs. Chinese needs a CJK font: Noto Sans CJK TC (Debian's
fonts-noto-cjk), else AR PL UMing TW (fonts-arphic-uming).

Names and addresses hold rare characters (CJK Extension A and B: 王䶵明,
陳𠀋華) that the first font may lack (UMing has neither). Behind the CJK
fonts come the PDFs' fallback fonts (``app.services.pdf.fonts``: the CNS 11643
全字庫 fonts, Hanazono), so one list says which fonts draw rare characters;
matplotlib (3.6 and later) looks each glyph up along ``font.family`` in turn.

The font files are registered with matplotlib explicitly (``addfont``) rather
than looked up in its font cache: a cache built before the CJK fonts were
installed does not know them, and every Chinese label would be drawn as an
empty box ("Glyph ... missing from font(s) DejaVu Sans").

The object-oriented API (``Figure``, never ``pyplot``) keeps drawing safe in
a threaded web server.
"""

from __future__ import annotations

import functools
import io
import logging
import threading

import matplotlib
from matplotlib import font_manager
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from app.services.pdf.fonts import FALLBACK_CANDIDATES, FONT_DIRS, find_font_files

log = logging.getLogger(__name__)

# The CJK font files, best first, and the families they hold (a .ttc holds several).
FONT_FILES = (
    "NotoSansCJK-Regular.ttc",  # fonts-noto-cjk
    "NotoSansCJKtc-Regular.otf",  # Noto Sans CJK TC as a single font
    "NotoSansTC-Regular.otf",
    "uming.ttc",  # fonts-arphic-uming
    "wqy-zenhei.ttc",
    "DroidSansFallbackFull.ttf",
)
FONT_CANDIDATES = (
    "Noto Sans CJK TC",
    "Noto Sans TC",
    "Noto Sans CJK HK",
    "AR PL UMing TW",
    "AR PL UMing TW MBE",
    "Noto Sans CJK JP",
    "WenQuanYi Zen Hei",
    "Droid Sans Fallback",
)
COLOURS = ("#2c6fbb", "#d9534f", "#5cb85c", "#f0ad4e", "#6f42c1")
MAX_BARS = 25
_REGISTER_LOCK = threading.Lock()


# The fonts for rare characters: the PDFs' chain behind its first font.
RARE_FONT_FILES = tuple(dict.fromkeys(name for name, _subfont in FALLBACK_CANDIDATES))


def register_font_files(dirs=None, names=FONT_FILES) -> list[str]:
    """Add the font files ``names`` found under ``dirs`` (the standard font directories) to
    matplotlib's font manager; their paths, in the order of ``names``."""
    found = find_font_files(dirs or FONT_DIRS, wanted_names=names)
    paths = [found[name.lower()] for name in names if name.lower() in found]
    for path in paths:
        font_manager.fontManager.addfont(path)
    return paths


def _families_of(paths: list[str]) -> list[str]:
    """The family names matplotlib gave the fonts of ``paths`` (a .ttc: each face's), in that order."""
    by_path: dict[str, list[str]] = {}
    for font in font_manager.fontManager.ttflist:
        by_path.setdefault(font.fname, []).append(font.name)
    return [name for path in paths for name in by_path.get(path, ())]


@functools.cache
def _families() -> tuple[str, ...]:
    paths = register_font_files(FONT_DIRS)
    present = {font.name for font in font_manager.fontManager.ttflist}
    chosen = tuple(name for name in FONT_CANDIDATES if name in present)
    if chosen:
        log.info("chart fonts: %s from %s", ", ".join(chosen), ", ".join(paths))
    else:
        log.warning("no CJK font for charts (install fonts-noto-cjk); Chinese labels will show as boxes")
    rare = [path for path in register_font_files(FONT_DIRS, RARE_FONT_FILES) if path not in paths]
    behind = tuple(name for name in dict.fromkeys(_families_of(rare)) if name not in chosen)
    if behind:
        log.info("chart fonts for rare characters: %s", ", ".join(behind))
    return (*chosen, *behind, "DejaVu Sans")


def font_families() -> tuple[str, ...]:
    """The families the charts ask for, CJK first (registered once per process)."""
    with _REGISTER_LOCK:
        return _families()


def _rc() -> dict:
    return {
        "font.family": list(font_families()),
        "svg.fonttype": "path",
        "svg.hashsalt": "platform-report",  # stable element ids: the same data draws the same SVG
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.unicode_minus": False,
    }


def _short(label: str, limit: int = 22) -> str:
    label = str(label)
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _save(fig: Figure, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "png":
        fig.savefig(buf, format="png", dpi=160, bbox_inches="tight")
    else:
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    return buf.getvalue()


def bars(
    labels: list[str], series: list[tuple[str, list[float]]], title: str = "", fmt: str = "svg", percent: bool = False
) -> bytes:
    """Horizontal grouped bars, one group per label (the first MAX_BARS), values printed at the bar ends."""
    labels = [_short(x) for x in labels[:MAX_BARS]]
    series = [(name, [float(v or 0) for v in values[:MAX_BARS]]) for name, values in series]
    with matplotlib.rc_context(_rc()):
        height = max(1.6, 0.38 * len(labels) * max(1, len(series)) ** 0.6 + 0.9)
        fig = Figure(figsize=(7.2, height))
        ax = fig.subplots()
        n = max(1, len(series))
        width = 0.8 / n
        positions = list(range(len(labels)))
        peak = max((v for _, values in series for v in values), default=0) or 1
        for i, (name, values) in enumerate(series):
            ys = [p - 0.4 + width * (i + 0.5) for p in positions]
            ax.barh(ys, values, height=width * 0.92, label=str(name), color=COLOURS[i % len(COLOURS)])
            for y, v in zip(ys, values, strict=False):
                text = f"{v:.1f}%" if percent else (f"{v:,.0f}" if float(v).is_integer() else f"{v:,.2f}")
                ax.text(v + peak * 0.01, y, text, va="center", fontsize=8)
        ax.set_yticks(positions, labels, fontsize=9)
        ax.invert_yaxis()
        ax.set_xlim(0, peak * 1.15)
        if not percent and all(float(v).is_integer() for _, values in series for v in values):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no 0.5 cases
        ax.tick_params(axis="x", labelsize=8)
        if title:
            ax.set_title(str(title), fontsize=11, loc="left")
        if len(series) > 1:
            ax.legend(fontsize=8, loc="lower right", frameon=False)
        return _save(fig, fmt)


def report_chart(report, fmt: str = "svg") -> bytes | None:
    """The report's rows (not the total) as bars of its chart series."""
    if not report.rows:
        return None
    rows = [row for row in report.rows if row.get("level", "item") == "item"] or report.rows
    labels = [str(row.get(report.label_key) or "") for row in rows]
    series = [(str(line.label), [row.get(line.key) or 0 for row in rows]) for line in report.series]
    return bars(labels, series, fmt=fmt)


def question_chart(stats, fmt: str = "svg") -> bytes | None:
    """One question's distribution as percentage bars."""
    if not stats.rows or not stats.respondents:
        return None
    percents = [row.percent for row in stats.rows]
    return bars([row.label for row in stats.rows], [("%", percents)], fmt=fmt, percent=True)
