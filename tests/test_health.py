"""Health and metrics (issue 20, item 3): /health/live and /health/ready as the
platform database and Redis go down and come back, /metrics only for
METRICS_ALLOW (the client address after TRUSTED_PROXIES), and a real gunicorn
with two workers scraped and parsed, counting the requests both served."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, func, select, text

from app.extensions import db
from app.models.audit import AuditEvent
from tests import factories
from tests.conftest import PG_ADMIN_URL, api_token, bearer, build_app, copied_app, free_port

ROOT = Path(__file__).resolve().parent.parent

# Taking the database away needs PostgreSQL.
pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


def _samples(text_body: str) -> dict[tuple, float]:
    """Every sample of a scrape: (name, sorted labels) -> value."""
    found = {}
    for family in text_string_to_metric_families(text_body):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted((k, str(v)) for k, v in labels.items()))), 0.0)


def _audit_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(AuditEvent))


def _poll(check, what: str, timeout: float = 20.0):
    """``check()`` until it is truthy (returned), or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# --- the endpoints, through the test client -----------------------------------


def test_live_and_ready_answer_without_session_audit_or_personal_data(app, client):
    before = _audit_count(app)
    live = client.get("/health/live")
    assert live.status_code == 200 and live.json == {"status": "live"}
    assert live.headers["Cache-Control"] == "no-store"
    ready = client.get("/health/ready")
    assert ready.status_code == 200, ready.json
    body = ready.json
    assert body["status"] == "ready" and body["failed"] == []
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"] == "not configured"
    assert body["checks"]["smtp"] in ("ok", "down")
    # each source by its code, as last tested: never connected to by the probe
    assert body["sources"] and set(body["sources"].values()) <= {"ok", "failing", "unchecked", "disabled"}
    text_body = ready.get_data(as_text=True)
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    for secret in (url, app.config["SECRET_KEY"], "postgres@", "A123456789"):
        assert secret not in text_body
    for response in (live, ready):
        assert "Set-Cookie" not in response.headers
    assert _audit_count(app) == before  # probes are not audited
    # HEAD works as well (nginx, load balancers)
    assert client.head("/health/ready").status_code == 200


def test_metrics_answer_only_the_allowed_addresses_as_trusted_proxies_make_them_out(backend, tmp_path):
    overrides = {"TRUSTED_PROXIES": ["127.0.0.1"], "METRICS_ALLOW": ["127.0.0.1", "10.20.0.0/16"]}
    with copied_app(backend, tmp_path, **overrides) as app:
        client = app.test_client()
        assert client.get("/metrics").status_code == 200  # loopback
        inside = client.get("/metrics", environ_base={"REMOTE_ADDR": "10.20.3.4"})
        assert inside.status_code == 200 and "platform_http_requests_total" in inside.get_data(as_text=True)
        outside = client.get("/metrics", environ_base={"REMOTE_ADDR": "192.0.2.7"})
        assert outside.status_code == 404 and b"platform_" not in outside.data
        # through the trusted proxy on loopback, the client is the forwarded address
        forwarded = client.get("/metrics", headers={"X-Forwarded-For": "192.0.2.7"})
        assert forwarded.status_code == 404
        forwarded_inside = client.get("/metrics", headers={"X-Forwarded-For": "10.20.9.9"})
        assert forwarded_inside.status_code == 200
        # an untrusted peer cannot claim to be an allowed client
        spoofed = client.get(
            "/metrics", headers={"X-Forwarded-For": "127.0.0.1"}, environ_base={"REMOTE_ADDR": "192.0.2.7"}
        )
        assert spoofed.status_code == 404
    _refused_at_start(backend, tmp_path, "METRICS_ALLOW", METRICS_ALLOW=["not-an-address"])


def _refused_at_start(backend, tmp_path, setting: str, **overrides) -> None:
    """The app does not start with these settings, naming ``setting``."""
    database = backend.clone(tmp_path)
    try:
        with pytest.raises(ValueError, match=setting):
            build_app(database.url, migrate=False, DEMO_SOURCES_DIR=backend.sources_dir, **overrides)
    finally:
        database.drop()  # WITH (FORCE): whatever the app that did not start left connected


