"""Reading a PDF back to see which font drew each character, and whether that
font has a glyph for it (the rare-character tests: no empty boxes).

For every embedded TrueType font of the PDF, its ToUnicode map tells which
character each code stands for and its own (subset) character map which glyph
the code draws; a code drawn with glyph 0 (.notdef) or with an empty outline is
an empty box on paper."""

from __future__ import annotations

import functools
import io
import re
from pathlib import Path

from fontTools.ttLib import TTFont
from pypdf import PdfReader

_BLOCK = re.compile(rb"beginbfchar(.*?)endbfchar", re.S)
_BFCHAR = re.compile(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>")


def _unicode_of(hex_text: bytes) -> str:
    return bytes.fromhex(hex_text.decode()).decode("utf-16-be")


def drawn_glyphs(pdf: bytes) -> dict[str, list[tuple[str, bool]]]:
    """Each character drawn -> [(font's base name, has a real glyph)] over the fonts that drew it."""
    reader = PdfReader(io.BytesIO(pdf))
    out: dict[str, list[tuple[str, bool]]] = {}
    seen = set()
    for page in reader.pages:
        resources = page.get("/Resources") or {}
        fonts = (resources.get("/Font") or {}).values()
        for ref in fonts:
            font = ref.get_object()
            key = id(font) if ref is None else getattr(ref, "idnum", id(font))
            if key in seen or "/ToUnicode" not in font or "/FontDescriptor" not in font:
                continue
            seen.add(key)
            descriptor = font["/FontDescriptor"].get_object()
            if "/FontFile2" not in descriptor:
                continue
            base = str(font["/BaseFont"]).lstrip("/").split("+", 1)[-1]
            program = TTFont(io.BytesIO(descriptor["/FontFile2"].get_object().get_data()))
            cmap = program.getBestCmap() or {}
            for table in program["cmap"].tables:  # reportlab's subsets map codes 0-255 in a (1, 0) table
                for code, name in table.cmap.items():
                    cmap.setdefault(code, name)
            glyf = program["glyf"] if "glyf" in program else None
            to_unicode = font["/ToUnicode"].get_object().get_data()
            pairs = [pair for block in _BLOCK.findall(to_unicode) for pair in _BFCHAR.findall(block)]
            for code_hex, text_hex in pairs:
                code = int(code_hex, 16)
                if int(text_hex, 16) == 0:  # a code the subset does not use
                    continue
                name = cmap.get(code)
                real = bool(name) and name != ".notdef" and program.getGlyphID(name) != 0
                if real and glyf is not None:
                    real = glyf[name].numberOfContours != 0 or _unicode_of(text_hex).isspace()
                for ch in _unicode_of(text_hex):
                    out.setdefault(ch, []).append((base, real))
    return out


def missing_glyphs(pdf: bytes, text: str) -> dict[str, str]:
    """The characters of ``text`` the PDF does not draw with a real glyph -> why."""
    drawn = drawn_glyphs(pdf)
    problems = {}
    for ch in dict.fromkeys(text):
        if ch.isspace():
            continue
        where = drawn.get(ch)
        if not where:
            problems[ch] = "not drawn in an embedded TrueType font"
        elif not all(real for _font, real in where):
            problems[ch] = "empty box in " + ", ".join(font for font, real in where if not real)
    return problems


def font_of(pdf: bytes, ch: str) -> list[str]:
    return [font for font, _real in drawn_glyphs(pdf).get(ch, [])]


# --- fonts named by family (a spreadsheet cell's font) ---------------------------------

FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts")


def _families_in(path: Path) -> list[tuple[str, int]]:
    """(family name, face index) of each face of the font file (every language's name)."""
    from fontTools.ttLib import TTCollection

    names = []
    try:
        if path.suffix.lower() == ".ttc":
            with TTCollection(str(path), lazy=True) as collection:
                faces = [(index, face["name"].names) for index, face in enumerate(collection.fonts)]
        else:
            with TTFont(str(path), lazy=True) as face:
                faces = [(0, face["name"].names)]
    except Exception:  # not a font fontTools reads
        return []
    for index, records in faces:
        names += [(record.toUnicode(), index) for record in records if record.nameID in (1, 16)]
    return names


@functools.cache
def _installed_families() -> dict[str, list[tuple[str, int]]]:
    """Family name (as the name table gives it, in every language) -> [(file, face index)]."""
    found: dict[str, list[tuple[str, int]]] = {}
    for base in FONT_DIRS:
        for path in sorted(Path(base).rglob("*")):
            if path.suffix.lower() in (".ttf", ".otf", ".ttc"):
                for family, index in _families_in(path):
                    found.setdefault(family, []).append((str(path), index))
    return found


@functools.cache
def _cmap(path: str, index: int) -> frozenset[int]:
    with TTFont(path, fontNumber=index, lazy=True) as face:
        return frozenset(face.getBestCmap() or ())


def family_covers(family: str | None, text: str) -> bool:
    """Whether an installed font of ``family`` has a glyph for every character of ``text``."""
    needed = {ord(ch) for ch in text if not ch.isspace()}
    return any(needed <= _cmap(path, index) for path, index in _installed_families().get(family or "", ()))
