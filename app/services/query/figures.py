"""Laying out a stored map or plan as a figure, and writing it as SVG.

A figure is a list of plain shapes, lines and texts in its own units (y down),
so that the page (inline SVG, ``svg``) and the PDF (``app.services.pdf.figures``)
draw exactly the same geometry. Nothing here reads a source: the input is the
drawing data stored in the result's snapshot (``maps``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from markupsafe import Markup, escape

from app.lib import geometry

MAP_W, MAP_H = 680.0, 480.0
PLAN_W = 680.0
FONT_FAMILY = "'Noto Sans CJK TC','Noto Sans TC','AR PL UMing TW','PingFang TC','Microsoft JhengHei',sans-serif"


@dataclass
class Shape:
    rings: list  # [[(x, y), ...], ...] in figure units, y down
    fill: str | None = None
    opacity: float = 1.0
    stroke: str = "#000000"
    width: float = 1.0
    dash: tuple = ()
    kind: str = ""  # "hit", "neighbour", "part", "annex", "site", "footprint" (the SVG's class)
    title: str = ""


@dataclass
class Line:
    points: list
    stroke: str = "#000000"
    width: float = 1.0


@dataclass
class Text:
    x: float
    y: float  # the baseline
    text: str
    size: float = 9.0
    anchor: str = "start"  # start, middle, end
    colour: str = "#1a1a1a"
    bold: bool = False


@dataclass
class Figure:
    width: float
    height: float
    title: str
    items: list = field(default_factory=list)
    metres_per_unit: float | None = None  # the scale, for the printout's "1:N"


def text_width(text: str, size: float) -> float:
    """A rough width: CJK characters are square, others about half."""
    return sum(size if ord(ch) > 0x2E80 else size * 0.56 for ch in text)


class _Frame:
    """Metres to figure units: ``(x, y)`` -> ``(left + (x - x0) * s, bottom - (y - y0) * s)``."""

    def __init__(self, box, left, top, width, height, pad=0.06, least=20.0):
        x0, y0, x1, y1 = box
        w, h = max(x1 - x0, least), max(y1 - y0, least)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        w, h = w * (1 + 2 * pad), h * (1 + 2 * pad)
        self.s = min(width / w, height / h)
        self.left, self.top, self.width, self.height = left, top, width, height
        self.x0 = cx - width / self.s / 2
        self.y0 = cy - height / self.s / 2

    def xy(self, x, y) -> tuple[float, float]:
        return self.left + (x - self.x0) * self.s, self.top + self.height - (y - self.y0) * self.s

    def ring(self, ring) -> list:
        return [self.xy(x, y) for x, y in ring]

    def metres(self) -> tuple[float, float, float, float]:
        return self.x0, self.y0, self.x0 + self.width / self.s, self.y0 + self.height / self.s


def _north_arrow(items: list, x: float, y: float, size: float = 26.0) -> None:
    """An arrow pointing up (grid north), its tip at (x, y), and N above it."""
    half = size * 0.32
    items.append(Shape([[(x, y), (x + half, y + size), (x, y + size * 0.72), (x, y)]], "#1a1a1a", 1, "#1a1a1a", 0.8))
    items.append(Shape([[(x, y), (x, y + size * 0.72), (x - half, y + size), (x, y)]], "#ffffff", 1, "#1a1a1a", 0.8))
    items.append(Text(x, y - 3, "N", 10, "middle", bold=True))


def _scale_bar(items: list, right: float, y: float, s: float, span_m: float) -> None:
    """A bar of a round length in metres ending at ``right``, in two halves, labelled."""
    length = geometry.nice_step(span_m, 5)
    w = length * s
    x0 = right - w
    for k, colour in enumerate(("#1a1a1a", "#ffffff")):
        a = x0 + k * w / 2
        items.append(
            Shape([[(a, y), (a + w / 2, y), (a + w / 2, y + 5), (a, y + 5), (a, y)]], colour, 1, "#1a1a1a", 0.8)
        )
    items.append(Text(x0, y - 3, "0", 8, "middle"))
    items.append(Text(x0 + w / 2, y - 3, f"{length / 2:g}", 8, "middle"))
    items.append(Text(right, y - 3, f"{length:g} m", 8, "middle"))


def _ticks(items: list, frame: _Frame) -> None:
    """TWD97 grid ticks along the frame's edges, labelled in metres (E along the bottom, N up the left)."""
    x0, y0, x1, y1 = frame.metres()
    step = geometry.nice_step(max(x1 - x0, y1 - y0), 5)
    left, top, right, bottom = frame.left, frame.top, frame.left + frame.width, frame.top + frame.height
    x = math.ceil(x0 / step) * step
    while x < x1:
        fx, _ = frame.xy(x, y0)
        if left + 30 < fx < right - 30:
            items.append(Line([(fx, bottom), (fx, bottom - 6)], "#444444", 0.7))
            items.append(Line([(fx, top), (fx, top + 6)], "#444444", 0.7))
            items.append(Text(fx, bottom - 9, f"{x:,.0f}", 7.5, "middle", "#444444"))
        x += step
    y = math.ceil(y0 / step) * step
    while y < y1:
        _, fy = frame.xy(x0, y)
        if top + 40 < fy < bottom - 30:
            items.append(Line([(left, fy), (left + 6, fy)], "#444444", 0.7))
            items.append(Line([(right, fy), (right - 6, fy)], "#444444", 0.7))
            items.append(Text(left + 8, fy + 3, f"{y:,.0f}", 7.5, "start", "#444444"))
        y += step


