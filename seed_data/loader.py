"""Load the demo world into the agency databases and write the demo's source files.

``load_land(engine)`` / ``load_social(engine)`` drop and create the tables and
views of ``seed_data.schema`` on any SQLAlchemy engine (an SQLite file,
PostgreSQL, MariaDB through pymysql) and bulk-insert the world's rows with
bound parameters. ``write_files(out_dir)`` writes every file the demo's
connectors read; see seed_data/README.md for their formats.

    python -m seed_data.loader OUT_DIR
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import time
from datetime import date
from pathlib import Path

from sqlalchemy import create_engine

from seed_data import schema
from seed_data.world import AGENCIES, World, build_world, public_dict

HERE = Path(__file__).parent

# Fixed-width vehicles file: (column, width in characters). A Chinese character
# counts as ONE character (the file is UTF-8 text, not a byte layout).
VEHICLE_COLUMNS = (
    ("plate", 9),
    ("kind", 7),
    ("brand", 12),
    ("model_year", 5),
    ("owner_id_no", 11),
    ("owner_name", 5),
    ("registered_date", 8),
    ("status", 2),
)
TAX_HEADER = ("統一編號/身分證號", "姓名", "年度", "所得類別", "所得額", "扣繳稅額", "給付單位", "給付單位統一編號")
TAX_ENCODING = "cp950"  # Big5 as Windows writes it


def vehicle_layout() -> list[dict]:
    """[{"name", "start", "width"}]; start is a 0-based character offset."""
    layout, start = [], 0
    for name, width in VEHICLE_COLUMNS:
        layout.append({"name": name, "start": start, "width": width})
        start += width
    return layout


# --- SQL ---------------------------------------------------------------------------------


def _rows(records, **json_fields) -> list[dict]:
    out = []
    for record in records:
        row = public_dict(record)
        for name in json_fields:
            row[name] = json.dumps(row[name], separators=(",", ":"))
        out.append(row)
    return out


def _load(engine, metadata, data: dict) -> dict[str, int]:
    with engine.begin() as conn:
        schema.drop_views(conn)
        metadata.drop_all(conn)
        metadata.create_all(conn)
        for table, rows in data.items():
            if rows:
                conn.execute(table.insert(), rows)
        schema.create_views(conn)
    return {table.name: len(rows) for table, rows in data.items()}


def load_land(engine, world: World | None = None) -> dict[str, int]:
    """(Re)create the land office tables and views on ``engine`` and fill them; return row counts."""
    world = world or build_world()
    return _load(
        engine,
        schema.land_metadata,
        {
            schema.land_parcel: _rows(world.land_parcels, polygon_twd97=True),
            schema.land_owner: _rows(world.land_owners),
            schema.land_other_right: _rows(world.land_other_rights),
            schema.building: _rows(world.buildings),
            schema.building_floor: _rows(world.building_floors, plan_polygon=True),
            schema.building_owner: _rows(world.building_owners),
        },
    )


def load_social(engine, world: World | None = None) -> dict[str, int]:
    """(Re)create the social affairs tables and view on ``engine`` and fill them; return row counts."""
    world = world or build_world()
    return _load(
        engine,
        schema.social_metadata,
        {
            schema.welfare_status: _rows(world.welfare_status),
            schema.disability: _rows(world.disabilities),
            schema.senior_allowance: _rows(world.senior_allowances),
        },
    )


# --- files ---------------------------------------------------------------------------------


def _jsonable(value):
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _dump_json(path: Path, document) -> None:
    path.write_text(json.dumps(_jsonable(document), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def household_document(world: World) -> dict:
    return {
        "as_of": world.as_of,
        "offices": [AGENCIES["household_east"], AGENCIES["household_west"]],
        "households": [public_dict(h) for h in world.households],
        "persons": [public_dict(p) for p in world.persons],
        "name_changes": [public_dict(c) for c in world.name_changes],
        "household_removals": [public_dict(c) for c in world.household_removals],
        "person_removals": [public_dict(c) for c in world.person_removals],
        "address_changes": [public_dict(c) for c in world.address_changes],
    }


def vehicle_line(vehicle) -> str:
    row = public_dict(vehicle)
    cells = []
    for name, width in VEHICLE_COLUMNS:
        value = str(row[name])
        if len(value) > width:
            raise ValueError(f"{name}={value!r} is wider than {width}")
        cells.append(value.ljust(width))
    return "".join(cells)


def write_files(out_dir: Path, world: World | None = None) -> dict[str, Path]:
    """Write land.db, social.db, household.json, tax_income.csv, business.json,
    vehicles.txt, vehicles.layout.json and README.md into ``out_dir``."""
    world = world or build_world()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        name: out_dir / name
        for name in (
            "land.db",
            "social.db",
            "household.json",
            "tax_income.csv",
            "business.json",
            "vehicles.txt",
            "vehicles.layout.json",
            "README.md",
        )
    }
    for name, load in (("land.db", load_land), ("social.db", load_social)):
        paths[name].unlink(missing_ok=True)
        engine = create_engine(f"sqlite:///{paths[name]}")
        try:
            load(engine, world)
        finally:
            engine.dispose()

    _dump_json(paths["household.json"], household_document(world))
    _dump_json(paths["business.json"], [public_dict(b) for b in world.businesses])

    with paths["tax_income.csv"].open("w", encoding=TAX_ENCODING, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(TAX_HEADER)
        for t in world.tax_incomes:
            writer.writerow(
                [t.taxpayer_id, t.name, t.year, t.income_type, t.amount, t.withheld, t.payer_name, t.payer_ban]
            )

    paths["vehicles.txt"].write_text("".join(vehicle_line(v) + "\n" for v in world.vehicles), encoding="utf-8")
    _dump_json(paths["vehicles.layout.json"], vehicle_layout())
    shutil.copyfile(HERE / "README.md", paths["README.md"])
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m seed_data.loader", description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="directory to write the demo files into")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    world = build_world()
    built = time.perf_counter()
    paths = write_files(args.out_dir, world)
    done = time.perf_counter()
    for path in paths.values():
        print(f"{path}  {path.stat().st_size:>9,} bytes")
    print(
        f"{len(world.persons)} persons in {len(world.households)} households, {len(world.land_parcels)} parcels, "
        f"{len(world.buildings)} buildings, {len(world.welfare_status)} welfare records, "
        f"{len(world.tax_incomes)} income rows, {len(world.businesses)} businesses, {len(world.vehicles)} vehicles; "
        f"build_world {built - started:.2f} s, write_files {done - built:.2f} s"
    )


if __name__ == "__main__":
    main()
