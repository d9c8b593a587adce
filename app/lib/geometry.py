"""Polygons as the land registry holds them: parsed from GeoJSON, WKT or a
coordinate list, checked (closed, not self-intersecting, inside the declared
projection's area) and measured (area, bounding box, distance between boxes).

Standard library only; coordinates are projected metres (TWD97 or TWD67 TM2).
A polygon is a list of rings, the first the outline and any others its holes;
a ring is a list of (x, y), closed (its last point is its first).
"""

from __future__ import annotations

import json
import math
import re

Ring = list[tuple[float, float]]
Polygon = list[Ring]

# The projections a map draws: EPSG code -> (name, x min, y min, x max, y max) in metres,
# generous boxes around each zone's area of use, so values in another system (degrees,
# the other zone, a swapped x and y) are told apart from a parcel's real coordinates.
PROJECTIONS = {
    3826: ("TWD97 TM2 121", 140_000.0, 2_380_000.0, 370_000.0, 2_800_000.0),  # Taiwan island
    3825: ("TWD97 TM2 119", 150_000.0, 2_580_000.0, 360_000.0, 2_920_000.0),  # Penghu, Kinmen, Matsu
    3828: ("TWD67 TM2 121", 140_000.0, 2_380_000.0, 370_000.0, 2_800_000.0),
    3827: ("TWD67 TM2 119", 150_000.0, 2_580_000.0, 360_000.0, 2_920_000.0),
}
CLOSE_TOLERANCE = 1e-6