def map_figure(data: dict, width: float = MAP_W, height: float = MAP_H) -> Figure | None:
    """The cadastral map: the result's parcels highlighted among their neighbours,
    each labelled, with grid ticks, a scale bar and a north arrow."""
    parcels = [p for p in data.get("parcels") or [] if p.get("rings")]
    if not parcels:
        return None
    hits = [p for p in parcels if p.get("hit")]
    rings_of = [[r] for p in parcels for r in p["rings"]]
    box = geometry.bounds(rings_of)
    frame = _Frame(box, 1, 1, width - 2, height - 2, pad=0.06 if len(parcels) > len(hits) else 0.3)
    epsg = data.get("epsg") or 3826
    fig = Figure(width, height, f"地籍圖 {data.get('crs') or ''}（EPSG:{epsg}）", metres_per_unit=1 / frame.s)
    items = fig.items
    items.append(Shape([[(0.5, 0.5), (width - 0.5, 0.5), (width - 0.5, height - 0.5), (0.5, height - 0.5), (0.5, 0.5)]],
                       "#ffffff", 1, "#1a1a1a", 1, kind="frame"))  # fmt: skip
    for p in sorted(parcels, key=lambda p: bool(p.get("hit"))):  # neighbours first, under the result
        hit = bool(p.get("hit"))
        items.append(
            Shape(
                [frame.ring(r) for r in p["rings"]],
                "#d9534f" if hit else "#f1ede2",
                0.38 if hit else 0.7,
                "#9b1c1c" if hit else "#6b6b6b",
                2.0 if hit else 0.8,
                kind="hit" if hit else "neighbour",
                title=p.get("label") or "",
            )
        )
    _ticks(items, frame)
    for p in parcels:
        label = p.get("label") or ""
        if not label:
            continue
        hit = bool(p.get("hit"))
        xs = [frame.xy(x, y)[0] for x, y in p["rings"][0]]
        room = max(xs) - min(xs)
        # the largest size the parcel can carry; a parcel too small on this map is left
        # unlabelled (the rows under the map list every parcel of the result)
        size = next((z for z in ((10.5, 8.0, 6.5) if hit else (8.0,)) if text_width(label, z) * 0.9 <= room), None)
        if size is None:
            continue
        cx, cy = frame.xy(*geometry.label_point([tuple(pt) for pt in p["rings"][0]]))
        items.append(Text(cx, cy + size / 3, label, size, "middle", "#7a0000" if hit else "#333333", bold=hit))
    _north_arrow(items, width - 26, 22)
    _scale_bar(items, width - 18, height - 22, frame.s, frame.width / frame.s)
    items.append(Text(10, 16, f"{data.get('crs') or ''}（EPSG:{epsg}）坐標單位：公尺", 8, "start", "#444444"))
    return fig


def _part_label(items, frame: _Frame, ring, part: dict, size: float) -> None:
    x, y = frame.xy(*geometry.label_point([tuple(p) for p in ring]))
    name, area = part.get("part") or "", f"{part.get('area', 0):,.2f} m²"
    ys = [frame.xy(px, py)[1] for px, py in ring]
    if max(ys) - min(ys) < size * 2.6:  # a thin strip (a balcony): one line
        items.append(Text(x, y + size / 3, f"{name} {area}", size * 0.9, "middle"))
        return
    items.append(Text(x, y - 1, name, size, "middle", bold=True))
    items.append(Text(x, y + size + 1, area, size, "middle"))


