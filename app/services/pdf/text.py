"""Text drawn through the font chain (app.services.pdf.fonts.FontChain): a
Paragraph whose characters the style's font lacks are set in the font that has
them, and a ``draw_text`` for canvas strings, so that 王䶵明 or 陳𠀋華 never print
as empty boxes."""

from __future__ import annotations

from reportlab.pdfbase import pdfmetrics
from reportlab.platypus import Paragraph as PlainParagraph

from app.services.pdf.fonts import chain_of


class Paragraph(PlainParagraph):
    """reportlab's Paragraph, its markup passed through the style font's chain."""

    def __init__(self, text, style=None, *args, **kwargs):
        if isinstance(text, str) and style is not None:
            text = chain_of(style.fontName).markup(text)
        super().__init__(text, style, *args, **kwargs)


def text_width(text: str, font: str, size: float) -> float:
    return sum(pdfmetrics.stringWidth(piece, name, size) for name, piece in chain_of(font).runs(text))


def draw_text(canvas, x: float, y: float, text: str, font: str, size: float, anchor: str = "start") -> None:
    """``canvas.drawString`` through the chain; ``anchor``: start, middle or end
    (as SVG's text-anchor). The canvas is left with ``font`` at ``size``."""
    runs = chain_of(font).runs(text)
    if anchor != "start":
        width = sum(pdfmetrics.stringWidth(piece, name, size) for name, piece in runs)
        x -= width / 2 if anchor == "middle" else width
    for name, piece in runs:
        canvas.setFont(name, size)
        canvas.drawString(x, y, piece)
        x += pdfmetrics.stringWidth(piece, name, size)
    canvas.setFont(font, size)
