"""Numbered pages (第 x 頁／共 y 頁) in one pass, with reportlab's public API only.

The total is known only once the story is laid out. Each page therefore shows
its "page x of y" through a form XObject (``Canvas.doForm``) that the canvas
defines when the document is saved (``beginForm``/``endForm``), by which time
the page count is known: a PDF may use a form defined later in the file."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import SimpleDocTemplate

#: draws what every page carries behind or around the content: (canvas, page number)
PageHook = Callable[[Canvas, int], None]


def page_of(page: int, total: int) -> str:
    return f"第 {page} 頁／共 {total} 頁"


@dataclass(frozen=True)
class PageNumbers:
    """Where and how each page says 第 x 頁／共 y 頁: right-aligned, its baseline ending at (x, y)."""

    font: str
    size: float
    x: float
    y: float
    colour: object = None


class NumberedCanvas(Canvas):
    """A canvas that places a form for each page's number and, on saving, fills
    those forms with 第 x 頁／共 y 頁."""

    def __init__(self, *args, numbers: PageNumbers, **kwargs):
        super().__init__(*args, **kwargs)
        self.numbers = numbers
        self.numbered_pages: list[int] = []

    def place_page_number(self) -> None:
        page = self.getPageNumber()
        self.numbered_pages.append(page)
        self.saveState()
        self.translate(self.numbers.x, self.numbers.y)
        self.doForm(f"PageOf{page}")
        self.restoreState()

    def save(self):
        total = len(self.numbered_pages)
        numbers = self.numbers
        for page in self.numbered_pages:
            self.beginForm(f"PageOf{page}", lowerx=-400, lowery=-10, upperx=10, uppery=30)
            self.setFont(numbers.font, numbers.size)
            if numbers.colour is not None:
                self.setFillColor(numbers.colour)
            self.drawRightString(0, 0, page_of(page, total))
            self.endForm()
        super().save()


def build_numbered(
    make_doc: Callable[[io.BytesIO], SimpleDocTemplate], story: list, on_page: PageHook, numbers: PageNumbers
) -> bytes:
    """The PDF of ``story`` laid out by ``make_doc(buffer)``; ``on_page`` runs at
    the start of every page with its number, and every page says 第 x 頁／共 y 頁
    as ``numbers`` places it."""

    def draw(canvas: NumberedCanvas, _doc) -> None:
        on_page(canvas, canvas.getPageNumber())
        canvas.place_page_number()

    def canvasmaker(*args, **kwargs) -> NumberedCanvas:
        return NumberedCanvas(*args, numbers=numbers, **kwargs)

    buffer = io.BytesIO()
    make_doc(buffer).build(story, onFirstPage=draw, onLaterPages=draw, canvasmaker=canvasmaker)
    return buffer.getvalue()