def test_metrics_count_requests_by_rule_queries_by_form_failed_sign_ins_and_read_backlogs(app, client, tmp_path):
    code = f"test.health.{uuid.uuid4().hex[:6]}"
    with app.app_context():
        src = factories.sqlite_source(f"SRC-{uuid.uuid4().hex[:6]}", factories.people_db(tmp_path / "people.db"))
        factories.people_form(code, src)
    before = _samples(client.get("/metrics").get_data(as_text=True))
    token = api_token(client, "clerk")
    payload = {"form": code, "case_no": "1151126-0001", "reason": "", "business_item": "TAX-CHECK",
               "params": {"id_no": "A123456789"}}  # fmt: skip
    assert client.post("/api/v1/query/run", json=payload, headers=bearer(token)).status_code == 200
    nobody = {"form": "no.such.form." + uuid.uuid4().hex[:4], **{k: v for k, v in payload.items() if k != "form"}}
    assert client.post("/api/v1/query/run", json=nobody, headers=bearer(token)).status_code in (403, 404)
    login = {"username": "clerk", "password": "wrong-password", "provider": "db"}
    assert client.post("/api/v1/security/login", json=login).status_code == 401
    for _ in range(3):
        assert client.get("/health/live").status_code == 200
    assert client.get(f"/no/such/page/{uuid.uuid4().hex}").status_code == 404
    with app.app_context():  # a message waiting in the outbox
        from app.services import outbox

        outbox.enqueue(db.session, "someone@example.org", "subject", "body", topic="test:health")
        db.session.commit()
    scrape = client.get("/metrics")
    assert scrape.status_code == 200
    assert scrape.headers["Content-Type"].startswith("text/plain")
    body = scrape.get_data(as_text=True)
    after = _samples(body)

    def delta(name, **labels):
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert delta("platform_http_requests_total", endpoint="/health/live", method="GET", status=200) == 3
    assert delta("platform_http_request_duration_seconds_count", endpoint="/health/live", method="GET") == 3
    assert delta("platform_http_requests_total", endpoint="/api/v1/query/run", method="POST", status=200) == 1
    assert delta("platform_http_requests_total", endpoint="(unmatched)", method="GET", status=404) == 1
    assert delta("platform_queries_total", form=code, outcome="ok") == 1
    # a form code nobody defined is no label of its own
    assert not any(nobody["form"] in str(key) for key in after)
    assert delta("platform_signin_failures_total") == 1
    assert _value(after, "platform_dependency_up", dependency="database") == 1
    assert _value(after, "platform_ready") == 1
    assert _value(after, "platform_outbox_messages", status="queued") >= 1
    assert _value(after, "platform_outbox_oldest_waiting_seconds") >= 0
    assert ("platform_audit_unsealed_events", ()) in after
    assert ("platform_audit_oldest_unsealed_seconds", ()) in after
    # no raw paths, addresses or personal data in any label
    assert "A123456789" not in body and "someone@example.org" not in body and "/no/such/page" not in body


def test_a_sources_recorded_health_shows_in_ready_and_metrics_without_making_the_platform_unready(
    app, client, tmp_path
):
    from app.services import sources
    from app.services.actors import SYSTEM

    code = f"SRC-{uuid.uuid4().hex[:6]}"
    folder = tmp_path / "agency"  # not there yet: the source cannot be opened
    with app.app_context():
        src = factories.sqlite_source(code, str(folder / "people.db"))
        db.session.commit()
        source_id = src.id
    r = client.get("/health/ready")
    assert r.json["sources"][code] == "unchecked"
    assert f'source="{code}"' not in client.get("/metrics").get_data(as_text=True)

    def test_it():
        with app.app_context():
            return sources.test_connection(db.session, SYSTEM, db.session.get(type(src), source_id)).ok

    assert not test_it()
    r = client.get("/health/ready")
    assert r.status_code == 200 and r.json["sources"][code] == "failing"
    samples = _samples(client.get("/metrics").get_data(as_text=True))
    assert _value(samples, "platform_source_up", source=code) == 0
    assert _value(samples, "platform_source_last_check_age_seconds", source=code) >= 0

    folder.mkdir()
    factories.people_db(folder / "people.db")
    assert test_it()
    assert client.get("/health/ready").json["sources"][code] == "ok"
    samples = _samples(client.get("/metrics").get_data(as_text=True))
    assert _value(samples, "platform_source_up", source=code) == 1
    assert _value(samples, "platform_source_latency_seconds", source=code) > 0