def plan_figure(data: dict, width: float = PLAN_W) -> Figure | None:
    """The building survey plan: each floor's parts at one scale with their uses
    and areas, the floor totals, the building's total, and the location plan."""
    floors = [f for f in data.get("floors") or [] if f.get("parts")]
    if not floors:
        return None
    site = data.get("site") if isinstance(data.get("site"), dict) and data["site"].get("rings") else None
    panels = len(floors) + (1 if site else 0)
    cols = min(3, panels)
    cell_w = width / cols
    pad, head = 10.0, 22.0
    all_rings = [[[tuple(p) for p in r]] for f in floors for part in f["parts"] for r in part["rings"]]
    x0, y0, x1, y1 = geometry.bounds(all_rings)
    inner_w = cell_w - 2 * pad
    s = min(inner_w / max(x1 - x0, 1.0), 200.0 / max(y1 - y0, 1.0))
    inner_h = max((y1 - y0) * s, 60.0)
    cell_h = head + inner_h + 2 * pad
    rows = math.ceil(panels / cols)
    foot = 56.0
    height = rows * cell_h + foot
    fig = Figure(width, height, "建物測量成果圖", metres_per_unit=1 / s)
    items = fig.items
    items.append(Shape([[(0.5, 0.5), (width - 0.5, 0.5), (width - 0.5, height - 0.5), (0.5, height - 0.5), (0.5, 0.5)]],
                       "#ffffff", 1, "#1a1a1a", 1, kind="frame"))  # fmt: skip
    for n, floor in enumerate(floors):
        left, top = (n % cols) * cell_w, (n // cols) * cell_h
        items.append(
            Text(left + pad, top + pad + 10, f"{floor['floor']}　計 {floor.get('total', 0):,.2f} m²", 10.5, bold=True)
        )
        frame = _Frame((x0, y0, x1, y1), left + pad, top + pad + head, inner_w, inner_h, pad=0, least=1.0)
        frame.s = s
        frame.x0 = x0 - (inner_w / s - (x1 - x0)) / 2
        frame.y0 = y0 - (inner_h / s - (y1 - y0)) / 2
        for part in floor["parts"]:
            main = bool(part.get("main"))
            rings = [[tuple(p) for p in r] for r in part["rings"]]
            items.append(
                Shape(
                    [frame.ring(r) for r in rings],
                    "#cfe3f5" if main else "#fff0b8",
                    0.8,
                    "#1f4e79" if main else "#8a6d00",
                    1.4 if main else 1.0,
                    () if main else (4, 2),
                    kind="part" if main else "annex",
                    title=f"{floor['floor']} {part.get('part', '')}",
                )  # fmt: skip
            )
        for part in floor["parts"]:
            _part_label(items, frame, [tuple(p) for p in part["rings"][0]], part, 9)
    if site:
        n = len(floors)
        left, top = (n % cols) * cell_w, (n // cols) * cell_h
        _location_plan(items, site, floors, left + pad, top + pad, inner_w, head + inner_h)
    y = rows * cell_h + 18
    total = f"主建物總面積 {data.get('main_total', 0):,.2f} m²"
    if data.get("registered_total") is not None:
        total += f"（登記 {data['registered_total']:,.2f} m²）"
    if data.get("annex_total"):
        total += f"　附屬建物 {data['annex_total']:,.2f} m²"
    items.append(Text(12, y, total, 11, bold=True))
    items.append(Text(12, y + 18, "各層平面依同一比例繪製；面積依多邊形坐標計算。", 8, colour="#444444"))
    _scale_bar(items, width - 20, y + 12, s, inner_w / s)
    return fig


def _location_plan(items: list, site: dict, floors: list, left: float, top: float, w: float, h: float) -> None:
    """The parcel with the building's ground-floor outline at its centre (the plans
    carry no offset on the parcel: a sketch, and titled so)."""
    items.append(Text(left, top + 10, f"位置圖（示意）{site.get('label') or ''}", 10.5, bold=True))
    rings = [[tuple(p) for p in r] for r in site["rings"]]
    frame = _Frame(geometry.bounds([rings]), left, top + 22, w, h - 22, pad=0.12, least=5.0)
    items.append(
        Shape(
            [frame.ring(r) for r in rings], "#f1ede2", 0.7, "#6b6b6b", 1.0, kind="site", title=site.get("label") or ""
        )
    )
    ground = next((p for p in floors[0]["parts"] if p.get("main")), floors[0]["parts"][0])
    outline = [tuple(p) for p in ground["rings"][0]]
    cx, cy = geometry.label_point(rings[0])
    bx0, by0, bx1, by1 = geometry.bounds([[outline]])
    dx, dy = cx - (bx0 + bx1) / 2, cy - (by0 + by1) / 2
    items.append(Shape([frame.ring([(x + dx, y + dy) for x, y in outline])], "#1f4e79", 0.55, "#1f4e79", 1.0,
                       kind="footprint", title=floors[0]["floor"]))  # fmt: skip
    _north_arrow(items, left + w - 12, top + 30, 20)
    _scale_bar(items, left + w - 4, top + h - 6, frame.s, frame.width / frame.s)


# --- SVG ----------------------------------------------------------------------------------


def _n(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _path(rings) -> str:
    return " ".join("M" + " L".join(f"{_n(x)} {_n(y)}" for x, y in ring) + " Z" for ring in rings)


def svg(fig: Figure) -> Markup:
    """The figure as an inline SVG element (no script, no external reference)."""
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="query-figure" viewBox="0 0 {_n(fig.width)} {_n(fig.height)}" '
        f'width="100%" style="max-width:{_n(fig.width * 1.25)}px;height:auto" role="img" '
        f'aria-label="{escape(fig.title)}" font-family="{FONT_FAMILY}"><title>{escape(fig.title)}</title>'
    ]
    for item in fig.items:
        if isinstance(item, Shape):
            dash = f' stroke-dasharray="{",".join(_n(d) for d in item.dash)}"' if item.dash else ""
            cls = f' class="{item.kind}"' if item.kind else ""
            title = f"<title>{escape(item.title)}</title>" if item.title else ""
            out.append(
                f'<path{cls} d="{_path(item.rings)}" fill="{item.fill or "none"}" fill-opacity="{item.opacity:g}" '
                f'fill-rule="evenodd" stroke="{item.stroke}" stroke-width="{_n(item.width)}"{dash}>{title}</path>'
            )
        elif isinstance(item, Line):
            points = " ".join(f"{_n(x)},{_n(y)}" for x, y in item.points)
            out.append(
                f'<polyline points="{points}" fill="none" stroke="{item.stroke}" stroke-width="{_n(item.width)}"/>'
            )
        elif isinstance(item, Text):
            weight = ' font-weight="bold"' if item.bold else ""
            out.append(
                f'<text x="{_n(item.x)}" y="{_n(item.y)}" font-size="{_n(item.size)}" text-anchor="{item.anchor}" '
                f'fill="{item.colour}"{weight}>{escape(item.text)}</text>'
            )
    out.append("</svg>")
    return Markup("".join(out))


def figure_of(section: dict) -> Figure | None:
    """The figure of a stored section (map or plan), or None (nothing drawable, another display)."""
    if not isinstance(section, dict) or section.get("error"):
        return None
    try:
        if section.get("display") == "map" and isinstance(section.get("map"), dict):
            return map_figure(section["map"])
        if section.get("display") == "plan" and isinstance(section.get("plan"), dict):
            return plan_figure(section["plan"])
    except (TypeError, ValueError, KeyError, IndexError, ZeroDivisionError):
        return None  # a stored drawing from elsewhere that does not read: the rows still show
    return None


def section_svg(section: dict) -> Markup:
    """For templates: the section's figure as SVG, or nothing."""
    fig = figure_of(section)
    return svg(fig) if fig is not None else Markup("")


def gis_link(section: dict) -> str | None:
    """For templates: the county GIS's address for a map section's parcels (``GIS_LINK_URL`` with
    ``{lon}`` and ``{lat}`` in WGS84 degrees, set by the operators), or None."""
    from flask import current_app

    template = current_app.config.get("GIS_LINK_URL")
    data = section.get("map") if isinstance(section, dict) and section.get("display") == "map" else None
    centre = data.get("centre_wgs84") if isinstance(data, dict) else None
    if not template or not isinstance(centre, list) or len(centre) != 2:
        return None
    try:
        lon, lat = float(centre[0]), float(centre[1])
        return template.format(lon=f"{lon:.7f}", lat=f"{lat:.7f}")
    except (TypeError, ValueError, KeyError, IndexError):
        return None


def drawing_notes(section: dict) -> list[str]:
    """What the section's drawing says about itself (rows not drawn, cut, areas off)."""
    data = section.get(section.get("display") or "") if isinstance(section, dict) else None
    notes = data.get("notes") if isinstance(data, dict) else None
    return [str(n) for n in notes] if isinstance(notes, list) else []


def scale_text(metres_per_point: float) -> str:
    """比例尺 1:N (N rounded to two significant figures) for a drawing at that many metres per PDF point."""
    n = metres_per_point * 1000 / (25.4 / 72)
    digits = 10 ** max(int(math.floor(math.log10(n))) - 1, 0)
    return f"比例尺 1:{round(n / digits) * digits:,.0f}"


__all__ = ["Figure", "Line", "Shape", "Text", "drawing_notes", "figure_of", "gis_link", "map_figure",
           "plan_figure", "scale_text", "section_svg", "svg"]  # fmt: skip
