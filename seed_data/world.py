"""A synthetic, self-consistent demo world for the fictional 示範縣.

``build_world()`` builds, in memory, every record the demo's external systems
hold: the household register (e-gate simulator), the land registry and the
social welfare database (SQL), income tax records (Big5 CSV), the business
registry (JSON web service) and motor vehicles (fixed-width text).

Rules the generator keeps:

* Deterministic: one ``random.Random(SEED)`` drives everything and the code only
  iterates lists and dicts (never sets), so the same seed gives byte-identical
  output on every run, whatever ``PYTHONHASHSEED`` is.
* No real persons: names are drawn from common surnames and given-name
  characters; every address is in the fictional 示範縣.
* Every national ID passes the real checksum and its sex digit matches; every
  business number (統一編號) passes the 2023 checksum.
* Agency records only ever point at people who are currently registered
  (status 現住), with their current name and current household address.

Standard library only, plus the platform's identifier checks.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, fields
from datetime import date, timedelta
from fractions import Fraction

from app.lib.identifiers import is_business_number, is_national_id

SEED = 20261126
AS_OF = date(2026, 11, 26)
COUNTY = "示範縣"
COUNTY_LETTER = "U"  # the first letter of ID numbers first registered in 示範縣

EAST_OFFICE = "示範縣東區戶政事務所"
WEST_OFFICE = "示範縣西區戶政事務所"
AGENCIES = {
    "household_east": EAST_OFFICE,
    "household_west": WEST_OFFICE,
    "land": "示範縣地政事務所",
    "tax": "示範縣地方稅務局",
    "social": "示範縣政府社會處",
    "business": "示範縣政府建設處",
    "vehicles": "示範縣監理站",
}

WANG_ID = "A123456789"
WANG_NAME = "王小明"
# 難字: names and an address with characters outside Big5 and outside AR PL UMing
# (䶵 U+4DB5 and 䅈 U+4148 in CJK Extension A; 𠀋 U+2000B, 𠂤 U+200A4 and 𤧛 U+249DB in Extension B)
RARE_NAMES = ("王䶵明", "陳𠀋華", "王𠂤婷")
RARE_VILLAGE = "䅈山村"
RARE_ROAD = "𤧛興路"

WELFARE_LABELS = {"A": "低收入戶", "B": "中低收入戶", "C": "領有身心障礙生活補助", "D": "一般戶", "Z": "其他"}
DISABILITY_CATEGORIES = {
    "1": "神經系統構造及精神、心智功能",
    "2": "眼、耳及相關構造與感官功能及疼痛",
    "3": "涉及聲音與語言構造及其功能",
    "4": "循環、造血、免疫與呼吸系統構造及其功能",
    "5": "消化、新陳代謝與內分泌系統相關構造及其功能",
    "6": "泌尿與生殖系統相關構造及其功能",
    "7": "神經、肌肉、骨骼之移動相關構造及其功能",
    "8": "皮膚與相關構造及其功能",
}
DISABILITY_LEVELS = {"0": "無", "1": "輕度", "2": "中度", "3": "重度", "4": "極重度", "5": "重大傷病卡", "9": "無資料"}
SENIOR_AGE = 65

# Relation (稱謂) -> its place in the household order of DOMAIN.md:
# 戶長, 配偶, 直系尊親屬, 直系卑親屬, 旁系, 其他家屬, 寄居人.
RELATION_ORDER = {"戶長": 0, "妻": 1, "夫": 1, "父": 2, "母": 2, "寄居人": 6}
for _sex in ("男", "女"):
    for _rank in ("長", "次", "三", "四", "五"):
        RELATION_ORDER[_rank + _sex] = 3

# --- name and place material -------------------------------------------------

_SURNAME_WEIGHTS = (
    ("陳", 11), ("林", 8), ("黃", 6), ("張", 5), ("李", 5), ("王", 4), ("吳", 4), ("劉", 3), ("蔡", 3), ("楊", 3),
    ("許", 2), ("鄭", 2), ("謝", 2), ("郭", 2), ("洪", 2), ("曾", 2), ("邱", 2), ("廖", 2), ("賴", 2), ("周", 2),
    ("徐", 1), ("蘇", 1), ("葉", 1), ("莊", 1), ("呂", 1), ("江", 1), ("何", 1), ("蕭", 1), ("羅", 1), ("高", 1),
    ("潘", 1), ("簡", 1), ("朱", 1), ("鍾", 1), ("彭", 1), ("游", 1), ("詹", 1), ("施", 1), ("沈", 1), ("余", 1),
)  # fmt: skip
SURNAMES = [s for s, w in _SURNAME_WEIGHTS for _ in range(w)]
MALE_CHARS = "志明俊傑建宏家豪文華偉承翰冠宇嘉信彥廷柏瑋哲凱軒育仁國榮正義德昌勝雄輝政達成安平祥銘宗賢昱晨睿恩泰裕"
FEMALE_CHARS = "淑美惠玲雅婷怡君秀芬佳慧珍琪靜如欣宜筱涵雯麗娟萍鈺蓉瑜芳梅玉蘭思詩妤庭蓁寧瑩月春"
# Full names of well-known public figures the character lists could produce.
_BLOCKED_NAMES = ("柯文哲", "陳建仁", "王建民", "陳建宏", "林志明", "張家豪", "王文華", "陳冠宇", "林俊傑")

# Birthplace -> first letter of the ID number (DOMAIN.md letter table).
BIRTHPLACES = (
    (COUNTY, COUNTY_LETTER, 50), ("臺北市", "A", 8), ("臺中市", "B", 5), ("基隆市", "C", 2), ("臺南市", "D", 4),
    ("高雄市", "E", 6), ("新北市", "F", 6), ("宜蘭縣", "G", 3), ("桃園市", "H", 4), ("屏東縣", "T", 3),
)  # fmt: skip
_BIRTHPLACE_CHOICES = [(p, letter) for p, letter, w in BIRTHPLACES for _ in range(w)]
_LETTER_OF = {p: letter for p, letter, _w in BIRTHPLACES}
ELSEWHERE = {
    "臺北市": ("大安區", "中山區", "信義區"),
    "臺中市": ("西屯區", "北區"),
    "基隆市": ("仁愛區",),
    "臺南市": ("東區", "永康區"),
    "高雄市": ("苓雅區", "三民區"),
    "新北市": ("板橋區", "新店區"),
    "宜蘭縣": ("羅東鎮", "宜蘭市"),
    "桃園市": ("中壢區", "桃園區"),
    "屏東縣": ("屏東市",),
}
ABROAD = ("美國", "加拿大", "澳大利亞", "日本", "新加坡")
INDIGENOUS = ("平地原住民（阿美族）", "平地原住民（阿美族）", "山地原住民（布農族）", "山地原住民（太魯閣族）")

DISTRICTS = {
    "東區": {
        "code": "1",
        "office": EAST_OFFICE,
        "urban": True,
        "villages": {
            "中正里": (("中正路", ("一段", "二段")), ("博愛街", ("",))),
            "光明里": (("光明路", ("",)), ("明德街", ("",))),
            "民生里": (("民生路", ("一段", "二段")),),
            "復興里": (("復興路", ("",)), ("自強街", ("",))),
        },
    },
    "西區": {
        "code": "2",
        "office": WEST_OFFICE,
        "urban": True,
        "villages": {
            "西門里": (("西門路", ("一段", "二段")),),
            "仁愛里": (("仁愛路", ("",)), ("信義街", ("",))),
            "和平里": (("和平路", ("",)), ("忠孝街", ("",))),
            "新生里": (("新生路", ("一段", "二段")),),
        },
    },
    "東平鄉": {
        "code": "3",
        "office": EAST_OFFICE,
        "urban": False,
        "villages": {
            "東平村": (("東平路", ("",)), ("中興路", ("",))),
            "豐年村": (("豐年路", ("",)),),
            "大坡村": (("大坡路", ("",)),),
        },
    },
    "西林鄉": {
        "code": "4",
        "office": WEST_OFFICE,
        "urban": False,
        "villages": {
            "西林村": (("西林路", ("",)),),
            "山腳村": (("山腳路", ("",)),),
            "清水村": (("清水路", ("",)), ("溪畔路", ("",))),
        },
    },
}
ADDRESS_PARTS = (
    "county",
    "district",
    "village",
    "neighbourhood",
    "road",
    "section",
    "lane",
    "alley",
    "number",
    "floor",
)
FLOOR_LABELS = ("一層", "二層", "三層", "四層", "五層", "六層", "七層", "八層", "九層", "十層")

# Land sections: code, 段, 小段, district, origin (TWD97 TM2 121, metres), urban, parcels, buildings, value base.
SECTIONS = (
    ("UA0101", "中正段", "", "東區", 305180.0, 2651320.0, True, 16, 8, 42000),
    ("UA0102", "光明段", "", "東區", 306420.0, 2651870.0, True, 14, 6, 36000),
    ("UA0201", "西門段", "", "西區", 302640.0, 2650480.0, True, 16, 8, 31000),
    ("UA0301", "東平段", "一小段", "東平鄉", 312380.0, 2645230.0, False, 14, 4, 2600),
    ("UA0302", "東平段", "二小段", "東平鄉", 313520.0, 2645910.0, False, 12, 3, 2200),
    ("UA0401", "西林段", "", "西林鄉", 301460.0, 2656740.0, False, 14, 5, 1900),
)
# Rural parcels: (地目, 使用分區, 使用地類別), weight.
RURAL_LAND = (
    (("田", "特定農業區", "農牧用地"), 4),
    (("旱", "一般農業區", "農牧用地"), 3),
    (("建", "鄉村區", "乙種建築用地"), 3),
    (("建", "特定農業區", "甲種建築用地"), 2),
    (("林", "山坡地保育區", "林業用地"), 2),
)
SHARE_PATTERNS = (
    ((Fraction(1),), 50),
    ((Fraction(1, 2), Fraction(1, 2)), 14),
    ((Fraction(1, 3), Fraction(1, 3), Fraction(1, 3)), 10),
    ((Fraction(1, 4),) * 4, 5),
    ((Fraction(1, 2), Fraction(1, 4), Fraction(1, 4)), 6),
    ((Fraction(1, 2), Fraction(1, 3), Fraction(1, 6)), 4),
    ((Fraction(2, 3), Fraction(1, 3)), 4),
)
BANKS = ("示範商業銀行股份有限公司", "東岸商業銀行股份有限公司", "青山商業銀行股份有限公司")
COMPANY_PREFIXES = (
    "晨光", "青禾", "山嵐", "海岸", "東昇", "和豐", "立信", "永興", "富田", "金穗", "長河", "翠峰",
    "明德", "大禾", "南風", "北辰", "新泰", "友信", "嘉禾", "聚源", "恆昌", "福森", "清溪", "青峰",
    "向陽", "松林", "白雲", "春田", "秋實", "遠帆", "綠野", "星河", "采風", "日新", "安和", "萬豐",
)  # fmt: skip
COMPANY_TRADES = (
    ("建設", ("H701010 住宅及大樓開發租售業", "H701040 特定專業區開發業")),
    ("營造", ("E101011 綜合營造業", "E801010 室內裝潢業")),
    ("農產", ("F102170 食品什貨批發業", "A101020 農作物栽培業")),
    ("科技", ("I301010 資訊軟體服務業", "F113050 電腦及事務性機器設備批發業")),
    ("餐飲", ("F501060 餐館業", "F501030 飲料店業")),
    ("物流", ("G801010 倉儲業", "G202010 停車場經營業")),
    ("觀光", ("J901020 一般旅館業", "J701020 遊樂園業")),
    ("食品", ("C199990 未分類其他食品製造業", "F203010 食品什貨、飲料零售業")),
    ("貿易", ("F401010 國際貿易業", "F102170 食品什貨批發業")),
    ("能源", ("D101060 再生能源自用發電設備業", "E601010 電器承裝業")),
)
SHOP_TRADES = (
    ("小吃店", ("F501060 餐館業",)),
    ("五金行", ("F206010 五金零售業",)),
    ("商店", ("F203010 食品什貨、飲料零售業",)),
    ("工作室", ("I501010 產品設計業",)),
    ("美髮院", ("JZ99080 美容美髮服務業",)),
    ("農產行", ("F102170 食品什貨批發業",)),
    ("機車行", ("F214030 汽機車零件配備零售業",)),
    ("茶行", ("F203010 食品什貨、飲料零售業",)),
    ("早餐店", ("F501030 飲料店業", "F501060 餐館業")),
)
GENERAL_ITEM = "ZZ99999 除許可業務外，得經營法令非禁止或限制之業務"
NAME_CHANGE_REASONS = (
    "字義粗俗不雅（姓名條例第9條第1項第6款）",
    "同時在一機關、學校服務或肄業姓名完全相同（姓名條例第9條第1項第1款）",
    "與三親等以內直系尊親屬名字完全相同（姓名條例第9條第1項第2款）",
    "同時在同一縣市設立戶籍六個月以上姓名完全相同（姓名條例第9條第1項第3款）",
)
INCOME_TYPES = ("薪資所得", "利息所得", "股利所得", "執行業務所得", "租賃所得", "其他所得")
VEHICLE_KINDS = (
    ("自用小客車", ("TOYOTA", "NISSAN", "HONDA", "MAZDA", "FORD", "MITSUBISHI", "LUXGEN"), 10),
    ("自用小貨車", ("TOYOTA", "MITSUBISHI", "FORD"), 2),
    ("普通重型機車", ("KYMCO", "SYM", "YAMAHA", "SUZUKI"), 9),
    ("普通輕型機車", ("GOGORO", "KYMCO", "YAMAHA"), 3),
    ("大型重型機車", ("YAMAHA", "HONDA", "KAWASAKI"), 1),
)
PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # no I, O
PLATE_DIGITS = "012356789"  # plates skip the unlucky 4


# --- small helpers ---------------------------------------------------------------


def add_years(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year + years)
    except ValueError:  # 29 February
        return d.replace(year=d.year + years, day=28)


def age_on(birth: date, on: date = AS_OF) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def roc(d: date) -> str:
    """民國115年11月26日"""
    return f"民國{d.year - 1911}年{d.month}月{d.day}日"


def roc_compact(d: date) -> str:
    """1151126 (YYYMMDD, the year zero-padded to three digits)."""
    return f"{d.year - 1911:03d}{d.month:02d}{d.day:02d}"


def full_address(parts: dict) -> str:
    """縣市 鄉鎮市區 村里 N鄰 路/街 N段 N巷 N弄 N號 N樓(之N), as DOMAIN.md orders it."""
    return "".join(parts[k] for k in ADDRESS_PARTS)


def door_address(parts: dict) -> str:
    """The door plate (門牌) without 村里 and 鄰, as the building register writes it."""
    return "".join(parts[k] for k in ADDRESS_PARTS if k not in ("village", "neighbourhood"))


def share_text(share: Fraction) -> str:
    """Fraction(1, 2) -> '2分之1'; Fraction(1) -> '全部'."""
    return "全部" if share == 1 else f"{share.denominator}分之{share.numerator}"


def share_fraction(text: str) -> Fraction:
    """'2分之1' -> Fraction(1, 2); '全部' -> Fraction(1)."""
    if text == "全部":
        return Fraction(1)
    denominator, numerator = text.split("分之")
    return Fraction(int(numerator), int(denominator))


def shoelace_area(points) -> float:
    """Area of a polygon given as [[x, y], ...] (closed or not), computed relative to
    the first vertex so large TWD97 coordinates keep their precision."""
    x0, y0 = points[0]
    total = 0.0
    for (xa, ya), (xb, yb) in zip(points, list(points[1:]) + [points[0]]):
        total += (xa - x0) * (yb - y0) - (xb - x0) * (ya - y0)
    return abs(total) / 2


def national_id_check_digit(letter: str, body: str) -> str:
    """The last digit that makes ``letter + body + digit`` pass the checksum (body: sex digit + 7 digits)."""
    values = "ABCDEFGHJKLMNPQRSTUVXYWZIO"  # in value order: A=10, B=11, ... I=34, O=35
    v = values.index(letter) + 10
    digits = [v // 10, v % 10] + [int(c) for c in body]
    s = sum(w * d for w, d in zip((1, 9, 8, 7, 6, 5, 4, 3, 2, 1), digits))
    return str((10 - s % 10) % 10)


def public_dict(obj) -> dict:
    """The exported fields of a record (internal helper fields are declared repr=False)."""
    return {f.name: getattr(obj, f.name) for f in fields(obj) if f.repr}


# --- the records -------------------------------------------------------------------


@dataclass
class Household:
    household_no: str
    kind: str
    office: str
    county: str
    district: str
    village: str
    neighbourhood: str
    road: str
    section: str
    lane: str
    alley: str
    number: str
    floor: str
    address: str
    head_id: str
    status: str = "現住"
    events: list[str] = field(default_factory=list)
    shape: str = field(default="", repr=False, compare=False)
    setup: date = field(default=AS_OF, repr=False, compare=False)
    origin: str = field(default="", repr=False, compare=False)
    facts: list = field(default_factory=list, repr=False, compare=False)

    @property
    def parts(self) -> dict:
        return {k: getattr(self, k) for k in ADDRESS_PARTS}

    @property
    def door_address(self) -> str:
        return door_address(self.parts)


@dataclass
class Person:
    id_no: str
    name: str
    sex: str
    birth_date: date
    relation: str
    household_no: str
    father: str
    mother: str
    spouse: str
    birthplace: str
    birth_order: str
    military: str
    indigenous: str
    status: str = "現住"
    notes: list[str] = field(default_factory=list)
    father_ref: Person | None = field(default=None, repr=False, compare=False)
    mother_ref: Person | None = field(default=None, repr=False, compare=False)
    spouse_ref: Person | None = field(default=None, repr=False, compare=False)
    joined: date = field(default=AS_OF, repr=False, compare=False)
    facts: list = field(default_factory=list, repr=False, compare=False)


@dataclass
class NameChange:
    id_no: str
    old_name: str
    new_name: str
    date: date
    reason: str


@dataclass
class HouseholdRemoval:
    household_no: str
    date: date
    reason: str
    detail: str


@dataclass
class PersonRemoval:
    id_no: str
    date: date
    reason: str
    detail: str


@dataclass
class AddressChange:
    household_no: str
    old_address: str
    new_address: str
    date: date
    reason: str


@dataclass
class Business:
    ban: str
    name: str
    kind: str
    status: str
    capital: int
    representative_name: str
    representative_id_no: str
    address: str
    established: date
    business_items: list[str]
    district: str = field(default="", repr=False, compare=False)


@dataclass
class LandParcel:
    id: int
    section_code: str
    section_name: str
    subsection_name: str
    parcel_no: str
    district: str
    reg_date: date
    reg_reason: str
    land_category: str
    area_m2: float
    zoning: str
    use_class: str
    announced_value: int
    announced_price: int
    polygon_twd97: list[list[float]]


@dataclass
class LandOwner:
    parcel_id: int
    reg_order: str
    reg_date: date
    reg_reason: str
    cause_date: date
    owner_name: str
    owner_id_no: str
    owner_address: str
    share: str
    certificate_no: str
    other_rights_order: str


@dataclass
class LandOtherRight:
    parcel_id: int
    reg_order: str
    reg_date: date
    right_kind: str
    holder_name: str
    holder_id_no: str
    secured_amount: int
    duration: str


@dataclass
class Building:
    id: int
    section_code: str
    building_no: str
    door_address: str
    located_parcels: str
    main_use: str
    main_material: str
    floors_total: int
    total_area_m2: float
    completion_date: date
    annex: str
    other_notes: str


@dataclass
class BuildingFloor:
    building_id: int
    seq: int
    floor_label: str
    area_m2: float
    plan_polygon: list[list[float]]
    is_annex: bool
    annex_use: str


@dataclass
class BuildingOwner:
    building_id: int
    reg_order: str
    reg_date: date
    reg_reason: str
    owner_name: str
    owner_id_no: str
    owner_address: str
    share: str
    certificate_no: str


@dataclass
class WelfareStatus:
    id_no: str
    name: str
    welfare_code: str
    welfare_label: str
    valid_from: date
    valid_to: date | None
    district: str


@dataclass
class Disability:
    id_no: str
    name: str
    category_code: str
    category_label: str
    level_code: str
    level_label: str
    certified_date: date
    review_date: date | None


@dataclass
class SeniorAllowance:
    id_no: str
    name: str
    monthly_amount: int
    start_date: date
    status: str


@dataclass
class TaxIncome:
    taxpayer_id: str
    name: str
    year: int  # ROC year
    income_type: str
    amount: int
    withheld: int
    payer_name: str
    payer_ban: str


@dataclass
class Vehicle:
    plate: str
    kind: str
    brand: str
    model_year: int
    owner_id_no: str
    owner_name: str
    registered_date: str  # ROC compact, 1120315
    status: str


@dataclass
class World:
    seed: int
    as_of: date
    households: list[Household]
    persons: list[Person]
    name_changes: list[NameChange]
    household_removals: list[HouseholdRemoval]
    person_removals: list[PersonRemoval]
    address_changes: list[AddressChange]
    businesses: list[Business]
    land_parcels: list[LandParcel]
    land_owners: list[LandOwner]
    land_other_rights: list[LandOtherRight]
    buildings: list[Building]
    building_floors: list[BuildingFloor]
    building_owners: list[BuildingOwner]
    welfare_status: list[WelfareStatus]
    disabilities: list[Disability]
    senior_allowances: list[SeniorAllowance]
    tax_incomes: list[TaxIncome]
    vehicles: list[Vehicle]

    def person(self, id_no: str) -> Person:
        return next(p for p in self.persons if p.id_no == id_no)

    def household(self, household_no: str) -> Household:
        return next(h for h in self.households if h.household_no == household_no)

    def members(self, household_no: str) -> list[Person]:
        return [p for p in self.persons if p.household_no == household_no]


def build_world(seed: int = SEED) -> World:
    """The whole demo world, deterministically from ``seed``."""
    return _Builder(seed).build()


# --- the generator -----------------------------------------------------------------


class _Builder:
    def __init__(self, seed: int):
        self.seed = seed
        self.r = random.Random(seed)
        self.tick = 0
        self.used_ids: set[str] = {WANG_ID}
        self.used_names: set[str] = {WANG_NAME, *_BLOCKED_NAMES}
        self.used_addresses: set[str] = set()
        self.used_household_nos: set[str] = set()
        self.used_bans: set[str] = set()
        self.households: list[Household] = []
        self.persons: list[Person] = []
        self.household_of: dict[str, Household] = {}
        self.name_changes: list[NameChange] = []
        self.household_removals: list[HouseholdRemoval] = []
        self.person_removals: list[PersonRemoval] = []
        self.address_changes: list[AddressChange] = []
        self.businesses: list[Business] = []
        self.land_parcels: list[LandParcel] = []
        self.land_owners: list[LandOwner] = []
        self.land_other_rights: list[LandOtherRight] = []
        self.buildings: list[Building] = []
        self.building_floors: list[BuildingFloor] = []
        self.building_owners: list[BuildingOwner] = []
        self.certificate_seq = 0
        self.licence_seq = 0

    def build(self) -> World:
        self._register()
        self._businesses()
        self._land()
        welfare, disabilities, allowances = self._social()
        tax = self._tax()
        vehicles = self._vehicles()
        self._rare_household()  # last, with its own random numbers: the rest of the world is as before
        return World(
            seed=self.seed,
            as_of=AS_OF,
            households=self.households,
            persons=self.persons,
            name_changes=self.name_changes,
            household_removals=self.household_removals,
            person_removals=self.person_removals,
            address_changes=self.address_changes,
            businesses=self.businesses,
            land_parcels=self.land_parcels,
            land_owners=self.land_owners,
            land_other_rights=self.land_other_rights,
            buildings=self.buildings,
            building_floors=self.building_floors,
            building_owners=self.building_owners,
            welfare_status=welfare,
            disabilities=disabilities,
            senior_allowances=allowances,
            tax_incomes=tax,
            vehicles=vehicles,
        )

    # --- primitives -----------------------------------------------------------------

    def _next(self) -> int:
        self.tick += 1
        return self.tick

    def _between(self, lo: date, hi: date) -> date:
        if hi < lo:
            hi = lo
        return lo + timedelta(days=self.r.randint(0, (hi - lo).days))

    def _birth_for_age(self, age: int) -> date:
        return self._between(add_years(AS_OF, -age - 1) + timedelta(days=1), add_years(AS_OF, -age))

    def _name(self, sex: str, surname: str | None = None) -> str:
        chars = MALE_CHARS if sex == "男" else FEMALE_CHARS
        while True:
            given = "".join(self.r.sample(chars, 2))
            name = (surname or self.r.choice(SURNAMES)) + given
            if name not in self.used_names:
                self.used_names.add(name)
                return name

    def _national_id(self, letter: str, sex: str) -> str:
        while True:
            body = ("1" if sex == "男" else "2") + "".join(str(self.r.randrange(10)) for _ in range(7))
            id_no = letter + body + national_id_check_digit(letter, body)
            if id_no not in self.used_ids:
                assert is_national_id(id_no), id_no
                self.used_ids.add(id_no)
                return id_no

    def _ban(self) -> str:
        while True:
            ban = f"{self.r.randrange(10_000_000, 100_000_000):08d}"
            if is_business_number(ban) and ban not in self.used_bans:
                self.used_bans.add(ban)
                return ban

    def _elsewhere(self, birthplace: str) -> str:
        """Where someone moved in from: their birthplace's district, or another one of 示範縣."""
        if birthplace == COUNTY:
            return COUNTY + self.r.choice(list(DISTRICTS))
        return birthplace + self.r.choice(ELSEWHERE[birthplace])

    def _military(self, sex: str, birth: date) -> str:
        if sex == "女" or age_on(birth) < 19:
            return ""
        if birth.year < 1994:
            return self.r.choice(["常備兵役"] * 6 + ["補充兵役", "國民兵役", "免役"])
        return self.r.choice(["常備兵役軍事訓練"] * 5 + ["替代役", "常備兵役", "免役"])

    def _person(
        self,
        sex: str,
        birth: date,
        *,
        surname: str | None = None,
        birthplace: str | None = None,
        name: str | None = None,
        id_no: str | None = None,
        birth_order: str | None = None,
    ) -> Person:
        r = self.r
        if birthplace is None:
            birthplace = r.choice(_BIRTHPLACE_CHOICES)[0]
        if name is None:
            name = self._name(sex, surname)
        else:
            self.used_names.add(name)
        if id_no is None:
            id_no = self._national_id(_LETTER_OF[birthplace], sex)
        if birth_order is None:
            birth_order = r.choice(["長", "長", "次", "三"]) + sex
        p = Person(
            id_no=id_no,
            name=name,
            sex=sex,
            birth_date=birth,
            relation="",
            household_no="",
            father=self._name("男", name[0]),
            mother=self._name("女"),
            spouse="",
            birthplace=birthplace,
            birth_order=birth_order,
            military=self._military(sex, birth),
            indigenous="",
        )
        registered = min(birth + timedelta(days=r.randint(5, 40)), AS_OF)
        p.facts.append((birth, self._next(), "birth", {"place": birthplace, "registered": registered}))
        return p

    def _address(self, district: str, *, house: bool) -> dict:
        r = self.r
        villages = DISTRICTS[district]["villages"]
        while True:
            village = r.choice(list(villages))
            road, sections = r.choice(villages[village])
            lane = f"{r.randint(1, 250)}巷" if r.random() < 0.3 else ""
            parts = {
                "county": COUNTY,
                "district": district,
                "village": village,
                "neighbourhood": f"{r.randint(1, 24)}鄰",
                "road": road,
                "section": r.choice(sections),
                "lane": lane,
                "alley": f"{r.randint(1, 12)}弄" if lane and r.random() < 0.3 else "",
                "number": f"{r.randint(1, 320)}號",
                "floor": ""
                if house
                else f"{r.randint(2, 12)}樓" + (f"之{r.randint(1, 3)}" if r.random() < 0.2 else ""),
            }
            if self._claim_address(parts):
                return parts

    def _claim_address(self, parts: dict) -> bool:
        key = door_address(parts)
        if key in self.used_addresses:
            return False
        self.used_addresses.add(key)
        return True

    def _household_no(self, district: str) -> str:
        while True:
            no = f"{COUNTY_LETTER}{DISTRICTS[district]['code']}{self.r.randrange(1_000_000):06d}"
            if no not in self.used_household_nos:
                self.used_household_nos.add(no)
                return no

    def _household(self, district, kind, shape, parts, head, setup, household_no=None) -> Household:
        h = Household(
            household_no=household_no or self._household_no(district),
            kind=kind,
            office=DISTRICTS[district]["office"],
            **parts,
            address=full_address(parts),
            head_id=head.id_no,
            shape=shape,
            setup=setup,
            origin=self._elsewhere(head.birthplace),
        )
        h.facts.append((setup, self._next(), "setup", {"head": head, "from": h.origin}))
        self.households.append(h)
        return h

    def _join(self, h: Household, p: Person, relation: str, since: date | None) -> None:
        """Add p to h; ``since`` is the move-in date, None when p was born into the household."""
        p.household_no = h.household_no
        p.relation = relation
        p.joined = since or p.birth_date
        if since is not None:
            origin = h.origin if relation == "戶長" else self._elsewhere(p.birthplace)
            p.facts.append((since, self._next(), "move_in", {"from": origin}))
        self.persons.append(p)
        self.household_of[p.id_no] = h

    def _marry(self, a: Person, b: Person, on: date) -> None:
        a.spouse_ref, b.spouse_ref = b, a
        tick = self._next()
        a.facts.append((on, tick, "marriage", {"spouse": b}))
        b.facts.append((on, tick, "marriage", {"spouse": a}))

    def _children(self, father_surname: str, father, mother, mother_birth: date, n: int) -> list[Person]:
        """Up to n children born to mother; ``father``/``mother`` are Persons or None."""
        r = self.r
        mother_age = age_on(mother_birth)
        first_age = r.randint(22, max(22, min(32, mother_age - 1)))
        t = add_years(mother_birth, first_age) + timedelta(days=r.randint(0, 300))
        kids: list[Person] = []
        counts = {"男": 0, "女": 0}
        for _ in range(n):
            if t > AS_OF - timedelta(days=30):
                break
            sex = r.choice(["男", "女"])
            order = "長次三四五"[counts[sex]] + sex
            counts[sex] += 1
            place = COUNTY if r.random() < 0.85 else r.choice(_BIRTHPLACE_CHOICES)[0]
            kid = self._person(sex, t, surname=father_surname, birthplace=place, birth_order=order)
            kid.father_ref, kid.mother_ref = father, mother
            kids.append(kid)
            t = t + timedelta(days=r.randint(500, 1900))
        return kids

    # --- the household register ------------------------------------------------------

    def _register(self) -> None:
        r = self.r
        self._wang_household()
        plan = [("東區", 32), ("西區", 28), ("東平鄉", 20), ("西林鄉", 20)]
        shapes = (
            ["family"] * 40
            + ["three_gen"] * 14
            + ["couple_senior"] * 10
            + ["couple_young"] * 6
            + ["single"] * 18
            + ["single_parent"] * 7
            + ["business"] * 5
        )
        for district, count in plan:
            urban = DISTRICTS[district]["urban"]
            for _ in range(count):
                shape = r.choice(shapes)
                house = (not urban) or r.random() < 0.65 or shape == "business"
                self._family_household(district, shape, house)
        self._household_removals()
        self._person_removals()
        self._name_changes()
        self._address_changes()
        self._finalise_register()

    def _wang_household(self) -> None:
        self.used_names.update(
            ["林美惠", "張玉蘭", "王柏翰", "王詩涵", "王建國", "林正雄", "陳麗娟", "張德勝", "李月梅"]
        )
        parts = {
            "county": COUNTY,
            "district": "東區",
            "village": "中正里",
            "neighbourhood": "7鄰",
            "road": "中正路",
            "section": "一段",
            "lane": "",
            "alley": "",
            "number": "128號",
            "floor": "",
        }
        self._claim_address(parts)
        self.used_household_nos.add("U1000128")
        wang = self._person(
            "男", date(1978, 4, 12), name=WANG_NAME, id_no=WANG_ID, birthplace="臺北市", birth_order="長男"
        )
        wang.father = "王建國"
        wife = self._person("女", date(1980, 9, 3), name="林美惠", birthplace=COUNTY, birth_order="次女")
        wife.father, wife.mother = "林正雄", "陳麗娟"
        mother = self._person("女", date(1951, 2, 17), name="張玉蘭", birthplace="臺北市", birth_order="長女")
        mother.father, mother.mother = "張德勝", "李月梅"
        son = self._person("男", date(2009, 6, 21), name="王柏翰", birthplace=COUNTY, birth_order="長男")
        daughter = self._person("女", date(2012, 11, 8), name="王詩涵", birthplace=COUNTY, birth_order="長女")
        for kid in (son, daughter):
            kid.father_ref, kid.mother_ref = wang, wife
        wang.mother_ref = mother
        self._marry(wang, wife, date(2007, 10, 6))
        setup = date(2008, 3, 1)
        h = self._household("東區", "共同生活戶", "wang", parts, wang, setup, household_no="U1000128")
        self._join(h, wang, "戶長", setup)
        self._join(h, wife, "妻", setup)
        self._join(h, mother, "母", date(2016, 5, 2))
        self._join(h, son, "長男", None)
        self._join(h, daughter, "長女", None)

    def _family_household(self, district: str, shape: str, house: bool) -> None:
        r = self.r
        parts = self._address(district, house=house)
        latest = AS_OF - timedelta(days=60)
        rural = not DISTRICTS[district]["urban"]
        indigenous = r.choice(INDIGENOUS) if rural and r.random() < 0.12 else ""

        if shape in ("single", "business"):
            age = r.randint(40, 65) if shape == "business" else r.choice([r.randint(22, 60), r.randint(62, 92)])
            head = self._person(r.choice(["男", "女"]), self._birth_for_age(age))
            head.indigenous = indigenous
            setup = self._between(max(add_years(head.birth_date, 20), date(1985, 1, 1)), latest)
            kind = "共同事業戶" if shape == "business" else "單獨生活戶"
            h = self._household(district, kind, shape, parts, head, setup)
            self._join(h, head, "戶長", setup)
            if shape == "business":
                for _ in range(r.randint(2, 4)):
                    lodger = self._person(r.choice(["男", "女"]), self._birth_for_age(r.randint(20, 60)))
                    since = self._between(max(setup, add_years(lodger.birth_date, 18)), latest)
                    self._join(h, lodger, "寄居人", since)
            return

        if shape == "single_parent":
            mum = self._person("女", self._birth_for_age(r.randint(30, 50)))
            mum.indigenous = indigenous
            father_name = self._name("男")
            kids = self._children(father_name[0], None, mum, mum.birth_date, r.randint(1, 2))
            for kid in kids:
                kid.father = father_name
                kid.indigenous = indigenous
            setup = self._between(max(add_years(mum.birth_date, 20), date(1985, 1, 1)), latest)
            h = self._household(district, "共同生活戶", shape, parts, mum, setup)
            self._join(h, mum, "戶長", setup)
            for kid in kids:
                self._join(h, kid, kid.birth_order, None if kid.birth_date >= setup else setup)
            return

        # A couple, maybe with children and the husband's parents.
        ages = {
            "family": (30, 58),
            "three_gen": (35, 55),
            "couple_senior": (65, 88),
            "couple_young": (25, 40),
        }[shape]
        husband_age = r.randint(*ages)
        wife_age = max(husband_age - r.randint(-2, 6), 24)
        grandfather = grandmother = None
        if shape == "three_gen":
            gm_birth = self._birth_for_age(min(husband_age + r.randint(22, 30), 96))
            grandmother = self._person("女", gm_birth)
            if r.random() < 0.6:
                grandfather = self._person("男", self._birth_for_age(age_on(gm_birth) + r.randint(0, 5)))
        husband = self._person(
            "男", self._birth_for_age(husband_age), surname=grandfather.name[0] if grandfather else None
        )
        wife = self._person("女", self._birth_for_age(wife_age))
        husband.indigenous = indigenous
        if grandfather:
            husband.father_ref = grandfather
        if grandmother:
            husband.mother_ref = grandmother
        kids: list[Person] = []
        if shape in ("family", "three_gen"):
            n = r.choice([1, 2, 2, 2, 3, 3]) if shape == "family" else r.randint(1, 3)
            kids = self._children(husband.name[0], husband, wife, wife.birth_date, n)
            for kid in kids:
                kid.indigenous = indigenous
        lo = max(add_years(husband.birth_date, 21), add_years(wife.birth_date, 20))
        hi = kids[0].birth_date - timedelta(days=200) if kids else latest
        married = self._between(lo, hi)
        self._marry(husband, wife, married)
        if grandfather and grandmother:
            self._marry(
                grandfather, grandmother, self._between(add_years(grandmother.birth_date, 20), husband.birth_date)
            )
        setup = self._between(max(married, date(1985, 1, 1)), latest)
        female_head = shape == "family" and r.random() < 0.15
        head, partner = (wife, husband) if female_head else (husband, wife)
        h = self._household(district, "共同生活戶", shape, parts, head, setup)
        self._join(h, head, "戶長", setup)
        self._join(h, partner, "夫" if female_head else "妻", setup)
        for parent, relation in ((grandfather, "父"), (grandmother, "母")):
            if parent is not None:
                self._join(h, parent, relation, self._between(setup, latest))
        for kid in kids:
            self._join(h, kid, kid.birth_order, None if kid.birth_date >= setup else setup)

    def _active_households(self) -> list[Household]:
        return [h for h in self.households if h.status == "現住" and h.shape != "wang"]

    def _members(self, h: Household) -> list[Person]:
        return [p for p in self.persons if p.household_no == h.household_no]

    def _remove_person(self, p: Person, on: date, detail: str) -> None:
        p.status = "除戶"
        p.facts.append((on, self._next(), "removed", {"detail": detail}))

    def _household_removals(self) -> None:
        r = self.r
        deaths = [h for h in self._active_households() if h.shape == "single" and self._age_of(h.head_id) >= 70]
        moves = [h for h in self._active_households() if h.shape in ("couple_young", "single") and h not in deaths]
        for h, reason in [(h, "死亡") for h in r.sample(deaths, 3)] + [(h, "遷出") for h in r.sample(moves, 3)]:
            members = self._members(h)
            lo = max([p.joined for p in members] + [date(2023, 1, 1)]) + timedelta(days=30)
            on = self._between(lo, AS_OF - timedelta(days=10))
            if reason == "死亡":
                detail, personal = "戶長死亡，全戶除戶", "死亡"
            else:
                place = r.choice(list(ELSEWHERE))
                detail = personal = f"全戶遷出至{place}{r.choice(ELSEWHERE[place])}"
            h.status = "除戶"
            h.facts.append((on, self._next(), "removed", {"detail": detail}))
            for p in members:
                self._remove_person(p, on, personal)
            self.household_removals.append(HouseholdRemoval(h.household_no, on, reason, detail))

    def _age_of(self, id_no: str) -> int:
        return age_on(next(p for p in self.persons if p.id_no == id_no).birth_date)

    def _person_removals(self) -> None:
        r = self.r
        live = [(p, h) for h in self._active_households() for p in self._members(h) if p.relation != "戶長"]
        elders = [(p, h) for p, h in live if p.relation in ("父", "母", "妻", "夫") and age_on(p.birth_date) >= 68]
        young = [
            (p, h) for p, h in live if p.relation not in ("父", "母", "妻", "夫") and 20 <= age_on(p.birth_date) < 60
        ]
        picks = [(ph, "死亡") for ph in r.sample(elders, 6)] + [(ph, "遷出國外") for ph in r.sample(young, 7)]
        picks[-3:] = [(ph, "遷出") for ph, _reason in picks[-3:]]
        for (p, h), reason in picks:
            lo = max(p.joined, add_years(p.birth_date, 18), date(2022, 1, 1)) + timedelta(days=30)
            on = self._between(lo, AS_OF - timedelta(days=5))
            if reason == "死亡":
                detail = "死亡"
            elif reason == "遷出國外":
                detail = f"遷出國外（{r.choice(ABROAD)}）"
            else:
                place = r.choice(list(ELSEWHERE))
                detail = f"遷出至{place}{r.choice(ELSEWHERE[place])}"
            self._remove_person(p, on, detail)
            h.facts.append((on, self._next(), "member_removed", {"person": p, "detail": detail}))
            self.person_removals.append(PersonRemoval(p.id_no, on, reason, detail))
        self.person_removals.sort(key=lambda x: (x.date, x.id_no))

    def _name_changes(self) -> None:
        r = self.r
        live = [p for p in self.persons if p.status == "現住" and p.id_no != WANG_ID and age_on(p.birth_date) >= 3]
        adults_with_mum = [
            p
            for p in live
            if p.mother_ref is not None and age_on(p.birth_date) >= 20 and p.mother_ref.name[0] != p.name[0]
        ]
        surname_changes = r.sample(adults_with_mum, 2)
        for p in surname_changes:
            new = p.mother_ref.name[0] + p.name[1:]
            if new in self.used_names:
                new = self._name(p.sex, p.mother_ref.name[0])
            self.used_names.add(new)
            on = self._between(max(add_years(p.birth_date, 18), date(2008, 1, 1)), AS_OF - timedelta(days=10))
            self._rename(p, p.name, new, on, "成年子女變更從母姓（民法第1059條）")
        others = [p for p in live if p not in surname_changes]
        for p in r.sample(others, 10):
            old = self._name(p.sex, p.name[0])
            on = self._between(max(add_years(p.birth_date, 1), date(2005, 1, 1)), AS_OF - timedelta(days=10))
            self._rename(p, old, p.name, on, r.choice(NAME_CHANGE_REASONS))
        self.name_changes.sort(key=lambda x: (x.date, x.id_no))

    def _rename(self, p: Person, old: str, new: str, on: date, reason: str) -> None:
        p.name = new
        p.facts.append((on, self._next(), "rename", {"old": old}))
        self.name_changes.append(NameChange(p.id_no, old, new, on, reason))

    def _address_changes(self) -> None:
        r = self.r
        candidates = [h for h in self._active_households() if h.setup < AS_OF - timedelta(days=400)]
        for h in r.sample(candidates, 12):
            while True:
                old = h.parts
                variant = r.randint(0, 2)
                if variant == 0 or (variant == 1 and not old["section"]) or (variant == 2 and not old["lane"]):
                    old["number"] = f"{r.randint(1, 320)}號"
                elif variant == 1:
                    old["section"] = ""
                else:
                    old["lane"] = f"{r.randint(1, 250)}巷"
                if door_address(old) != h.door_address and self._claim_address(old):
                    break
            on = self._between(max(h.setup + timedelta(days=60), date(2015, 1, 1)), AS_OF - timedelta(days=10))
            old_address = full_address(old)
            h.facts.append((on, self._next(), "address", {"old": old_address}))
            self.address_changes.append(AddressChange(h.household_no, old_address, h.address, on, "門牌整編"))
        self.address_changes.sort(key=lambda x: (x.date, x.household_no))

    def _rare_household(self) -> None:
        """A household whose names and address hold characters outside Big5 and
        outside the AR PL UMing font (CJK Extension A and B): 王䶵明, 陳𠀋華 and
        their daughter 王𠂤婷 at 西林鄉䅈山村𤧛興路18號. They hold no tax, land or
        vehicle record (the tax file is Big5, which cannot hold their names)."""
        main, self.r = self.r, random.Random(self.seed + 1)
        try:
            parts = {
                "county": COUNTY,
                "district": "西林鄉",
                "village": RARE_VILLAGE,
                "neighbourhood": "3鄰",
                "road": RARE_ROAD,
                "section": "",
                "lane": "",
                "alley": "",
                "number": "18號",
                "floor": "",
            }
            self._claim_address(parts)
            head_name, wife_name, child_name = RARE_NAMES
            head = self._person("男", date(1975, 3, 9), name=head_name, birthplace=COUNTY, birth_order="長男")
            wife = self._person("女", date(1977, 8, 21), name=wife_name, birthplace="臺中市", birth_order="次女")
            child = self._person("女", date(2006, 1, 14), name=child_name, birthplace=COUNTY, birth_order="長女")
            child.father_ref, child.mother_ref = head, wife
            self._marry(head, wife, date(2003, 5, 4))
            setup = date(2004, 2, 10)
            first = len(self.persons)
            h = self._household("西林鄉", "共同生活戶", "rare", parts, head, setup)
            self._join(h, head, "戶長", setup)
            self._join(h, wife, "妻", setup)
            self._join(h, child, "長女", None)
            self._finalise_people(self.persons[first:], [h])
        finally:
            self.r = main

    def _finalise_register(self) -> None:
        """Resolve references to current names; write notes (記事) and events (全戶動態記事)."""
        self._finalise_people(self.persons, self.households)
        order = {h.household_no: i for i, h in enumerate(self.households)}
        self.persons.sort(key=lambda p: (order[p.household_no], RELATION_ORDER[p.relation], p.birth_date, p.id_no))

    def _finalise_people(self, persons: list[Person], households: list[Household]) -> None:
        for p in persons:
            if p.father_ref:
                p.father = p.father_ref.name
            if p.mother_ref:
                p.mother = p.mother_ref.name
            if p.spouse_ref:
                p.spouse = p.spouse_ref.name
            p.notes = [self._person_note(p, kind, data, on) for on, _t, kind, data in sorted(p.facts, key=_fact_key)]
        for h in households:
            h.events = [self._household_event(kind, data, on) for on, _t, kind, data in sorted(h.facts, key=_fact_key)]

    @staticmethod
    def _person_note(p: Person, kind: str, data: dict, on: date) -> str:
        if kind == "birth":
            return f"{roc(on)}在{data['place']}出生，{roc(data['registered'])}辦理出生登記"
        if kind == "move_in":
            return f"{roc(on)}由{data['from']}遷入"
        if kind == "marriage":
            return f"{roc(on)}與{data['spouse'].name}結婚"
        if kind == "rename":
            return f"{roc(on)}更名，原名{data['old']}"
        if kind == "removed":
            return f"{roc(on)}{data['detail']}，除戶"
        raise ValueError(kind)

    @staticmethod
    def _household_event(kind: str, data: dict, on: date) -> str:
        if kind == "setup":
            return f"{roc(on)}戶長{data['head'].name}由{data['from']}遷入本址，設立戶籍"
        if kind == "member_removed":
            p = data["person"]
            return f"{roc(on)}{p.relation}{p.name}{data['detail']}，除戶"
        if kind == "address":
            return f"{roc(on)}門牌整編，原門牌：{data['old']}"
        if kind == "removed":
            return f"{roc(on)}{data['detail']}"
        raise ValueError(kind)

    # --- who can own, represent, earn and drive ---------------------------------------------

    def _living(self, min_age: int = 0, max_age: int = 200) -> list[Person]:
        return [p for p in self.persons if p.status == "現住" and min_age <= age_on(p.birth_date) <= max_age]

    def _owner(self, who) -> dict:
        if isinstance(who, Person):
            return {
                "name": who.name,
                "id_no": who.id_no,
                "address": self.household_of[who.id_no].address,
                "since": add_years(who.birth_date, 20),
            }
        return {"name": who.name, "id_no": who.ban, "address": who.address, "since": who.established}

    # --- business registry -----------------------------------------------------------

    def _businesses(self) -> None:
        r = self.r
        reps = self._living(25, 75)
        r.shuffle(reps)
        reps = [p for p in reps if p.id_no != WANG_ID]
        prefixes = list(COMPANY_PREFIXES)
        r.shuffle(prefixes)
        specs = [("bank", name) for name in BANKS] + [("company", None)] * 20 + [("shop", None)] * 13
        for i, (kind, fixed_name) in enumerate(specs):
            rep = reps[i]
            district = r.choice(["東區", "西區"]) if kind == "bank" else r.choice(list(DISTRICTS))
            parts = self._address(district, house=True)
            if kind == "bank":
                name, items = fixed_name, ["H101021 商業銀行業", GENERAL_ITEM]
                capital = r.choice([8_000_000_000, 12_000_000_000, 15_000_000_000])
                established = self._between(date(1962, 1, 1), date(1992, 12, 31))
            elif kind == "company":
                trade, trade_items = COMPANY_TRADES[i % len(COMPANY_TRADES)]
                form = r.choice(["有限公司", "股份有限公司"])
                name = prefixes.pop() + trade + form
                items = list(trade_items[: r.randint(1, 2)]) + [GENERAL_ITEM]
                capital = r.choice(
                    [500_000, 1_000_000, 3_000_000, 5_000_000]
                    if form == "有限公司"
                    else [10_000_000, 20_000_000, 50_000_000, 100_000_000]
                )
                established = self._between(max(add_years(rep.birth_date, 22), date(1985, 1, 1)), date(2025, 6, 30))
            else:
                trade, trade_items = SHOP_TRADES[i % len(SHOP_TRADES)]
                name = prefixes.pop() + trade
                items = list(trade_items)
                capital = r.choice([30_000, 50_000, 100_000, 200_000, 500_000])
                established = self._between(max(add_years(rep.birth_date, 22), date(1990, 1, 1)), date(2025, 6, 30))
            self.businesses.append(
                Business(
                    ban=self._ban(),
                    name=name,
                    kind="商業" if kind == "shop" else "公司",
                    status="核准設立",
                    capital=capital,
                    representative_name=rep.name,
                    representative_id_no=rep.id_no,
                    address=door_address(parts),
                    established=established,
                    business_items=items,
                    district=district,
                )
            )
        companies = [b for b in self.businesses if b.kind == "公司" and b.name not in BANKS]
        shops = [b for b in self.businesses if b.kind == "商業"]
        for b in r.sample(companies, 2):
            b.status = "解散"
        for b in r.sample(shops, 2):
            b.status = "停業"

    def _active_companies(self) -> list[Business]:
        return [b for b in self.businesses if b.status == "核准設立" and b.name not in BANKS]

    # --- land registry ----------------------------------------------------------------

    def _land(self) -> None:
        r = self.r
        parcel_id = 0
        by_section: dict[str, list[LandParcel]] = {}
        for code, name, sub, district, ox, oy, urban, count, n_buildings, base in SECTIONS:
            numbers = self._parcel_numbers(count, (18, 1) if code == "UA0101" else None)
            cols = 4
            cw, ch = (22.0, 30.0) if urban else (45.0, 60.0)
            by_section[code] = []
            for i, parcel_no in enumerate(numbers):
                parcel_id += 1
                polygon = self._parcel_polygon(ox + (i % cols) * cw, oy + (i // cols) * ch, cw, ch)
                if urban:
                    category, zoning, use_class = "建", r.choice(["住宅區"] * 7 + ["商業區"] * 3), ""
                else:
                    category, zoning, use_class = r.choice([c for c, w in RURAL_LAND for _ in range(w)])
                value = base * (4 if (not urban and category == "建") else 1) * (1.3 if zoning == "商業區" else 1)
                value = int(round(value * r.uniform(0.85, 1.15), -2))
                if parcel_no.endswith("0000"):
                    reason = r.choice(["地籍圖重測", "地籍圖重測", "第一次登記"])
                    reg_date = self._between(date(1976, 1, 1), date(2005, 12, 31))
                else:
                    reason, reg_date = "分割", self._between(date(1990, 1, 1), date(2019, 12, 31))
                parcel = LandParcel(
                    id=parcel_id,
                    section_code=code,
                    section_name=name,
                    subsection_name=sub,
                    parcel_no=parcel_no,
                    district=district,
                    reg_date=reg_date,
                    reg_reason=reason,
                    land_category=category,
                    area_m2=round(shoelace_area(polygon), 2),
                    zoning=zoning,
                    use_class=use_class,
                    announced_value=value,
                    announced_price=int(round(value * r.uniform(0.16, 0.24), -1)),
                    polygon_twd97=polygon,
                )
                self.land_parcels.append(parcel)
                by_section[code].append(parcel)
            missing = n_buildings + 2 - sum(p.land_category == "建" for p in by_section[code])
            if not urban and missing > 0:  # enough building land for the section's buildings
                for p in [p for p in by_section[code] if p.land_category != "建"][-missing:]:
                    p.land_category, p.zoning, p.use_class = "建", "鄉村區", "乙種建築用地"
                    p.announced_value *= 4
                    p.announced_price *= 4

        owners: dict[int, list[tuple[dict, Fraction]]] = {}
        deeds: dict[int, tuple[date, str]] = {}  # parcel id -> (registration date, reason)
        self._wang_property(by_section, owners, deeds)
        households = [
            h
            for h in self._active_households()
            if h.floor == "" and h.kind == "共同生活戶" and self._age_of(h.head_id) >= 30
        ]
        r.shuffle(households)
        companies = self._active_companies()
        for code, _name, _sub, district, _x, _y, _urban, _count, n_buildings, _base in SECTIONS:
            free = [p for p in by_section[code] if p.land_category == "建" and p.id not in owners]
            built = sum(1 for b in self.buildings if b.section_code == code)
            while built < n_buildings and free:
                first = free.pop(0)
                parcels = [first]
                if free and free[0].parcel_no[:4] == first.parcel_no[:4] and r.random() < 0.5:
                    parcels.append(free.pop(0))
                company = None
                if first.zoning == "商業區" and r.random() < 0.6:
                    company = next((b for b in companies if b.district == district), None)
                    if company:
                        companies.remove(company)
                if company:
                    group = [(self._owner(company), Fraction(1))]
                    door, use = company.address, r.choice(["商業用", "辦公室"])
                else:
                    h = next((h for h in households if h.district == district), None)
                    if h is None:
                        break
                    households.remove(h)
                    head = next(p for p in self.persons if p.id_no == h.head_id)
                    partner = head.spouse_ref if head.spouse_ref and head.spouse_ref.status == "現住" else None
                    if partner and r.random() < 0.45:
                        group = [(self._owner(head), Fraction(1, 2)), (self._owner(partner), Fraction(1, 2))]
                    else:
                        group = [(self._owner(head), Fraction(1))]
                    door = h.door_address
                    use = "住商用" if first.zoning == "商業區" and r.random() < 0.5 else "住家用"
                self._building(code, parcels, group, door, use, company is not None, owners, deeds)
                built += 1
        self._other_owners(owners, deeds)
        self._write_owners(owners, deeds)

    def _parcel_numbers(self, count: int, force: tuple[int, int] | None) -> list[str]:
        r = self.r
        out: list[str] = []
        main = r.randint(3, 11)
        forced = False
        while len(out) < count:
            if force and main > force[0] and not forced:
                main = force[0]
            subs = r.choice([[0], [0], [0], [0], [0, 1], [0, 1], [0, 1, 2]])
            if force and main == force[0]:
                subs, forced = [0, 1], True
            out.extend(f"{main:04d}{s:04d}" for s in subs)
            main += r.randint(1, 3)
        return out[:count]

    def _parcel_polygon(self, x0: float, y0: float, cw: float, ch: float) -> list[list[float]]:
        r = self.r
        w, h = cw * r.uniform(0.72, 0.94), ch * r.uniform(0.72, 0.94)
        mx, my = (cw - w) / 2, (ch - h) / 2
        m = min(mx, my)

        def jitter() -> float:
            return r.uniform(-0.45, 0.45) * m

        bl = (x0 + mx + jitter(), y0 + my + jitter())
        br = (x0 + mx + w + jitter(), y0 + my + jitter())
        tr = (x0 + mx + w + jitter(), y0 + my + h + jitter())
        tl = (x0 + mx + jitter(), y0 + my + h + jitter())
        ring = [bl, br, tr]
        if r.random() < 0.25:  # a pentagon: a kink pushed outwards on the far side
            ring.append(((tr[0] + tl[0]) / 2, max(tr[1], tl[1]) + r.uniform(0.2, 0.45) * my))
        ring += [tl, bl]
        return [[round(x, 3), round(y, 3)] for x, y in ring]

    def _certificate(self, on: date, kind: str) -> str:
        self.certificate_seq += 1
        return f"{on.year - 1911:03d}示{kind}字第{self.certificate_seq:06d}號"

    def _wang_property(self, by_section, owners, deeds) -> None:
        wang = next(p for p in self.persons if p.id_no == WANG_ID)
        wife = wang.spouse_ref
        home = next(p for p in by_section["UA0101"] if p.parcel_no == "00180001")
        home.land_category, home.zoning, home.use_class = "建", "住宅區", ""
        group = [(self._owner(wang), Fraction(1, 2)), (self._owner(wife), Fraction(1, 2))]
        self._building("UA0101", [home], group, self.household_of[WANG_ID].door_address, "住家用", False,
                       owners, deeds, fixed=(date(2008, 2, 15), date(1996, 8, 20), "00173-000"))  # fmt: skip
        farm = next(p for p in by_section["UA0301"] if p.land_category in ("田", "旱"))
        owners[farm.id] = [(self._owner(wang), Fraction(1))]
        deeds[farm.id] = (date(2015, 9, 18), "繼承")

    def _building(self, code, parcels, group, door, use, commercial, owners, deeds, fixed=None) -> None:
        r = self.r
        since = max(o["since"] for o, _s in group)
        if fixed:
            bought, completed, building_no = fixed
            first_registration = False
        else:
            bought = self._between(max(since, date(1988, 1, 1)), AS_OF - timedelta(days=400))
            first_registration = r.random() < 0.5
            if first_registration:
                completed = min(bought + timedelta(days=r.randint(200, 900)), AS_OF - timedelta(days=120))
            else:
                completed = self._between(date(1978, 1, 1), bought - timedelta(days=200))
            building_no = None
        for p in parcels:
            owners[p.id] = list(group)
            deeds[p.id] = (bought, "買賣")
        # The floor plans.
        rural = not next(s for s in SECTIONS if s[0] == code)[6]
        if commercial:
            floors, w, d = r.randint(3, 7), r.uniform(9, 14), r.uniform(14, 20)
        elif rural:
            floors, w, d = r.choice([1, 2, 2, 3]), r.uniform(8, 14), r.uniform(9, 14)
        else:
            floors, w, d = r.choice([2, 3, 3, 4, 4, 5]), r.uniform(4.5, 8.5), r.uniform(11, 19)
        land_area = sum(p.area_m2 for p in parcels)
        if w * d > 0.85 * land_area:
            k = (0.85 * land_area / (w * d)) ** 0.5
            w, d = w * k, d * k
        w, d = round(w, 2), round(d, 2)
        notch = (round(w * r.uniform(0.3, 0.45), 2), round(d * r.uniform(0.2, 0.35), 2)) if r.random() < 0.25 else None
        setback = round(r.uniform(1.5, 3.5), 2) if floors >= 3 and r.random() < 0.3 else 0.0
        balcony = round(r.uniform(1.0, 1.5), 2) if floors >= 2 and r.random() < 0.6 else 0.0
        building_id = len(self.buildings) + 1
        plans: list[tuple[str, list, bool, str]] = []
        for i in range(floors):
            depth = d - setback if (i == floors - 1 and setback) else d
            plans.append((FLOOR_LABELS[i], _plan(w, depth, notch), False, ""))
        if floors >= 3 and r.random() < 0.3:
            rw, rd = round(r.uniform(2.8, 3.6), 2), round(r.uniform(3.5, 4.5), 2)
            plans.append(("屋頂突出物", _plan(rw, rd, None, x0=round(w - rw, 2), y0=round(d / 2, 2)), False, ""))
        annex_notes = []
        for i in range(1, floors):
            if balcony:
                plans.append((FLOOR_LABELS[i], _plan(w, balcony, None, y0=-balcony), True, "陽台"))
        total = 0.0
        for seq, (label, polygon, is_annex, annex_use) in enumerate(plans, start=1):
            area = round(shoelace_area(polygon), 2)
            if is_annex:
                annex_notes.append(f"{label} {area:.2f}平方公尺")
            else:
                total += area
            self.building_floors.append(BuildingFloor(building_id, seq, label, area, polygon, is_annex, annex_use))
        if building_no is None:
            taken = [b.building_no for b in self.buildings if b.section_code == code]
            last = int(taken[-1][:5]) if taken else r.randint(100, 160)
            building_no = f"{last + r.randint(3, 14):05d}-000"
        self.licence_seq += 1
        material = (
            "鋼骨鋼筋混凝土造"
            if floors >= 6
            else ("加強磚造" if completed.year < 1990 and floors <= 3 else "鋼筋混凝土造")
        )
        self.buildings.append(
            Building(
                id=building_id,
                section_code=code,
                building_no=building_no,
                door_address=door,
                located_parcels=",".join(p.parcel_no for p in parcels),
                main_use=use,
                main_material=material,
                floors_total=floors,
                total_area_m2=round(total, 2),
                completion_date=completed,
                annex=("陽台：" + "、".join(annex_notes)) if annex_notes else "",
                other_notes=f"使用執照字號：{completed.year - 1911}示使字第{self.licence_seq:04d}號",
            )
        )
        reg_date = completed + timedelta(days=r.randint(20, 90)) if first_registration else bought
        reason = "第一次登記" if first_registration else "買賣"
        for order, (o, share) in enumerate(group, start=1):
            self.building_owners.append(
                BuildingOwner(
                    building_id=building_id,
                    reg_order=f"{order:04d}",
                    reg_date=reg_date,
                    reg_reason=reason,
                    owner_name=o["name"],
                    owner_id_no=o["id_no"],
                    owner_address=o["address"],
                    share=share_text(share),
                    certificate_no=self._certificate(reg_date, "建"),
                )
            )

    def _other_owners(self, owners, deeds) -> None:
        r = self.r
        people = [p for p in self._living(25) if p.id_no != WANG_ID]
        companies = self._active_companies()
        patterns = [s for s, w in SHARE_PATTERNS for _ in range(w)]
        for parcel in self.land_parcels:
            if parcel.id in owners:
                continue
            if r.random() < 0.15:
                group = [(self._owner(r.choice(companies)), Fraction(1))]
                reason = r.choice(["買賣", "買賣", "拍賣"])
            else:
                shares = r.choice(patterns)
                if len(shares) == 2 and shares[0] == shares[1] and r.random() < 0.7:
                    head = r.choice([p for p in people if p.spouse_ref and p.spouse_ref.status == "現住"])
                    chosen = [head, head.spouse_ref]
                else:
                    chosen = r.sample(people, len(shares))
                group = [(self._owner(p), s) for p, s in zip(chosen, shares)]
                if len(shares) == 1:
                    reason = r.choice(["買賣", "買賣", "買賣", "贈與", "繼承"])
                elif len(shares) == 2:
                    reason = r.choice(["買賣", "買賣", "繼承"])
                else:
                    reason = r.choice(["繼承", "分割繼承"])
            since = max(o["since"] for o, _s in group)
            owners[parcel.id] = group
            deeds[parcel.id] = (
                self._between(max(since, parcel.reg_date, date(1990, 1, 1)), AS_OF - timedelta(days=20)),
                reason,
            )

    def _write_owners(self, owners, deeds) -> None:
        r = self.r
        banks = [b for b in self.businesses if b.name in BANKS]
        building_parcels = [(b.section_code, no) for b in self.buildings for no in b.located_parcels.split(",")]
        for parcel in self.land_parcels:
            group = owners[parcel.id]
            reg_date, reason = deeds[parcel.id]
            if parcel.reg_date >= reg_date:  # the parcel's marking predates its owners' registration
                parcel.reg_date = reg_date - timedelta(days=r.randint(30, 3000))
            other = ""
            wang_home = parcel.section_code == "UA0101" and parcel.parcel_no == "00180001"
            built = (parcel.section_code, parcel.parcel_no) in building_parcels
            if wang_home or r.random() < (0.4 if built else 0.2):
                bank = banks[0] if wang_home else r.choice(banks)
                kind = r.choice(["最高限額抵押權", "最高限額抵押權", "抵押權"])
                amount = max(600_000, int(round(parcel.area_m2 * parcel.announced_value * r.uniform(0.5, 1.5), -4)))
                start = reg_date
                self.land_other_rights.append(
                    LandOtherRight(
                        parcel_id=parcel.id,
                        reg_order="0001",
                        reg_date=start,
                        right_kind=kind,
                        holder_name=bank.name,
                        holder_id_no=bank.ban,
                        secured_amount=amount,
                        duration=f"{roc(start)}至{roc(add_years(start, 30) - timedelta(days=1))}",
                    )
                )
                other = "0001"
            for order, (o, share) in enumerate(group, start=1):
                cause = reg_date - timedelta(days=r.randint(60, 400) if "繼承" in reason else r.randint(7, 60))
                self.land_owners.append(
                    LandOwner(
                        parcel_id=parcel.id,
                        reg_order=f"{order:04d}",
                        reg_date=reg_date,
                        reg_reason=reason,
                        cause_date=cause,
                        owner_name=o["name"],
                        owner_id_no=o["id_no"],
                        owner_address=o["address"],
                        share=share_text(share),
                        certificate_no=self._certificate(reg_date, "地"),
                        other_rights_order=other,
                    )
                )

    # --- social welfare ---------------------------------------------------------------

    def _social(self):
        r = self.r
        live = self._living()
        district = {p.id_no: self.household_of[p.id_no].district for p in live}
        codes: dict[str, str] = {}
        households = [
            h for h in self._active_households() if h.shape in ("single_parent", "three_gen", "single", "family")
        ]
        poor = r.sample(households, 7)
        for i, h in enumerate(poor):
            for p in self._members(h):
                if p.status == "現住":
                    codes[p.id_no] = "A" if i < 3 else "B"
        # Disabilities: Wang's mother first, then mostly older people; all eight categories.
        wang_mother = next(p for p in live if p.id_no == WANG_ID).mother_ref
        pool = [p for p in live if p is not wang_mother and age_on(p.birth_date) >= 6]
        older = [p for p in pool if age_on(p.birth_date) >= 50]
        younger = [p for p in pool if age_on(p.birth_date) < 50]
        disabled = [wang_mother] + r.sample(older, 15) + r.sample(younger, 7)
        categories = list(DISABILITY_CATEGORIES)
        disabilities = []
        for i, p in enumerate(disabled):
            category = "7" if p is wang_mother else categories[i % 8] if i <= 8 else r.choice(categories)
            level = "2" if p is wang_mother else ("9" if i == 5 else r.choice(["1", "1", "2", "2", "3", "4"]))
            permanent = level in ("3", "4") and age_on(p.birth_date) >= 60 and r.random() < 0.5
            if level == "9":
                certified, review = self._between(date(2005, 1, 1), date(2012, 6, 30)), None
            elif permanent:
                certified, review = (
                    self._between(max(add_years(p.birth_date, 1), date(2013, 1, 1)), AS_OF - timedelta(days=30)),
                    None,
                )
            else:
                lo = max(add_years(p.birth_date, 1), AS_OF - timedelta(days=5 * 365 - 30))
                certified = self._between(lo, AS_OF - timedelta(days=30))
                review = add_years(certified, 5)
            if p is wang_mother:
                certified, review = date(2023, 5, 16), date(2028, 5, 16)
            disabilities.append(
                Disability(
                    p.id_no,
                    p.name,
                    category,
                    DISABILITY_CATEGORIES[category],
                    level,
                    DISABILITY_LEVELS[level],
                    certified,
                    review,
                )
            )
            if p.id_no not in codes:
                codes[p.id_no] = "C" if (level in ("2", "3", "4") and (p is wang_mother or r.random() < 0.7)) else "D"
        wang_household = [p for p in live if p.household_no == self.household_of[WANG_ID].household_no]
        for p in wang_household:
            codes.setdefault(p.id_no, "D")
        others = [p for p in live if p.id_no not in codes]
        for i, p in enumerate(r.sample(others, 22)):
            codes[p.id_no] = "Z" if i < 3 else "D"
        seniors = [p for p in live if age_on(p.birth_date) >= SENIOR_AGE]
        allowed = [p for p in seniors if p is wang_mother or r.random() < 0.65]
        for p in allowed:
            codes.setdefault(p.id_no, "D")

        welfare = []
        disability_of = {d.id_no: d for d in disabilities}
        for p in live:
            code = codes.get(p.id_no)
            if code is None:
                continue
            if code in ("A", "B"):
                valid_from, valid_to = max(date(2026, 1, 1), p.birth_date), date(2026, 12, 31)
            elif code == "C":
                d = disability_of[p.id_no]
                valid_from, valid_to = d.certified_date + timedelta(days=30), d.review_date
            else:
                valid_from = self._between(max(p.birth_date, date(2015, 1, 1)), AS_OF - timedelta(days=30))
                valid_to = None
            welfare.append(
                WelfareStatus(p.id_no, p.name, code, WELFARE_LABELS[code], valid_from, valid_to, district[p.id_no])
            )
        order = {p.id_no: i for i, p in enumerate(live)}
        disabilities.sort(key=lambda d: order[d.id_no])
        allowances = []
        for p in allowed:
            start = min(
                max(add_years(p.birth_date, SENIOR_AGE) + timedelta(days=r.randint(20, 60)), date(2008, 1, 1)), AS_OF
            )
            amount = {"A": 7759, "B": 3879}.get(codes[p.id_no], 3000)
            status = "暫停" if r.random() < 0.06 else "發放中"
            allowances.append(SeniorAllowance(p.id_no, p.name, amount, start, status))
        return welfare, disabilities, allowances

    # --- income tax ---------------------------------------------------------------------

    def _tax(self) -> list[TaxIncome]:
        r = self.r
        banks = [b for b in self.businesses if b.name in BANKS]
        payers = [b for b in self._active_companies() if b.established < date(2022, 1, 1)]
        employers = [b for b in payers if b.kind == "公司"] + banks
        corps = [b for b in payers if b.name.endswith("股份有限公司")] + banks
        rows: list[TaxIncome] = []
        for p in self._living(20):
            if p.id_no != WANG_ID and r.random() < 0.25:
                continue
            senior = age_on(p.birth_date) >= SENIOR_AGE
            employer = r.choice(employers)
            salary = r.randrange(360_000, 1_500_000, 1000)
            bank = r.choice(banks)
            for year in (111, 112, 113):
                if age_on(p.birth_date, date(year + 1911, 12, 31)) < 18:
                    continue
                records: list[tuple[str, int, Business]] = []
                if not senior and (p.id_no == WANG_ID or r.random() < 0.9):
                    records.append(("薪資所得", salary, employer))
                    salary = int(salary * r.uniform(1.0, 1.06)) // 100 * 100
                if r.random() < 0.7 or senior:
                    records.append(("利息所得", r.randint(300, 60_000), bank))
                if r.random() < (0.5 if senior else 0.25):
                    records.append(("股利所得", r.randint(1_000, 250_000), r.choice(corps)))
                if r.random() < 0.08:
                    records.append(
                        (
                            r.choice(["執行業務所得", "租賃所得", "其他所得"]),
                            r.randint(10_000, 300_000),
                            r.choice(payers),
                        )
                    )
                for kind, amount, payer in records:
                    rows.append(
                        TaxIncome(p.id_no, p.name, year, kind, amount, _withheld(kind, amount), payer.name, payer.ban)
                    )
        return rows

    # --- motor vehicles -----------------------------------------------------------------

    def _vehicles(self) -> list[Vehicle]:
        r = self.r
        kinds = [(k, brands) for k, brands, w in VEHICLE_KINDS for _ in range(w)]
        plates: set[str] = set()
        out: list[Vehicle] = []
        for p in self._living(18):
            n = 1 if p.id_no == WANG_ID else r.choice([0, 0, 1, 1, 1, 2])
            for _ in range(n):
                kind, brands = ("自用小客車", VEHICLE_KINDS[0][1]) if p.id_no == WANG_ID else r.choice(kinds)
                while True:
                    plate = "".join(r.choice(PLATE_LETTERS) for _ in range(3)) + "-"
                    plate += "".join(r.choice(PLATE_DIGITS) for _ in range(4))
                    if plate not in plates and plate[-4:] != "0000":
                        plates.add(plate)
                        break
                lo = max(add_years(p.birth_date, 18), date(2004, 1, 1))
                registered = self._between(lo, AS_OF - timedelta(days=10))
                model_year = registered.year - (0 if r.random() < 0.8 else 1)
                status = "正常" if p.id_no == WANG_ID else r.choice(["正常"] * 16 + ["停駛", "停駛", "註銷", "註銷"])
                out.append(
                    Vehicle(plate, kind, r.choice(brands), model_year, p.id_no, p.name, roc_compact(registered), status)
                )
        return out


def _fact_key(fact) -> tuple:
    return fact[0], fact[1]


def _plan(w: float, d: float, notch, x0: float = 0.0, y0: float = 0.0) -> list[list[float]]:
    """A closed floor-plan ring in metres: a w x d rectangle, or an L with the back-right notch cut out."""
    if notch:
        nw, nd = notch
        ring = [(0, 0), (w, 0), (w, d - nd), (w - nw, d - nd), (w - nw, d), (0, d), (0, 0)]
    else:
        ring = [(0, 0), (w, 0), (w, d), (0, d), (0, 0)]
    return [[round(x0 + x, 2), round(y0 + y, 2)] for x, y in ring]


def _withheld(kind: str, amount: int) -> int:
    if kind == "薪資所得":
        return amount * 5 // 100 if amount > 600_000 else 0
    if kind in ("利息所得", "租賃所得") and amount > 20_000:
        return amount // 10
    if kind in ("執行業務所得", "其他所得"):
        return amount // 10
    return 0
