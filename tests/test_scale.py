"""Several app hosts and a reports replica (docs/operations.md, "Several hosts").

A fresh PostgreSQL primary and a streaming replica of it (two clusters of their own,
made with Debian's initdb and pg_basebackup, started and stopped here: the machine's
shared server is never touched), a Redis of the test's own, two platform instances
(gunicorn, as in production) sharing only those, and nginx in front of them with
deploy/nginx/platform.conf and the upstream of deploy/nginx/several-hosts.conf.

The stories: reports read the replica and say how fresh they are, and the primary
when it lags or stops; a browser session, a spent refresh token and a rate limit hold
across instances; under a steady mixed load one instance is killed, and nginx moves
the load to the other with only the requests in flight lost and no committed work
lost; the replica stops and reports carry on; Redis stops and sign-in is refused
(503), never let through unlimited; the health endpoints follow each part down and up.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text

from app.extensions import db
from app.models.notify import NotificationCase
from app.services import worker_lock
from app.services.reports import replica
from tests.cards import card_pki
from tests.conftest import DEMO_PASSWORD, PG_ADMIN_URL, build_app, free_port
from tests.test_https import _process_env, _roots_only, _wait_served
from tests.test_notify import CITIZEN, attachment, consent_pdf

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = Path("/usr/lib/postgresql/15/bin")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SITE = ROOT / "deploy" / "nginx" / "platform.conf"
HOSTS = ROOT / "deploy" / "nginx" / "several-hosts.conf"


# --- a primary and its streaming replica -------------------------------------------------


class Clusters:
    """A fresh PostgreSQL primary (wal_level=replica) holding a copy of the seeded
    platform, and a hot-standby replica made from it with ``pg_basebackup -R``."""

    def __init__(self, template: str):
        self.base = Path(tempfile.mkdtemp(prefix="pgscale-"))
        self.as_postgres = []
        if os.geteuid() == 0:  # the server refuses to run as root
            shutil.chown(self.base, "postgres", "postgres")
            self.as_postgres = ["runuser", "-u", "postgres", "--"]
        self.primary_port, self.replica_port = free_port(), free_port()
        self.primary_data, self.replica_data = self.base / "primary", self.base / "replica"
        self._run(PG_BIN / "initdb", "-D", self.primary_data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")  # fmt: skip
        self._start(self.primary_data, self.primary_port, "primary")
        admin = create_engine(self.url(self.primary_port, "postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE platform"))
        admin.dispose()
        source = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0] + f"/{template}"
        dump = subprocess.run([PG_BIN / "pg_dump", "--no-owner", source], check=True, capture_output=True)
        subprocess.run([PG_BIN / "psql", "-q", "-v", "ON_ERROR_STOP=1", self.url(self.primary_port, "platform", "")],
                       input=dump.stdout, check=True, capture_output=True)  # fmt: skip
        self._run(PG_BIN / "pg_basebackup", "-h", "127.0.0.1", "-p", self.primary_port, "-U", "postgres",
                  "-D", self.replica_data, "-R", "-X", "stream", "--checkpoint=fast", "--no-sync")  # fmt: skip
        self.start_replica()

    def _run(self, *argv):
        subprocess.run([*self.as_postgres, *map(str, argv)], check=True, capture_output=True, timeout=120)

    def _start(self, data: Path, port: int, name: str):
        options = f"-p {port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off -c hot_standby_feedback=on"
        self._run(PG_BIN / "pg_ctl", "-D", data, "-o", options, "-l", self.base / f"{name}.log", "-w", "start")

    @staticmethod
    def url(port: int, database: str, driver: str = "+psycopg") -> str:
        return f"postgresql{driver}://postgres@127.0.0.1:{port}/{database}"

    @property
    def primary_url(self) -> str:
        return self.url(self.primary_port, "platform")

    @property
    def replica_url(self) -> str:
        return self.url(self.replica_port, "platform")

    def start_replica(self):
        self._start(self.replica_data, self.replica_port, "replica")
        engine = create_engine(self.replica_url)
        deadline = time.monotonic() + 30
        while True:  # until it takes queries (consistent recovery state reached)
            try:
                with engine.connect() as conn:
                    assert conn.execute(text("SELECT pg_is_in_recovery()")).scalar()
                break
            except Exception:
                assert time.monotonic() < deadline, "the replica did not start"
                time.sleep(0.2)
        engine.dispose()

    def stop_replica(self):
        self._run(PG_BIN / "pg_ctl", "-D", self.replica_data, "-m", "immediate", "-w", "stop")

    def replica_sql(self, statement: str):
        engine = create_engine(self.replica_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(statement))
        engine.dispose()

    def close(self):
        for data in (self.replica_data, self.primary_data):
            subprocess.run([*self.as_postgres, PG_BIN / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"],
                           capture_output=True)  # fmt: skip
        shutil.rmtree(self.base, ignore_errors=True)


class Redis:
    """redis-server of the test's own (no persistence), stopped and started again on its port."""

    def __init__(self, folder: Path):
        self.port, self.folder, self.proc = free_port(), folder, None
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.start()

    def start(self):
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen([*argv, "--dir", str(self.folder)], stdout=subprocess.PIPE, text=True)
        for line in self.proc.stdout:
            if "Ready to accept connections" in line:
                break
        self.drain = threading.Thread(target=self.proc.stdout.read, daemon=True)  # keep its pipe drained
        self.drain.start()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.drain.join(10)
        self.proc.stdout.close()


