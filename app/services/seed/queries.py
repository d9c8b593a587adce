"""Demo seeding of the query gateway: the five external systems as data
sources, the business items, and the demo forms — all as configuration, the
way an administrator would enter them on the screens (demo and tests only)."""

from __future__ import annotations

import json
from pathlib import Path

from flask import current_app
from sqlalchemy import select

from app.models.org import Agency
from app.models.queries import BusinessItem, FormInput, FormSection, QueryForm, SectionColumn, SectionFilter
from app.models.sources import DataSource

# code, name, agency whose duty it is (None: county-wide, every agency's clerks are offered it;
# handling a household change is every receiving agency's duty)
BUSINESS_ITEMS = [
    ("TAX-LAND", "地價稅查核", "TAX"),
    ("TAX-HOUSE", "房屋稅查核", "TAX"),
    ("TAX-VEHICLE", "使用牌照稅查核", "TAX"),
    ("TAX-EXEMPT", "稅捐減免審核", "TAX"),
    ("SOC-AID", "社會救助資格審核", "SOCIAL"),
    ("SOC-DISABLED", "身心障礙補助審核", "SOCIAL"),
    ("SOC-SENIOR", "敬老津貼審核", "SOCIAL"),
    ("HH-NOTIFY", "戶籍異動通報處理", None),
    ("LAND-REG", "地籍登記審查", "LAND"),
]


def _sources(files: Path, sim_url: str) -> list[dict]:
    vehicles_layout = json.loads((files / "vehicles.layout.json").read_text(encoding="utf-8"))
    return [
        {"code": "LAND-DB", "name": "地政系統（土地、建物）", "kind": "sql", "agency": "LAND",
         "database": str(files / "land.db"), "options": {"dialect": "sqlite"}},
        {"code": "SOCIAL-DB", "name": "社政系統（福利身分）", "kind": "sql", "agency": "SOCIAL",
         "database": str(files / "social.db"), "options": {"dialect": "sqlite"}},
        {"code": "TAX-FILE", "name": "財稅所得資料（Big5 文字檔）", "kind": "textfile", "agency": "TAX",
         "path": str(files / "tax_income.csv"),
         "options": {"format": "csv", "encoding": "cp950", "key_columns": ["統一編號/身分證號"]}},
        {"code": "MOTOR-FILE", "name": "監理車籍資料（固定長度檔）", "kind": "textfile", "agency": "MOTOR",
         "path": str(files / "vehicles.txt"),
         "options": {"format": "fixed", "encoding": "utf-8", "layout": vehicles_layout, "key_columns": ["owner_id_no", "plate"]}},
        {"code": "BIZ-API", "name": "工商登記網路服務", "kind": "rest", "agency": None,
         "url": f"{sim_url}/business", "options": {"rows_path": ""}},
        {"code": "HH-EGATE", "name": "戶役政電子閘門", "kind": "egate", "agency": None, "url": f"{sim_url}/egate"},
    ]  # fmt: skip


def _cols(*spec):
    """("column", "label", mask, format, (agency codes...)) -> column dicts."""
    out = []
    for item in spec:
        column, label, *rest = item
        out.append({"column": column, "label": label, "mask": rest[0] if rest else "",
                    "format": rest[1] if len(rest) > 1 else "", "agencies": rest[2] if len(rest) > 2 else ()})  # fmt: skip
    return out


