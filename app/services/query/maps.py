"""The ``map`` (地籍圖) and ``plan`` (建物測量成果圖) displays, configured without code.

A section shown as ``map`` names in its options::

    {"map": {"geometry": "polygon_twd97",     # GeoJSON, WKT or [[x, y], ...] polygon column
             "epsg": 3826,                    # its projection (TWD97 / TWD67 TM2, app.lib.geometry)
             "label": "parcel_no",            # the label column (formatted as that column, or label_format)
             "label_format": "parcel",
             "neighbours": {"within_m": 40,   # optional: the target's other rows within N metres,
                            "match": ["section_code"]}}}   # read where these columns equal the result's

A section shown as ``plan`` names::

    {"plan": {"geometry": "plan_polygon",     # per row one part of one floor, in the plan's local metres
              "floor": "floor_label", "part": "part",
              "area": "area_m2",              # optional: the register's area of the part, checked
              "main": "主建物",                # the part counted in the building's total
              "total": "total_area_m2",       # optional: the register's building total, checked
              "site": {"geometry": "site_polygon", "epsg": 3826, "label": "site_parcel_no",
                       "label_format": "parcel"}}}   # optional: the location plan's parcel

What the section read becomes the result's drawing data (``section["map"]`` /
``section["plan"]``), stored in the snapshot with the rows, so that the page,
the print page and the PDF draw the same thing later (``figures``). A row whose
geometry cannot be drawn is named in the data's ``notes`` in plain words; the
other rows are drawn and the other sections are unaffected.
"""

from __future__ import annotations

import json
import math
import re

from flask_babel import lazy_gettext as _l

from app.lib import geometry, wgs84
from app.lib.geometry import GeometryError
from app.models.queries import FORMATS
from app.services.errors import InvalidInput
from app.services.query.output import format_value

MAX_SHAPES = 500  # polygons drawn in one map (result and neighbours); the rest is cut, and said so
MAX_NEIGHBOUR_METRES = 2000
AREA_TOLERANCE = 0.05  # m²: a part's computed area may differ from the register's by rounding only
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,99}$")


def _options(section) -> dict:
    try:
        options = json.loads(section.options) if section.options else {}
    except ValueError:
        return {}
    return options if isinstance(options, dict) else {}


def drawing(section) -> tuple[str, dict] | None:
    """("map" | "plan", its settings) for a section displayed so and configured; else None."""
    kind = section.display
    if kind not in ("map", "plan"):
        return None
    setting = _options(section).get(kind)
    return (kind, setting) if isinstance(setting, dict) and setting.get("geometry") else None


def columns_read(section) -> list[str]:
    """The columns the drawing needs besides the shown ones (geometry, labels, areas)."""
    found = drawing(section)
    if found is None:
        return []
    kind, s = found
    names = ["geometry", "label"] if kind == "map" else ["geometry", "floor", "part", "area", "total"]
    out = [s[n] for n in names if isinstance(s.get(n), str) and s[n]]
    rule = s.get("neighbours") if kind == "map" else None
    if isinstance(rule, dict) and isinstance(rule.get("match"), list):
        out += [c for c in rule["match"] if isinstance(c, str)]
    site = s.get("site") if kind == "plan" else None
    if isinstance(site, dict):
        out += [site[n] for n in ("geometry", "label") if isinstance(site.get(n), str) and site[n]]
    return out


def neighbour_rule(section) -> dict | None:
    found = drawing(section)
    if found is None or found[0] != "map":
        return None
    rule = found[1].get("neighbours")
    return rule if isinstance(rule, dict) and rule.get("within_m") else None


# --- the designers' rules ------------------------------------------------------------


def _column(value, optional: bool = False) -> bool:
    return (optional and value in (None, "")) or (isinstance(value, str) and bool(_COLUMN.match(value)))


def _epsg(value) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and value in geometry.PROJECTIONS)


