"""Tables of the two agency databases the demo reads over SQL: the county land
office (``land_metadata``) and the social affairs department (``social_metadata``).

SQLAlchemy Core only, with portable types (String with a length, Integer,
Numeric, Date, Boolean, Text), so the same definitions create the same tables
on SQLite, PostgreSQL and MariaDB. Each table uses natural keys where the
register has them (parcel id + 登記次序, ...). The views the county exposes to
the platform, read-only, are plain ``CREATE VIEW`` statements that read the same
on the three databases (``create_views``).

MariaDB: the tables ask for ``utf8mb4`` (``mysql_charset``, ignored elsewhere),
so Chinese text round-trips whatever the server's default character set is.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    inspect,
    text,
)

_MYSQL = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def _area() -> Numeric:
    # Exact to the centimetre² in PostgreSQL/MariaDB; read back as float everywhere.
    return Numeric(12, 2, asdecimal=False)


# --- LAND: 示範縣地政事務所 ---------------------------------------------------------------

land_metadata = MetaData()

land_parcel = Table(
    "land_parcel",
    land_metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("section_code", String(6), nullable=False, comment="段代碼 e.g. UA0101"),
    Column("section_name", String(20), nullable=False, comment="段"),
    Column("subsection_name", String(20), nullable=False, default="", comment="小段 (may be empty)"),
    Column("parcel_no", String(8), nullable=False, comment="地號: 4-digit main + 4-digit sub, 18-1 = 00180001"),
    Column("district", String(10), nullable=False, comment="鄉鎮市區"),
    Column("reg_date", Date, nullable=False, comment="標示部登記日期"),
    Column("reg_reason", String(20), nullable=False, comment="標示部登記原因"),
    Column("land_category", String(4), nullable=False, comment="地目"),
    Column("area_m2", _area(), nullable=False, comment="面積 m²"),
    Column("zoning", String(20), nullable=False, comment="使用分區"),
    Column("use_class", String(20), nullable=False, default="", comment="使用地類別 (empty in urban planning areas)"),
    Column("announced_value", Integer, nullable=False, comment="公告土地現值 NT$/m²"),
    Column("announced_price", Integer, nullable=False, comment="公告地價 NT$/m²"),
    Column("polygon_twd97", Text, nullable=False, comment="JSON [[x, y], ...] closed ring, EPSG:3826 metres"),
    UniqueConstraint("section_code", "parcel_no", name="uq_land_parcel_section_parcel"),
    **_MYSQL,
)

land_owner = Table(
    "land_owner",
    land_metadata,
    Column("parcel_id", Integer, ForeignKey("land_parcel.id"), primary_key=True),
    Column("reg_order", String(4), primary_key=True, comment="登記次序 0001"),
    Column("reg_date", Date, nullable=False, comment="登記日期"),
    Column("reg_reason", String(20), nullable=False, comment="登記原因"),
    Column("cause_date", Date, nullable=False, comment="原因發生日期"),
    Column("owner_name", String(100), nullable=False, comment="所有權人"),
    Column("owner_id_no", String(10), nullable=False, comment="統一編號: national ID or business number"),
    Column("owner_address", String(200), nullable=False, comment="住址"),
    Column("share", String(20), nullable=False, comment="權利範圍: 全部 or N分之M"),
    Column("certificate_no", String(40), nullable=False, comment="權狀字號"),
    Column("other_rights_order", String(40), nullable=False, default="", comment="相關他項權利登記次序"),
    Index("ix_land_owner_owner_id_no", "owner_id_no"),
    **_MYSQL,
)

land_other_right = Table(
    "land_other_right",
    land_metadata,
    Column("parcel_id", Integer, ForeignKey("land_parcel.id"), primary_key=True),
    Column("reg_order", String(4), primary_key=True, comment="他項權利部登記次序"),
    Column("reg_date", Date, nullable=False, comment="登記日期"),
    Column("right_kind", String(20), nullable=False, comment="權利種類"),
    Column("holder_name", String(100), nullable=False, comment="設定權利人"),
    Column("holder_id_no", String(10), nullable=False, comment="設定權利人統一編號"),
    Column("secured_amount", Integer, nullable=False, comment="擔保債權總金額 NT$"),
    Column("duration", String(60), nullable=False, comment="存續期間"),
    **_MYSQL,
)

building = Table(
    "building",
    land_metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("section_code", String(6), nullable=False, comment="段代碼"),
    Column("building_no", String(9), nullable=False, comment="建號 00173-000"),
    Column("door_address", String(200), nullable=False, comment="建物門牌"),
    Column("located_parcels", String(200), nullable=False, comment="建物坐落地號: comma-separated parcel_no"),
    Column("main_use", String(20), nullable=False, comment="主要用途"),
    Column("main_material", String(20), nullable=False, comment="主要建材"),
    Column("floors_total", Integer, nullable=False, comment="層數"),
    Column("total_area_m2", _area(), nullable=False, comment="總面積 m² (sum of the main floors)"),
    Column("completion_date", Date, nullable=False, comment="建築完成日期"),
    Column("annex", Text, nullable=False, default="", comment="附屬建物"),
    Column("other_notes", Text, nullable=False, default="", comment="其他登記事項"),
    UniqueConstraint("section_code", "building_no", name="uq_building_section_no"),
    **_MYSQL,
)

building_floor = Table(
    "building_floor",
    land_metadata,
    Column("building_id", Integer, ForeignKey("building.id"), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("floor_label", String(20), nullable=False, comment="層次 一層, 二層, 屋頂突出物"),
    Column("area_m2", _area(), nullable=False, comment="層次面積 m²"),
    Column("plan_polygon", Text, nullable=False, comment="JSON [[x, y], ...] closed ring, local plan frame, metres"),
    Column("is_annex", Boolean, nullable=False, default=False, comment="附屬建物"),
    Column("annex_use", String(20), nullable=False, default="", comment="附屬建物用途 e.g. 陽台"),
    **_MYSQL,
)

building_owner = Table(
    "building_owner",
    land_metadata,
    Column("building_id", Integer, ForeignKey("building.id"), primary_key=True),
    Column("reg_order", String(4), primary_key=True, comment="登記次序"),
    Column("reg_date", Date, nullable=False),
    Column("reg_reason", String(20), nullable=False),
    Column("owner_name", String(100), nullable=False),
    Column("owner_id_no", String(10), nullable=False),
    Column("owner_address", String(200), nullable=False),
    Column("share", String(20), nullable=False),
    Column("certificate_no", String(40), nullable=False),
    Index("ix_building_owner_owner_id_no", "owner_id_no"),
    **_MYSQL,
)

# --- SOCIAL: 示範縣政府社會處 ---------------------------------------------------------------

social_metadata = MetaData()

welfare_status = Table(
    "welfare_status",
    social_metadata,
    Column("id_no", String(10), primary_key=True),
    Column("name", String(50), nullable=False),
    Column("welfare_code", String(1), nullable=False, comment="福利身分別 A B C D Z"),
    Column("welfare_label", String(30), nullable=False),
    Column("valid_from", Date, nullable=False),
    Column("valid_to", Date, nullable=True),
    Column("district", String(10), nullable=False),
    **_MYSQL,
)

disability = Table(
    "disability",
    social_metadata,
    Column("id_no", String(10), primary_key=True),
    Column("name", String(50), nullable=False),
    Column("category_code", String(1), nullable=False, comment="障礙類別 1-8 (new system)"),
    Column("category_label", String(60), nullable=False),
    Column("level_code", String(1), nullable=False, comment="障礙等級 0-5, 9"),
    Column("level_label", String(20), nullable=False),
    Column("certified_date", Date, nullable=False, comment="鑑定日期"),
    Column("review_date", Date, nullable=True, comment="重新鑑定日期 (NULL: permanent)"),
    **_MYSQL,
)

senior_allowance = Table(
    "senior_allowance",
    social_metadata,
    Column("id_no", String(10), primary_key=True),
    Column("name", String(50), nullable=False),
    Column("monthly_amount", Integer, nullable=False, comment="NT$ per month"),
    Column("start_date", Date, nullable=False),
    Column("status", String(10), nullable=False, comment="發放中 / 暫停"),
    **_MYSQL,
)

# --- views ---------------------------------------------------------------------------------

_SECTIONS = "SELECT DISTINCT section_code, section_name, subsection_name, district FROM land_parcel"
LAND_VIEWS = {
    "v_land_marking_ownership": """
