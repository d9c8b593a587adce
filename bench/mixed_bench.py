"""A county's mixed load through nginx, against one platform instance and against two,
and with the reports on a streaming replica: throughput and p50/p95 per kind, and the
CPU each kind of request costs (so the figures say what one more host buys here, and
what it would buy on a machine with more cores).

    .venv/bin/python bench/mixed_bench.py [--seconds 30] [--clients 8] [--cpu-requests 60]

The mix: 60% queries (a clerk's tax-income query, audited), 20% work-list reads (a
supervisor's incoming list), 10% workflow actions (receive, assign, accept, process,
close, by the tax bureau's supervisor and handler), 5% case registrations (the
notifier, three receiving agencies each), 5% reports (a manager's report page).
Everything as tests/test_scale.py sets it up: a fresh PostgreSQL primary and its
streaming replica (their own clusters), Redis for the limits and sign-in counters,
gunicorn instances (1 worker x 8 threads each) behind nginx (deploy/nginx), and one
audit sealer (`flask worker sealer`) beside them; all on this machine's cores.

Measured 2026-12-03 on the 2-core development machine, shared with other jobs (load
average 10-13 throughout, so the wall-clock figures are noisy; the CPU figures are not):

    run                                   req/s  query p50/p95  report p50/p95 (ms)
    one instance                           11.6     222 / 682     4442 / 7320
    two instances                          14.6     174 / 912     2936 / 7162
    two instances, reports on the replica  19.5     122 / 528     1977 / 5709

    CPU per request (web ms + PostgreSQL ms): query 15.3 + 2.5, work list 33.3 + 12.2,
    action 20.3 + 3.7, registration 96.0 + 11.3, report 151.3 + 9.0; the mix 35.6 ms.

Here the web processes used about half a core (14.6 req/s x 34 ms): the other jobs held
the rest, so a second instance on the same two cores buys only what one gunicorn worker
(one GIL) could not overlap, and the replica takes the reports' reads off the primary.
By CPU, the mix needs 35.6 ms a request: about 56 requests/s on 2 cores, 225 on 8. The
web part (85% of it, the reports and registrations above all) grows with each host's own
cores; PostgreSQL's ~5 ms stays on the database host, which at 8 such web hosts of 2
cores would need about 2 cores of its own.
"""

from __future__ import annotations

import argparse
import os
import queue
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")

from bench.cpu import proc_cpu, server_and_database_cpu  # noqa: E402
from tests.cards import card_pki  # noqa: E402
from tests.conftest import DEMO_PASSWORD, Database, build_app  # noqa: E402
from tests.test_notify import CITIZEN, attachment, consent_pdf  # noqa: E402
from tests.test_scale import Clusters, Instance, Nginx, Redis  # noqa: E402

MIX = {"query": 60, "worklist": 20, "action": 10, "register": 5, "report": 5}
STEPS = ["receive", "assign", "accept", "process", "close"]  # a TAX dispatch's way, one action each