def check_options(options: dict, display: str) -> None:
    """A map or plan section's settings; raises InvalidInput naming what is wrong."""
    codes = ", ".join(str(c) for c in geometry.PROJECTIONS)
    if display == "map":
        s = options.get("map")
        if not isinstance(s, dict) or not _column(s.get("geometry")) or not _column(s.get("label"), True):
            raise InvalidInput(
                _l('A map section needs "map": {"geometry": "<polygon column>", "epsg": 3826, "label": "<column>"}.')
            )
        if not _epsg(s.get("epsg")):
            raise InvalidInput(_l("The map's EPSG code must be one of %(codes)s."), codes=codes)
        if s.get("label_format", "") not in FORMATS:
            raise InvalidInput(_l("Unknown format."))
        rule = s.get("neighbours")
        if rule is not None:
            within = rule.get("within_m") if isinstance(rule, dict) else None
            match = rule.get("match", []) if isinstance(rule, dict) else None
            if (
                not isinstance(within, int | float)
                or isinstance(within, bool)
                or not 0 < within <= MAX_NEIGHBOUR_METRES
                or not isinstance(match, list)
                or not all(_column(c) for c in match)
            ):
                raise InvalidInput(
                    _l('"neighbours" needs "within_m" (metres, up to %(most)s) and "match" (columns).'),
                    most=MAX_NEIGHBOUR_METRES,
                )
    elif display == "plan":
        s = options.get("plan")
        if (
            not isinstance(s, dict)
            or not _column(s.get("geometry"))
            or not _column(s.get("floor"))
            or not all(_column(s.get(k), True) for k in ("part", "area", "total"))
            or not isinstance(s.get("main", ""), str)
        ):
            raise InvalidInput(
                _l(
                    'A plan section needs "plan": {"geometry": "<polygon column>", "floor": "<column>", "part": "<column>", "area": "<column>"}.'
                )  # noqa: E501
            )
        site = s.get("site")
        if site is not None and (
            not isinstance(site, dict)
            or not _column(site.get("geometry"))
            or not _column(site.get("label"), True)
            or site.get("label_format", "") not in FORMATS
        ):
            raise InvalidInput(_l('"site" needs "geometry" (the parcel\'s polygon column) and "epsg".'))
        if site is not None and not _epsg(site.get("epsg")):
            raise InvalidInput(_l("The map's EPSG code must be one of %(codes)s."), codes=codes)


# --- what a read becomes ----------------------------------------------------------------


def problem(exc: GeometryError) -> str:
    """The plain words for a geometry that cannot be drawn."""
    if exc.reason == "outside":
        name = geometry.PROJECTIONS[exc.epsg][0]
        return str(
            _l("its coordinates lie outside EPSG:%(epsg)s (%(name)s); they may be in another projection")
            % {"epsg": exc.epsg, "name": name}
        )
    words = {
        "empty": _l("it has no geometry"),
        "unreadable": _l("its geometry cannot be read"),
        "not_polygon": _l("its geometry is not a polygon"),
        "too_few_points": _l("its outline has fewer than three corners"),
        "not_closed": _l("its outline is not closed"),
        "self_intersecting": _l("its outline crosses itself"),
    }
    return str(words.get(exc.reason, _l("its geometry cannot be read")))


def _rings(polygons) -> list:
    return [[[round(x, 3), round(y, 3)] for x, y in ring] for poly in polygons for ring in poly[:1]] + [
        [[round(x, 3), round(y, 3)] for x, y in ring] for poly in polygons for ring in poly[1:]
    ]


def _label(row: dict, column: str | None, fmt: str) -> str:
    if not column:
        return ""
    return format_value(row.get(column), fmt)


def _label_format(section, setting: dict) -> str:
    if setting.get("label_format"):
        return setting["label_format"]
    col = next((c for c in section.columns if c.column == setting.get("label")), None)
    return col.format if col is not None else ""


class _Near:
    """The result's boxes in a grid of cells, so that telling whether a neighbour lies
    within N metres of any of them looks at the few boxes near it, not at all of them."""

    def __init__(self, boxes: list[tuple], within: float):
        self.within = within
        self.cell = max([within, 1.0] + [max(b[2] - b[0], b[3] - b[1]) for b in boxes])
        self.cells: dict[tuple[int, int], list[tuple]] = {}
        for box in boxes:
            for key in self._keys(box, 0.0):
                self.cells.setdefault(key, []).append(box)

    def _keys(self, box, grow: float):
        c = self.cell
        for i in range(math.floor((box[0] - grow) / c), math.floor((box[2] + grow) / c) + 1):
            for j in range(math.floor((box[1] - grow) / c), math.floor((box[3] + grow) / c) + 1):
                yield i, j

    def __contains__(self, box) -> bool:
        return any(
            geometry.box_distance(box, b) <= self.within
            for key in self._keys(box, self.within)
            for b in self.cells.get(key, ())
        )


def _key(polygons) -> tuple:
    return tuple(tuple(p) for poly in polygons for ring in poly for p in ring)


def _parcel(label: str, polygons, hit: bool) -> dict:
    return {"label": label, "rings": _rings(polygons), "area": round(geometry.area(polygons), 2), "hit": hit}


