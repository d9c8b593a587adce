"""Audited queries per second through POST /api/v1/query/run, beside the same
SELECT from a bare Flask endpoint, both under gunicorn with the same settings,
against the PostgreSQL land source; then the text-file source at 1,000,000 rows.

    .venv/bin/python bench/query_bench.py [--requests 3000] [--rounds 5] [--concurrency 8] [--platform postgresql|sqlite]

The two endpoints take turns (--rounds), so a load that comes and goes on a
shared machine weighs on both; prints each round, then the median round's
throughput, median and p95 latency of both, and the median ratio.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.cpu import proc_cpu, server_and_database_cpu  # noqa: E402

PG_ADMIN = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _pg_db(name: str):
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(PG_ADMIN).set(database=name)


def _drop(name: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _prepare(platform_url: str, land_url) -> tuple[list[str], str]:
    """Migrate the platform, seed it, and define the land form as a designer would."""
    os.environ["DATABASE_URL"] = platform_url
    from flask import current_app
    from flask_migrate import upgrade
    from sqlalchemy import create_engine, select

    from app import create_app
    from app.extensions import db
    from app.models.org import Agency
    from app.models.queries import BusinessItem, FormInput, FormSection, QueryForm, SectionColumn, SectionFilter
    from app.models.sources import DataSource
    from seed_data.loader import load_land

    land_engine = create_engine(land_url)
    load_land(land_engine)
    with land_engine.connect() as conn:
        from sqlalchemy import text

        owners = [r[0] for r in conn.execute(text("SELECT DISTINCT owner_id_no FROM v_land_marking_ownership"))]
    land_engine.dispose()
    app = create_app()
    with app.app_context():
        upgrade()
        runner = app.test_cli_runner()
        runner.invoke(args=["roles", "sync"])
        runner.invoke(args=["seed", "demo"])
        tax = db.session.scalar(select(Agency).where(Agency.code == "TAX"))
        src = DataSource(code="BENCH-LAND", name="地政（效能測試）", kind="sql", host=land_url.host, port=land_url.port or 5432,
                         database=land_url.database, account=land_url.username, timeout=5, row_cap=500,
                         options=json.dumps({"dialect": "postgresql"}), enabled=True)  # fmt: skip
        item = BusinessItem(code="BENCH", name="效能測試", active=True)
        form = QueryForm(code="bench.land", title="土地標示部＋所有權部", active=True, granted_agencies=[tax],
                         granted_roles=[current_app.appbuilder.sm.find_role("Clerk")], business_items=[item])  # fmt: skip
        form.inputs = [FormInput(name="id_no", label="所有權人統一編號", type="national_id", required=True)]
        section = FormSection(title="土地", source=src, target="v_land_marking_ownership", display="table",
                              order_by="parcel_no")  # fmt: skip
        section.filters = [SectionFilter(column="owner_id_no", op="eq", input_name="id_no")]
        section.columns = [SectionColumn(column=c, label=c, sort_order=i, mask="last4" if c == "owner_id_no" else "")
                           for i, c in enumerate(["section_name", "parcel_no", "area_m2", "zoning", "owner_name",
                                                  "owner_id_no", "share"])]  # fmt: skip
        form.sections = [section]
        db.session.add(form)
        db.session.commit()
        from app.lib.identifiers import is_national_id

        ids = [o for o in owners if is_national_id(o)]
    return ids, "bench.land"


def _token(port: int, username: str = "clerk") -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    body = json.dumps(
        {"username": username, "password": os.environ.get("DEMO_PASSWORD", "Demo-2026"), "provider": "db"}
    )
    conn.request("POST", "/api/v1/security/login", body, {"Content-Type": "application/json"})
    answer = json.loads(conn.getresponse().read())
    if "access_token" not in answer:
        raise RuntimeError(f"cannot sign in as {username}: {answer}")
    return answer["access_token"]


def _check_reads_source(port: int, token: str, ids: list[str], form: str) -> None:
    """The audited endpoint must really read the land source (an empty form
    would measure the audit alone against the bare SELECT)."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    body = json.dumps({"form": form, "case_no": "B-check", "reason": "", "business_item": "BENCH",
                       "params": {"id_no": ids[0]}})  # fmt: skip
    conn.request(
        "POST", "/api/v1/query/run", body, {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    )
    answer = json.loads(conn.getresponse().read())
    sections = answer.get("sections") or []
    if len(sections) != 1 or sections[0]["error"] or not sections[0]["rows"]:
        raise RuntimeError(f"the audited query did not read the land source: {answer}")


def _worker(args):
    port, path, token, bodies = args
    conn = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    latencies, errors = [], 0
    for body in bodies:
        t0 = time.perf_counter()
        conn.request("POST", path, body, headers)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            errors += 1
        latencies.append(time.perf_counter() - t0)
    return latencies, errors


def _load(port, path, token, ids, form, n, concurrency, meter=None):
    """``meter``: read once the warm-up is done, returned as "cpu_start"."""
    bodies = [json.dumps({"form": form, "case_no": f"B-{i}", "reason": "", "business_item": "BENCH",
                          "params": {"id_no": ids[i % len(ids)]}}) for i in range(n)]  # fmt: skip
    chunks = [(port, path, token, bodies[i::concurrency]) for i in range(concurrency)]
    with multiprocessing.Pool(concurrency) as pool:
        # Warm up every worker process (its first statements are compiled and
        # its pools opened then), not only the one that answers a lone client.
        pool.map(_worker, [chunk[:3] + (chunk[3][:15],) for chunk in chunks])
        cpu_start = meter() if meter else None
        t0 = time.perf_counter()
        results = pool.map(_worker, chunks)
        elapsed = time.perf_counter() - t0
    latencies = sorted(x for lat, _ in results for x in lat)
    errors = sum(e for _, e in results)
    return {
        "rps": n / elapsed,
        "p50": statistics.median(latencies) * 1000,
        "p95": latencies[int(len(latencies) * 0.95)] * 1000,
        "errors": errors,
        "cpu_start": cpu_start,
    }


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(module: str, port: int, env: dict) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "--bind", f"127.0.0.1:{port}",
           "--access-logfile", "/dev/null", module]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    for _ in range(100):
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/")
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{module} did not start")