@pytest.fixture(scope="module")
def clusters(backend):
    made = Clusters(backend.name)
    yield made
    made.close()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = Redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def platform(backend, clusters, redis_server):
    application = build_app(
        clusters.primary_url,
        migrate=False,
        DEMO_SOURCES_DIR=backend.sources_dir,
        DATABASE_REPLICA_URL=clusters.replica_url,
        REPLICA_CHECK_SECONDS=0,
        REPLICA_RETRY_SECONDS=1,
        REPLICA_CONNECT_TIMEOUT=1,
        TRUSTED_PROXIES=["127.0.0.1"],
        RATELIMIT_STORAGE_URI=redis_server.url,
        LOGIN_THROTTLE_STORAGE_URI=redis_server.url,
        RATELIMIT_ENABLED=True,
        AUTH_RATE_LIMITED=True,
        AUTH_RATE_LIMIT="12 per minute",
        HEALTH_REQUIRED=["database", "redis"],
    )
    replica.forget()
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()
        for engine in application.extensions.get("platform_replica_engines", {}).values():
            engine.dispose()
    replica.forget()


def _in_recovery(session) -> bool:
    return bool(session.execute(text("SELECT pg_is_in_recovery()")).scalar())


def _freshness(page: str) -> dict:
    found = re.search(r'id="report-freshness" data-source="(\w+)"(?: data-fallback="(\w+)")?', page)
    assert found, "the page does not say how fresh its figures are"
    return {"source": found.group(1), "fallback": found.group(2)}


def _signed_in(app, username: str):
    client = app.test_client()
    r = client.post("/login/", data={"username": username, "password": DEMO_PASSWORD})
    assert r.status_code == 302, r.text
    return client


# --- reports on the replica (in process) -------------------------------------------------


def test_reports_read_the_replica_and_say_how_fresh_and_a_lagging_one_falls_back_to_the_primary(platform, clusters):
    manager = _signed_in(platform, "manager")
    with platform.test_request_context():
        in_recovery, fresh = replica.read(db.session, _in_recovery)
        assert in_recovery and fresh.source == "replica" and fresh.fallback is None
    page = manager.get("/reports/", query_string={"report": "queries"})
    assert page.status_code == 200 and _freshness(page.text) == {"source": "replica", "fallback": None}
    assert "取自報表副本資料庫" in page.text
    assert _freshness(manager.get("/reports/weekly-queries/").text)["source"] == "replica"
    # case searches read the replica too (the page says so when it did)
    found = manager.post("/notify/search/", data={"status": "open"})
    assert found.status_code == 200 and 'id="search-results"' in found.text
    assert _freshness(found.text)["source"] == "replica"

    # The replica stops replaying while the primary commits: it falls behind.
    clusters.replica_sql("SELECT pg_wal_replay_pause()")
    try:
        with platform.app_context():
            with db.engine.begin() as conn:
                conn.execute(text("CREATE TABLE scale_probe (id int)"))
        platform.config["REPLICA_MAX_LAG_SECONDS"] = 0.5
        time.sleep(1)
        page = manager.get("/reports/", query_string={"report": "queries"})
        assert page.status_code == 200 and _freshness(page.text) == {"source": "primary", "fallback": "lagging"}
        assert "報表副本資料庫落後過多" in page.text
        health = manager.get("/health/ready").json
        assert health["checks"]["replica"] == "lagging" and health["replica_lag_seconds"] >= 0.5
    finally:
        platform.config["REPLICA_MAX_LAG_SECONDS"] = 300
        clusters.replica_sql("SELECT pg_wal_replay_resume()")
    page = manager.get("/reports/", query_string={"report": "queries"})
    assert _freshness(page.text)["source"] == "replica"
    assert manager.get("/health/ready").json["checks"]["replica"] == "ok"


