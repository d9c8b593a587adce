"""The baseline for bench/query_bench.py: the same SELECT as the land form,
served by a bare Flask endpoint with no auth, no audit, no log."""

import os

from flask import Flask, jsonify, request
from sqlalchemy import column, create_engine, select, table

app = Flask(__name__)
# No pool_pre_ping: its SELECT 1 per request would slow the baseline down
# (the platform's source pools check connections without a round trip).
engine = create_engine(os.environ["BENCH_LAND_URL"], pool_size=5)
COLUMNS = ["section_name", "parcel_no", "area_m2", "zoning", "owner_name", "owner_id_no", "share"]
view = table("v_land_marking_ownership", *(column(c) for c in COLUMNS))


@app.post("/bare")
def bare():
    id_no = (request.get_json(silent=True) or {}).get("params", {}).get("id_no")
    stmt = select(*view.c).where(view.c.owner_id_no == id_no).order_by(view.c.parcel_no).limit(501)
    with engine.connect() as conn:
        rows = [[str(v) for v in row] for row in conn.execute(stmt)]
    return jsonify(rows=rows)