class GeometryError(ValueError):
    """A geometry that cannot be drawn; ``reason`` is one of: unreadable, not_polygon,
    too_few_points, not_closed, self_intersecting, empty, outside (``epsg`` set)."""

    def __init__(self, reason: str, epsg: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.epsg = epsg


def _ring(value) -> Ring:
    if not isinstance(value, list | tuple):
        raise GeometryError("unreadable")
    try:
        ring = [(float(p[0]), float(p[1])) for p in value]
    except (TypeError, ValueError, IndexError, KeyError):
        raise GeometryError("unreadable") from None
    if not all(math.isfinite(x) and math.isfinite(y) for x, y in ring):
        raise GeometryError("unreadable")
    return ring


def _from_geojson(obj) -> list[Polygon]:
    if obj.get("type") == "Feature":
        obj = obj.get("geometry") or {}
    kind, coords = obj.get("type"), obj.get("coordinates")
    if kind == "Polygon" and isinstance(coords, list):
        return [[_ring(r) for r in coords]]
    if kind == "MultiPolygon" and isinstance(coords, list):
        return [[_ring(r) for r in poly] for poly in coords if isinstance(poly, list)]
    raise GeometryError("not_polygon")


_WKT = re.compile(r"^\s*(MULTIPOLYGON|POLYGON)\s*(Z|M|ZM)?\s*(\(.*\))\s*$", re.IGNORECASE | re.DOTALL)


def _wkt_rings(text: str) -> list:
    """'((x y, x y), (x y, ...))' -> nested lists of rings (one level per parenthesis)."""
    text = re.sub(r"\s*,\s*", ",", text.strip())
    text = re.sub(r"\(\s*", "(", text)
    text = re.sub(r"\s*\)", ")", text)
    # coordinates "x y" become [x, y]; parentheses become brackets
    body = re.sub(r"(-?[0-9.eE+-]+)(?:\s+(-?[0-9.eE+-]+))+", lambda m: "[" + ",".join(m.group(0).split()) + "]", text)
    try:
        return json.loads(body.replace("(", "[").replace(")", "]"))
    except ValueError:
        raise GeometryError("unreadable") from None


def parse(value) -> list[Polygon]:
    """The polygons of a column's value: GeoJSON (Polygon, MultiPolygon or a
    Feature of one), WKT (POLYGON, MULTIPOLYGON), or a JSON coordinate list
    ([[x, y], ...] one ring, or [[[x, y], ...], ...] rings). Checks nothing but
    the reading. Raises GeometryError."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise GeometryError("empty")
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        text = value.strip()
        match = _WKT.match(text)
        if match:
            nested = _wkt_rings(match.group(3))
            polygons = nested if match.group(1).upper() == "MULTIPOLYGON" else [nested]
            return [[_ring(r) for r in poly] for poly in polygons]
        try:
            value = json.loads(text)
        except ValueError:
            raise GeometryError("unreadable") from None
    if isinstance(value, dict):
        return _from_geojson(value)
    if isinstance(value, list) and value:
        first = value[0]
        if isinstance(first, list | tuple) and first and isinstance(first[0], list | tuple):
            return [[_ring(r) for r in value]]
        return [[_ring(value)]]
    raise GeometryError("not_polygon")


def _cross(o, a, b) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _segments_cross(p1, p2, q1, q2) -> bool:
    """Whether two segments touch or cross (collinear overlaps included)."""
    d1, d2 = _cross(q1, q2, p1), _cross(q1, q2, p2)
    d3, d4 = _cross(p1, p2, q1), _cross(p1, p2, q2)
    if ((d1 > 0) != (d2 > 0) and d1 != 0 and d2 != 0) and ((d3 > 0) != (d4 > 0) and d3 != 0 and d4 != 0):
        return True

    def on(a, b, c) -> bool:
        return min(a[0], b[0]) <= c[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= c[1] <= max(a[1], b[1])

    return (
        (d1 == 0 and on(q1, q2, p1))
        or (d2 == 0 and on(q1, q2, p2))
        or (d3 == 0 and on(p1, p2, q1))
        or (d4 == 0 and on(p1, p2, q2))
    )


def self_intersects(ring: Ring) -> bool:
    """Whether two edges of a closed ring meet anywhere but at their shared corner."""
    edges = list(zip(ring, ring[1:]))
    n = len(edges)
    for i in range(n):
        for j in range(i + 1, n):
            if j == i + 1 or (i == 0 and j == n - 1):
                continue  # neighbours share a corner
            if _segments_cross(*edges[i], *edges[j]):
                return True
    return False


def check_ring(ring: Ring) -> None:
    """Raises GeometryError unless the ring is closed, has three corners or more and does not cross itself."""
    if len(ring) < 4:
        raise GeometryError("too_few_points")
    (x0, y0), (xn, yn) = ring[0], ring[-1]
    if abs(x0 - xn) > CLOSE_TOLERANCE or abs(y0 - yn) > CLOSE_TOLERANCE:
        raise GeometryError("not_closed")
    if self_intersects(ring):
        raise GeometryError("self_intersecting")
    if ring_area(ring) == 0:
        raise GeometryError("self_intersecting")


def check_inside(polygons: list[Polygon], epsg: int) -> None:
    """Raises GeometryError("outside") when a point lies outside the projection's area."""
    _name, x_min, y_min, x_max, y_max = PROJECTIONS[epsg]
    for poly in polygons:
        for ring in poly:
            for x, y in ring:
                if not (x_min <= x <= x_max and y_min <= y <= y_max):
                    raise GeometryError("outside", epsg)


def check(polygons: list[Polygon], epsg: int | None = None) -> None:
    """Raises GeometryError unless every ring is drawable (``epsg``: and inside that projection's area)."""
    if not polygons or not all(polygons):
        raise GeometryError("not_polygon")
    for poly in polygons:
        for ring in poly:
            check_ring(ring)
    if epsg is not None:
        check_inside(polygons, epsg)


def read(value, epsg: int | None = None) -> list[Polygon]:
    """Parsed and checked polygons (``epsg``: also inside that projection's area);
    raises GeometryError."""
    polygons = parse(value)
    check(polygons, epsg)
    return polygons


def ring_area(ring: Ring) -> float:
    """Shoelace area of a ring, relative to its first corner so that seven-digit
    TWD97 coordinates keep their precision."""
    x0, y0 = ring[0]
    total = 0.0
    for (xa, ya), (xb, yb) in zip(ring, ring[1:] + ring[:1]):
        total += (xa - x0) * (yb - y0) - (xb - x0) * (ya - y0)
    return abs(total) / 2


def area(polygons: list[Polygon]) -> float:
    """m² of the polygons: each outline less its holes."""
    return sum(ring_area(poly[0]) - sum(ring_area(h) for h in poly[1:]) for poly in polygons)


def bounds(polygons) -> tuple[float, float, float, float]:
    """(x min, y min, x max, y max) of every point."""
    xs = [x for poly in polygons for ring in poly for x, _ in ring]
    ys = [y for poly in polygons for ring in poly for _, y in ring]
    return min(xs), min(ys), max(xs), max(ys)


def box_distance(a: tuple, b: tuple) -> float:
    """Metres between two bounding boxes (0 when they overlap)."""
    dx = max(a[0] - b[2], b[0] - a[2], 0.0)
    dy = max(a[1] - b[3], b[1] - a[3], 0.0)
    return math.hypot(dx, dy)


def label_point(ring: Ring) -> tuple[float, float]:
    """The area centroid of a ring (its corners' mean when it has no area)."""
    x0, y0 = ring[0]
    a = cx = cy = 0.0
    for (xa, ya), (xb, yb) in zip(ring, ring[1:] + ring[:1]):
        xa, ya, xb, yb = xa - x0, ya - y0, xb - x0, yb - y0
        f = xa * yb - xb * ya
        a += f
        cx += (xa + xb) * f
        cy += (ya + yb) * f
    if abs(a) < 1e-12:
        pts = ring[:-1] or ring
        return sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts)
    return x0 + cx / (3 * a), y0 + cy / (3 * a)


def nice_step(span: float, parts: int = 4) -> float:
    """A round length (1, 2 or 5 times a power of ten) near span / parts."""
    if span <= 0:
        return 1.0
    raw = span / parts
    power = 10 ** math.floor(math.log10(raw))
    for k in (1, 2, 5, 10):
        if raw <= k * power:
            return k * power
    return 10 * power
