"""The diagonal watermark drawn behind a page's content."""

from __future__ import annotations

from reportlab.lib import colors
from reportlab.pdfgen.canvas import Canvas

from app.services.pdf.text import draw_text, text_width

WATERMARK_INK = colors.Color(0.45, 0.45, 0.45)


def draw_watermark(canvas: Canvas, text: str, font: str, page_size: tuple[float, float], size: float = 12) -> None:
    """``text`` repeated over the whole page at 32 degrees, faint; call it first on
    a page so that everything drawn later lies over it."""
    width, height = page_size
    canvas.saveState()
    canvas.setFont(font, size)
    canvas.setFillColor(WATERMARK_INK)
    canvas.setFillAlpha(0.16)
    step_x = text_width(text, font, size) + 50
    canvas.translate(width / 2, height / 2)
    canvas.rotate(32)
    reach = (width**2 + height**2) ** 0.5 / 2 + step_x
    y, line = -reach, 0
    while y < reach:
        x = -reach + (line % 2) * step_x / 2
        while x < reach:
            draw_text(canvas, x, y, text, font, size)
            x += step_x
        y += 64
        line += 1
    canvas.restoreState()
