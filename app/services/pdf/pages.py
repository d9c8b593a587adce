"""Numbered pages (第 x 頁／共 y 頁) with reportlab's public API only.

The total is known only once the story is laid out, so the document is built
twice: once to count its pages (``canvas.getPageNumber()`` in the page hook),
then for real with the total. The story is made afresh for each pass (platypus
consumes it)."""

from __future__ import annotations

import io
from collections.abc import Callable

from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import SimpleDocTemplate

#: draws what every page carries behind or around the content: (canvas, page, total)
PageHook = Callable[[Canvas, int, int], None]


def build_numbered(
    make_doc: Callable[[io.BytesIO], SimpleDocTemplate], make_story: Callable[[], list], on_page: PageHook
) -> bytes:
    """The PDF of ``make_story()`` laid out by ``make_doc(buffer)``; ``on_page`` runs
    at the start of every page with its number and the document's page count."""
    pages = []

    def count(canvas: Canvas, _doc) -> None:
        pages.append(canvas.getPageNumber())

    make_doc(io.BytesIO()).build(make_story(), onFirstPage=count, onLaterPages=count)
    total = max(pages, default=1)

    def draw(canvas: Canvas, _doc) -> None:
        on_page(canvas, canvas.getPageNumber(), total)

    buffer = io.BytesIO()
    make_doc(buffer).build(make_story(), onFirstPage=draw, onLaterPages=draw)
    return buffer.getvalue()
