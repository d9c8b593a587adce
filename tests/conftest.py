"""Fixtures: an app per platform database (SQLite and PostgreSQL), a client,
a CLI runner, a login helper, and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app import create_app
from app.extensions import db, mail
from config import TestConfig

ARTIFACTS = Path(__file__).parent / "artifacts"
PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
DEMO_PASSWORD = TestConfig.DEMO_PASSWORD


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SMTP_PORT = free_port()


class Database:
    """A throwaway platform database: an SQLite file or a PostgreSQL database."""

    def __init__(self, backend: str, tmp: Path):
        self.backend = backend
        if backend == "sqlite":
            self.url = f"sqlite:///{tmp / f'platform-{uuid.uuid4().hex[:8]}.db'}"
        else:
            name = f"platform_test_{uuid.uuid4().hex[:10]}"
            admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            admin.dispose()
            self.name = name
            self.url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    def clone(self, tmp: Path) -> Database:
        """A new database holding what this one holds (which nobody may be connected to)."""
        copy = Database.__new__(Database)
        copy.backend = self.backend
        if self.backend == "sqlite":
            target = tmp / f"platform-{uuid.uuid4().hex[:8]}.db"
            shutil.copyfile(make_url(self.url).database, target)
            copy.url = f"sqlite:///{target}"
        else:
            copy.name = f"platform_test_{uuid.uuid4().hex[:10]}"
            admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{copy.name}" TEMPLATE "{self.name}"'))
            admin.dispose()
            copy.url = make_url(PG_ADMIN_URL).set(database=copy.name).render_as_string(hide_password=False)
        return copy

    def drop(self) -> None:
        if self.backend == "postgresql":
            admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
            admin.dispose()


_SIMULATOR: dict = {}


def simulator_url() -> str:
    """The demo e-gate and business-registry simulators, served once per run."""
    if "url" not in _SIMULATOR:
        import tempfile

        from werkzeug.serving import make_server

        from app.simulators.serve import make_app
        from seed_data.loader import write_files

        seed_dir = Path(tempfile.mkdtemp(prefix="world-"))
        write_files(seed_dir)
        port = free_port()
        server = make_server("127.0.0.1", port, make_app(seed_dir), threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        _SIMULATOR.update(url=f"http://127.0.0.1:{port}", server=server, seed_dir=seed_dir)
    return _SIMULATOR["url"]


def pki_dir() -> Path:
    """One demo PKI per test run, shared read-only by every app (made by the first seeding).

    Kept in the environment: test modules import this file a second time as tests.conftest.
    """
    if "TEST_PKI_DIR" not in os.environ:
        import tempfile

        os.environ["TEST_PKI_DIR"] = tempfile.mkdtemp(prefix="pki-")
    return Path(os.environ["TEST_PKI_DIR"])


def build_app(url: str, seed: bool = True, migrate: bool = True, **overrides):
    """Create the app on ``url``, migrate it, sync roles, seed the demo world
    (``migrate=False``: a copy of a database that was)."""
    import tempfile

    from flask_migrate import upgrade

    pki = pki_dir()
    from tests.cards import card_pki_dir

    cards = card_pki_dir()  # the demo card PKI of this run (clerk.card's card is bound by the seeding)

    class Cfg(TestConfig):
        SQLALCHEMY_DATABASE_URI = url
        MAIL_SERVER = "127.0.0.1"
        MAIL_PORT = SMTP_PORT
        DEMO_SOURCES_DIR = tempfile.mkdtemp(prefix="sources-")
        SIMULATOR_URL = simulator_url()
        DEMO_PKI_DIR = str(pki)
        TRANSFER_CA_BUNDLE = str(pki / "ca-bundle.pem")
        TRANSFER_CRL_FILES = f"{pki / 'root.crl'},{pki / 'intermediate.crl'}"
        TRANSFER_DIR = tempfile.mkdtemp(prefix="transfer-")
        TRANSFER_FTP_ROOT = tempfile.mkdtemp(prefix="ftp-")
        TRANSFER_FTP_TLS_CERT = str(pki / "ftp-tls.pem")
        TRANSFER_FTP_TLS_KEY = str(pki / "ftp-tls.key")
        TRANSFER_FTP_PASSIVE_PORTS = ""
        AUDIT_CHECKPOINT_FILE = str(Path(tempfile.mkdtemp(prefix="audit-")) / "checkpoints.jsonl")
        DEMO_CARD_PKI_DIR = str(cards)
        CERT_TRUST_ROOTS = str(cards / "roots.pem")
        CERT_CA_BUNDLE = str(cards / "cas" / "bundle.pem")

    for key, value in overrides.items():
        setattr(Cfg, key, value)
    app = create_app(Cfg)
    if not migrate:
        return app
    with app.app_context():
        upgrade()
        if seed:
            runner = app.test_cli_runner()
            for args in (["roles", "sync"], ["seed", "demo"]):
                result = runner.invoke(args=args)
                assert result.exit_code == 0, result.output
    return app


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request, tmp_path_factory):
    """The platform database kind, as a template migrated and seeded once per run
    (``.sources_dir``: the demo's text-file sources its seeding wrote)."""
    database = Database(request.param, tmp_path_factory.mktemp(request.param))
    seeded = build_app(database.url)
    database.sources_dir = seeded.config["DEMO_SOURCES_DIR"]
    with seeded.app_context():
        db.session.remove()
        db.engine.dispose()  # nobody may be connected to a PostgreSQL template
    yield database
    database.drop()


@contextmanager
def copied_app(backend, tmp: Path, **overrides):
    """An app on a new copy of ``backend``'s seeded template (``overrides``: settings);
    its database is dropped afterwards."""
    database = backend.clone(tmp)
    application = build_app(database.url, migrate=False, DEMO_SOURCES_DIR=backend.sources_dir, **overrides)
    try:
        yield application
    finally:
        with application.app_context():
            db.session.remove()
            db.engine.dispose()
        database.drop()


@pytest.fixture(scope="module")
def app(backend, tmp_path_factory):
    """This test module's app, on its own copy of the seeded template: every
    module starts from the same known state, whatever the others changed."""
    with copied_app(backend, tmp_path_factory.mktemp("db")) as application:
        yield application


@pytest.fixture
def fresh_app(request, tmp_path):
    """A new, empty-but-seeded database for tests that damage what they touch."""
    backend_name = getattr(request, "param", "sqlite")
    database = Database(backend_name, tmp_path)
    application = build_app(database.url)
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()
    database.drop()


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield
        db.session.rollback()
        db.session.remove()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def csrf_token(html: str) -> str | None:
    m = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    return m.group(1) if m else None


def login(client, username: str, password: str = DEMO_PASSWORD):
    page = client.get("/login/")
    return client.post(
        "/login/",
        data={"username": username, "password": password, "csrf_token": csrf_token(page.text) or ""},
        follow_redirects=True,
    )


def api_token(client, username: str, password: str = DEMO_PASSWORD) -> str:
    r = client.post("/api/v1/security/login", json={"username": username, "password": password, "provider": "db"})
    assert r.status_code == 200, r.json
    return r.json["access_token"]


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def try_and_grant(client, token: str, form_id: int, params: dict, grants: dict) -> None:
    """Grant a form built record by record over REST as the designer grants one: its stored
    definition tried first (the form designer's try-it), then the grants (``grants.check_granting``)."""
    definition = client.get(f"/api/v1/form-designer/{form_id}", headers=bearer(token))
    assert definition.status_code == 200, definition.json
    body = {"form": definition.json["result"], "params": params}
    tried = client.post("/api/v1/form-designer/try", json=body, headers=bearer(token))
    assert tried.status_code == 200 and tried.json["outcome"] == "ok", tried.json
    granted = client.put(f"/api/v1/query-forms/{form_id}", json=grants, headers=bearer(token))
    assert granted.status_code == 200, granted.json


class MailSink:
    """Collects what the real SMTP server receives."""

    def __init__(self):
        self.messages = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append(envelope)
        return "250 OK"

    def wait_for(self, count: int, timeout: float = 10.0) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.02)
        return list(self.messages)


