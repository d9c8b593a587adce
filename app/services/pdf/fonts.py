"""The CJK fonts the PDFs embed, and the chain of fonts behind the first one.

Chinese needs a TrueType CJK font that reportlab can embed (Debian's
``fonts-arphic-uming``; Noto CJK is CFF-based, which reportlab cannot read).
The standard font directories are searched at run time; without such a font
the PDF falls back to the Adobe CID font ``MSung-Light``, which is not
embedded (viewers substitute a local Ming typeface).

Household registers hold names with characters that UMing lacks (CJK
Extension A and B: 王䶵明, 陳𠀋華). reportlab draws a missing glyph as an empty
box and has no fallback of its own, so ``FontChain`` splits text into runs by
the first font of the chain whose character map has each character: UMing,
then a TrueType Noto Sans TC where one is installed (Debian's Noto Sans CJK is
CFF and is skipped here; the screens use it), then the CNS 11643 全字庫 fonts
(Debian ``fonts-cns11643-sung`` / ``-kai``: TW-Sung, TW-Sung-Ext-B,
TW-Sung-Plus), then Hanazono (``fonts-hanazono``). The fallback fonts are
loaded only when a text first needs one (they are large files).

The same chain says which font an Excel cell names for such text
(``app.services.reports.excel``) and which fonts follow the CJK ones in the
charts (``app.services.reports.charts``).
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading

from reportlab.pdfbase import cidfonts, pdfmetrics, ttfonts
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
    ("TW-Sung-98_1.ttf", 0),  # fonts-cns11643-sung, when no other CJK font is there
)
# Behind the first font, best first, for the characters it lacks.
FALLBACK_CANDIDATES = (
    ("NotoSansTC-Regular.ttf", 0),  # Noto Sans TC with TrueType outlines, where installed
    ("NotoSansCJK-Regular.ttc", "NotoSansCJKtc-Regular"),  # Debian's is CFF: refused, skipped
    ("TW-Sung-98_1.ttf", 0),  # fonts-cns11643-sung: 全字庫正宋體, BMP with Extension A
    ("TW-Sung-Ext-B-98_1.ttf", 0),  # Extension B (plane 2)
    ("TW-Sung-Plus-98_1.ttf", 0),  # the CNS 11643 characters beyond Extension B
    ("TW-Kai-98_1.ttf", 0),  # fonts-cns11643-kai: 全字庫正楷體
    ("TW-Kai-Ext-B-98_1.ttf", 0),
    ("TW-Kai-Plus-98_1.ttf", 0),
    ("HanaMinA.ttf", 0),  # fonts-hanazono
    ("HanaMinB.ttf", 0),
)


def find_font_files(dirs=FONT_DIRS, wanted_names=None) -> dict[str, str]:
    """Lower-case file name -> path of the candidate fonts present (``wanted_names``:
    other file names than the PDF candidates)."""
    wanted = {name.lower() for name in wanted_names} if wanted_names else {n.lower() for n, _ in TTF_CANDIDATES}
    if not wanted_names:
        wanted |= {n.lower() for n, _ in FALLBACK_CANDIDATES}
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


_BEYOND_BMP = re.compile(r"(<[0-9A-F]{2}> )<([0-9A-F]{5,6})>")


def _utf16(match: re.Match) -> str:
    return match.group(1) + "<" + chr(int(match.group(2), 16)).encode("utf-16-be").hex().upper() + ">"


def to_unicode_cmap(fontname, subset, made_by=ttfonts.makeToUnicodeCMap):
    """reportlab 5.1 writes a character beyond the BMP (Extension B: 𠀋) into a
    subset's ToUnicode map as ``<2000B>``, which readers cannot decode: the PDF
    shows the glyph but copying or searching the text loses the character. A
    ToUnicode map holds UTF-16BE, so such a character is written as its
    surrogate pair (``<D840DC0B>``)."""
    return _BEYOND_BMP.sub(_utf16, made_by(fontname, subset))


ttfonts.makeToUnicodeCMap = to_unicode_cmap  # read by TTFont.addObjects when a document is saved

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


def _load_ttf(name: str, path: str, subfont) -> TTFont | None:
    for index in dict.fromkeys((subfont, 0)):  # the preferred face, else the first
        try:
            return TTFont(name, path, subfontIndex=index)
        except Exception as exc:  # CFF outlines, a broken file, a missing face
            log.debug("PDF font %s[%s] unusable: %s", path, index, exc)
    return None


@functools.cache
def register_cjk_font() -> str:
    CHAINS.clear()  # a new first font: its chain is built anew
    found = find_font_files()
    for name, subfont in TTF_CANDIDATES:
        path = found.get(name.lower())
        if not path:
            continue
        font = _load_ttf(FONT_NAME, path, subfont)
        if font is None:
            continue
        pdfmetrics.registerFont(font)  # keeps the first font registered under the name
        one_subset_at_a_time(pdfmetrics.getFont(FONT_NAME))
        log.info("PDF font: %s[%s]", path, subfont)
        return FONT_NAME
    log.warning("no TrueType CJK font found (install fonts-arphic-uming); using %s, not embedded", CID_FALLBACK)
    pdfmetrics.registerFont(MSungLight())
    return CID_FALLBACK


# --- the chain behind the first font ----------------------------------------------------


def _cmap(font_name: str) -> set[int] | dict[int, int] | None:
    """The code points the registered font has glyphs for (None: unknown, a CID font)."""
    font = pdfmetrics.getFont(font_name)
    face = getattr(font, "face", None)
    return getattr(face, "charToGlyph", None)


def _family(font_name: str) -> str | None:
    """The family name in the font file (what a spreadsheet or a word processor names it by)."""
    face = getattr(pdfmetrics.getFont(font_name), "face", None)
    family = getattr(face, "familyName", None)
    if isinstance(family, bytes):
        family = family.decode("utf-8", "replace")
    return family or None


def _needs_no_glyph(ch: str) -> bool:
    return ch in "\n\r\t" or ord(ch) < 0x20


class FontChain:
    """The first font and, behind it, the fonts for the characters it lacks.

    ``runs(text)`` cuts text into (font name, piece) runs, each character going
    to the first font of the chain whose character map has it; a character no
    font has stays with the first font (and ``missing(text)`` names it)."""

    def __init__(self, primary: str):
        self.primary = primary
        self.names = [primary]
        self.cmaps = [_cmap(primary)]
        self.loaded = self.cmaps[0] is None  # a CID font covers its whole character set: nothing behind it
        self.lock = threading.Lock()
        self.memo: dict[str, str] = {}

    def _load(self) -> None:
        with self.lock:
            if self.loaded:
                return
            found = find_font_files(wanted_names=[n for n, _ in FALLBACK_CANDIDATES])
            seen = set()
            for number, (file_name, subfont) in enumerate(FALLBACK_CANDIDATES, start=1):
                path = found.get(file_name.lower())
                if not path or path in seen:
                    continue
                name = f"{self.primary}-{number}"
                font = _load_ttf(name, path, subfont)
                if font is None:
                    continue
                seen.add(path)
                pdfmetrics.registerFont(font)
                one_subset_at_a_time(pdfmetrics.getFont(name))
                self.names.append(name)
                self.cmaps.append(_cmap(name))
                log.info("PDF fallback font: %s", path)
            self.loaded = True

    def font_for(self, ch: str) -> str:
        """The font that draws ``ch``."""
        first = self.cmaps[0]
        if first is None or ord(ch) in first or _needs_no_glyph(ch):
            return self.primary
        known = self.memo.get(ch)
        if known:
            return known
        self._load()
        found = next((n for n, cmap in zip(self.names, self.cmaps) if cmap and ord(ch) in cmap), self.primary)
        self.memo[ch] = found
        return found

    def missing(self, text: str) -> str:
        """The characters of ``text`` that no font of the chain has (each once)."""
        out = []
        for ch in dict.fromkeys(text):
            if _needs_no_glyph(ch) or self.font_for(ch) != self.primary:
                continue
            first = self.cmaps[0]
            if first is not None and ord(ch) not in first:
                out.append(ch)
        return "".join(out)

    def all_primary(self, text: str) -> bool:
        """Whether the first font draws every character of ``text`` (each distinct one looked up once)."""
        first = self.cmaps[0]
        return first is None or all(ord(ch) in first or _needs_no_glyph(ch) for ch in set(text))

    def covering(self, text: str) -> str | None:
        """The first font of the chain that has every character of ``text`` (None: none has them all)."""
        needed = {ord(ch) for ch in set(text) if not _needs_no_glyph(ch)}
        first = self.cmaps[0]
        if first is None or all(c in first for c in needed):
            return self.primary
        self._load()
        return next((n for n, cmap in zip(self.names, self.cmaps) if cmap and all(c in cmap for c in needed)), None)

    def family(self, font_name: str) -> str | None:
        """The family name of a font of the chain, as its file names it (TW-Sung, AR PL UMing TW)."""
        return _family(font_name)

    def runs(self, text: str) -> list[tuple[str, str]]:
        if self.all_primary(text):
            return [(self.primary, text)] if text else []
        out: list[tuple[str, str]] = []
        for ch in text:
            name = self.font_for(ch)
            if out and out[-1][0] == name:
                out[-1] = (name, out[-1][1] + ch)
            else:
                out.append((name, ch))
        return out

    def markup(self, markup: str) -> str:
        """Paragraph markup with the characters the first font lacks wrapped in
        ``<font face="...">``; tags and entities (ASCII) are left as they are."""
        if markup.isascii() or self.all_primary(markup):
            return markup
        out, run_font, run = [], None, []

        def flush():
            if run:
                piece = "".join(run)
                out.append(piece if run_font == self.primary else f'<font face="{run_font}">{piece}</font>')
                run.clear()

        in_tag = False
        for ch in markup:
            if in_tag or ch in "<&":
                flush()
                out.append(ch)
                in_tag = (in_tag or ch in "<&") and ch not in ">;"
                continue
            name = self.font_for(ch)
            if name != run_font:
                flush()
                run_font = name
            run.append(ch)
        flush()
        return "".join(out)


CHAINS: dict[str, FontChain] = {}


def chain_of(font: str) -> FontChain:
    """The chain whose first font is ``font`` (one per process)."""
    chain = CHAINS.get(font)
    if chain is None:
        with REGISTER_LOCK:
            chain = CHAINS.get(font) or FontChain(font)
            CHAINS[font] = chain
    return chain