def test_a_stopped_replica_leaves_the_reports_on_the_primary_until_it_is_back(platform, clusters):
    manager = _signed_in(platform, "manager")
    clusters.stop_replica()
    try:
        started = time.monotonic()
        page = manager.get("/reports/", query_string={"report": "agencies"})
        assert page.status_code == 200 and _freshness(page.text) == {"source": "primary", "fallback": "unavailable"}
        assert "報表副本資料庫無回應" in page.text
        survey = manager.get("/survey/statistics/")
        assert survey.status_code in (200, 404) or "report-freshness" in survey.text
        # Within REPLICA_RETRY_SECONDS the dead replica is not asked again: no connection wait.
        again = time.monotonic()
        assert _freshness(manager.get("/reports/").text)["fallback"] == "unavailable"
        assert time.monotonic() - again < max(1.0, time.monotonic() - started)
        health = manager.get("/health/ready")
        assert health.status_code == 200 and health.json["checks"]["replica"] == "down"  # reports carry on
    finally:
        clusters.start_replica()
    time.sleep(platform.config["REPLICA_RETRY_SECONDS"] + 0.2)
    assert _freshness(manager.get("/reports/").text)["source"] == "replica"
    assert manager.get("/health/ready").json["checks"]["replica"] == "ok"


def test_two_payments_workers_never_take_a_round_at_once_and_a_dead_ones_lock_is_freed(platform):
    with platform.app_context():
        with worker_lock.exclusive(db.engine, "payments") as first:
            with worker_lock.exclusive(db.engine, "payments") as second:
                assert first and not second  # the second skips its round, never waits
            with worker_lock.exclusive(db.engine, "outbox-other-kind") as other:
                assert other  # one lock per kind
        with worker_lock.exclusive(db.engine, "payments") as again:
            assert again
        holder = db.engine.connect()  # a worker that dies holding the lock: its connection goes with it
        holder.execute(select(func.pg_advisory_lock(worker_lock.lock_key("payments"))))
        with worker_lock.exclusive(db.engine, "payments") as meanwhile:
            assert not meanwhile
        holder.invalidate()
        holder.close()
        with worker_lock.exclusive(db.engine, "payments") as after:
            assert after


# --- two instances behind nginx ----------------------------------------------------------


class Instance:
    """The platform under gunicorn on a port of its own, in a process group of its own
    (so the whole host can be killed at once)."""

    def __init__(self, app, port: int | None = None):
        self.port = port or free_port()
        self.env = _process_env(
            app, PORT=str(self.port), WEB_CONCURRENCY="1", WEB_THREADS="8", TLS_CERT_FILE="", TLS_KEY_FILE=""
        )
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--log-level", "warning"]
            + ["--access-logfile", "/dev/null", "tests.process_app:app"],
            cwd=ROOT,
            env=self.env,
            start_new_session=True,
        )
        _wait_served(self.proc, self.port, None, "gunicorn")

    def kill(self):
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def close(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)