class SmtpServer:
    def __init__(self, port: int):
        self.port = port
        self.sink = MailSink()
        self.controller = None

    def start(self):
        from aiosmtpd.controller import Controller

        self.controller = Controller(self.sink, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self):
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp():
    """A real SMTP server on SMTP_PORT (the app's MAIL_PORT), started and stopped by the test."""
    server = SmtpServer(SMTP_PORT)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def smtp_down():
    """SMTP_PORT with nothing listening; call .start() to bring it up."""
    server = SmtpServer(SMTP_PORT)
    yield server
    server.stop()


__all__ = ["api_token", "bearer", "try_and_grant", "build_app", "csrf_token", "free_port", "login", "mail", "ARTIFACTS"]


# --- browser stories: a live server per test module and Debian's chromium ----

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser_template(tmp_path_factory):
    """One migrated and seeded SQLite database per run, copied for each browser module
    (migrating and seeding each time cost about 15 s a module)."""
    database = Database("sqlite", tmp_path_factory.mktemp("browser-template"))
    seeded = build_app(database.url)
    database.sources_dir = seeded.config["DEMO_SOURCES_DIR"]
    with seeded.app_context():
        db.session.remove()
        db.engine.dispose()
    return database


@pytest.fixture(scope="module")
def live_app(browser_template, tmp_path_factory):
    """The seeded app (SQLite) served on a free port for this test module: .url, and .app at hand."""
    from types import SimpleNamespace

    from werkzeug.serving import make_server

    database = browser_template.clone(tmp_path_factory.mktemp("browser"))
    application = build_app(database.url, migrate=False, DEMO_SOURCES_DIR=browser_template.sources_dir)
    port = free_port()
    server = make_server("127.0.0.1", port, application, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield SimpleNamespace(url=f"http://127.0.0.1:{port}", app=application)
    server.shutdown()


@pytest.fixture(scope="module")
def live_server(live_app):
    return live_app.url


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


# Each page reports the Content-Security-Policy violations it sees (the event fires in the
# page; the binding hands it to the test).
_REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", function (e) {
  window.reportViolation([e.effectiveDirective, e.blockedURI || "inline", (e.sourceFile || "") + ":" + e.lineNumber,
                          e.sample || ""].join(" "));
});
"""


class WatchedBrowser:
    """Chromium whose every page is watched: a Content-Security-Policy violation
    (the page's own event, or the console's 'Content Security Policy' message) and
    an uncaught script error are written down; the test fails on any at its end."""

    def __init__(self, chromium):
        self.chromium = chromium
        self.problems: list[str] = []

    def new_context(self, **kwargs):
        context = self.chromium.new_context(**kwargs)
        self._watch_context(context)
        return context

    def new_page(self, **kwargs):
        page = self.chromium.new_page(**kwargs)  # its own context, closed with the page
        self._watch_context(page.context)
        self._watch_page(page)
        return page

    def _watch_context(self, context) -> None:
        context.expose_binding(
            "reportViolation", lambda source, text: self.problems.append(f"{source['page'].url}: violation {text}")
        )
        context.add_init_script(_REPORT_VIOLATIONS)
        context.on("page", self._watch_page)

    def _watch_page(self, page) -> None:
        def console(message):
            if "Content Security Policy" in message.text:
                self.problems.append(f"{page.url}: console {message.type}: {message.text}")

        page.on("console", console)
        page.on("pageerror", lambda error: self.problems.append(f"{page.url}: uncaught {error}"))


@pytest.fixture
def browser(chromium):
    """Chromium for one browser story; the story fails on any CSP violation or script error."""
    watched = WatchedBrowser(chromium)
    yield watched
    assert not watched.problems, "\n".join(["CSP violations or script errors:", *watched.problems])


# --- a summary line per platform database -----------------------------------

_backend_results: dict[str, dict[str, int]] = {}


def pytest_runtest_logreport(report):
    if report.when != "call" and not (report.when == "setup" and report.outcome != "passed"):
        return
    m = re.search(r"\[(sqlite|postgresql)\b", report.nodeid)
    if not m:
        return
    counts = _backend_results.setdefault(m.group(1), {})
    counts[report.outcome] = counts.get(report.outcome, 0) + 1


def pytest_terminal_summary(terminalreporter):
    if not _backend_results:
        return
    terminalreporter.section("platform databases")
    for name, counts in sorted(_backend_results.items()):
        detail = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
        terminalreporter.write_line(f"{name}: {detail}")