def map_data(section, rows: list[dict], neighbours: list[dict] | None, truncated: bool) -> dict:
    """The map of a section's rows (highlighted) among their neighbours."""
    _kind, s = drawing(section)
    epsg = s.get("epsg") or 3826
    fmt = _label_format(section, s)
    notes: list[str] = []
    parcels, boxes, keys = [], [], set()
    cut = truncated
    for row in rows:
        label = _label(row, s.get("label"), fmt)
        try:
            polygons = geometry.read(row.get(s["geometry"]), epsg)
        except GeometryError as exc:
            notes.append(
                str(_l("%(label)s is not drawn: %(problem)s.") % {"label": label or "—", "problem": problem(exc)})
            )
            continue
        key = _key(polygons)
        if key in keys:  # the same parcel once (a row per owner)
            continue
        if len(parcels) >= MAX_SHAPES:
            cut = True
            break
        keys.add(key)
        boxes.append(geometry.bounds(polygons))
        parcels.append(_parcel(label, polygons, True))
    rule = neighbour_rule(section)
    if neighbours and boxes and rule:
        near = _Near(boxes, float(rule["within_m"]))
        for row in neighbours:
            try:  # the cheap test first: most of a section's parcels are far away
                polygons = geometry.parse(row.get(s["geometry"]))
                if _key(polygons) in keys or geometry.bounds(polygons) not in near:
                    continue
                geometry.check(polygons, epsg)
            except (GeometryError, ValueError):
                continue  # a neighbour that cannot be drawn is left out (it is not what was asked)
            if len(parcels) >= MAX_SHAPES:
                cut = True
                break
            keys.add(_key(polygons))
            parcels.append(_parcel(_label(row, s.get("label"), fmt), polygons, False))
    if not any(p["hit"] for p in parcels) and rows:
        notes.insert(0, str(_l("Nothing on this map can be drawn.")))
    if cut:
        notes.append(
            str(_l("The map was cut at %(most)s parcels; narrow the query to see all.") % {"most": len(parcels)})
        )
    drawn = {"epsg": epsg, "crs": geometry.PROJECTIONS[epsg][0], "parcels": parcels, "notes": notes, "cut": cut}
    if boxes:  # the queried parcels' centre in WGS84, for a link to the county's GIS (GIS_LINK_URL)
        x = (min(b[0] for b in boxes) + max(b[2] for b in boxes)) / 2
        y = (min(b[1] for b in boxes) + max(b[3] for b in boxes)) / 2
        drawn["centre_wgs84"] = list(wgs84.to_wgs84(epsg, x, y))
    return drawn


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def plan_data(section, rows: list[dict]) -> dict:
    """Per floor, its parts' polygons and areas (computed, and checked against the
    register's), the floor totals, the building's total and the location plan."""
    _kind, s = drawing(section)
    main = s.get("main") or "主建物"
    notes: list[str] = []
    floors: dict[str, dict] = {}
    registered_total = None
    site, site_unread = None, True
    for row in rows:
        floor = str(row.get(s["floor"]) or "").strip() or "—"
        part = str(row.get(s.get("part") or "") or "").strip() if s.get("part") else ""
        part = part or main
        registered = _number(row.get(s["area"])) if s.get("area") else None
        if s.get("total") and registered_total is None:
            registered_total = _number(row.get(s["total"]))
        if site_unread and isinstance(s.get("site"), dict):  # the first row's parcel (one note if bad)
            site, site_unread = _site(row, s["site"], notes), False
        try:
            polygons = geometry.read(row.get(s["geometry"]))
        except GeometryError as exc:
            notes.append(
                str(_l("%(label)s is not drawn: %(problem)s.") % {"label": f"{floor} {part}", "problem": problem(exc)})
            )
            continue
        computed = round(geometry.area(polygons), 2)
        if registered is not None and abs(computed - registered) > AREA_TOLERANCE:
            notes.append(
                str(
                    _l("%(label)s: the drawn area %(drawn).2f m² differs from the register's %(registered).2f m².")
                    % {"label": f"{floor} {part}", "drawn": computed, "registered": registered}
                )
            )
        entry = floors.setdefault(floor, {"floor": floor, "parts": [], "total": 0.0})
        entry["parts"].append({"part": part, "main": part == main, "rings": _rings(polygons), "area": computed,
                               "registered": registered})  # fmt: skip
        entry["total"] = round(entry["total"] + computed, 2)
    main_total = round(sum(p["area"] for f in floors.values() for p in f["parts"] if p["main"]), 2)
    annex_total = round(sum(p["area"] for f in floors.values() for p in f["parts"] if not p["main"]), 2)
    if registered_total is not None and floors and abs(main_total - registered_total) > AREA_TOLERANCE:
        notes.append(
            str(
                _l("The drawn total %(drawn).2f m² differs from the register's total area %(registered).2f m².")
                % {"drawn": main_total, "registered": registered_total}
            )
        )
    if rows and not floors:
        notes.insert(0, str(_l("Nothing on this plan can be drawn.")))
    return {"main": main, "floors": list(floors.values()), "main_total": main_total, "annex_total": annex_total,
            "registered_total": registered_total, "site": site, "notes": notes}  # fmt: skip


def _site(row: dict, setting: dict, notes: list) -> dict | None:
    epsg = setting.get("epsg") or 3826
    label = _label(row, setting.get("label"), setting.get("label_format", ""))
    try:
        polygons = geometry.read(row.get(setting["geometry"]), epsg)
    except GeometryError as exc:
        notes.append(str(_l("The location plan is not drawn: %(problem)s.") % {"problem": problem(exc)}))
        return None
    return {"label": label, "rings": _rings(polygons), "epsg": epsg, "crs": geometry.PROJECTIONS[epsg][0]}