SELECT p.id AS parcel_id, p.section_code, p.section_name, p.subsection_name, p.parcel_no, p.district,
       p.reg_date AS marking_reg_date, p.reg_reason AS marking_reg_reason, p.land_category, p.area_m2,
       p.zoning, p.use_class, p.announced_value, p.announced_price,
       o.reg_order, o.reg_date, o.reg_reason, o.cause_date, o.owner_name, o.owner_id_no, o.owner_address,
       o.share, o.certificate_no, o.other_rights_order
FROM land_parcel p
JOIN land_owner o ON o.parcel_id = p.id""",
    "v_building_marking_ownership": f"""
SELECT b.id AS building_id, b.section_code, s.section_name, s.subsection_name, s.district, b.building_no,
       b.door_address, b.located_parcels, b.main_use,
       b.main_material, b.floors_total, b.total_area_m2, b.completion_date, b.annex, b.other_notes,
       o.reg_order, o.reg_date, o.reg_reason, o.owner_name, o.owner_id_no, o.owner_address, o.share,
       o.certificate_no
FROM building b
JOIN building_owner o ON o.building_id = b.id
JOIN ({_SECTIONS}) s ON s.section_code = b.section_code""",
    # 建物測量成果圖: each floor's parts (主建物 or the annex's use) with the building's
    # register total and the polygon of the first parcel it stands on (the location plan).
    "v_building_floor": f"""