class Nginx:
    """nginx with deploy/nginx/platform.conf as shipped, its upstream replaced by the one of
    deploy/nginx/several-hosts.conf (ports, paths changed), and a header naming the
    instance that answered (for the test to see the balancing)."""

    def __init__(self, prefix: Path, pki, ports: list[int]):
        self.https_port, http_port = free_port(), free_port()
        prefix.chmod(0o755)
        upstream = HOSTS.read_text()
        servers = re.findall(r"^\s*server 10\.0\.0\.\d+:8000[^;]*;", upstream, re.M)
        assert len(servers) == 2, "deploy/nginx/several-hosts.conf no longer lists two hosts"
        for line, port in zip(servers, ports, strict=True):
            upstream = upstream.replace(line, re.sub(r"10\.0\.0\.\d+:8000", f"127.0.0.1:{port}", line))
        site = SITE.read_text()
        block = re.search(r"upstream platform \{.*?\n\}\n", site, re.S).group(0)
        card_cas = prefix / "card-cas.pem"
        card_cas.write_bytes((pki["dir"] / pki["roots"]).read_bytes() + (pki["dir"] / pki["bundle"]).read_bytes())
        changes = {
            block: upstream,
            "listen 80;": f"listen 127.0.0.1:{http_port};",
            "listen 443 ssl;": f"listen 127.0.0.1:{self.https_port} ssl;",
            "/etc/nginx/platform/chain.pem": str(pki["dir"] / pki["tls"]["chain"]),
            "/etc/nginx/platform/server.key": str(pki["dir"] / pki["tls"]["key"]),
            "/etc/nginx/platform/card-cas.pem": str(card_cas),
            "        proxy_pass http://platform;\n": "        proxy_pass http://platform;\n"
            "        add_header X-Instance $upstream_addr always;\n",
        }
        for old, new in changes.items():
            assert site.count(old) == 1, old
            site = site.replace(old, new)
        (prefix / "platform.conf").write_text(site)
        temp = " ".join(f"{k}_temp_path {prefix / k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (prefix / "nginx.conf").write_text(
            f"daemon off;\npid {prefix / 'nginx.pid'};\nerror_log {prefix / 'error.log'} info;\n"
            "worker_processes 1;\nevents { worker_connections 256; }\n"
            f"http {{\n  access_log off;\n  {temp}\n  include {prefix / 'platform.conf'};\n}}\n"
        )
        self.proc = subprocess.Popen(
            [NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "error.log")]
        )
        _wait_served(self.proc, self.https_port, _roots_only(pki), "nginx")
        self.base = f"https://127.0.0.1:{self.https_port}"
        self.verify = _roots_only(pki)

    def client(self, address: str = "127.0.0.1", **kwargs) -> httpx.Client:
        transport = httpx.HTTPTransport(verify=self.verify, local_address=address)
        return httpx.Client(base_url=self.base, transport=transport, timeout=30, **kwargs)

    def close(self):
        self.proc.terminate()
        self.proc.wait(30)


@pytest.fixture(scope="module")
def hosts(platform, tmp_path_factory):
    instances = [Instance(platform), Instance(platform)]
    proxy = Nginx(tmp_path_factory.mktemp("nginx"), card_pki(), [i.port for i in instances])
    yield proxy, instances
    proxy.close()
    for instance in instances:
        instance.close()


def _login_api(client: httpx.Client, username: str) -> httpx.Response:
    body = {"username": username, "password": DEMO_PASSWORD, "provider": "db"}
    return client.post("/api/v1/security/login", json=body)


def _token(client: httpx.Client, username: str) -> str:
    r = _login_api(client, username)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def test_a_session_a_spent_refresh_token_and_a_rate_limit_hold_across_instances(hosts, platform):
    proxy, instances = hosts
    with proxy.client(address="127.0.0.4", follow_redirects=False) as browser:
        signed_in = browser.post("/login/", data={"username": "manager", "password": DEMO_PASSWORD})
        assert signed_in.status_code == 302
        served = Counter()
        for _ in range(6):
            page = browser.get("/reports/")
            assert page.status_code == 200, page.status_code
            served[page.headers["x-instance"]] += 1
        assert len(served) == 2, served  # round robin: each instance knew the session
        assert browser.get("/logout/").status_code == 302
        after = [browser.get("/reports/") for _ in range(2)]
        assert [r.status_code for r in after] == [302, 302] and all("/login/" in r.headers["location"] for r in after)
        assert len({r.headers["x-instance"] for r in after}) == 2  # ended on both

    # A refresh token spent on one instance is refused by the other.
    first, second = (f"http://127.0.0.1:{i.port}" for i in instances)
    pair = httpx.post(f"{first}/api/v1/security/login", json={"username": "clerk", "password": DEMO_PASSWORD,
                                                               "provider": "db", "refresh": True}).json()  # fmt: skip
    refresh = {"Authorization": f"Bearer {pair['refresh_token']}"}
    assert httpx.post(f"{first}/api/v1/security/refresh", headers=refresh).status_code == 200
    assert httpx.post(f"{second}/api/v1/security/refresh", headers=refresh).status_code == 401

    # The sign-in burst limit (12 a minute here) is counted once, whichever instance answers.
    with proxy.client(address="127.0.0.5") as client:
        answers = [_login_api(client, "clerk") for _ in range(14)]
    codes = [r.status_code for r in answers]
    assert codes[:12] == [200] * 12 and codes[12:] == [429, 429], codes
    assert len({r.headers["x-instance"] for r in answers}) == 2


