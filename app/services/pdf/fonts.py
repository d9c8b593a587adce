"""The CJK font the PDFs embed.

Chinese needs a TrueType CJK font that reportlab can embed (Debian's
``fonts-arphic-uming``; Noto CJK is CFF-based, which reportlab cannot read).
The standard font directories are searched at run time; without such a font
the PDF falls back to the Adobe CID font ``MSung-Light``, which is not
embedded (viewers substitute a local Ming typeface).
"""

from __future__ import annotations

import functools
import logging
import os
import threading

from reportlab.pdfbase import cidfonts, pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFont

log = logging.getLogger(__name__)

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


def find_font_files(dirs=FONT_DIRS, wanted_names=None) -> dict[str, str]:
    """Lower-case file name -> path of the candidate fonts present (``wanted_names``:
    other file names than the PDF candidates)."""
    wanted = {name.lower() for name in wanted_names} if wanted_names else {n.lower() for n, _ in TTF_CANDIDATES}
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


class MSungLight(UnicodeCIDFont):
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


SUBSET_LOCK = threading.Lock()


def one_subset_at_a_time(font: TTFont) -> None:
    """reportlab's font file reads the glyphs for a document's subset by moving one
    shared read position, so two documents saved at once (two threads) interleave
    their reads and one of them fails (IndexError, KeyError). The font is registered
    once per process and shared, so its subsetting is serialised; laying out pages
    still runs in parallel."""
    face = font.face
    if getattr(face.makeSubset, "one_at_a_time", False):
        return

    def locked(subset):
        with SUBSET_LOCK:
            return type(face).makeSubset(face, subset)

    locked.one_at_a_time = True
    face.makeSubset = locked


REGISTER_LOCK = threading.Lock()


def cjk_font() -> str:
    """Register (once per process, even when threads ask at once) and return the
    name of the font the PDFs use."""
    with REGISTER_LOCK:
        return register_cjk_font()


@functools.cache
def register_cjk_font() -> str:
    found = find_font_files()
    for name, subfont in TTF_CANDIDATES:
        path = found.get(name.lower())
        if not path:
            continue
        for index in dict.fromkeys((subfont, 0)):  # the preferred face, else the first
            try:
                font = TTFont(FONT_NAME, path, subfontIndex=index)
            except Exception as exc:  # CFF outlines, a broken file, a missing face
                log.debug("PDF font %s[%s] unusable: %s", path, index, exc)
                continue
            pdfmetrics.registerFont(font)  # keeps the first font registered under the name
            one_subset_at_a_time(pdfmetrics.getFont(FONT_NAME))
            log.info("PDF font: %s[%s]", path, index)
            return FONT_NAME
    log.warning("no TrueType CJK font found (install fonts-arphic-uming); using %s, not embedded", CID_FALLBACK)
    pdfmetrics.registerFont(MSungLight())
    return CID_FALLBACK
