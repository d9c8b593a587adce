"""Cadastral maps (地籍圖) and building survey plans (建物測量成果圖) in query
results and printouts (issue 17, items 2 to 5): the geometry measured and
checked, the map and plan drawn as SVG on the page and as vector graphics in
the PDF (rasterised with pdftoppm and looked at), bad geometry said in plain
words while the other sections still show, and a map section made through the
API alone."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from app.lib import geometry
from app.lib.geometry import GeometryError
from tests.conftest import api_token, bearer, login, try_and_grant

ARTIFACTS = Path(__file__).parent / "artifacts"
SQUARE = [[305000.0, 2651000.0], [305020.0, 2651000.0], [305020.0, 2651030.0], [305000.0, 2651030.0],
          [305000.0, 2651000.0]]  # fmt: skip


def run(client, token, form, params, item, pick=None, status=200):
    body = {"form": form, "case_no": "1151203-0017", "reason": "", "business_item": item, "params": params}
    if pick is not None:
        body["pick"] = pick
    r = client.post("/api/v1/query/run", json=body, headers=bearer(token))
    assert r.status_code == status, r.json
    return r.json


def section(result, title):
    s = next(s for s in result["sections"] if s["title"] == title)
    assert s["error"] is None, s["error"]
    return s


# --- geometry -------------------------------------------------------------------------------


def test_the_area_of_a_twd97_parcel_is_its_shoelace_area_in_square_metres():
    assert geometry.area(geometry.read(SQUARE, 3826)) == pytest.approx(600.0)
    # the same parcel as GeoJSON and as WKT, and with a 5 x 5 m hole
    gj = json.dumps({"type": "Polygon", "coordinates": [SQUARE]})
    wkt = "POLYGON ((" + ", ".join(f"{x} {y}" for x, y in SQUARE) + "))"
    assert geometry.area(geometry.read(gj, 3826)) == pytest.approx(600.0)
    assert geometry.area(geometry.read(wkt, 3826)) == pytest.approx(600.0)
    hole = [[305005.0, 2651005.0], [305010.0, 2651005.0], [305010.0, 2651010.0], [305005.0, 2651010.0],
            [305005.0, 2651005.0]]  # fmt: skip
    multi = (
        "MULTIPOLYGON ((("
        + ", ".join(f"{x} {y}" for x, y in SQUARE)
        + "), ("
        + ", ".join(f"{x} {y}" for x, y in hole)
        + ")))"
    )
    assert geometry.area(geometry.read(multi, 3826)) == pytest.approx(575.0)
    assert geometry.bounds(geometry.read(SQUARE)) == (305000.0, 2651000.0, 305020.0, 2651030.0)
    assert geometry.box_distance((0, 0, 10, 10), (13, 14, 20, 20)) == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty"),
        ("not a polygon", "unreadable"),
        ('{"type": "Point", "coordinates": [1, 2]}', "not_polygon"),
        (SQUARE[:-1], "not_closed"),
        ([[305000, 2651000], [305020, 2651030], [305020, 2651000], [305000, 2651030], [305000, 2651000]],
         "self_intersecting"),
        ([[121.5, 25.0], [121.6, 25.0], [121.6, 25.1], [121.5, 25.0]], "outside"),  # degrees, not metres
        ([[y, x] for x, y in SQUARE], "outside"),  # x and y swapped
    ],
)  # fmt: skip
def test_bad_geometry_is_refused_with_its_reason(value, reason):
    with pytest.raises(GeometryError) as caught:
        geometry.read(value, 3826)
    assert caught.value.reason == reason


def test_the_demo_worlds_polygons_match_their_registered_areas():
    from seed_data.world import build_world

    world = build_world()
    for parcel in world.land_parcels[:20]:
        assert geometry.area(geometry.read(parcel.polygon_twd97, 3826)) == pytest.approx(parcel.area_m2, abs=0.01)
    for floor in world.building_floors[:20]:
        assert geometry.area(geometry.read(floor.plan_polygon)) == pytest.approx(floor.area_m2, abs=0.01)


def test_a_map_figure_fits_its_parcels_and_its_scale_bar_is_a_round_length():
    from app.services.query import figures

    data = {"epsg": 3826, "crs": "TWD97 TM2 121",
            "parcels": [{"label": "0018-0001", "rings": [SQUARE], "area": 600.0, "hit": True}]}  # fmt: skip
    fig = figures.map_figure(data)
    hit = next(i for i in fig.items if isinstance(i, figures.Shape) and i.kind == "hit")
    xs = [x for x, _ in hit.rings[0]]
    ys = [y for _, y in hit.rings[0]]
    assert 0 < min(xs) < max(xs) < fig.width and 0 < min(ys) < max(ys) < fig.height
    # 30 m tall parcel with 30 % margin either side fills the 478-unit height: 1/s metres per unit
    assert (max(ys) - min(ys)) * fig.metres_per_unit == pytest.approx(30.0)
    texts = [i.text for i in fig.items if isinstance(i, figures.Text)]
    assert "0018-0001" in texts and "N" in texts and any(t.endswith(" m") for t in texts)
    assert figures.scale_text(1.0) == "比例尺 1:2,800"  # 1 m per point = 2,834.6 m per metre of paper


def test_a_plan_says_which_part_differs_from_the_register_and_which_cannot_be_drawn(app):
    from types import SimpleNamespace

    from app.services.query import maps

    options = {"plan": {"geometry": "g", "floor": "floor", "part": "part", "area": "area", "total": "total",
                        "site": {"geometry": "site", "epsg": 3826, "label": "lot", "label_format": "parcel"}}}  # fmt: skip
    section = SimpleNamespace(display="plan", options=json.dumps(options), columns=[])
    ten_by_eight = [[0, 0], [10, 0], [10, 8], [0, 8], [0, 0]]
    rows = [
        {"floor": "一層", "part": "主建物", "g": json.dumps(ten_by_eight), "area": 80.0, "total": 160.0,
         "site": json.dumps(SQUARE), "lot": "00180001"},
        {"floor": "二層", "part": "主建物", "g": json.dumps(ten_by_eight), "area": 75.5, "total": 160.0,
         "site": json.dumps(SQUARE), "lot": "00180001"},
        {"floor": "二層", "part": "陽台", "g": json.dumps([[0, -1], [10, -1], [10, 0], [0, 0]]), "area": 10.0,
         "total": 160.0, "site": json.dumps(SQUARE), "lot": "00180001"},
    ]  # fmt: skip
    with app.test_request_context():
        plan = maps.plan_data(section, rows)
    assert [f["floor"] for f in plan["floors"]] == ["一層", "二層"]
    assert plan["main_total"] == 160.0 and plan["registered_total"] == 160.0 and plan["annex_total"] == 0
    assert plan["site"]["label"] == "0018-0001"
    notes = " ".join(plan["notes"])
    assert "二層 主建物：依圖形計算的面積 80.00 m² 與登記面積 75.50 m² 不符。" in notes
    assert "二層 陽台 未繪出：界線未閉合。" in notes
    assert "總面積" not in notes  # the building's total is as registered


# --- through the API and the pages -----------------------------------------------------------


def test_the_land_form_shows_the_parcel_highlighted_among_its_neighbours_with_labels(client):
    token = api_token(client, "clerk")
    result = run(client, token, "land.parcel", {"section_name": "中正段", "parcel_no": "18-1"}, "TAX-LAND")
    assert result["outcome"] == "ok"
    drawn = section(result, "地籍圖")
    assert drawn["display"] == "map" and drawn["map"]["epsg"] == 3826 and drawn["map"]["notes"] == []
    hits = [p for p in drawn["map"]["parcels"] if p["hit"]]
    neighbours = [p for p in drawn["map"]["parcels"] if not p["hit"]]
    assert [p["label"] for p in hits] == ["0018-0001"] and len(neighbours) >= 3
    marking = section(result, "土地標示部")
    area = marking["rows"][0][marking["columns"].index("面積")]
    assert f"{hits[0]['area']:,.2f} m²" == area  # computed from the polygon = the register's area
    assert "0018-0000" in {p["label"] for p in neighbours}


def test_the_building_form_shows_each_floors_parts_and_the_total_checked_against_the_register(client):
    token = api_token(client, "clerk")
    result = run(client, token, "building.unit", {"section_name": "中正段", "building_no": "00173-000"}, "TAX-HOUSE")
    plan = section(result, "建物測量成果圖")["plan"]
    assert plan["notes"] == [] and plan["floors"]
    marking = section(result, "建物標示部")
    total = marking["rows"][0][marking["columns"].index("總面積")]
    assert f"{plan['main_total']:,.2f} m²" == total == f"{plan['registered_total']:,.2f} m²"
    for floor in plan["floors"]:
        assert floor["total"] == pytest.approx(sum(p["area"] for p in floor["parts"]), abs=0.011)
        assert all(p["area"] == pytest.approx(p["registered"], abs=0.01) for p in floor["parts"])
    assert plan["site"]["label"] == "0018-0001" and plan["site"]["rings"]


def _pdf_words(pdf: Path) -> list[tuple[int, str, float, float, float, float]]:
    """(page, word, xMin, yMin, xMax, yMax) in points from the top-left, by pdftotext -bbox."""
    out = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    words, page = [], 0
    for line in out.splitlines():
        if "<page " in line:
            page += 1
        m = re.search(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>', line)
        if m:
            words.append((page, m.group(5), *(float(m.group(i)) for i in range(1, 5))))
    return words


def _result_page_and_pdf(app, client, form, params, item, name):
    """Run ``form`` through the API, then open its result page and PDF as the clerk would."""
    from app.extensions import db
    from app.models.queries import QueryLog

    token = api_token(client, "clerk")
    result = run(client, token, form, params, item)
    login(client, "clerk")
    page = client.get(f"/query/result/{result['query_id']}")
    assert page.status_code == 200
    pdf = client.get(f"/query/result/{result['query_id']}/pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.pdf"
    path.write_bytes(pdf.data)
    with app.app_context():
        stored = json.loads(db.session.get(QueryLog, result["query_id"]).snapshot)
    return result, page.text, path, stored


def test_the_land_forms_page_and_pdf_draw_the_map_with_the_parcel_where_its_polygon_is(app, client):
    from app.services import printout
    from app.services.query import figures

    result, html, pdf, stored = _result_page_and_pdf(
        app, client, "land.parcel", {"section_name": "中正段", "parcel_no": "18-1"}, "TAX-LAND", "map-land-parcel"
    )
    # The page: an inline SVG, no script, the parcel highlighted and labelled among labelled neighbours.
    svg = re.search(r'<svg[^>]*class="query-figure".*?</svg>', html, re.S).group(0)
    assert "<script" not in svg and "http://" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert len(re.findall(r'<path class="hit"', svg)) == 1 and len(re.findall(r'<path class="neighbour"', svg)) >= 3
    assert re.search(r'<path class="hit"[^>]*><title>0018-0001</title>', svg)
    assert ">0018-0001</text>" in svg and ">0018-0000</text>" in svg and ">N</text>" in svg
    assert "EPSG:3826" in svg and re.search(r">\d+ m</text>", svg)  # the CRS and the scale bar
    assert re.search(r">2,65\d,\d{3}</text>", svg) and re.search(r">30\d,\d{3}</text>", svg)  # grid ticks, metres

    # The print page draws the same map; the public verification page shows no owner, no map.
    printed = client.get(f"/query/result/{result['query_id']}/print").text
    assert 'class="query-figure"' in printed and ">0018-0001</text>" in printed
    client.get("/logout/")
    verify = client.get(f"/verify/{result['verification_code']}").text
    assert "王小明" not in verify and "林美惠" not in verify and "<svg" not in verify.split("</nav>")[-1]

    # The PDF: the labels are text, its scale is stated, and the highlight lies in the parcel's box.
    words = _pdf_words(pdf)
    text = " ".join(w[1] for w in words)
    assert "地籍圖" in text and "比例尺" in text and "EPSG:3826" in text
    drawn = next(s for s in stored["sections"] if s["title"] == "地籍圖")
    fig = figures.map_figure(drawn["map"])
    k = printout.FRAME_W / fig.width
    label = next(i for i in fig.items if isinstance(i, figures.Text) and i.text == "0018-0001")
    hit = next(i for i in fig.items if isinstance(i, figures.Shape) and i.kind == "hit")
    # Where the figure lies on the paper: its left from the label's centre (drawn centred), its top
    # from the baselines of two texts of known place and size (the label and the CRS caption).
    size = 10.5 * k
    page_no, _w, x0, _y0, x1, label_bottom = next(
        w for w in words if w[1] == "0018-0001" and abs(w[5] - w[3] - size) < 0.05
    )
    caption = next(w for w in words if w[0] == page_no and "EPSG:3826" in w[1] and abs(w[5] - w[3] - 8 * k) < 0.05)
    crs = next(i for i in fig.items if isinstance(i, figures.Text) and "EPSG:3826" in i.text)
    left = (x0 + x1) / 2 - label.x * k
    descent = ((label_bottom - caption[5]) - (label.y - crs.y) * k) / (
        size - 8 * k
    )  # box bottom below baseline, per pt
    top = caption[5] - crs.y * k - descent * 8 * k
    xs, ys = [x for x, _ in hit.rings[0]], [y for _, y in hit.rings[0]]
    box = (left + min(xs) * k, top + min(ys) * k, left + max(xs) * k, top + max(ys) * k)
    png = ARTIFACTS / "map-land-parcel-pdf"
    subprocess.run(["pdftoppm", "-f", str(page_no), "-l", str(page_no), "-r", "100", "-png", "-singlefile",
                    str(pdf), str(png)], check=True)  # fmt: skip
    image = Image.open(f"{png}.png").convert("RGB")
    dpi = 100 / 72
    fig_box = [int(v * dpi) for v in (left, top, left + fig.width * k, top + fig.height * k)]
    red = [
        (x, y)
        for y in range(max(fig_box[1], 0), min(fig_box[3], image.height))
        for x in range(max(fig_box[0], 0), min(fig_box[2], image.width))
        if (lambda p: p[0] > 110 and p[1] < 90 and p[2] < 90)(image.getpixel((x, y)))
    ]
    assert len(red) > 200  # the parcel's outline and label are drawn
    tolerance = 6  # pixels: line width and placement by the word's box
    found = (min(x for x, _ in red), min(y for _, y in red), max(x for x, _ in red), max(y for _, y in red))
    expected = tuple(v * dpi for v in box)
    assert expected[0] - tolerance <= found[0] and found[2] <= expected[2] + tolerance, (found, expected)
    assert expected[1] - tolerance <= found[1] and found[3] <= expected[3] + tolerance, (found, expected)
    # and the outline is that parcel's: its drawn box is the polygon's box (not a smaller or larger one)
    assert all(abs(f - e) <= tolerance for f, e in zip(found, expected)), (found, expected)


def test_the_building_forms_page_and_pdf_draw_each_floor_with_its_areas_and_the_location_plan(app, client):
    result, html, pdf, stored = _result_page_and_pdf(
        app, client, "building.unit", {"section_name": "中正段", "building_no": "00173-000"}, "TAX-HOUSE",
        "plan-building-unit",
    )  # fmt: skip
    plan = next(s for s in stored["sections"] if s["title"] == "建物測量成果圖")["plan"]
    svg = re.search(r'<svg[^>]*class="query-figure".*?</svg>', html, re.S).group(0)
    floors = [f["floor"] for f in plan["floors"]]
    for floor in plan["floors"]:
        assert f">{floor['floor']}　計 {floor['total']:,.2f} m²</text>" in svg
    assert len(re.findall(r'<path class="part"', svg)) == sum(
        1 for f in plan["floors"] for p in f["parts"] if p["main"]
    )
    assert ">位置圖（示意）0018-0001</text>" in svg and '<path class="footprint"' in svg
    assert f"主建物總面積 {plan['main_total']:,.2f} m²（登記 {plan['registered_total']:,.2f} m²）" in svg
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "建物測量成果圖" in text and "位置圖（示意）" in text and "比例尺" in text and "主建物總面積" in text
    assert all(f in text for f in floors)
    page_no = next(n for n, page in enumerate(text.split("\f"), start=1) if "位置圖" in page)
    png = ARTIFACTS / "plan-building-unit-pdf"
    subprocess.run(["pdftoppm", "-f", str(page_no), "-l", str(page_no), "-r", "90", "-png", "-singlefile",
                    str(pdf), str(png)], check=True)  # fmt: skip
    image = Image.open(f"{png}.png").convert("RGB")
    blue = sum(1 for p in image.get_flattened_data() if p[2] > p[0] + 60)  # the main building's outlines and fills
    assert blue > 500


def test_the_map_and_plan_demo_forms_name_one_property_and_draw_only_the_picked_one(client):
    token = api_token(client, "clerk")
    # 地籍圖 of 東平段 / 6: two 小段 hold a parcel 6; the pick draws one, among its own 小段's parcels.
    first = run(client, token, "land.map", {"section_name": "東平段", "parcel_no": "6"}, "TAX-LAND")
    assert first["outcome"] == "candidates" and first["sections"] == []
    sub = first["candidates"]["columns"].index("小段")
    picked = next(r for r in first["candidates"]["rows"] if r["values"][sub] == "二小段")
    second = run(
        client, token, "land.map", {"section_name": "東平段", "parcel_no": "6"}, "TAX-LAND", pick=picked["pick"]
    )
    drawn = section(second, "地籍圖")
    assert [p["label"] for p in drawn["map"]["parcels"] if p["hit"]] == ["0006-0000"]
    assert all("二小段" in row for row in drawn["rows"]) and drawn["map"]["notes"] == []
    # 建物測量成果圖 of 00135-000: in 西區 and in 東平鄉; the pick's plan only.
    first = run(client, token, "building.plan", {"building_no": "00135-000"}, "TAX-HOUSE")
    assert first["outcome"] == "candidates" and len(first["candidates"]["rows"]) == 2
    east = next(r for r in first["candidates"]["rows"] if "東平鄉" in r["values"])
    second = run(client, token, "building.plan", {"building_no": "00135-000"}, "TAX-HOUSE", pick=east["pick"])
    marking = section(second, "建物標示")
    plan = section(second, "建物測量成果圖")["plan"]
    assert len(marking["rows"]) == 1 and "東平鄉" in marking["rows"][0]
    total = marking["rows"][0][marking["columns"].index("總面積")]
    assert f"{plan['main_total']:,.2f} m²" == total and plan["notes"] == []


# --- a map made through the API alone, and bad geometry ------------------------------------

BLOCK_X, BLOCK_Y = 305000.0, 2651000.0


def _square(col: int, row: int, size: float = 18.0) -> list:
    x, y = BLOCK_X + col * 20, BLOCK_Y + row * 20
    return [[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]


@pytest.fixture
def survey_db():
    """The county's GIS office keeps parcels as GeoJSON in its own PostgreSQL: block A of
    25 parcels (5 x 5, 20 m apart) with three broken ones, and block B of 600 parcels."""
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from tests.conftest import PG_ADMIN_URL

    name = f"gis_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name)
    rows = []
    for n in range(25):
        ring = _square(n % 5, n // 5)
        rows.append(("A", f"{n + 1:04d}0000", {"type": "Polygon", "coordinates": [ring]}))
    rows[12] = ("A", "00130000", {"type": "Polygon", "coordinates": [_square(2, 2)[:-1]]})  # not closed
    bow = _square(3, 3)
    rows[18] = ("A", "00190000", {"type": "Polygon", "coordinates": [[bow[0], bow[2], bow[1], bow[3], bow[0]]]})
    rows[6] = ("A", "00070000", {"type": "Polygon", "coordinates": [[[121.5, 25.0], [121.6, 25.0], [121.6, 25.1],
                                                                     [121.5, 25.0]]]})  # degrees  # fmt: skip
    for n in range(600):
        rows.append(("B", f"{n + 1:04d}0000", {"type": "Polygon", "coordinates": [_square(n % 30, 10 + n // 30)]}))
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text("CREATE TABLE parcel_geo (block varchar(2), parcel_no varchar(8), area_m2 numeric, geojson text)")
        )
        conn.execute(
            text("INSERT INTO parcel_geo VALUES (:b, :p, 324, :g)"),
            [{"b": b, "p": p, "g": json.dumps(g)} for b, p, g in rows],
        )
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _post(client, token, path, body, status=201):
    r = client.post(path, json=body, headers=bearer(token))
    assert r.status_code == status, (path, r.json)
    return r.json.get("id")


def test_a_designer_makes_a_map_form_through_the_api_and_bad_geometry_is_said_in_plain_words(app, client, survey_db):
    import uuid

    admin = api_token(client, "admin")
    agencies = {
        a["code"]: a["id"]
        for a in client.get("/api/v1/agencies/?q=(page_size:100)", headers=bearer(admin)).json["result"]
    }
    tag = uuid.uuid4().hex[:6]
    source = _post(client, admin, "/api/v1/sources/", {
        "code": f"GIS-{tag}", "name": "縣府地理資訊系統", "kind": "sql", "agency": agencies["LAND"],
        "host": survey_db.host, "port": survey_db.port or 5432, "database": survey_db.database,
        "account": survey_db.username, "secret": "not-needed-with-trust",
        "options": '{"dialect": "postgresql"}', "timeout": 5, "row_cap": 500, "enabled": True,
    })  # fmt: skip
    item = _post(client, admin, "/api/v1/business-items/", {"code": f"GIS-{tag}", "name": "地籍圖查詢", "active": True})
    with app.app_context():
        from flask import current_app

        clerk_role = current_app.appbuilder.sm.find_role("Clerk").id
    form = _post(client, admin, "/api/v1/query-forms/", {
        "code": f"gis.map.{tag}", "title": "地籍圖（地理資訊系統）", "agency": agencies["LAND"], "active": True,
        "sort_order": 91, "business_items": [item],
    })  # fmt: skip
    for order, name in enumerate(("block", "parcel_no")):
        _post(client, admin, "/api/v1/form-inputs/", {"form": form, "name": name, "label": name, "type": "text",
                                                     "required": name == "block", "sort_order": order,
                                                     "max_length": 8})  # fmt: skip
    map_options = {"map": {"geometry": "geojson", "epsg": 3826, "label": "parcel_no", "label_format": "parcel",
                           "neighbours": {"within_m": 5, "match": ["block"]}}}  # fmt: skip
    # A map without its geometry column, or in a projection it cannot draw, is refused and nothing stored.
    for bad in ({"map": {"label": "parcel_no"}}, {"map": {**map_options["map"], "epsg": 4326}},
                {"map": {**map_options["map"], "neighbours": {"within_m": -1}}}):  # fmt: skip
        _post(client, admin, "/api/v1/form-sections/", {"form": form, "title": "地籍圖", "source": source,
                                                       "target": "parcel_geo", "display": "map",
                                                       "options": json.dumps(bad)}, status=400)  # fmt: skip
    sections = {}
    for order, (title, display, options) in enumerate(
        [("地號清單", "table", None), ("地籍圖", "map", json.dumps(map_options))]
    ):
        sections[title] = _post(client, admin, "/api/v1/form-sections/", {
            "form": form, "title": title, "source": source, "target": "parcel_geo", "display": display,
            "order_by": "parcel_no", "sort_order": order, **({"options": options} if options else {}),
        })  # fmt: skip
        _post(client, admin, "/api/v1/section-filters/", {"section": sections[title], "column": "block", "op": "eq",
                                                         "input_name": "block"})  # fmt: skip
        _post(client, admin, "/api/v1/section-filters/", {"section": sections[title], "column": "parcel_no",
                                                         "op": "prefix", "input_name": "parcel_no"})  # fmt: skip
        _post(client, admin, "/api/v1/section-columns/", {"section": sections[title], "column": "parcel_no",
                                                         "label": "地號", "format": "parcel", "mask": "",
                                                         "sort_order": 0})  # fmt: skip

    grants = {"granted_agencies": [agencies["TAX"]], "granted_roles": [clerk_role]}
    try_and_grant(client, admin, form, {"block": "A", "parcel_no": "00090000"}, grants)  # tried, then granted

    clerk = api_token(client, "clerk")
    item_code = f"GIS-{tag}"
    # A good parcel: highlighted among its neighbours within 5 m; the broken neighbours are left out.
    good = run(client, clerk, f"gis.map.{tag}", {"block": "A", "parcel_no": "00090000"}, item_code)
    drawn = section(good, "地籍圖")["map"]
    assert [p["label"] for p in drawn["parcels"] if p["hit"]] == ["0009-0000"]
    assert sorted(p["label"] for p in drawn["parcels"] if not p["hit"]) == [
        "0003-0000", "0004-0000", "0005-0000", "0008-0000", "0010-0000", "0014-0000", "0015-0000"]  # fmt: skip
    assert drawn["notes"] == []
    # Broken parcels: the map says why in plain words; the rows and the other section still show.
    for parcel_no, words in (("00130000", "界線未閉合"), ("00190000", "界線自我交叉"),
                             ("00070000", "EPSG:3826（TWD97 TM2 121）範圍之外")):  # fmt: skip
        result = run(client, clerk, f"gis.map.{tag}", {"block": "A", "parcel_no": parcel_no}, item_code)
        assert result["outcome"] == "ok"
        assert section(result, "地號清單")["rows"] and section(result, "地籍圖")["rows"]
        notes = section(result, "地籍圖")["map"]["notes"]
        assert any(words in n for n in notes), notes
        assert "本地籍圖沒有可繪出的圖形。" in notes
    login(client, "clerk")
    page = client.get(f"/query/result/{result['query_id']}").text
    assert "EPSG:3826（TWD97 TM2 121）範圍之外" in page and "地號清單" in page and 'class="query-figure"' not in page
    assert client.get(f"/query/result/{result['query_id']}/pdf").status_code == 200
    # 600 parcels: the map draws the source's row cap (500) and says it was cut.
    many = run(client, clerk, f"gis.map.{tag}", {"block": "B", "parcel_no": "0"}, item_code)
    drawn = section(many, "地籍圖")
    assert drawn["truncated"] is True and len(drawn["map"]["parcels"]) == 500 and drawn["map"]["cut"] is True
    assert any("繪至 500 筆即截斷" in n for n in drawn["map"]["notes"])
    pdf = client.get(f"/query/result/{many['query_id']}/pdf")
    assert pdf.status_code == 200
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "map-500-parcels.pdf").write_bytes(pdf.data)
    text = subprocess.run(["pdftotext", str(ARTIFACTS / "map-500-parcels.pdf"), "-"], capture_output=True, text=True,
                          check=True).stdout  # fmt: skip
    assert "繪至 500 筆即截斷" in text and "比例尺" in text
    subprocess.run(["pdftoppm", "-f", "1", "-l", "1", "-r", "70", "-png", "-singlefile",
                    str(ARTIFACTS / "map-500-parcels.pdf"), str(ARTIFACTS / "map-500-parcels-pdf")], check=True)  # fmt: skip


def test_a_map_links_its_parcels_to_the_county_gis_in_wgs84_when_the_operators_set_one(app, client, monkeypatch):
    from pyproj import Transformer

    token = api_token(client, "clerk")
    result = run(client, token, "land.parcel", {"section_name": "中正段", "parcel_no": "18-1"}, "TAX-LAND")
    drawn = section(result, "地籍圖")["map"]
    lon, lat = drawn["centre_wgs84"]
    assert 119.0 < lon < 122.5 and 21.8 < lat < 25.4  # on Taiwan
    # Back to TWD97 it is the middle of the queried parcel's box (not a neighbour's).
    [hit] = [p for p in drawn["parcels"] if p["hit"]]
    xs = [x for ring in hit["rings"] for x, _y in ring]
    ys = [y for ring in hit["rings"] for _x, y in ring]
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:3826", always_xy=True).transform(lon, lat)
    assert abs(x - (min(xs) + max(xs)) / 2) < 0.05 and abs(y - (min(ys) + max(ys)) / 2) < 0.05
    page = app.test_client()
    login(page, "clerk")
    stored = page.get(f"/query/result/{result['query_id']}")
    assert "query-gis-link" not in stored.text  # no GIS configured: no link
    monkeypatch.setitem(app.config, "GIS_LINK_URL", "https://gis.county.example/map?x={lon}&y={lat}&z=19")
    stored = page.get(f"/query/result/{result['query_id']}")
    assert f'href="https://gis.county.example/map?x={lon:.7f}&amp;y={lat:.7f}&amp;z=19"' in stored.text
    assert "在縣府地理資訊系統開啟此位置" in stored.text