class Load:
    """A steady mixed load through nginx: clerks querying, a notifier registering cases,
    supervisors receiving their dispatches, a manager reading reports; each answer kept
    with the moment it came."""

    def __init__(self, proxy: Nginx, category: int):
        self.proxy, self.category = proxy, category
        self.stop = threading.Event()
        self.answers: list[tuple[str, float, int, str | None, float]] = []  # kind, time, status, case, sent at
        self.lock = threading.Lock()
        self.local = threading.local()
        with proxy.client(address="127.0.0.6") as client:
            self.tokens = {name: _token(client, name) for name in ("clerk", "notifier", "supervisor.tax")}

    def _note(self, kind, status, case_no=None):
        with self.lock:
            self.answers.append((kind, time.monotonic(), status, case_no, self.local.sent_at))

    def _loop(self, kind, user, call):
        if kind == "report":  # the reports are pages: a browser session
            c = self.proxy.client(address="127.0.0.6", follow_redirects=False)
            assert c.post("/login/", data={"username": user, "password": DEMO_PASSWORD}).status_code == 302
        else:
            c = self.proxy.client(address="127.0.0.6", headers={"Authorization": f"Bearer {self.tokens[user]}"})
        try:
            while not self.stop.is_set():
                self.local.sent_at = time.monotonic()
                try:
                    call(c)
                except httpx.HTTPError:
                    self._note(kind, 0)
        finally:
            c.close()

    def _query(self, c):
        body = {"form": "tax.income", "case_no": "1151203-0001", "reason": "", "business_item": "TAX-EXEMPT",
                "params": {"id_no": "A123456789"}}  # fmt: skip
        self._note("query", c.post("/api/v1/query/run", json=body).status_code)

    def _register(self, c):
        body = {"category": self.category, "citizen": CITIZEN, "content": "負載下的通報。",
                "attachments": [attachment(consent_pdf())]}  # fmt: skip
        r = c.post("/api/v1/cases/", json=body)
        self._note("register", r.status_code, r.json().get("case_no") if r.status_code == 201 else None)

    def _worklist(self, c):
        """The tax bureau's supervisor reads the incoming list and receives a dispatch still sent."""
        r = c.get("/api/v1/worklist/incoming")
        self._note("worklist", r.status_code)
        if r.status_code != 200:
            return
        waiting = [d["id"] for d in r.json()["result"] if d["state"] == "sent"]
        if waiting:
            self.local.sent_at = time.monotonic()
            self._note("action", c.post(f"/api/v1/dispatches/{waiting[0]}/receive", json={}).status_code)

    def _report(self, c):
        self._note("report", c.get("/reports/", params={"report": "agencies"}).status_code)

    def start(self):
        loops = [("query", "clerk", self._query)] * 2 + [
            ("register", "notifier", self._register),
            ("worklist", "supervisor.tax", self._worklist),
            ("report", "manager", self._report),
        ]
        self.threads = [threading.Thread(target=self._loop, args=loop, daemon=True) for loop in loops]
        for thread in self.threads:
            thread.start()

    def finish(self):
        self.stop.set()
        for thread in self.threads:
            thread.join(60)


def _address_category(proxy: Nginx) -> int:
    with proxy.client() as client:
        token = _token(client, "notifier")
        cats = client.get("/api/v1/categories/", headers={"Authorization": f"Bearer {token}"}).json()["result"]
    return next(c["id"] for c in cats if c["sub_item"] == "地址變更")