def test_a_check_name_health_required_does_not_know_stops_the_start(backend, tmp_path):
    _refused_at_start(backend, tmp_path, "HEALTH_REQUIRED", HEALTH_REQUIRED=["database", "sources"])


# --- going down and coming back -------------------------------------------------


def _admin(sql: str) -> None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(sql))
    admin.dispose()


@pytest.fixture
def redis_server(tmp_path):
    """Start and stop a real Redis server of the test's own, on one free port."""

    class Server:
        port = free_port()
        proc = None

        def start(self):
            self.proc = subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(tmp_path),
                ],  # fmt: skip
                stdout=subprocess.PIPE,
                text=True,
            )
            for line in self.proc.stdout:  # started when it says so
                if "Ready to accept connections" in line:
                    return
            raise AssertionError("redis-server did not start")

        def stop(self):
            if self.proc is not None:
                self.proc.terminate()
                self.proc.wait(10)
                self.proc.stdout.close()
                self.proc = None

    server = Server()
    server.start()
    yield server
    server.stop()


def test_ready_goes_503_as_the_database_or_redis_goes_down_and_200_when_they_come_back(backend, tmp_path, redis_server):
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    with copied_app(backend, tmp_path, LOGIN_THROTTLE_STORAGE_URI=url, HEALTH_TIMEOUT=1.0) as app:
        client = app.test_client()
        name = app.config["SQLALCHEMY_DATABASE_URI"].rsplit("/", 1)[-1]

        def ready():
            r = client.get("/health/ready")
            return r.status_code, r.json

        status, body = ready()
        assert status == 200, body
        assert body["checks"]["redis"] == {"LOGIN_THROTTLE_STORAGE_URI": "ok"}

        # the platform database goes away: 503, and /health/live still answers
        _admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        _admin(f'ALTER DATABASE "{name}" RENAME TO "{name}_away"')
        status, body = _poll(lambda: (s := ready())[0] == 503 and s, "503 with the database away")
        assert body["failed"] == ["database"] and body["checks"]["database"] == "down"
        assert body["sources"] == {}  # nothing known while the database is away
        assert client.get("/health/live").status_code == 200
        metrics_down = _samples(client.get("/metrics").get_data(as_text=True))
        assert _value(metrics_down, "platform_dependency_up", dependency="database") == 0
        assert _value(metrics_down, "platform_ready") == 0
        _admin(f'ALTER DATABASE "{name}_away" RENAME TO "{name}"')
        _poll(lambda: ready()[0] == 200, "200 with the database back")

        # Redis stops: 503 naming it; started again on its port: 200
        redis_server.stop()
        status, body = _poll(lambda: (s := ready())[0] == 503 and s, "503 with Redis stopped")
        assert body["failed"] == ["redis"]
        assert body["checks"]["redis"] == {"LOGIN_THROTTLE_STORAGE_URI": "down"}
        assert str(redis_server.port) not in json.dumps(body)  # the setting is named, not its URL
        redis_server.start()
        _poll(lambda: ready()[0] == 200, "200 with Redis back")


def test_smtp_is_reported_and_fails_readiness_only_when_required(backend, tmp_path):
    closed = free_port()  # nobody listens there
    with copied_app(backend, tmp_path, MAIL_PORT=closed, HEALTH_SMTP_CACHE_SECONDS=0) as app:
        r = app.test_client().get("/health/ready")
        assert r.status_code == 200 and r.json["checks"]["smtp"] == "down" and r.json["failed"] == []
        app.config["HEALTH_REQUIRED"] = ["database", "redis", "smtp"]
        r = app.test_client().get("/health/ready")
        assert r.status_code == 503 and r.json["failed"] == ["smtp"]


# --- gunicorn with two workers ---------------------------------------------------


def _process_env(app, **extra) -> dict:
    settings = {k: v for k, v in app.config.items() if isinstance(v, str | int | float | bool) or v is None}
    settings["METRICS_ALLOW"] = app.config["METRICS_ALLOW"]
    return {**os.environ, "TEST_APP_CONFIG": json.dumps(settings), "GUNICORN_CONTROL_SOCKET": "off", **extra}