class County:
    """The clients: each request picks its kind by the mix and records (kind, seconds, ok)."""

    def __init__(self, proxy: Nginx, category: int):
        self.proxy, self.category = proxy, category
        self.work: queue.Queue = queue.Queue()  # (dispatch id, next step index)
        self.lock = threading.Lock()
        with proxy.client() as c:
            self.tokens = {
                name: c.post("/api/v1/security/login",
                             json={"username": name, "password": DEMO_PASSWORD, "provider": "db"}).json()["access_token"]
                for name in ("clerk", "notifier", "supervisor.tax", "handler.tax")
            }  # fmt: skip
        self.body = attachment(consent_pdf())

    def _auth(self, user):
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def query(self, c):
        body = {"form": "tax.income", "case_no": "1151203-0001", "reason": "", "business_item": "TAX-EXEMPT",
                "params": {"id_no": "A123456789"}}  # fmt: skip
        r = c.post("/api/v1/query/run", json=body, headers=self._auth("clerk"))
        return r.status_code == 200 and not any(s.get("error") for s in r.json()["sections"])

    def worklist(self, c):
        return c.get("/api/v1/worklist/incoming", headers=self._auth("supervisor.tax")).status_code == 200

    def register(self, c):
        body = {"category": self.category, "citizen": CITIZEN, "content": "住址變更。", "attachments": [self.body]}
        r = c.post("/api/v1/cases/", json=body, headers=self._auth("notifier"))
        if r.status_code != 201:
            return False
        for d in r.json()["result"]["dispatches"]:
            if d["agency"]["code"] == "TAX":
                self.work.put((d["id"], 0))
        return True

    def action(self, c):
        try:
            dispatch, step = self.work.get_nowait()
        except queue.Empty:
            return None  # nothing to act on yet: not counted
        name = STEPS[step]
        user = "handler.tax" if name in ("accept", "process") else "supervisor.tax"
        body = {"assign": {"handler": "handler.tax"},
                "process": {"result": "已更新。", "control_type": "closed", "notes": "依通報辦理"}}.get(name, {})  # fmt: skip
        r = c.post(f"/api/v1/dispatches/{dispatch}/{name}", json=body, headers=self._auth(user))
        if r.status_code == 200 and step + 1 < len(STEPS):
            self.work.put((dispatch, step + 1))
        return r.status_code == 200

    def report(self, c):
        return c.get("/reports/", params={"report": "agencies"}).status_code == 200

    def client(self):
        c = self.proxy.client(follow_redirects=False)
        signed_in = c.post("/login/", data={"username": "manager", "password": DEMO_PASSWORD})
        assert signed_in.status_code == 302, signed_in.status_code
        return c

    def run(self, seconds: float, clients: int, kinds: dict[str, int] | None = None, count: int | None = None):
        """The mix (or ``kinds``) for ``seconds`` (or ``count`` requests); [(kind, seconds, ok)]."""
        kinds = kinds or MIX
        names, weights = list(kinds), list(kinds.values())
        results, stop = [], threading.Event()
        left = [count] if count is not None else None
        deadline = time.monotonic() + seconds

        def loop(seed):
            rng = random.Random(seed)
            c = self.client()
            try:
                while not stop.is_set() and time.monotonic() < deadline:
                    if left is not None:
                        with self.lock:
                            if left[0] <= 0:
                                return
                            left[0] -= 1
                    kind = rng.choices(names, weights)[0]
                    started = time.perf_counter()
                    ok = getattr(self, kind)(c)
                    if ok is None:
                        continue
                    with self.lock:
                        results.append((kind, time.perf_counter() - started, ok))
            finally:
                c.close()

        threads = [threading.Thread(target=loop, args=(n,)) for n in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results


def _pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def _print_run(title, results, seconds):
    ok = [r for r in results if r[2]]
    print(f"\n{title}: {len(ok) / seconds:.1f} requests/s ({len(results) - len(ok)} failed of {len(results)})")
    print(f"  {'kind':<9} {'n':>6} {'per s':>7} {'p50 ms':>8} {'p95 ms':>8}")
    by_kind = defaultdict(list)
    for kind, took, good in results:
        if good:
            by_kind[kind].append(took * 1000)
    for kind in MIX:
        values = by_kind.get(kind, [])
        print(
            f"  {kind:<9} {len(values):>6} {len(values) / seconds:>7.1f} {_pct(values, 0.5):>8.0f} {_pct(values, 0.95):>8.0f}"
        )
    return len(ok) / seconds


def _cluster_cpu(data_dirs) -> float:
    """CPU seconds of PostgreSQL clusters: each postmaster, its live children (backends, WAL
    sender and receiver, startup/replay, checkpointer...) and the children it has reaped."""
    total = 0.0
    for data in data_dirs:
        postmaster = int((Path(data) / "postmaster.pid").read_text().split()[0])
        fields = Path(f"/proc/{postmaster}/stat").read_text().rsplit(")", 1)[1].split()
        total += sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except OSError:
                    continue
                if ppid == postmaster:
                    total += proc_cpu(int(entry.name))
    return total


def _cpu(instances, sealer, clusters):
    web = sum(server_and_database_cpu(instance.proc.pid, [])[0] for instance in instances)
    return web + proc_cpu(sealer.pid), _cluster_cpu([clusters.primary_data, clusters.replica_data])


def _sealer(env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flask", "--app", "tests.process_app:app", "worker", "sealer"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--cpu-requests", type=int, default=60, help="requests of each kind for its CPU cost")
    args = parser.parse_args()
    template = Database("postgresql", Path(tempfile.mkdtemp()))
    seeded = build_app(template.url)
    sources = seeded.config["DEMO_SOURCES_DIR"]
    from app.extensions import db

    with seeded.app_context():
        db.session.remove()
        db.engine.dispose()
    clusters = Clusters(template.name)
    redis = Redis(Path(tempfile.mkdtemp()))
    started = []
    try:
        app = build_app(clusters.primary_url, migrate=False, DEMO_SOURCES_DIR=sources,
                        DATABASE_REPLICA_URL=clusters.replica_url, TRUSTED_PROXIES=["127.0.0.1"],
                        RATELIMIT_STORAGE_URI=redis.url, LOGIN_THROTTLE_STORAGE_URI=redis.url,
                        RATELIMIT_ENABLED=True, AUTH_RATE_LIMITED=False, AUDIT_SEALING="background")  # fmt: skip
        replica_url = app.config["DATABASE_REPLICA_URL"]
        app.config["DATABASE_REPLICA_URL"] = ""
        plain = [Instance(app), Instance(app)]
        app.config["DATABASE_REPLICA_URL"] = replica_url
        with_replica = [Instance(app), Instance(app)]
        started = plain + with_replica
        sealer = _sealer(plain[0].env)
        prefix = Path(tempfile.mkdtemp(prefix="nginx-"))
        for name in ("one", "two", "replica"):
            (prefix / name).mkdir()
        proxies = {
            "one": Nginx(prefix / "one", card_pki(), [plain[0].port, plain[0].port]),
            "two": Nginx(prefix / "two", card_pki(), [plain[0].port, plain[1].port]),
            "replica": Nginx(prefix / "replica", card_pki(), [with_replica[0].port, with_replica[1].port]),
        }
        with proxies["one"].client() as c:
            token = c.post(
                "/api/v1/security/login", json={"username": "notifier", "password": DEMO_PASSWORD, "provider": "db"}
            ).json()
            cats = c.get("/api/v1/categories/", headers={"Authorization": f"Bearer {token['access_token']}"}).json()
        category = next(x["id"] for x in cats["result"] if x["sub_item"] == "地址變更")
        print(f"{os.cpu_count()} cores; gunicorn 1 worker x 8 threads per instance; {args.clients} clients; "
              f"{args.seconds:.0f} s per run; mix {MIX}")  # fmt: skip
        rates = {}
        for key, title, instances in (
            ("one", "one instance", plain[:1]),
            ("two", "two instances", plain),
            ("replica", "two instances, reports on the replica", with_replica),
        ):
            county = County(proxies[key], category)
            county.run(4, args.clients)  # warm up: connections, caches, some work to act on
            cpu0 = _cpu(instances, sealer, clusters)
            results = county.run(args.seconds, args.clients)
            cpu1 = _cpu(instances, sealer, clusters)
            rates[key] = _print_run(title, results, args.seconds)
            done = sum(1 for r in results if r[2])
            print(f"  CPU per request: web+sealer {(cpu1[0] - cpu0[0]) / done * 1000:.1f} ms, "
                  f"PostgreSQL (primary and replica) {(cpu1[1] - cpu0[1]) / done * 1000:.1f} ms")  # fmt: skip
        print(f"\ntwo instances / one: {rates['two'] / rates['one']:.2f}x; "
              f"with the replica / without: {rates['replica'] / rates['two']:.2f}x")  # fmt: skip

        # What each kind costs, alone, through one instance (4 clients).
        county = County(proxies["one"], category)
        costs = {}
        print(f"\nCPU per request by kind (one instance, 4 clients, {args.cpu_requests} requests each):")
        print(f"  {'kind':<9} {'web ms':>7} {'db ms':>7} {'wall p50':>9}")
        for kind in MIX:
            if kind == "action":
                c = county.client()
                try:
                    for _ in range(args.cpu_requests // 5 + 2):
                        county.register(c)
                finally:
                    c.close()
            cpu0 = _cpu(plain[:1], sealer, clusters)
            results = county.run(600, 4, kinds={kind: 1}, count=args.cpu_requests)
            cpu1 = _cpu(plain[:1], sealer, clusters)
            done = max(1, sum(1 for r in results if r[2]))
            web, dbase = (cpu1[0] - cpu0[0]) / done, (cpu1[1] - cpu0[1]) / done
            costs[kind] = web + dbase
            wall = _pct([r[1] * 1000 for r in results if r[2]], 0.5)
            print(f"  {kind:<9} {web * 1000:>7.1f} {dbase * 1000:>7.1f} {wall:>9.0f}")
        mixed = sum(costs[k] * w for k, w in MIX.items()) / sum(MIX.values())
        print(f"\nthe mix costs {mixed * 1000:.1f} ms CPU a request (web, sealer and PostgreSQL together):")
        for cores in (2, 4, 8, 16):
            print(f"  {cores:>2} cores: at most ~{cores / mixed:.0f} requests/s")
        print(
            "  (one more host on the same cores adds no CPU; on a host of its own it adds its cores to the web"
            " part, while PostgreSQL's part stays on the database host)"
        )
    finally:
        for instance in started:
            instance.close()
        for proxy in locals().get("proxies", {}).values():
            proxy.close()
        if "sealer" in locals():
            sealer.terminate()
            sealer.wait(30)
        redis.stop()
        clusters.close()
        template.drop()


if __name__ == "__main__":
    main()
