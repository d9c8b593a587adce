"""Measuring text for tables and footers."""

from __future__ import annotations

from reportlab.pdfbase import pdfmetrics


def fit(text: str, font: str, size: float, width: float) -> float:
    """The largest font size <= size at which text fits the width."""
    w = pdfmetrics.stringWidth(text, font, size)
    return size if w <= width or w == 0 else max(4.5, size * width / w)


def column_widths(texts: list[list[str]], font: str, size: float, avail: float) -> list[float]:
    """Fill the width: narrow columns keep their natural width, wide ones share the rest.
    ``texts``: per column, its heading and (some of) its cells."""
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