def test_gunicorn_with_two_workers_is_scraped_and_counts_what_both_served(backend, tmp_path):
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"left by a previous run")  # emptied at the start
    ready_dir = tmp_path / "ready"
    ready_dir.mkdir()
    with copied_app(backend, tmp_path) as app:
        env = _process_env(
            app,
            PORT=str(port),
            WEB_CONCURRENCY="2",
            WEB_THREADS="2",
            TLS_CERT_FILE="",
            TLS_KEY_FILE="",
            PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
            GUNICORN_READY_DIR=str(ready_dir),
            LOG_FORMAT="json",
        )
        out, err = (tmp_path / "stdout.log").open("wb"), (tmp_path / "stderr.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--log-level", "info"]
            + ["--access-logfile", "-", "tests.process_app:app"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=err,
        )
        base = f"http://127.0.0.1:{port}"
        try:

            def workers():
                assert proc.poll() is None, f"gunicorn ended with {proc.returncode}"
                return sorted(int(p.name) for p in ready_dir.iterdir()) if len(list(ready_dir.iterdir())) >= 2 else None

            pids = _poll(workers, "two gunicorn workers", timeout=90)
            assert not (metrics_dir / "counter_1.db").exists()

            def scrape() -> dict:
                r = httpx.get(f"{base}/metrics", timeout=10)
                assert r.status_code == 200
                return _samples(r.text)

            # every request on a connection of its own, so both workers take some
            served = 0
            while served < 200:
                r = httpx.get(f"{base}/health/live", headers={"Connection": "close"}, timeout=10)
                assert r.status_code == 200
                served += 1
                counted = {p.name.split("_")[-1].split(".")[0] for p in metrics_dir.glob("counter_*.db")}
                if served >= 40 and {str(pid) for pid in pids} <= counted:
                    break
            counted = {p.name.split("_")[-1].split(".")[0] for p in metrics_dir.glob("counter_*.db")}
            assert {str(pid) for pid in pids} <= counted, "one worker served every request"
            assert httpx.get(f"{base}/health/ready", timeout=10).status_code == 200

            # whichever worker answers the scrape, it counts what both served
            for _ in range(6):
                samples = scrape()
                live = ("platform_http_requests_total", "/health/live", "GET", "200")
                assert _value(samples, live[0], endpoint=live[1], method=live[2], status=live[3]) == served
                hist = _value(
                    samples, "platform_http_request_duration_seconds_count", endpoint="/health/live", method="GET"
                )
                assert hist == served
                assert _value(samples, "platform_dependency_up", dependency="database") == 1
                assert ("platform_outbox_oldest_waiting_seconds", ()) in samples

            # a worker killed: gunicorn starts another; what the dead one counted still counts
            os.kill(pids[0], signal.SIGKILL)
            _poll(lambda: len(list(ready_dir.iterdir())) >= 3, "a new worker")
            samples = _poll(
                lambda: (
                    (s := scrape())
                    and _value(s, "platform_http_requests_total", endpoint="/health/live", method="GET", status="200")
                    == served
                    and s
                ),
                "the counts after a worker died",
            )
            assert _value(samples, "platform_http_requests_total", endpoint="/metrics", method="GET", status="200") >= 6
            # personal data in a query string and a user name: in no log line
            assert httpx.get(f"{base}/health/live?id=A123456789", timeout=10).status_code == 200
            login = {"username": "A123456789", "password": "wrong-password", "provider": "db"}
            assert httpx.post(f"{base}/api/v1/security/login", json=login, timeout=10).status_code == 401
        finally:
            proc.terminate()
            proc.wait(30)
            out.close()
            err.close()
        # LOG_FORMAT=json: every line gunicorn and the app wrote is one JSON object
        lines = [
            json.loads(line)
            for name in ("stdout.log", "stderr.log")
            for line in (tmp_path / name).read_text().splitlines()
            if line.strip()
        ]
        assert {"time", "level", "logger", "process", "message"} <= set(lines[0])
        access = [line for line in lines if line["logger"] == "gunicorn.access"]
        assert sum("/health/live" in line["message"] for line in access) == served + 1
        assert any(line["logger"] == "gunicorn.error" for line in lines)
        assert "A123456789" not in json.dumps(lines)
