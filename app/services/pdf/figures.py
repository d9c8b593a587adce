"""A figure (``app.services.query.figures``: shapes, lines, texts) drawn as
vector graphics in a PDF, scaled to the frame's width."""

from __future__ import annotations

from reportlab.lib import colors
from reportlab.pdfgen.canvas import FILL_EVEN_ODD
from reportlab.platypus import Flowable

from app.services.pdf.fonts import chain_of
from app.services.pdf.text import text_width


def _colour(value: str | None, alpha: float = 1.0):
    if not value:
        return None
    c = colors.HexColor(value)
    return colors.Color(c.red, c.green, c.blue, alpha=alpha)


class FigureFlowable(Flowable):
    """The figure at ``width`` points wide (its height in proportion); the texts in ``font``.
    Fills are translucent where the figure says so, so the page's watermark shows through."""

    def __init__(self, figure, width: float, font: str):
        super().__init__()
        self.figure = figure
        self.k = width / figure.width
        self.width = width
        self.height = figure.height * self.k
        self.font = font

    def wrap(self, avail_width, avail_height):
        return self.width, self.height

    @property
    def metres_per_point(self) -> float | None:
        mpu = self.figure.metres_per_unit
        return mpu / self.k if mpu else None

    def _xy(self, x: float, y: float) -> tuple[float, float]:
        return x * self.k, self.height - y * self.k

    def draw(self):
        from app.services.query.figures import Line, Shape, Text

        canvas = self.canv
        canvas.saveState()
        for item in self.figure.items:
            if isinstance(item, Shape):
                path = canvas.beginPath()
                for ring in item.rings:
                    for n, (x, y) in enumerate(ring):
                        px, py = self._xy(x, y)
                        path.moveTo(px, py) if n == 0 else path.lineTo(px, py)
                    path.close()
                fill = _colour(item.fill, item.opacity)
                if fill is not None:
                    canvas.setFillColor(fill)
                canvas.setStrokeColor(_colour(item.stroke))
                canvas.setLineWidth(item.width * self.k)
                canvas.setDash([d * self.k for d in item.dash] if item.dash else [])
                canvas.drawPath(path, stroke=1, fill=1 if fill is not None else 0, fillMode=FILL_EVEN_ODD)
            elif isinstance(item, Line):
                canvas.setDash([])
                canvas.setStrokeColor(_colour(item.stroke))
                canvas.setLineWidth(item.width * self.k)
                points = [self._xy(x, y) for x, y in item.points]
                for (xa, ya), (xb, yb) in zip(points, points[1:]):
                    canvas.line(xa, ya, xb, yb)
            elif isinstance(item, Text):
                size = item.size * self.k
                x, y = self._xy(item.x, item.y)
                x -= {"middle": 0.5, "end": 1.0}.get(item.anchor, 0.0) * text_width(item.text, self.font, size)
                colour = _colour(item.colour)
                canvas.setLineWidth(size * 0.045)  # the outline of bold glyphs
                text = canvas.beginText(x, y)
                text.setFont(self.font, size)
                text.setFillColor(colour)
                text.setStrokeColor(colour)
                # one weight in the embedded font: bold is fill and outline; the mode is part of
                # the graphics state, not of the text block, so it is set every time
                text.setTextRenderMode(2 if item.bold else 0)
                for name, piece in chain_of(self.font).runs(item.text):  # rare characters in their font
                    text.setFont(name, size)
                    text.textOut(piece)
                canvas.drawText(text)
        canvas.restoreState()