def test_a_killed_instance_under_load_loses_only_its_requests_in_flight_and_no_committed_work(hosts, platform):
    proxy, instances = hosts
    load = Load(proxy, _address_category(proxy))
    load.start()
    time.sleep(4)
    killed_at = time.monotonic()
    instances[0].kill()  # the whole host: master and workers, SIGKILL
    time.sleep(6)
    load.finish()
    try:
        answers = load.answers
        before = [a for a in answers if a[1] < killed_at]
        after = [a for a in answers if a[1] >= killed_at]
        assert before and after and {a[0] for a in after} >= {"query", "register", "worklist", "report"}
        assert all(a[2] in (200, 201) for a in before), Counter(a[2] for a in before)
        failed = [a for a in after if a[2] not in (200, 201)]
        # Only what was in flight at the kill fails: at most one request per load thread, all at once.
        assert len(failed) <= len(load.threads), Counter((a[0], a[2]) for a in failed)
        assert all(a[4] - killed_at < 1 for a in failed), [(a[0], a[2], a[4] - killed_at) for a in failed]
        assert sum(1 for a in after if a[2] in (200, 201)) > 20
        # Every registration the client saw committed is in the database, exactly once.
        registered = [a[3] for a in answers if a[0] == "register" and a[2] == 201]
        with platform.app_context():
            stored = db.session.scalars(
                select(NotificationCase.case_no).where(NotificationCase.case_no.in_(registered))
            ).all()
            db.session.remove()
        assert sorted(stored) == sorted(registered) and len(set(registered)) == len(registered)
        # The survivor says it is ready; the dead host does not answer at all.
        assert httpx.get(f"http://127.0.0.1:{instances[1].port}/health/ready").status_code == 200
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{instances[0].port}/health/live")
        print(f"\nload: {len(before)} answers before the kill, {len(after)} after, {len(failed)} failed")
    finally:
        instances[0].start()  # the host comes back and nginx sends it work again
    served, deadline = set(), time.monotonic() + 15  # nginx tries it again after fail_timeout
    with proxy.client() as client:
        while len(served) < 2 and time.monotonic() < deadline:
            served.add(client.get("/health/live").headers["x-instance"])
            time.sleep(0.2)
    assert len(served) == 2, served


def test_the_replica_and_redis_stop_under_load_reports_carry_on_and_sign_in_is_refused_not_unlimited(
    hosts, platform, clusters, redis_server
):
    proxy, instances = hosts
    direct = [f"http://127.0.0.1:{i.port}" for i in instances]
    with proxy.client(address="127.0.0.7", follow_redirects=False) as manager:
        assert manager.post("/login/", data={"username": "manager", "password": DEMO_PASSWORD}).status_code == 302
        clusters.stop_replica()
        try:
            for _ in range(4):
                page = manager.get("/reports/", params={"report": "agencies"})
                assert page.status_code == 200 and _freshness(page.text)["source"] == "primary"
            ready = httpx.get(f"{direct[0]}/health/ready")
            assert ready.status_code == 200 and ready.json()["checks"]["replica"] == "down"
        finally:
            clusters.start_replica()
        time.sleep(1.5)  # REPLICA_RETRY_SECONDS
        assert httpx.get(f"{direct[1]}/health/ready").json()["checks"]["replica"] == "ok"

        redis_server.stop()
        try:
            with proxy.client(address="127.0.0.8") as client:
                refused = [_login_api(client, "clerk") for _ in range(3)]
                form = client.post("/login/", data={"username": "clerk", "password": DEMO_PASSWORD})
            assert [r.status_code for r in refused] == [503] * 3, [r.text for r in refused]
            assert "登入與流量限制" in refused[0].json()["message"] and refused[0].headers["retry-after"] == "30"
            assert form.status_code == 503 and "登入與流量限制" in form.text
            for base in direct:
                ready = httpx.get(f"{base}/health/ready")
                assert ready.status_code == 503 and "redis" in ready.json()["failed"]
                assert httpx.get(f"{base}/health/live").status_code == 200  # alive: not restarted for it
            # Who is signed in keeps working on what has no limit.
            assert manager.get("/reports/").status_code == 200
        finally:
            redis_server.start()
        with proxy.client(address="127.0.0.8") as client:
            assert _login_api(client, "clerk").status_code == 200
        assert all(httpx.get(f"{base}/health/ready").status_code == 200 for base in direct)