def _sealer(env: dict) -> subprocess.Popen:
    """The audit sealer in its own process, as ./run.sh starts it (SIGTERM stops it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "run:app", "worker", "sealer"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def query_bench(args) -> None:
    tag = uuid.uuid4().hex[:8]
    land_name, platform_name = f"bench_land_{tag}", f"bench_platform_{tag}"
    land_url = _pg_db(land_name)
    tmp = tempfile.mkdtemp()
    if args.platform == "postgresql":
        platform_url = _pg_db(platform_name).render_as_string(hide_password=False)
    else:
        platform_url = f"sqlite:///{tmp}/platform.db"
    procs = []
    try:
        ids, form = _prepare(platform_url, land_url)
        env = {"DATABASE_URL": platform_url, "BENCH_LAND_URL": land_url.render_as_string(hide_password=False),
               "AUTH_RATE_LIMITED": "false", "WEB_CONCURRENCY": str(args.workers), "WEB_THREADS": str(args.threads)}  # fmt: skip
        # Ports of their own: two benches at once must never talk to each other's server.
        audited_port = bare_port = _free_port()
        while bare_port == audited_port:
            bare_port = _free_port()
        procs.append(_serve("run:app", audited_port, env))
        procs.append(_serve("bench.bare_app:app", bare_port, env))
        procs.append(_sealer(env))
        token = _token(audited_port)
        _check_reads_source(audited_port, token, ids, form)
        # Alternate the two in rounds, so a load that comes and goes on the
        # machine weighs on both alike; report the median round of each.
        per_round = max(args.requests // args.rounds, args.concurrency * 10)
        rounds = []
        drains = []
        audited_dbs = [land_name] + ([platform_name] if args.platform == "postgresql" else [])
        for _ in range(args.rounds):
            meter = lambda: _with_sealer(server_and_database_cpu(procs[0].pid, audited_dbs), procs[2].pid)  # noqa: E731
            audited = _load(audited_port, "/api/v1/query/run", token, ids, form, per_round, args.concurrency, meter)
            # The sealer process links the round's events shortly after: let it
            # finish before the bare round, so its work never lands on the other side.
            drains.append(_wait_sealed(platform_url))
            audited["cpu"] = _per_request(audited["cpu_start"], meter(), per_round)
            meter = lambda: server_and_database_cpu(procs[1].pid, [land_name])  # noqa: E731
            bare = _load(bare_port, "/bare", None, ids, form, per_round, args.concurrency, meter)
            bare["cpu"] = _per_request(bare["cpu_start"], meter(), per_round)
            rounds.append((audited, bare))
        print(f"platform DB {args.platform}; gunicorn {args.workers} workers x {args.threads} threads; "
              f"{args.rounds} rounds of {per_round} requests each, alternating; {args.concurrency} clients; "
              f"{len(ids)} distinct owners")  # fmt: skip
        for i, (audited, bare) in enumerate(rounds, 1):
            print(f"  round {i}: audited {audited['rps']:6.1f} req/s, bare {bare['rps']:6.1f} req/s, "
                  f"ratio {audited['rps'] / bare['rps']:.2f}; CPU per request: audited {_cpu_text(audited['cpu'])}, "
                  f"bare {_cpu_text(bare['cpu'])}")  # fmt: skip
        for name, k in (("audited /api/v1/query/run", 0), ("bare SELECT endpoint", 1)):
            r = {key: statistics.median(rnd[k][key] for rnd in rounds) for key in ("rps", "p50", "p95")}
            errors = sum(rnd[k]["errors"] for rnd in rounds)
            print(
                f"  {name:28s} {r['rps']:7.1f} req/s   p50 {r['p50']:6.1f} ms   p95 {r['p95']:6.1f} ms   errors {errors}"
                "  (median round)"
            )
        ratios = [a["rps"] / b["rps"] for a, b in rounds]
        print(f"  ratio audited/bare: {statistics.median(ratios):.2f} (median of the rounds)")
        print(f"  audit events still unsealed when an audited round ended were sealed within "
              f"{max(drains) * 1000:.0f} ms (worst round)")  # fmt: skip
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        _drop(land_name)
        if args.platform == "postgresql":
            _drop(platform_name)


def _with_sealer(cpu: tuple[float, float], sealer_pid: int) -> tuple[float, float]:
    """The sealer process's CPU counts as the audited server's (it was a thread in it)."""
    return cpu[0] + proc_cpu(sealer_pid), cpu[1]


def _per_request(before: tuple[float, float], after: tuple[float, float], n: int) -> tuple[float, float]:
    """(web, database) CPU milliseconds per request between two readings."""
    return tuple((b - a) * 1000 / n for a, b in zip(before, after))


def _cpu_text(cpu: tuple[float, float]) -> str:
    return f"{sum(cpu):.1f} ms (web {cpu[0]:.1f}, database {cpu[1]:.1f})"


def _wait_sealed(platform_url: str, timeout: float = 60) -> float:
    """Seconds until no audit event waits for the sealer."""
    from sqlalchemy import create_engine, text

    engine = create_engine(platform_url)
    t0 = time.perf_counter()
    try:
        with engine.connect() as conn:
            while time.perf_counter() - t0 < timeout:
                if not conn.execute(text("SELECT count(*) FROM audit_event WHERE seq IS NULL")).scalar():
                    break
                conn.rollback()
                time.sleep(0.01)
    finally:
        engine.dispose()
    return time.perf_counter() - t0


def textfile_bench(rows: int) -> None:
    """First load time, memory and lookup time of a 1,000,000-row CSV source."""
    import random
    import resource

    from app.connectors import Filter, SectionSpec, SourceConfig, connector_for

    tmp = Path(tempfile.mkdtemp()) / "income.csv"
    rng = random.Random(1)
    with tmp.open("w", encoding="cp950") as fh:
        fh.write("身分證號,姓名,年度,所得額\n")
        for i in range(rows):
            fh.write(f"A{100000000 + i},王{i % 1000},113,{rng.randint(100000, 2000000)}\n")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    source = SourceConfig.of(kind="textfile", name="bench-income", path=str(tmp), timeout=60, row_cap=100,
                          options={"format": "csv", "encoding": "cp950", "key_columns": ["身分證號"]})  # fmt: skip
    conn = connector_for(source)
    spec = SectionSpec(target="", filters=(Filter(column="身分證號", param="id_no"),))
    t0 = time.perf_counter()
    conn.fetch(spec, {"id_no": "A100000000"})
    load = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    keys = [f"A{100000000 + rng.randrange(rows)}" for _ in range(2000)]
    t0 = time.perf_counter()
    for k in keys:
        assert conn.fetch(spec, {"id_no": k}).rows
    per = (time.perf_counter() - t0) / len(keys) * 1000
    print(f"text file, {rows:,} rows (Big5 CSV, {tmp.stat().st_size / 1e6:.0f} MB): first load {load:.2f} s, "
          f"peak RSS +{(after - before) / 1024:.0f} MB, lookup {per:.3f} ms each (target <= 5 ms)")  # fmt: skip
    tmp.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5, help="alternating audited/bare rounds")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--platform", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--textfile-rows", type=int, default=1_000_000)
    parser.add_argument("--skip-textfile", action="store_true")
    args = parser.parse_args()
    import logging

    logging.disable(logging.WARNING)
    query_bench(args)
    if not args.skip_textfile:
        textfile_bench(args.textfile_rows)


if __name__ == "__main__":
    main()
