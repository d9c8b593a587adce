"""The demo world (seed_data/) is synthetic, deterministic and self-consistent:
valid identifiers, one register that every agency's records point back to,
land shares that add up, polygons whose areas match the register, and files
in the encodings and layouts the connectors expect. Loads on SQLite,
PostgreSQL and MariaDB."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import uuid
from collections import Counter
from datetime import date
from fractions import Fraction
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from app.lib.identifiers import is_business_number, is_national_id
from seed_data import schema
from seed_data.loader import TAX_HEADER, load_land, load_social, write_files
from seed_data.world import (
    ADDRESS_PARTS,
    AS_OF,
    DISABILITY_CATEGORIES,
    DISABILITY_LEVELS,
    FEMALE_CHARS,
    MALE_CHARS,
    RARE_NAMES,
    RELATION_ORDER,
    SENIOR_AGE,
    SURNAMES,
    WANG_ID,
    WELFARE_LABELS,
    add_years,
    age_on,
    build_world,
    door_address,
    full_address,
    share_fraction,
    shoelace_area,
)

PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
MARIADB_ADMIN_URL = os.environ.get("TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/")
TEXT_FILES = ("household.json", "tax_income.csv", "business.json", "vehicles.txt", "vehicles.layout.json")


@pytest.fixture(scope="module")
def world():
    return build_world()


@pytest.fixture(scope="module")
def files(world, tmp_path_factory) -> dict[str, Path]:
    return write_files(tmp_path_factory.mktemp("seed"), world)


@pytest.fixture(scope="module")
def living(world):
    return {p.id_no: p for p in world.persons if p.status == "現住"}


def _address_of(world, id_no: str) -> str:
    return world.household(world.person(id_no).household_no).address


def _all_person_ids(world) -> list[str]:
    ids = [p.id_no for p in world.persons]
    ids += [o.owner_id_no for o in world.land_owners + world.building_owners if len(o.owner_id_no) == 10]
    ids += [r.id_no for r in world.welfare_status + world.disabilities + world.senior_allowances]
    ids += [t.taxpayer_id for t in world.tax_incomes] + [v.owner_id_no for v in world.vehicles]
    ids += [b.representative_id_no for b in world.businesses]
    return ids


# --- determinism ----------------------------------------------------------------------


def test_the_same_seed_builds_the_same_world_every_time(world):
    assert repr(build_world()) == repr(world)


def test_the_world_does_not_depend_on_the_python_hash_seed(world):
    code = "import hashlib; from seed_data.world import build_world; print(hashlib.sha256(repr(build_world()).encode()).hexdigest())"
    digests = set()
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        digests.add(out.stdout.strip())
    import hashlib

    assert digests == {hashlib.sha256(repr(world).encode()).hexdigest()}


def test_writing_the_files_twice_gives_byte_identical_files(world, files, tmp_path):
    again = write_files(tmp_path, world)
    for name in (*TEXT_FILES, "land.db", "social.db"):
        assert again[name].read_bytes() == files[name].read_bytes(), name


# --- identifiers ------------------------------------------------------------------------


def test_every_national_id_in_the_world_passes_its_checksum(world):
    bad = sorted({i for i in _all_person_ids(world) if not is_national_id(i)})
    assert bad == []


def test_the_sex_digit_matches_the_sex_and_no_id_number_is_used_twice(world):
    for p in world.persons:
        assert p.id_no[1] == ("1" if p.sex == "男" else "2"), p
    ids = [p.id_no for p in world.persons]
    assert len(ids) == len(set(ids))


def test_every_business_number_passes_its_checksum_and_is_unique(world):
    bans = [b.ban for b in world.businesses]
    assert all(is_business_number(b) for b in bans)
    assert len(bans) == len(set(bans))


# --- household register -----------------------------------------------------------------


def test_the_register_has_at_least_220_people_in_85_households(world):
    assert len(world.persons) >= 220
    assert len(world.households) >= 85
    assert {h.kind for h in world.households} == {"共同生活戶", "共同事業戶", "單獨生活戶"}
    assert all(len(h.household_no) == 8 for h in world.households)
    assert len({h.household_no for h in world.households}) == len(world.households)


def test_wang_xiaoming_heads_a_household_with_his_spouse_and_a_child(world):
    wang = world.person(WANG_ID)
    assert (wang.name, wang.sex, wang.relation, wang.status) == ("王小明", "男", "戶長", "現住")
    household = world.household(wang.household_no)
    assert household.head_id == WANG_ID
    members = [p for p in world.members(wang.household_no) if p.status == "現住"]
    assert len(members) >= 3
    spouse = next(p for p in members if p.relation == "妻")
    assert spouse.spouse == "王小明" and wang.spouse == spouse.name
    children = [p for p in members if RELATION_ORDER[p.relation] == 3]
    assert children and all(c.father == "王小明" and c.mother == spouse.name for c in children)


def test_every_household_lists_its_head_first_and_members_in_register_order(world):
    for h in world.households:
        members = world.members(h.household_no)
        assert members[0].id_no == h.head_id and members[0].relation == "戶長"
        ranks = [RELATION_ORDER[p.relation] for p in members]
        assert ranks == sorted(ranks), h.household_no
        assert all(p.birth_date < AS_OF for p in members)


def test_names_are_made_up_from_common_surnames_and_given_name_characters(world):
    names = [p.name for p in world.persons] + [c.old_name for c in world.name_changes]
    names += [n for p in world.persons for n in (p.father, p.mother, p.spouse) if n]
    for name in names:
        assert len(name) == 3 and name[0] in SURNAMES, name
        common = set(name[1:]) <= set(MALE_CHARS) or set(name[1:]) <= set(FEMALE_CHARS)
        assert common or name == "王小明" or name in RARE_NAMES, name


def test_a_household_has_names_and_an_address_beyond_big5_and_the_uming_font(world):
    """難字: household registers hold characters Big5 and the usual fonts lack."""
    rare = [p for p in world.persons if p.name in RARE_NAMES]
    assert [p.name for p in rare] == list(RARE_NAMES)
    household = world.household(rare[0].household_no)
    assert {p.household_no for p in rare} == {household.household_no}
    assert household.address == "示範縣西林鄉䅈山村3鄰𤧛興路18號"
    text = "".join(RARE_NAMES) + household.address
    assert any(0x3400 <= ord(ch) <= 0x4DBF for ch in text)  # CJK Extension A
    assert any(0x20000 <= ord(ch) <= 0x2A6DF for ch in text)  # CJK Extension B
    for name in RARE_NAMES:
        with pytest.raises(UnicodeEncodeError):
            name.encode("cp950")
    # the Big5 tax file cannot hold them: they have no income rows
    assert not {t.taxpayer_id for t in world.tax_incomes} & {p.id_no for p in rare}


def test_addresses_are_fictional_and_written_in_the_domain_order(world):
    for h in world.households:
        assert h.address == "".join(getattr(h, k) for k in ADDRESS_PARTS)
        assert h.county == "示範縣" and h.district in ("東區", "西區", "東平鄉", "西林鄉")
        assert re.fullmatch(r"\d+鄰", h.neighbourhood) and re.fullmatch(r"\d+號", h.number)
        assert h.village.endswith(("里", "村")) and h.road.endswith(("路", "街"))
        assert h.floor == "" or re.fullmatch(r"\d+樓(之\d+)?", h.floor)
    addresses = [h.address for h in world.households]
    assert len(addresses) == len(set(addresses))
    for b in world.businesses:
        assert b.address.startswith("示範縣")


def test_family_links_use_the_current_names_of_the_people_in_the_household(world):
    for h in world.households:
        members = world.members(h.household_no)
        head = members[0]
        for p in members[1:]:
            if p.relation in ("妻", "夫"):
                assert p.spouse == head.name and head.spouse == p.name
            if p.relation in ("父", "母"):
                assert (head.father if p.relation == "父" else head.mother) == p.name
            if RELATION_ORDER[p.relation] == 3:
                assert head.name in (p.father, p.mother)
    men = [p for p in world.persons if p.sex == "男" and age_on(p.birth_date) >= 19]
    assert all(p.military for p in men)
    assert all(p.military == "" for p in world.persons if p.sex == "女")


def test_name_changes_end_in_the_persons_current_name(world):
    assert len(world.name_changes) >= 10
    for change in world.name_changes:
        p = world.person(change.id_no)
        assert p.name == change.new_name != change.old_name
        assert p.birth_date < change.date <= AS_OF
        assert any(f"原名{change.old_name}" in note for note in p.notes)


def test_removed_households_have_every_member_removed(world):
    assert len(world.household_removals) >= 5
    for removal in world.household_removals:
        h = world.household(removal.household_no)
        assert h.status == "除戶" and removal.reason in ("遷出", "死亡")
        assert any(removal.detail in e for e in h.events)
        for p in world.members(h.household_no):
            assert p.status == "除戶" and any("除戶" in n for n in p.notes)


def test_removed_persons_are_marked_removed_in_their_notes(world):
    assert len(world.person_removals) >= 10
    assert {r.reason for r in world.person_removals} >= {"死亡", "遷出國外"}
    for removal in world.person_removals:
        p = world.person(removal.id_no)
        assert p.status == "除戶" and p.relation != "戶長"
        assert any("除戶" in n and removal.detail in n for n in p.notes)
        assert world.household(p.household_no).status == "現住"


def test_address_changes_lead_to_the_households_current_address(world):
    assert len(world.address_changes) >= 10
    current = {h.address for h in world.households}
    for change in world.address_changes:
        h = world.household(change.household_no)
        assert h.address == change.new_address != change.old_address
        assert change.old_address not in current
        assert change.reason == "門牌整編"
        assert any(change.old_address in e for e in h.events)


# --- agency records point back to the register ---------------------------------------------


def test_agency_records_name_currently_registered_people_by_their_current_name(world, living):
    named = [
        (o.owner_id_no, o.owner_name) for o in world.land_owners + world.building_owners if len(o.owner_id_no) == 10
    ]
    named += [(r.id_no, r.name) for r in world.welfare_status + world.disabilities + world.senior_allowances]
    named += [(t.taxpayer_id, t.name) for t in world.tax_incomes]
    named += [(v.owner_id_no, v.owner_name) for v in world.vehicles]
    named += [(b.representative_id_no, b.representative_name) for b in world.businesses]
    for id_no, name in named:
        assert id_no in living, id_no
        assert living[id_no].name == name, (id_no, name)


def test_land_owners_are_registered_people_at_their_address_or_registered_companies(world):
    companies = {b.ban: b for b in world.businesses}
    for o in world.land_owners + world.building_owners:
        if len(o.owner_id_no) == 8:
            company = companies[o.owner_id_no]
            assert (o.owner_name, o.owner_address) == (company.name, company.address)
        else:
            assert o.owner_address == _address_of(world, o.owner_id_no)
    assert any(len(o.owner_id_no) == 8 for o in world.land_owners)


# --- land registry ------------------------------------------------------------------------


def test_land_has_60_parcels_over_3_sections_with_well_formed_numbers(world):
    parcels = world.land_parcels
    assert len(parcels) >= 60
    assert len({p.section_code for p in parcels}) >= 3
    keys = [(p.section_code, p.parcel_no) for p in parcels]
    assert len(keys) == len(set(keys))
    for p in parcels:
        assert re.fullmatch(r"[A-Z]{2}\d{4}", p.section_code) and re.fullmatch(r"\d{8}", p.parcel_no)
        assert p.section_name.endswith("段") and p.subsection_name in ("", "一小段", "二小段")
        assert p.announced_value > p.announced_price > 0
    assert ("UA0101", "00180001") in keys  # 中正段 18-1


def test_parcel_polygons_are_closed_rings_in_eastern_taiwan_matching_their_area(world):
    for p in world.land_parcels:
        ring = p.polygon_twd97
        assert ring[0] == ring[-1] and len(ring) >= 5
        assert all(300_000 <= x <= 320_000 and 2_640_000 <= y <= 2_660_000 for x, y in ring)
        assert shoelace_area(ring) == pytest.approx(p.area_m2, rel=0.01)


def test_shares_of_every_parcel_and_building_add_up_to_exactly_one(world):
    for owners, key in ((world.land_owners, "parcel_id"), (world.building_owners, "building_id")):
        totals: dict[int, Fraction] = {}
        for o in owners:
            assert re.fullmatch(r"全部|\d+分之\d+", o.share)
            totals[getattr(o, key)] = totals.get(getattr(o, key), Fraction(0)) + share_fraction(o.share)
        assert set(totals.values()) == {Fraction(1)}
    assert {p.id for p in world.land_parcels} == {o.parcel_id for o in world.land_owners}
    shares = Counter(o.share for o in world.land_owners)
    assert {"全部", "2分之1", "3分之1", "4分之1"} <= set(shares)


def test_registration_orders_and_dates_are_consistent(world):
    for parcel in world.land_parcels:
        owners = [o for o in world.land_owners if o.parcel_id == parcel.id]
        assert [o.reg_order for o in owners] == [f"{i:04d}" for i in range(1, len(owners) + 1)]
        for o in owners:
            assert parcel.reg_date < o.reg_date <= AS_OF and o.cause_date <= o.reg_date
    certificates = [o.certificate_no for o in world.land_owners + world.building_owners]
    assert len(certificates) == len(set(certificates))


def test_mortgages_are_held_by_banks_in_the_business_registry(world):
    banks = {b.ban: b.name for b in world.businesses if b.name.endswith("銀行股份有限公司")}
    assert world.land_other_rights
    for right in world.land_other_rights:
        assert banks[right.holder_id_no] == right.holder_name
        assert right.right_kind in ("抵押權", "最高限額抵押權") and right.secured_amount > 0
        owners = [o for o in world.land_owners if o.parcel_id == right.parcel_id]
        assert all(right.reg_order in o.other_rights_order.split(",") for o in owners)


def test_buildings_stand_on_one_or_two_existing_parcels_of_their_section(world):
    assert len(world.buildings) >= 30
    parcels = {(p.section_code, p.parcel_no): p for p in world.land_parcels}
    for b in world.buildings:
        assert re.fullmatch(r"\d{5}-\d{3}", b.building_no)
        located = b.located_parcels.split(",")
        assert 1 <= len(located) <= 2
        assert all((b.section_code, no) in parcels for no in located)
        assert b.door_address.startswith("示範縣")


def test_building_owners_also_own_the_land_underneath(world):
    parcels = {(p.section_code, p.parcel_no): p.id for p in world.land_parcels}
    for b in world.buildings:
        building_owners = {(o.owner_id_no, o.share) for o in world.building_owners if o.building_id == b.id}
        for no in b.located_parcels.split(","):
            pid = parcels[(b.section_code, no)]
            assert {(o.owner_id_no, o.share) for o in world.land_owners if o.parcel_id == pid} == building_owners


def test_floor_plans_add_up_to_the_building_total_area(world):
    for b in world.buildings:
        floors = [f for f in world.building_floors if f.building_id == b.id]
        main = [f for f in floors if not f.is_annex]
        for f in floors:
            assert f.plan_polygon[0] == f.plan_polygon[-1]
            assert shoelace_area(f.plan_polygon) == pytest.approx(f.area_m2, rel=0.01)
        assert sum(shoelace_area(f.plan_polygon) for f in main) == pytest.approx(b.total_area_m2, rel=0.01)
        assert len([f for f in main if f.floor_label.endswith("層")]) == b.floors_total
        for f in floors:
            if f.is_annex:
                assert f"{f.floor_label} {f.area_m2:.2f}平方公尺" in b.annex


def test_wang_xiaoming_owns_a_parcel_and_a_building(world):
    parcels = [o for o in world.land_owners if o.owner_id_no == WANG_ID]
    buildings = [o for o in world.building_owners if o.owner_id_no == WANG_ID]
    assert parcels and buildings
    home = next(b for b in world.buildings if b.id == buildings[0].building_id)
    wang = world.person(WANG_ID)
    assert home.door_address == door_address(world.household(wang.household_no).parts)
    assert all(o.owner_address == _address_of(world, WANG_ID) for o in parcels + buildings)


# --- social welfare -----------------------------------------------------------------------


def test_welfare_status_covers_low_income_to_ordinary_for_40_people(world):
    records = world.welfare_status
    assert len(records) >= 40
    assert {"A", "B", "C", "D"} <= {r.welfare_code for r in records}
    assert all(WELFARE_LABELS[r.welfare_code] == r.welfare_label for r in records)
    disabled = {d.id_no for d in world.disabilities}
    assert all(r.id_no in disabled for r in records if r.welfare_code == "C")
    assert len({r.id_no for r in records}) == len(records)
    for r in records:
        assert r.district == world.household(world.person(r.id_no).household_no).district
        assert r.valid_to is None or r.valid_from <= r.valid_to


def test_disability_records_cover_several_categories_and_levels_with_their_labels(world):
    records = world.disabilities
    assert len(records) >= 20
    assert len({d.category_code for d in records}) >= 5 and len({d.level_code for d in records}) >= 4
    for d in records:
        assert DISABILITY_CATEGORIES[d.category_code] == d.category_label
        assert DISABILITY_LEVELS[d.level_code] == d.level_label
        assert d.review_date is None or d.review_date > d.certified_date
    welfare = {r.id_no for r in world.welfare_status}
    assert all(d.id_no in welfare for d in records + world.senior_allowances)


def test_senior_allowance_goes_only_to_people_aged_65_and_over(world):
    assert world.senior_allowances
    for s in world.senior_allowances:
        birth = world.person(s.id_no).birth_date
        assert age_on(birth, date(2026, 11, 26)) >= SENIOR_AGE
        assert add_years(birth, SENIOR_AGE) <= s.start_date <= AS_OF and s.monthly_amount > 0


def test_wang_xiaomings_household_has_welfare_records(world):
    members = {p.id_no for p in world.members(world.person(WANG_ID).household_no)}
    assert WANG_ID in {r.id_no for r in world.welfare_status}
    assert {r.welfare_code for r in world.welfare_status if r.id_no in members} - {"D"}


# --- tax, business, vehicles -------------------------------------------------------------


def test_tax_has_300_integer_rows_of_registered_people_paid_by_registered_businesses(world):
    rows = world.tax_incomes
    assert len(rows) >= 300
    companies = {b.ban: b.name for b in world.businesses}
    for t in rows:
        assert t.year in (111, 112, 113)
        assert isinstance(t.amount, int) and isinstance(t.withheld, int) and 0 <= t.withheld < t.amount
        assert companies[t.payer_ban] == t.payer_name
    per_person = Counter(t.taxpayer_id for t in rows)
    assert sum(per_person.values()) / len(per_person) >= 2
    assert per_person[WANG_ID] >= 3


def test_the_tax_file_is_big5_and_not_utf8(world, files):
    raw = files["tax_income.csv"].read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    rows = list(csv.reader(io.StringIO(raw.decode("cp950"), newline="")))
    assert tuple(rows[0]) == TAX_HEADER
    expected = [
        [t.taxpayer_id, t.name, str(t.year), t.income_type, str(t.amount), str(t.withheld), t.payer_name, t.payer_ban]
        for t in world.tax_incomes
    ]
    assert rows[1:] == expected


def test_businesses_have_registered_representatives_and_sensible_fields(world, files):
    assert len(world.businesses) >= 30
    assert {b.kind for b in world.businesses} == {"公司", "商業"}
    assert {b.status for b in world.businesses} == {"核准設立", "解散", "停業"}
    for b in world.businesses:
        assert b.capital > 0 and b.business_items and b.established < AS_OF
    document = json.loads(files["business.json"].read_text(encoding="utf-8"))
    assert [d["ban"] for d in document] == [b.ban for b in world.businesses]
    assert set(document[0]) == {
        "ban",
        "name",
        "kind",
        "status",
        "capital",
        "representative_name",
        "representative_id_no",
        "address",
        "established",
        "business_items",
    }
    assert all(date.fromisoformat(d["established"]) for d in document)


def test_the_fixed_width_vehicle_file_parses_with_its_layout_into_the_worlds_plates(world, files):
    layout = json.loads(files["vehicles.layout.json"].read_text(encoding="utf-8"))
    width = sum(c["width"] for c in layout)
    lines = files["vehicles.txt"].read_text(encoding="utf-8").splitlines()
    parsed = []
    for line in lines:
        assert len(line) == width  # Chinese characters count as one character each
        parsed.append({c["name"]: line[c["start"] : c["start"] + c["width"]].rstrip() for c in layout})
    assert [r["plate"] for r in parsed] == [v.plate for v in world.vehicles]
    assert [r["owner_name"] for r in parsed] == [v.owner_name for v in world.vehicles]
    assert [r["registered_date"] for r in parsed] == [v.registered_date for v in world.vehicles]


def test_vehicles_have_unique_plates_and_registered_owners(world, living):
    vehicles = world.vehicles
    assert len(vehicles) >= 80
    plates = [v.plate for v in vehicles]
    assert len(plates) == len(set(plates))
    for v in vehicles:
        assert re.fullmatch(r"[A-Z]{3}-\d{4}", v.plate)
        assert re.fullmatch(r"\d{7}", v.registered_date) and v.status in ("正常", "停駛", "註銷")
        registered = date(int(v.registered_date[:3]) + 1911, int(v.registered_date[3:5]), int(v.registered_date[5:]))
        assert age_on(living[v.owner_id_no].birth_date, registered) >= 18


def test_household_json_holds_the_register_and_its_change_records(world, files):
    document = json.loads(files["household.json"].read_text(encoding="utf-8"))
    assert len(document["persons"]) == len(world.persons)
    assert len(document["households"]) == len(world.households)
    for key in ("name_changes", "household_removals", "person_removals", "address_changes"):
        assert len(document[key]) == len(getattr(world, key))
    wang = next(p for p in document["persons"] if p["id_no"] == WANG_ID)
    assert wang["name"] == "王小明" and wang["birth_date"] == "1978-04-12"
    household = next(h for h in document["households"] if h["household_no"] == wang["household_no"])
    assert household["address"] == full_address(household)
    assert "示範縣" in files["household.json"].read_text(encoding="utf-8")  # ensure_ascii=False


# --- databases ------------------------------------------------------------------------------


def _check_loaded(engine, world) -> None:
    counts = {
        schema.land_parcel: len(world.land_parcels),
        schema.land_owner: len(world.land_owners),
        schema.land_other_right: len(world.land_other_rights),
        schema.building: len(world.buildings),
        schema.building_floor: len(world.building_floors),
        schema.building_owner: len(world.building_owners),
        schema.welfare_status: len(world.welfare_status),
        schema.disability: len(world.disabilities),
        schema.senior_allowance: len(world.senior_allowances),
    }
    with engine.connect() as conn:
        for table, expected in counts.items():
            assert conn.execute(select(func.count()).select_from(table)).scalar_one() == expected, table.name
        who = {"id": WANG_ID}
        land = conn.execute(
            text("SELECT section_name, parcel_no, share FROM v_land_marking_ownership WHERE owner_id_no = :id"), who
        ).all()
        assert ("中正段", "00180001", "2分之1") in [tuple(r) for r in land]
        buildings = conn.execute(
            text("SELECT building_no, door_address FROM v_building_marking_ownership WHERE owner_id_no = :id"), who
        ).all()
        assert ("00173-000", "示範縣東區中正路一段128號") in [tuple(r) for r in buildings]
        welfare = conn.execute(
            text("SELECT name, welfare_code, welfare_label FROM v_welfare_summary WHERE id_no = :id"), who
        ).one()
        assert tuple(welfare) == ("王小明", "D", "一般戶")
        first = world.land_parcels[0]
        polygon = conn.execute(select(schema.land_parcel.c.polygon_twd97).where(schema.land_parcel.c.id == first.id))
        assert json.loads(polygon.scalar_one()) == first.polygon_twd97
        area = conn.execute(select(schema.building.c.total_area_m2).where(schema.building.c.id == 1)).scalar_one()
        assert float(area) == pytest.approx(world.buildings[0].total_area_m2)


def test_load_land_and_social_into_sqlite_gives_the_expected_rows_and_views(world, tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'agencies.db'}")
    try:
        for _ in range(2):  # loading again replaces the tables and views
            land = load_land(engine, world)
            social = load_social(engine, world)
        assert land["land_parcel"] == len(world.land_parcels) and social["welfare_status"] == len(world.welfare_status)
        _check_loaded(engine, world)
    finally:
        engine.dispose()


def test_the_written_sqlite_files_hold_the_land_and_social_databases(world, files):
    for name in ("land.db", "social.db"):
        engine = create_engine(f"sqlite:///{files[name]}")
        try:
            with engine.connect() as conn:
                views = {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'view'"))}
        finally:
            engine.dispose()
        assert views == (
            {
                "v_land_marking_ownership",
                "v_building_marking_ownership",
                "v_land_section",
                "v_building",
                "v_building_floor",
            }
            if name == "land.db"
            else {"v_welfare_summary"}
        )


def test_land_and_social_load_into_postgresql_and_the_views_answer_for_wang(world):
    name = f"seed_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_engine(make_url(PG_ADMIN_URL).set(database=name))
    try:
        load_land(engine, world)
        load_social(engine, world)
        load_land(engine, world)  # again: the views over the tables are dropped first
        _check_loaded(engine, world)
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_land_and_social_load_into_mariadb_and_the_views_answer_for_wang(world):
    name = f"seed_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(MARIADB_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    url = make_url(MARIADB_ADMIN_URL).set(database=name, query={"charset": "utf8mb4"})
    engine = create_engine(url)
    try:
        load_land(engine, world)
        load_social(engine, world)
        load_social(engine, world)
        _check_loaded(engine, world)
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()