PERSON_COLUMNS = _cols(
    ("name", "姓名"), ("id_no", "統一編號", "last4"), ("sex", "性別"), ("birth_date", "出生日期", "", "roc_date"),
    ("relation", "稱謂"), ("household_no", "戶號"), ("address", "戶籍地址"), ("father", "父"), ("mother", "母"),
    ("spouse", "配偶"), ("birthplace", "出生地"), ("status", "狀態"),
)  # fmt: skip
MEMBER_COLUMNS = _cols(
    ("relation", "稱謂"), ("name", "姓名"), ("id_no", "統一編號", "last4"), ("sex", "性別"),
    ("birth_date", "出生日期", "", "roc_date"), ("status", "狀態"),
)  # fmt: skip
WELFARE_COLUMNS = _cols(
    ("welfare_label", "福利身分別"), ("valid_from", "核定日期", "", "roc_date"), ("valid_to", "有效期限", "", "roc_date"),
    ("district", "區域"),
)  # fmt: skip
LAND_MARKING = _cols(
    ("section_name", "段"), ("subsection_name", "小段"), ("parcel_no", "地號", "", "parcel"), ("district", "鄉鎮市區"),
    ("land_category", "地目"), ("area_m2", "面積", "", "area"), ("zoning", "使用分區"), ("use_class", "使用地類別"),
    ("announced_value", "公告土地現值（元/㎡）", "", "number"), ("announced_price", "公告地價（元/㎡）", "", "number"),
    ("reg_date", "登記日期", "", "roc_date"), ("reg_reason", "登記原因"),
)  # fmt: skip
LAND_OWNERSHIP = _cols(
    ("section_name", "段"), ("subsection_name", "小段"), ("parcel_no", "地號", "", "parcel"), ("reg_order", "登記次序"), ("reg_date", "登記日期", "", "roc_date"),
    ("reg_reason", "登記原因"), ("owner_name", "所有權人"), ("owner_id_no", "統一編號", "last4"),
    ("owner_address", "住址"), ("share", "權利範圍"), ("certificate_no", "權狀字號"),
)  # fmt: skip
BUILDING_MARKING = _cols(
    ("section_name", "段"), ("subsection_name", "小段"), ("district", "鄉鎮市區"), ("building_no", "建號", "", "building"),
    ("door_address", "建物門牌"), ("located_parcels", "建物坐落地號", "", "parcel"), ("main_use", "主要用途"),
    ("main_material", "主要建材"), ("floors_total", "層數"), ("total_area_m2", "總面積", "", "area"),
    ("completion_date", "建築完成日期", "", "roc_date"), ("annex", "附屬建物"),
)  # fmt: skip
BUILDING_OWNERSHIP = _cols(
    ("section_name", "段"), ("building_no", "建號", "", "building"), ("reg_order", "登記次序"), ("reg_date", "登記日期", "", "roc_date"), ("reg_reason", "登記原因"),
    ("owner_name", "所有權人"), ("owner_id_no", "統一編號", "last4"), ("share", "權利範圍"),
)  # fmt: skip
ID_INPUT = {"name": "id_no", "label": "身分證統一編號", "type": "national_id"}
SECTION_LIST = json.dumps({"source": "LAND-DB", "target": "v_land_section"})
SECTION_FILTER = {"column": "section_code", "op": "in", "input": "section_name"}
# One parcel or building per query: its key, and what identifies a candidate (no owners).
PARCEL_RULE = {
    "one_property": {
        "key": ["section_code", "parcel_no"],
        "show": ["section_name", "subsection_name", "parcel_no", "district"],
    }
}
BUILDING_RULE = {
    "one_property": {
        "key": ["section_code", "building_no"],
        "show": ["section_name", "subsection_name", "building_no", "district"],
    }
}
# 地籍圖: the parcel highlighted among its section's parcels within 40 m (TWD97 metres).
PARCEL_MAP = {
    "map": {
        "geometry": "polygon_twd97",
        "epsg": 3826,
        "label": "parcel_no",
        "label_format": "parcel",
        "neighbours": {"within_m": 40, "match": ["section_code"]},
    }
}
MAP_COLUMNS = _cols(
    ("section_name", "段"), ("subsection_name", "小段"), ("parcel_no", "地號", "", "parcel"), ("district", "鄉鎮市區"),
    ("area_m2", "登記面積", "", "area"),
)  # fmt: skip
# 建物測量成果圖: each floor's parts (主建物, 陽台) from the plan polygons, checked against the register.
BUILDING_PLAN = {
    "plan": {
        "geometry": "plan_polygon",
        "floor": "floor_label",
        "part": "part",
        "area": "area_m2",
        "main": "主建物",
        "total": "total_area_m2",
        "site": {"geometry": "site_polygon", "epsg": 3826, "label": "site_parcel_no", "label_format": "parcel"},
    }
}
PLAN_COLUMNS = _cols(("floor_label", "層次"), ("part", "用途"), ("area_m2", "登記面積", "", "area"))
PARCEL_GROUPS = {"group_by": ["section_name", "subsection_name", "parcel_no"]}
BUILDING_GROUPS = {"group_by": ["section_name", "subsection_name", "building_no"]}


def _id_filter(column="id_no"):
    return [{"column": column, "op": "eq", "input": "id_no"}]