SELECT b.id AS building_id, b.section_code, s.section_name, s.subsection_name, s.district, b.building_no,
       f.seq, f.floor_label, CASE WHEN f.is_annex THEN f.annex_use ELSE '主建物' END AS part, f.area_m2,
       f.plan_polygon, b.total_area_m2, p.parcel_no AS site_parcel_no, p.polygon_twd97 AS site_polygon
FROM building b
JOIN building_floor f ON f.building_id = b.id
JOIN ({_SECTIONS}) s ON s.section_code = b.section_code
LEFT JOIN land_parcel p ON p.section_code = b.section_code AND p.parcel_no = SUBSTR(b.located_parcels, 1, 8)""",
    # The land office's list of sections (段, 小段, 鄉鎮市區): what the forms' section pickers offer.
    "v_land_section": f"""
{_SECTIONS}""",
    # The building register with its section's names and township (建物標示部 as the forms read it).
    "v_building": f"""
SELECT b.id AS building_id, b.section_code, s.section_name, s.subsection_name, s.district, b.building_no,
       b.door_address, b.located_parcels, b.main_use, b.main_material, b.floors_total, b.total_area_m2,
       b.completion_date, b.annex, b.other_notes
FROM building b
JOIN ({_SECTIONS}) s ON s.section_code = b.section_code""",
}

SOCIAL_VIEWS = {
    "v_welfare_summary": """
SELECT w.id_no, w.name, w.district, w.welfare_code, w.welfare_label, w.valid_from, w.valid_to,
       d.category_code AS disability_category_code, d.category_label AS disability_category,
       d.level_code AS disability_level_code, d.level_label AS disability_level,
       s.monthly_amount AS senior_allowance_amount, s.status AS senior_allowance_status
FROM welfare_status w
LEFT JOIN disability d ON d.id_no = w.id_no
LEFT JOIN senior_allowance s ON s.id_no = w.id_no""",
}


def _views_for(connection) -> dict[str, str]:
    tables = set(inspect(connection).get_table_names())
    views: dict[str, str] = {}
    if {"land_parcel", "land_owner", "building", "building_owner", "building_floor"} <= tables:
        views.update(LAND_VIEWS)
    if {"welfare_status", "disability", "senior_allowance"} <= tables:
        views.update(SOCIAL_VIEWS)
    return views


def drop_views(connection) -> None:
    """Drop every view of this module (``DROP VIEW IF EXISTS`` reads the same on the three databases)."""
    for name in [*LAND_VIEWS, *SOCIAL_VIEWS]:
        connection.execute(text(f"DROP VIEW IF EXISTS {name}"))


def create_views(connection) -> list[str]:
    """Create the read-only views over whichever agency's tables exist on ``connection``
    (land, social, or both); return their names. Call ``drop_views`` first to replace them."""
    views = _views_for(connection)
    for name, select in views.items():
        connection.execute(text(f"CREATE VIEW {name} AS{select}"))
    return list(views)
