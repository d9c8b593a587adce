"""A map section of 50 parcels among their neighbours, beside the same rows shown
as a table, in the same run: the query (POST /api/v1/query/run), its result page
and its PDF.

    .venv/bin/python bench/map_bench.py [--rounds 7] [--repeat 5]

A scratch platform (SQLite) and a scratch land source (SQLite: a 20 x 20 grid of
parcels 20 m apart, the 50 in its middle owned by one key) are made in a
temporary directory. Two forms read the same 50 rows with the same filter: one
shows them as a table, the other as a map whose neighbour read takes the
block's 400 parcels and draws those within 25 m. The two take turns, round
after round, so a load that comes and goes on a shared machine weighs on both;
prints each round and the median of each step, and the ratio map / table.
Target: a map costs at most 2x the table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GRID = 20  # parcels per side
STEP = 20.0  # metres between parcels' corners
ORIGIN = (305000.0, 2651000.0)


def _land(path: Path) -> None:
    """The scratch land source: block A, GRID x GRID parcels; owner key OWNER-50 holds the middle 50."""
    import sqlite3

    con = sqlite3.connect(path)
    con.execute("CREATE TABLE parcel_geo (block TEXT, parcel_no TEXT, owner_key TEXT, area_m2 REAL, polygon TEXT)")
    rows = []
    for n in range(GRID * GRID):
        col, row = n % GRID, n // GRID
        x, y = ORIGIN[0] + col * STEP, ORIGIN[1] + row * STEP
        ring = [[x, y], [x + 18, y], [x + 18, y + 16], [x + 9, y + 18.5], [x, y + 16], [x, y]]
        owned = 5 <= col < 15 and 8 <= row < 13  # 10 x 5 = 50 parcels
        rows.append(("A", f"{n + 1:04d}0000", "OWNER-50" if owned else f"P{n}", 306.0, json.dumps(ring)))
    con.executemany("INSERT INTO parcel_geo VALUES (?, ?, ?, ?, ?)", rows)
    con.commit()
    con.close()


def _app(scratch: Path):
    from app import create_app
    from config import Config

    class BenchConfig(Config):
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{scratch / 'platform.db'}"
        DEMO_SOURCES_DIR = str(scratch / "sources")
        DEMO_PKI_DIR = str(scratch / "pki")
        TRANSFER_CA_BUNDLE = str(scratch / "pki" / "ca-bundle.pem")
        TRANSFER_CRL_FILES = f"{scratch / 'pki' / 'root.crl'},{scratch / 'pki' / 'intermediate.crl'}"
        TRANSFER_DIR = str(scratch / "transfer")
        TRANSFER_FTP_ROOT = str(scratch / "ftp")
        SOURCE_FILE_ROOTS = [str(scratch)]
        RATELIMIT_ENABLED = False
        AUTH_RATE_LIMITED = False
        WTF_CSRF_ENABLED = False
        PERMISSION_CACHE_SECONDS = 60

    return create_app(BenchConfig)


def _prepare(app, land: Path) -> None:
    """Migrate and seed the platform; the two forms as a designer would define them."""
    from flask import current_app
    from flask_migrate import upgrade
    from sqlalchemy import select

    from app.extensions import db
    from app.models.org import Agency
    from app.models.queries import BusinessItem, FormInput, FormSection, QueryForm, SectionColumn, SectionFilter
    from app.models.sources import DataSource

    with app.app_context():
        upgrade()
        runner = app.test_cli_runner()
        runner.invoke(args=["roles", "sync"])
        runner.invoke(args=["seed", "demo"])
        tax = db.session.scalar(select(Agency).where(Agency.code == "TAX"))
        src = DataSource(code="BENCH-GIS", name="地籍圖（效能測試）", kind="sql", database=str(land), timeout=10,
                         row_cap=500, options=json.dumps({"dialect": "sqlite"}), enabled=True)  # fmt: skip
        item = BusinessItem(code="BENCH", name="效能測試", active=True)
        clerk = current_app.appbuilder.sm.find_role("Clerk")
        map_options = {"map": {"geometry": "polygon", "epsg": 3826, "label": "parcel_no", "label_format": "parcel",
                               "neighbours": {"within_m": 25, "match": ["block"]}}}  # fmt: skip
        for code, display, options in (("bench.table", "table", None), ("bench.map", "map", map_options)):
            form = QueryForm(code=code, title=f"地籍（{display}）", active=True, granted_agencies=[tax],
                             granted_roles=[clerk], business_items=[item])  # fmt: skip
            form.inputs = [FormInput(name="owner_key", label="所有權人代號", type="text", required=True)]
            section = FormSection(title="地籍", source=src, target="parcel_geo", display=display, order_by="parcel_no",
                                  options=json.dumps(options) if options else None)  # fmt: skip
            section.filters = [SectionFilter(column="owner_key", op="eq", input_name="owner_key")]
            section.columns = [
                SectionColumn(column=c, label=label, format=fmt, sort_order=i)
                for i, (c, label, fmt) in enumerate([("block", "區", ""), ("parcel_no", "地號", "parcel"),
                                                     ("area_m2", "面積", "area")])
            ]  # fmt: skip
            form.sections = [section]
            db.session.add(form)
        db.session.commit()


def _once(client, token: str, form: str, repeat: int) -> dict[str, float]:
    """Milliseconds per call of each step (the median of ``repeat`` calls)."""
    times: dict[str, list[float]] = {"query": [], "page": [], "pdf": []}
    headers = {"Authorization": f"Bearer {token}"}
    body = {"form": form, "case_no": "B-1", "reason": "", "business_item": "BENCH", "params": {"owner_key": "OWNER-50"}}
    for _ in range(repeat):
        t0 = time.perf_counter()
        answer = client.post("/api/v1/query/run", json=body, headers=headers)
        t1 = time.perf_counter()
        query_id = answer.json["query_id"]
        page = client.get(f"/query/result/{query_id}")
        t2 = time.perf_counter()
        pdf = client.get(f"/query/result/{query_id}/pdf")
        t3 = time.perf_counter()
        if answer.status_code != 200 or page.status_code != 200 or pdf.status_code != 200:
            raise RuntimeError(f"{form}: {answer.status_code} {page.status_code} {pdf.status_code}")
        times["query"].append((t1 - t0) * 1000)
        times["page"].append((t2 - t1) * 1000)
        times["pdf"].append((t3 - t2) * 1000)
    return {k: statistics.median(v) for k, v in times.items()}


def _check(client, token: str) -> None:
    """Both forms read the 50 rows; the map draws them among their neighbours."""
    headers = {"Authorization": f"Bearer {token}"}
    for form in ("bench.table", "bench.map"):
        body = {
            "form": form,
            "case_no": "B-0",
            "reason": "",
            "business_item": "BENCH",
            "params": {"owner_key": "OWNER-50"},
        }
        section = client.post("/api/v1/query/run", json=body, headers=headers).json["sections"][0]
        if section["error"] or len(section["rows"]) != 50:
            raise RuntimeError(f"{form} did not read the 50 parcels: {len(section['rows'])} rows, {section['error']}")
        if form == "bench.map":
            parcels = section["map"]["parcels"]
            hits = sum(1 for p in parcels if p["hit"])
            print(f"map: {hits} parcels highlighted among {len(parcels) - hits} neighbours")
            if hits != 50 or len(parcels) - hits < 20 or section["map"]["notes"]:
                raise RuntimeError(f"the map is not what the bench means to measure: {section['map']['notes']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=5, help="calls of each step per round")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="map-bench-"))
    os.environ.setdefault("DEMO_PASSWORD", "Demo-2026")
    land = scratch / "gis.db"
    _land(land)
    app = _app(scratch)
    _prepare(app, land)
    client = app.test_client()
    answer = client.post("/api/v1/security/login", json={"username": "clerk", "password": os.environ["DEMO_PASSWORD"],
                                                          "provider": "db"})  # fmt: skip
    token = answer.json["access_token"]
    client.post("/login/", data={"username": "clerk", "password": os.environ["DEMO_PASSWORD"]})
    _check(client, token)
    _once(client, token, "bench.table", 2)  # warm both: fonts, templates, statement caches
    _once(client, token, "bench.map", 2)
    steps = ("query", "page", "pdf")
    rounds: dict[str, list[dict]] = {"bench.table": [], "bench.map": []}
    print(f"{'round':>5}  {'form':<11}" + "".join(f"{s + ' ms':>10}" for s in steps))
    for n in range(1, args.rounds + 1):
        for form in ("bench.table", "bench.map") if n % 2 else ("bench.map", "bench.table"):
            got = _once(client, token, form, args.repeat)
            rounds[form].append(got)
            print(f"{n:>5}  {form:<11}" + "".join(f"{got[s]:>10.1f}" for s in steps))
    print()
    print(f"median of {args.rounds} rounds ({args.repeat} calls each), ms:")
    print(f"{'':<11}" + "".join(f"{s:>10}" for s in steps) + f"{'total':>10}")
    medians = {}
    for form, got in rounds.items():
        medians[form] = {s: statistics.median(r[s] for r in got) for s in steps}
        medians[form]["total"] = sum(medians[form][s] for s in steps)
        print(f"{form:<11}" + "".join(f"{medians[form][s]:>10.1f}" for s in (*steps, "total")))
    ratio = {s: medians["bench.map"][s] / medians["bench.table"][s] for s in (*steps, "total")}
    print(f"{'map/table':<11}" + "".join(f"{ratio[s]:>9.2f}x" for s in (*steps, "total")))
    print(f"target: a map costs at most 2x the table (whole: {ratio['total']:.2f}x)")


if __name__ == "__main__":
    main()