def _forms() -> list[dict]:
    tax, social, land = ("TAX",), ("SOCIAL",), ("LAND",)
    return [
        {"code": "household.person", "title": "個人戶籍資料（RQ02）", "agency": "HH-EAST", "order": 10,
         "grant": tax + social + land, "items": ["TAX-EXEMPT", "SOC-AID", "SOC-DISABLED", "SOC-SENIOR", "LAND-REG"],
         "inputs": [ID_INPUT],
         "sections": [{"title": "個人戶籍", "source": "HH-EGATE", "target": "RQ02", "display": "fields",
                       "filters": _id_filter(), "columns": PERSON_COLUMNS}]},
        # The notifier's lookup of the citizen while registering a case (app.services.notify.lookup):
        # the name and address from the register, for the Notifier role of the notifying agencies.
        {"code": "notify.citizen", "title": "通報登記：當事人戶籍（RQ02）", "agency": "HH-EAST", "order": 90,
         "grant": ("HH-EAST", "HH-WEST", "FIRE", "COUNTY"), "roles": ("Notifier",), "items": ["HH-NOTIFY"],
         "inputs": [ID_INPUT],
         "sections": [{"title": "當事人戶籍", "source": "HH-EGATE", "target": "RQ02", "display": "fields",
                       "filters": _id_filter(),
                       "columns": _cols(("name", "姓名"), ("household_no", "戶號"), ("address", "戶籍地址"))}]},
        {"code": "household.whole", "title": "全戶戶籍資料（RQ01）", "agency": "HH-EAST", "order": 11,
         "grant": social + tax, "items": ["SOC-AID", "SOC-SENIOR", "TAX-EXEMPT"], "inputs": [ID_INPUT],
         "sections": [{"title": "全戶戶籍", "source": "HH-EGATE", "target": "RQ01", "display": "table",
                       "filters": _id_filter(), "columns": MEMBER_COLUMNS}]},
        {"code": "household.changes", "title": "更名、除戶、門牌異動（RQ04／RQ07／RQ08／RQ14）", "agency": "HH-EAST",
         "order": 12, "grant": tax + land + social, "items": ["HH-NOTIFY", "LAND-REG", "TAX-EXEMPT"], "inputs": [ID_INPUT],
         "sections": [
             {"title": "個人姓名更改（RQ04）", "source": "HH-EGATE", "target": "RQ04", "filters": _id_filter(),
              "columns": _cols(("old_name", "原姓名"), ("new_name", "新姓名"), ("change_date", "更改日期", "", "roc_date"), ("reason", "更改原因"))},
             {"title": "全戶除戶（RQ07）", "source": "HH-EGATE", "target": "RQ07", "filters": _id_filter(),
              "columns": _cols(("household_no", "戶號"), ("relation", "稱謂"), ("name", "姓名"), ("removal_date", "除戶日期", "", "roc_date"), ("reason", "除戶原因"), ("detail", "說明"))},
             {"title": "個人除戶（RQ08）", "source": "HH-EGATE", "target": "RQ08", "filters": _id_filter(),
              "columns": _cols(("removal_date", "除戶日期", "", "roc_date"), ("reason", "除戶原因"), ("detail", "說明"))},
             {"title": "門牌異動（RQ14）", "source": "HH-EGATE", "target": "RQ14", "filters": _id_filter(),
              "columns": _cols(("old_address", "原門牌"), ("new_address", "新門牌"), ("change_date", "異動日期", "", "roc_date"), ("reason", "異動原因"))},
         ]},
        {"code": "land.parcel", "title": "土地標示部＋所有權部", "agency": "LAND", "order": 20, "grant": tax + land + social,
         "items": ["TAX-LAND", "LAND-REG", "SOC-AID"],
         "inputs": [{"name": "section_name", "label": "地段（段、小段或段代碼）", "type": "land_section", "max_length": 20,
                     "choices": SECTION_LIST},
                    {"name": "parcel_no", "label": "地號（例：18-1）", "type": "land_parcel", "max_length": 9}],
         "sections": [
             {"title": "土地標示部", "source": "LAND-DB", "target": "land_parcel", "display": "fields",
              "options": PARCEL_RULE,
              "filters": [SECTION_FILTER, {"column": "parcel_no", "op": "eq", "input": "parcel_no"}], "columns": LAND_MARKING},
             {"title": "土地所有權部", "source": "LAND-DB", "target": "v_land_marking_ownership", "order_by": "reg_order",
              "options": {**PARCEL_RULE, **PARCEL_GROUPS},
              "filters": [SECTION_FILTER, {"column": "parcel_no", "op": "eq", "input": "parcel_no"}], "columns": LAND_OWNERSHIP},
             {"title": "地籍圖", "source": "LAND-DB", "target": "land_parcel", "display": "map",
              "options": {**PARCEL_RULE, **PARCEL_MAP},
              "filters": [SECTION_FILTER, {"column": "parcel_no", "op": "eq", "input": "parcel_no"}], "columns": MAP_COLUMNS},
         ]},
        {"code": "building.unit", "title": "建物標示部＋所有權部", "agency": "LAND", "order": 21, "grant": tax + land,
         "items": ["TAX-HOUSE", "LAND-REG"],
         "inputs": [{"name": "section_name", "label": "地段（可空白）", "type": "land_section", "max_length": 20,
                     "choices": SECTION_LIST, "required": False},
                    {"name": "building_no", "label": "建號（例：00173-000）", "type": "building_no", "max_length": 9}],
         "sections": [
             {"title": "建物標示部", "source": "LAND-DB", "target": "v_building", "display": "fields",
              "options": BUILDING_RULE,
              "filters": [SECTION_FILTER, {"column": "building_no", "op": "eq", "input": "building_no"}],
              "columns": BUILDING_MARKING},
             {"title": "建物所有權部", "source": "LAND-DB", "target": "v_building_marking_ownership", "order_by": "reg_order",
              "options": {**BUILDING_RULE, **BUILDING_GROUPS},
              "filters": [SECTION_FILTER, {"column": "building_no", "op": "eq", "input": "building_no"}],
              "columns": BUILDING_OWNERSHIP},
             {"title": "建物測量成果圖", "source": "LAND-DB", "target": "v_building_floor", "display": "plan",
              "order_by": "seq", "options": {**BUILDING_RULE, **BUILDING_PLAN},
              "filters": [SECTION_FILTER, {"column": "building_no", "op": "eq", "input": "building_no"}],
              "columns": PLAN_COLUMNS},
         ]},
        {"code": "land.map", "title": "地籍圖", "agency": "LAND", "order": 23, "grant": tax + land,
         "items": ["TAX-LAND", "LAND-REG"],
         "inputs": [{"name": "section_name", "label": "地段（段、小段或段代碼）", "type": "land_section", "max_length": 20,
                     "choices": SECTION_LIST},
                    {"name": "parcel_no", "label": "地號（例：18-1）", "type": "land_parcel", "max_length": 9}],
         "sections": [
             {"title": "地籍圖", "source": "LAND-DB", "target": "land_parcel", "display": "map",
              "options": {**PARCEL_RULE, **PARCEL_MAP},
              "filters": [SECTION_FILTER, {"column": "parcel_no", "op": "eq", "input": "parcel_no"}], "columns": MAP_COLUMNS},
         ]},
        {"code": "building.plan", "title": "建物測量成果圖", "agency": "LAND", "order": 24, "grant": tax + land,
         "items": ["TAX-HOUSE", "LAND-REG"],
         "inputs": [{"name": "section_name", "label": "地段（可空白）", "type": "land_section", "max_length": 20,
                     "choices": SECTION_LIST, "required": False},
                    {"name": "building_no", "label": "建號（例：00173-000）", "type": "building_no", "max_length": 9}],
         "sections": [
             {"title": "建物標示", "source": "LAND-DB", "target": "v_building", "display": "fields",
              "options": BUILDING_RULE,
              "filters": [SECTION_FILTER, {"column": "building_no", "op": "eq", "input": "building_no"}],
              "columns": [c for c in BUILDING_MARKING if c["column"] in (
                  "section_name", "subsection_name", "district", "building_no", "located_parcels", "floors_total",
                  "total_area_m2", "annex")]},
             {"title": "建物測量成果圖", "source": "LAND-DB", "target": "v_building_floor", "display": "plan",
              "order_by": "seq", "options": {**BUILDING_RULE, **BUILDING_PLAN},
              "filters": [SECTION_FILTER, {"column": "building_no", "op": "eq", "input": "building_no"}],
              "columns": PLAN_COLUMNS},
         ]},
        {"code": "land.owner", "title": "土地＋建物（依所有權人）", "agency": "LAND", "order": 22, "grant": tax + social + land,
         "items": ["TAX-LAND", "TAX-HOUSE", "SOC-AID", "LAND-REG"], "inputs": [ID_INPUT],
         "sections": [
             {"title": "土地", "source": "LAND-DB", "target": "v_land_marking_ownership", "order_by": "section_name,parcel_no",
              "filters": _id_filter("owner_id_no"),
              "columns": _cols(("section_name", "段"), ("subsection_name", "小段"), ("parcel_no", "地號", "", "parcel"), ("area_m2", "面積", "", "area"),
                               ("zoning", "使用分區"), ("announced_value", "公告土地現值（元/㎡）", "", "number"),
                               ("share", "權利範圍"), ("owner_name", "所有權人"))},
             {"title": "建物", "source": "LAND-DB", "target": "v_building_marking_ownership", "order_by": "building_no",
              "filters": _id_filter("owner_id_no"),
              "columns": _cols(("building_no", "建號", "", "building"), ("door_address", "建物門牌"), ("main_use", "主要用途"),
                               ("total_area_m2", "總面積", "", "area"), ("share", "權利範圍"), ("owner_name", "所有權人"))},
         ]},
        {"code": "social.welfare", "title": "社政福利身分", "agency": "SOCIAL", "order": 30, "grant": social + tax,
         "items": ["SOC-AID", "SOC-DISABLED", "SOC-SENIOR", "TAX-EXEMPT"], "inputs": [ID_INPUT],
         "sections": [
             {"title": "福利身分", "source": "SOCIAL-DB", "target": "welfare_status", "filters": _id_filter(),
              "columns": _cols(("name", "姓名", "name")) + WELFARE_COLUMNS},
             {"title": "身心障礙", "source": "SOCIAL-DB", "target": "disability", "filters": _id_filter(),
              "columns": _cols(("category_label", "障礙類別", "", "", ("SOCIAL",)), ("level_label", "障礙等級"),
                               ("certified_date", "鑑定日期", "", "roc_date"), ("review_date", "重新鑑定日期", "", "roc_date"))},
             {"title": "敬老津貼", "source": "SOCIAL-DB", "target": "senior_allowance", "filters": _id_filter(),
              "columns": _cols(("monthly_amount", "月領金額", "", "money"), ("start_date", "起始日期", "", "roc_date"),
                               ("status", "狀態"))},
         ]},
        {"code": "tax.income", "title": "財稅所得資料", "agency": "TAX", "order": 40, "grant": tax + social,
         "items": ["SOC-AID", "TAX-EXEMPT"], "inputs": [ID_INPUT],
         "sections": [{"title": "各類所得", "source": "TAX-FILE", "target": "", "order_by": "年度",
                       "filters": _id_filter("統一編號/身分證號"),
                       "columns": _cols(("年度", "年度"), ("所得類別", "所得類別"), ("所得額", "所得額", "", "money"),
                                        ("扣繳稅額", "扣繳稅額", "", "money"), ("給付單位", "給付單位"))}]},
        {"code": "business.company", "title": "公司及商業登記", "agency": "TAX", "order": 50, "grant": tax + social,
         "items": ["TAX-EXEMPT", "SOC-AID"],
         "inputs": [{"name": "ban", "label": "統一編號", "type": "business_number", "max_length": 8}],
         "sections": [{"title": "登記資料", "source": "BIZ-API", "target": "/companies/{ban}", "display": "fields",
                       "filters": [{"column": "ban", "op": "eq", "input": "ban"}],
                       "columns": _cols(("ban", "統一編號"), ("name", "名稱"), ("kind", "組織別"), ("status", "登記狀態"),
                                        ("capital", "資本額", "", "money"), ("representative_name", "代表人"),
                                        ("address", "所在地"), ("established", "核准設立日期", "", "roc_date"))}]},
        {"code": "motor.vehicle", "title": "車籍資料", "agency": "MOTOR", "order": 60, "grant": tax + social,
         "items": ["TAX-VEHICLE", "SOC-AID"], "inputs": [ID_INPUT],
         "sections": [{"title": "名下車輛", "source": "MOTOR-FILE", "target": "", "order_by": "plate",
                       "filters": _id_filter("owner_id_no"),
                       "columns": _cols(("plate", "車牌"), ("kind", "車種"), ("brand", "廠牌"), ("model_year", "年份"),
                                        ("registered_date", "登記日期", "", "roc_date"), ("status", "狀態"))}]},
        {"code": "person.overview", "title": "個人＋全戶＋福利身分（跨來源）", "agency": "SOCIAL", "order": 5,
         "grant": social, "items": ["SOC-AID", "SOC-SENIOR"], "inputs": [ID_INPUT],
         "sections": [
             {"title": "個人戶籍", "source": "HH-EGATE", "target": "RQ02", "display": "fields", "filters": _id_filter(),
              "columns": PERSON_COLUMNS[:7]},
             {"title": "全戶成員", "source": "HH-EGATE", "target": "RQ01", "filters": _id_filter(), "columns": MEMBER_COLUMNS},
             {"title": "福利身分", "source": "SOCIAL-DB", "target": "v_welfare_summary", "filters": _id_filter(),
              "columns": _cols(("welfare_label", "福利身分別"), ("disability_category", "障礙類別"),
                               ("disability_level", "障礙等級"), ("senior_allowance_amount", "敬老津貼", "", "money"))},
         ]},
    ]  # fmt: skip


def seed_query_world(session, files: Path, sim_url: str) -> dict:
    """Create (or leave as they are) the demo sources, business items and forms."""
    from seed_data.loader import write_files

    files.mkdir(parents=True, exist_ok=True)
    if not (files / "land.db").exists():
        write_files(files)
    agencies = {a.code: a for a in session.scalars(select(Agency))}
    sources = {s.code: s for s in session.scalars(select(DataSource))}
    for spec in _sources(files, sim_url):
        if spec["code"] in sources:
            continue
        src = DataSource(code=spec["code"], name=spec["name"], kind=spec["kind"], agency=agencies.get(spec["agency"]),
                         database=spec.get("database"), path=spec.get("path"), url=spec.get("url"), timeout=5,
                         row_cap=500, pool_size=5, options=json.dumps(spec.get("options") or {}, ensure_ascii=False),
                         enabled=True)  # fmt: skip
        session.add(src)
        sources[src.code] = src
    items = {b.code: b for b in session.scalars(select(BusinessItem))}
    for code, name, agency in BUSINESS_ITEMS:
        if code not in items:
            items[code] = BusinessItem(code=code, name=name, active=True, agency=agencies.get(agency))
            session.add(items[code])
    sm = current_app.appbuilder.sm
    existing = set(session.scalars(select(QueryForm.code)))
    created = []
    for spec in _forms():
        if spec["code"] in existing:
            continue
        form = QueryForm(code=spec["code"], title=spec["title"], agency=agencies[spec["agency"]], active=True,
                         sort_order=spec["order"], granted_agencies=[agencies[a] for a in spec["grant"]],
                         granted_roles=[sm.find_role(r) for r in spec.get("roles", ("Clerk",))],
                         business_items=[items[i] for i in spec["items"]])  # fmt: skip
        form.inputs = [
            FormInput(
                name=i["name"],
                label=i["label"],
                type=i["type"],
                required=i.get("required", True),
                max_length=i.get("max_length", 64),
                pattern=i.get("pattern"),
                choices=i.get("choices"),
                sort_order=n,
            )  # fmt: skip
            for n, i in enumerate(spec["inputs"])
        ]
        for n, s in enumerate(spec["sections"]):
            section = FormSection(title=s["title"], source=sources[s["source"]], target=s["target"],
                                  display=s.get("display", "table"), order_by=s.get("order_by"), sort_order=n,
                                  options=json.dumps(s["options"], ensure_ascii=False) if s.get("options") else None)  # fmt: skip
            section.filters = [
                SectionFilter(column=f["column"], op=f["op"], input_name=f["input"]) for f in s["filters"]
            ]
            section.columns = [
                SectionColumn(
                    column=c["column"],
                    label=c["label"],
                    mask=c["mask"],
                    format=c["format"],
                    sort_order=k,
                    agencies=[agencies[a] for a in c["agencies"]],
                )  # fmt: skip
                for k, c in enumerate(s["columns"])
            ]
            form.sections.append(section)
        session.add(form)
        created.append(form.code)
    session.commit()
    return {"forms_created": created}
