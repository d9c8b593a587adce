"""Data sources stay inside what the operators allow, told as the administrator
who tries to step outside and as the clerk who runs a form over a source
configured before the rule (or straight in the database).

The platform here is configured as an operator would: text files and SQLite
files only under one folder of the agencies' files (SOURCE_FILE_ROOTS), web
services and the e-gate only at the simulators' address (SOURCE_URL_ALLOW).
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from app.extensions import db
from app.models.sources import DataSource
from config import INSTANCE_DIR
from tests import factories
from tests.conftest import (
    Database,
    api_token,
    bearer,
    build_app,
    copied_app,
    csrf_token,
    free_port,
    login,
    simulator_url,
)


def _sim_address() -> str:
    url = make_url(simulator_url().replace("http://", "sqlite://", 1))  # host:port of an http URL
    return f"{url.host}:{url.port}"


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """The one folder of agencies' files the operators allow."""
    return tmp_path_factory.mktemp("agency-files")


@pytest.fixture(scope="module")
def confined(backend, tmp_path_factory, root):
    """A platform whose operators allow one folder of files and the simulators' address."""
    (root / "tax.csv").write_text("id_no,name\nA123456789,王小明\n", encoding="utf-8")
    factories.people_db(root / f"people-{backend.backend}.db")
    settings = {"SOURCE_FILE_ROOTS": [str(root)], "SOURCE_URL_ALLOW": [_sim_address()]}
    with copied_app(backend, tmp_path_factory.mktemp("confined"), **settings) as application:
        application.config["TEST_BACKEND"] = backend.backend
        yield application


@pytest.fixture
def admin(confined):
    client = confined.test_client()
    return client, api_token(client, "admin")


def _count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(DataSource))


def _textfile(path: str) -> dict:
    return {
        "code": f"TXT-{uuid.uuid4().hex[:6]}",
        "name": "文字檔來源",
        "kind": "textfile",
        "path": path,
        "timeout": 3,
        "row_cap": 50,
        "enabled": True,
    }


def _sql(database: str, dialect: str = "sqlite", **extra) -> dict:
    return {
        "code": f"SQL-{uuid.uuid4().hex[:6]}",
        "name": "資料庫來源",
        "kind": "sql",
        "database": database,
        "options": json.dumps({"dialect": dialect}),
        "timeout": 3,
        "row_cap": 50,
        "enabled": True,
        **extra,
    }


def _web(kind: str, url: str) -> dict:
    return {"code": f"WEB-{uuid.uuid4().hex[:6]}", "name": "服務來源", "kind": kind, "url": url, "timeout": 1}


def _platform_sqlite_file(app) -> str | None:
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    return url.database if url.get_backend_name() == "sqlite" else None


class Listener:
    """A TCP service on a loopback address that counts who connects (and never answers)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.sock = socket.socket()
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stop.is_set():
            try:
                self.accepted.append(self.sock.accept()[0])
            except OSError:
                continue

    def close(self):
        self.stop.set()
        self.thread.join()
        for conn in self.accepted:
            conn.close()
        self.sock.close()


# --- saving: the screen and the API refuse, in the administrator's language, and store nothing ----------


def test_text_files_outside_the_roots_or_of_the_platform_itself_cannot_be_saved_as_sources(confined, admin, root):
    client, token = admin
    link = root / f"link-{uuid.uuid4().hex[:6]}.csv"
    link.symlink_to(INSTANCE_DIR / "secret_key")
    forbidden = [
        str(INSTANCE_DIR / "field_encryption_keys"),
        "instance/secret_key",
        "/etc/passwd",
        f"{root}/../../../../../../etc/passwd",  # inside the root as written, outside once resolved
        str(link),  # a link inside the root to the platform's key
    ]
    before = _count(confined)
    codes = []
    for path in forbidden:
        body = _textfile(path)
        codes.append(body["code"])
        r = client.post("/api/v1/sources/", json=body, headers=bearer(token))
        assert r.status_code == 400, (path, r.status_code, r.json)
        assert "不在資料來源允許的資料夾內" in r.json["message"] and "SOURCE_FILE_ROOTS" in r.json["message"], r.json
    # each attempt is a security event in the audit trail: who, which source, which rule
    with confined.app_context():
        from app.models.audit import AuditEvent

        refusals = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "source_refused")).all()
        seen = {json.loads(e.detail)["source"]: e for e in refusals}
        assert set(codes) <= set(seen)
        assert {seen[c].actor for c in codes} == {"admin"} and {seen[c].outcome for c in codes} == {"refused"}
        assert {json.loads(seen[c].detail)["rule"] for c in codes} == {"outside_roots", "protected"}
    if _platform_sqlite_file(confined):  # the platform's database
        r = client.post("/api/v1/sources/", json=_textfile(_platform_sqlite_file(confined)), headers=bearer(token))
        assert r.status_code == 400 and "平台本身的資料庫" in r.json["message"], r.json
    assert _count(confined) == before
    allowed = client.post("/api/v1/sources/", json=_textfile(str(root / "tax.csv")), headers=bearer(token))
    assert allowed.status_code == 201, allowed.json


def test_a_root_that_holds_the_instance_folder_still_never_opens_it(tmp_path):
    """An operator who lists the whole checkout as a root opens neither the
    instance folder (keys, secrets) nor the platform's database."""
    database = Database("sqlite", tmp_path)
    app = build_app(database.url, seed=False, SOURCE_FILE_ROOTS=["/"])
    try:
        with app.app_context():
            from app.services import sources
            from app.services.actors import SYSTEM
            from app.services.errors import InvalidInput

            for path, says in (
                (str(INSTANCE_DIR / "field_encryption_keys"), "SOURCE_FILE_ROOTS"),
                (make_url(database.url).database, "平台本身的資料庫"),
            ):
                src = DataSource(code=f"TXT-{uuid.uuid4().hex[:6]}", name="根目錄", kind="textfile", path=path)
                with pytest.raises(InvalidInput, match=says):
                    sources.create_source(db.session, SYSTEM, src)
                db.session.rollback()
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def test_an_sql_source_cannot_be_the_platforms_own_database_nor_an_sqlite_file_outside_the_roots(
    confined, admin, tmp_path, root
):
    client, token = admin
    before = _count(confined)
    outside = factories.people_db(tmp_path / "outside.db")
    refused = [_sql(outside), _sql(str(INSTANCE_DIR / "platform.db"))]
    platform = make_url(confined.config["SQLALCHEMY_DATABASE_URI"])
    if platform.get_backend_name() == "sqlite":
        refused.append(_sql(platform.database))
    else:  # the platform's PostgreSQL database, by another name of the same server
        for host in (platform.host, "localhost"):
            refused.append(_sql(platform.database, "postgresql", host=host, port=platform.port or 5432))
    for body in refused:
        r = client.post("/api/v1/sources/", json=body, headers=bearer(token))
        assert r.status_code == 400, (body, r.json)
        assert "平台本身的資料庫" in r.json["message"] or "SOURCE_FILE_ROOTS" in r.json["message"], r.json
    assert _count(confined) == before
    inside = client.post("/api/v1/sources/", json=_sql(str(root / f"people-{confined.config['TEST_BACKEND']}.db")),
                         headers=bearer(token))  # fmt: skip
    assert inside.status_code == 201, inside.json
    if platform.get_backend_name() == "postgresql":  # another database of the same server is another agency's
        other = _sql("postgres", "postgresql", host=platform.host, port=platform.port or 5432, account="postgres")
        assert client.post("/api/v1/sources/", json=other, headers=bearer(token)).status_code == 201


def test_web_service_and_egate_urls_only_reach_the_operators_allow_list(confined, admin):
    client, token = admin
    before = _count(confined)
    service = Listener()
    try:
        for kind, url in (
            ("rest", f"http://127.0.0.1:{service.port}"),  # a loopback service not on the list
            ("egate", f"http://127.0.0.1:{service.port}/egate"),
            ("rest", "http://[::1]:22"),
            ("rest", "http://169.254.169.254/latest/meta-data"),
        ):
            r = client.post("/api/v1/sources/", json=_web(kind, url), headers=bearer(token))
            assert r.status_code == 400, (url, r.json)
            assert "SOURCE_URL_ALLOW" in r.json["message"], r.json
        assert service.accepted == []
    finally:
        service.close()
    assert _count(confined) == before
    sim = simulator_url()
    assert client.post("/api/v1/sources/", json=_web("rest", sim), headers=bearer(token)).status_code == 201
    assert client.post("/api/v1/sources/", json=_web("egate", f"{sim}/egate"), headers=bearer(token)).status_code == 201


def test_the_screen_says_why_in_chinese_and_in_english_and_saves_nothing(confined):
    client = confined.test_client()
    login(client, "admin")
    before = _count(confined)
    form = {
        "csrf_token": csrf_token(client.get("/datasourceview/add").text),
        "code": f"SCR-{uuid.uuid4().hex[:6]}",
        "name": "螢幕新增",
        "kind": "textfile",
        "path": "/etc/passwd",
        "timeout": "3",
        "row_cap": "50",
        "pool_size": "5",
        "options": "{}",
        "enabled": "y",
    }
    zh = client.post("/datasourceview/add", data=form, follow_redirects=True)
    assert "資料來源允許的資料夾" in zh.text, zh.text[-3000:]
    client.get("/lang/en", follow_redirects=True)
    en = client.post("/datasourceview/add", data=form, follow_redirects=True)
    assert "outside the folders allowed for data sources" in en.text
    client.get("/lang/zh_TW", follow_redirects=True)
    assert _count(confined) == before


# --- using: a source saved before the rule, or put in the database directly, is refused when used ----------


def _stored(app, **columns) -> int:
    """A source written straight into the database, past every check of the screen and the API."""
    with app.app_context():
        src = DataSource(code=f"OLD-{uuid.uuid4().hex[:6]}", name="舊來源", timeout=1, row_cap=50, enabled=True,
                         **columns)  # fmt: skip
        db.session.add(src)
        db.session.commit()
        return src.id


def test_a_stored_text_file_source_on_the_platforms_keys_is_refused_when_tested_described_or_queried(confined, root):
    client = confined.test_client()
    token = api_token(client, "admin")
    key = (INSTANCE_DIR / "field_encryption_keys").read_text().strip()
    source = _stored(confined, kind="textfile", path=str(INSTANCE_DIR / "field_encryption_keys"),
                     options=json.dumps({"header": False, "names": ["id_no"]}))  # fmt: skip
    tested = client.post(f"/api/v1/sources/{source}/test", headers=bearer(token))
    assert tested.json["ok"] is False and "資料來源允許的資料夾" in tested.json["message"], tested.json
    described = client.get(f"/api/v1/sources/{source}/describe", headers=bearer(token))
    assert described.json["ok"] is False and described.json["entities"] == []
    code = f"test.keys.{uuid.uuid4().hex[:6]}"
    with confined.app_context():
        from app.models.queries import FormSection, SectionColumn, SectionFilter

        src = db.session.get(DataSource, source)
        section = FormSection(title="金鑰", source=src, target="", display="table", sort_order=2)
        section.filters = [SectionFilter(column="id_no", op="ne", input_name="id_no")]
        section.columns = [SectionColumn(column="id_no", label="內容", sort_order=1)]
        good = factories.sqlite_source(f"OK-{uuid.uuid4().hex[:6]}",
                                       str(root / f"people-{confined.config['TEST_BACKEND']}.db"))  # fmt: skip
        factories.people_form(code, good, extra_sections=[section])
    clerk = api_token(client, "clerk")
    payload = {"form": code, "case_no": "1151203-0001", "reason": "", "business_item": "TAX-CHECK",
               "params": {"id_no": "A123456789"}}  # fmt: skip
    r = client.post("/api/v1/query/run", json=payload, headers=bearer(clerk))
    assert r.status_code == 200, r.json
    people, keys = r.json["sections"]
    assert people["rows"] and people["error"] is None
    assert keys["rows"] == [] and "資料來源允許的資料夾" in keys["error"]
    assert key not in r.text and key[:20] not in r.text


def test_a_stored_sqlite_source_on_the_platform_database_is_refused_when_used(confined):
    client = confined.test_client()
    token = api_token(client, "admin")
    platform = make_url(confined.config["SQLALCHEMY_DATABASE_URI"])
    if platform.get_backend_name() == "sqlite":
        columns = {"database": platform.database, "options": json.dumps({"dialect": "sqlite"})}
    else:
        columns = {"host": platform.host, "port": platform.port or 5432, "database": platform.database,
                   "account": platform.username, "options": json.dumps({"dialect": "postgresql"})}  # fmt: skip
    source = _stored(confined, kind="sql", **columns)
    tested = client.post(f"/api/v1/sources/{source}/test", headers=bearer(token))
    assert tested.json["ok"] is False and "平台本身的資料庫" in tested.json["message"], tested.json
    described = client.get(f"/api/v1/sources/{source}/describe", headers=bearer(token))
    assert described.json["ok"] is False and described.json["entities"] == []
    assert "ab_user" not in described.text


def test_a_stored_web_service_source_on_a_loopback_service_never_connects(confined):
    client = confined.test_client()
    token = api_token(client, "admin")
    service = Listener()
    try:
        source = _stored(confined, kind="rest", url=f"http://127.0.0.1:{service.port}")
        tested = client.post(f"/api/v1/sources/{source}/test", headers=bearer(token))
        assert tested.json["ok"] is False and "允許清單" in tested.json["message"], tested.json
        assert service.accepted == []
    finally:
        service.close()


def test_a_host_name_that_changes_its_address_after_the_save_is_refused_at_connect_time(confined, monkeypatch):
    """DNS rebinding: the name points at the allowed service when saved, at an
    internal one when used; the platform checks the address it connects to."""
    client = confined.test_client()
    token = api_token(client, "admin")
    sim_host, sim_port = _sim_address().rsplit(":", 1)
    internal = Listener("127.0.0.2", int(sim_port))  # another service, same port, another address
    answers = {"rebind.example": sim_host}
    real = socket.getaddrinfo

    def fake_dns(host, *args, **kwargs):
        return real(answers.get(host, host), *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_dns)
    try:
        saved = client.post("/api/v1/sources/", json=_web("rest", f"http://rebind.example:{sim_port}"),
                            headers=bearer(token))  # fmt: skip
        assert saved.status_code == 201, saved.json
        answers["rebind.example"] = "127.0.0.2"
        tested = client.post(f"/api/v1/sources/{saved.json['id']}/test", headers=bearer(token))
        assert tested.json["ok"] is False and "允許清單" in tested.json["message"], tested.json
        assert internal.accepted == []
    finally:
        internal.close()


# --- the connection test does not tell open ports from closed ones ---------------------------------------


def test_the_connection_test_says_the_same_for_a_closed_port_a_silent_service_and_an_unreachable_host(tmp_path, caplog):
    closed = free_port()
    silent = Listener()
    database = Database("sqlite", tmp_path)
    allow = [f"127.0.0.1:{closed}", f"127.0.0.1:{silent.port}", "192.0.2.0/24"]  # 192.0.2.0/24: TEST-NET-1
    app = build_app(database.url, seed=False, SOURCE_URL_ALLOW=allow)
    caplog.set_level(logging.INFO)  # after the migrations, which configure logging (and drop caplog's handler)
    logging.getLogger().addHandler(caplog.handler)
    try:
        with app.app_context():
            from app.services import sources
            from app.services.actors import SYSTEM

            messages = {}
            for name, url in (
                ("closed", f"http://127.0.0.1:{closed}"),
                ("silent", f"http://127.0.0.1:{silent.port}"),
                ("unreachable", "http://192.0.2.1:8080"),
            ):
                src = DataSource(code=f"PORT-{name}", name=f"埠 {name}", kind="rest", url=url, timeout=1)
                sources.create_source(db.session, SYSTEM, src)
                tested = sources.test_connection(db.session, SYSTEM, src)
                assert tested.ok is False
                messages[name] = tested.message.replace(url.split("//")[1], "<address>")
                assert src.last_latency_ms is None  # how long it took would tell them apart
            assert len(set(messages.values())) == 1, messages
            for name, url in (
                ("closed", f"127.0.0.1:{closed}"),
                ("silent", f"127.0.0.1:{silent.port}"),
            ):  # the same for a database server
                host, port = url.split(":")
                src = DataSource(code=f"DB-{name}", name=f"庫 {name}", kind="sql", host=host, port=int(port),
                                 database="agency", options=json.dumps({"dialect": "postgresql"}), timeout=1)  # fmt: skip
                sources.create_source(db.session, SYSTEM, src)
                messages[f"db-{name}"] = sources.test_connection(db.session, SYSTEM, src).message.replace(url, "<a>")
            assert messages["db-closed"] == messages["db-silent"], messages
        # the detail is in the server log only
        assert "Connection refused" in caplog.text and "ReadTimeout" in caplog.text and "(refused)" in caplog.text
    finally:
        logging.getLogger().removeHandler(caplog.handler)
        silent.close()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def test_a_root_inside_the_instance_folder_opens_that_folder_only(tmp_path):
    """The demo keeps its agencies' files in instance/sources: that folder is a
    source's, the keys, the PKI and the database beside it are not."""
    from app.lib.confinement import Confinement, Refused

    instance = tmp_path / "instance"
    (instance / "sources").mkdir(parents=True)
    (instance / "pki").mkdir()
    limits = Confinement.build(
        file_roots=[str(instance / "sources")],
        instance=str(instance),
        protected=[str(instance / "pki")],
        platform_url=f"sqlite:///{instance / 'platform.db'}",
    )
    assert limits.check_file(str(instance / "sources" / "land.db")) == str(instance / "sources" / "land.db")
    for path, reason in (
        (instance / "secret_key", "protected"),
        (instance / "sources" / ".." / "field_encryption_keys", "protected"),
        (tmp_path / "elsewhere.csv", "outside_roots"),
        (instance / "sources" / ".." / "pki" / "root.key", "protected"),
        (instance / "platform.db", "platform_database"),
        (instance / "platform.db-wal", "platform_database"),
    ):
        with pytest.raises(Refused) as refused:
            limits.check_file(str(path))
        assert refused.value.reason == reason, path
    whole = Confinement.build(file_roots=[str(instance)], instance=str(instance))
    with pytest.raises(Refused):  # the instance folder itself as a root opens nothing in it
        whole.check_file(str(instance / "sources" / "land.db"))


@pytest.mark.parametrize(
    "platform",
    ["mariadb+pymysql://root@127.0.0.1:3306/platform", "mysql+pymysql://root@localhost/platform"],
)
def test_a_mysql_source_cannot_be_a_mariadb_or_mysql_platforms_own_database(platform):
    from app.lib.confinement import Confinement, Refused

    limits = Confinement.build(platform_url=platform)
    for host, port in (("127.0.0.1", 3306), ("localhost", None), ("0.0.0.0", 3306)):
        with pytest.raises(Refused) as refused:
            limits.check_server("mysql", host, port, "platform")
        assert refused.value.reason == "platform_database"
    limits.check_server("mysql", "127.0.0.1", 3306, "land")  # another database of that server is an agency's
    limits.check_server("mysql", "127.0.0.1", 3307, "platform")  # another server


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)  # a server database; SQLite's is a file
def test_a_database_host_name_that_moves_onto_the_platforms_server_is_refused_on_the_next_connection(
    confined, monkeypatch
):
    """The name of an agency's server points elsewhere when the source is saved
    and first used, then at the platform's own PostgreSQL: the next connection
    is checked again and refused (and never made)."""
    platform = make_url(confined.config["SQLALCHEMY_DATABASE_URI"])
    client = confined.test_client()
    token = api_token(client, "admin")
    answers = {"agency-db.example": "192.0.2.10"}  # TEST-NET-1: nothing answers there
    real = socket.getaddrinfo

    def fake_dns(host, *args, **kwargs):
        return real(answers.get(host, host), *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_dns)
    body = _sql(platform.database, "postgresql", host="agency-db.example", port=platform.port or 5432,
                account=platform.username, timeout=1)  # fmt: skip
    saved = client.post("/api/v1/sources/", json=body, headers=bearer(token))
    assert saved.status_code == 201, saved.json
    first = client.post(f"/api/v1/sources/{saved.json['id']}/test", headers=bearer(token)).json
    assert first["ok"] is False and "無法連線至" in first["message"], first
    answers["agency-db.example"] = platform.host
    again = client.post(f"/api/v1/sources/{saved.json['id']}/test", headers=bearer(token)).json
    assert again["ok"] is False and "平台本身的資料庫" in again["message"], again


# --- a MySQL/MariaDB source reads its own database only ------------------------------------------------

MARIADB_ADMIN_URL = "mysql+pymysql://root@127.0.0.1:3306/"


@pytest.fixture(scope="module")
def mariadb_pair():
    """Two databases on the machine's MariaDB: an agency's (its source's own, with v_people) and another
    one beside it on the same server (standing for the platform's, or another agency's), holding a secret."""
    from sqlalchemy import create_engine

    from app.connectors import close_all

    own, other = f"agency_{uuid.uuid4().hex[:8]}", f"other_{uuid.uuid4().hex[:8]}"
    admin = create_engine(MARIADB_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for name in (own, other):
            conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        conn.exec_driver_sql(
            f"CREATE TABLE `{own}`.v_people (id_no VARCHAR(10), name VARCHAR(20), district VARCHAR(20), income INT)"
        )
        conn.exec_driver_sql(f"INSERT INTO `{own}`.v_people VALUES ('A123456789', '王小明', '東區', 1)")
        conn.exec_driver_sql(
            f"CREATE TABLE `{other}`.v_people (id_no VARCHAR(10), name VARCHAR(20), district VARCHAR(20), income INT)"
        )
        conn.exec_driver_sql(f"INSERT INTO `{other}`.v_people VALUES ('A123456789', 'SECRET-OTHER-DB', '西區', 2)")
    yield own, other
    close_all()
    with admin.connect() as conn:
        for name in (own, other):
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
    admin.dispose()


def test_a_mariadb_source_reads_only_its_own_database_never_another_by_a_qualified_name(confined, mariadb_pair):
    """A section target ``otherdb.table`` on a MySQL/MariaDB source would read another database of the same
    server (the platform's own, when it runs there): refused when the section is saved (audited, nothing
    saved) and when a section stored past that check is read; the source's own database named in full is fine."""
    from app.models.audit import AuditEvent
    from app.models.queries import FormSection

    own, other = mariadb_pair
    client = confined.test_client()
    admin = api_token(client, "admin")
    saved = client.post("/api/v1/sources/", json=_sql(own, "mysql", host="127.0.0.1", port=3306, account="root"),
                        headers=bearer(admin))  # fmt: skip
    assert saved.status_code == 201, saved.json
    source = saved.json["id"]
    code = f"test.mariadb.{uuid.uuid4().hex[:6]}"
    with confined.app_context():
        src = db.session.get(DataSource, source)
        form = factories.people_form(code, src)
        db.session.commit()
        form_id = form.id
    body = {"form": form_id, "title": "他庫", "source": source, "display": "table", "sort_order": 2}
    refused = client.post("/api/v1/form-sections/", json={**body, "target": f"{other}.v_people"}, headers=bearer(admin))
    assert refused.status_code == 400 and "資料庫" in refused.json["message"], refused.json
    for target in (f"{other}.v_people", f"{own}.x.v_people"):
        r = client.post("/api/v1/form-sections/", json={**body, "target": target}, headers=bearer(admin))
        assert r.status_code == 400, (target, r.json)
    own_named = client.post("/api/v1/form-sections/", json={**body, "target": f"{own}.v_people"}, headers=bearer(admin))
    assert own_named.status_code == 201, own_named.json
    with confined.app_context():
        sections = db.session.scalars(select(FormSection.target).where(FormSection.form_id == form_id)).all()
        assert sorted(sections) == sorted(["v_people", f"{own}.v_people"])
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "source_refused").order_by(AuditEvent.id.desc())
        ).first()
        assert event.outcome == "refused" and json.loads(event.detail)["rule"] == "other_database"
        assert json.loads(event.detail)["field"] == "target"
        # A section written straight into the database, past the check, is refused when read.
        db.session.execute(
            FormSection.__table__.update()
            .where(FormSection.id == own_named.json["id"])
            .values(target=f"{other}.v_people")
        )
        db.session.commit()
    clerk = api_token(client, "clerk")
    payload = {"form": code, "case_no": "1151203-0002", "reason": "", "business_item": "TAX-CHECK",
               "params": {"id_no": "A123456789"}}  # fmt: skip
    r = client.post("/api/v1/query/run", json=payload, headers=bearer(clerk))
    assert r.status_code == 200, r.json
    mine, theirs = r.json["sections"]
    assert mine["error"] is None and mine["rows"]
    assert theirs["rows"] == [] and "以外的資料庫" in theirs["error"], theirs
    assert "SECRET-OTHER-DB" not in r.text


def test_a_qualified_table_name_names_another_database_on_mysql_and_sql_server_only():
    from app.lib.confinement import Refused, check_target

    for backend, database, target in (
        ("mysql", "land", "platform.ab_user"),
        ("mariadb", "land", "platform.ab_user"),
        ("mysql", "land", "Land.v_parcel"),  # MySQL on Linux: database names are case-sensitive
        ("mysql", "land", "land.x.v_parcel"),
        ("mssql", "land", "platform.dbo.ab_user"),
    ):
        with pytest.raises(Refused) as refused:
            check_target(backend, database, target)
        assert (refused.value.field, refused.value.reason) == ("target", "other_database"), target
    for backend, database, target in (
        ("mysql", "land", "v_parcel"),
        ("mysql", "land", "land.v_parcel"),
        ("mssql", "land", "dbo.v_parcel"),
        ("mssql", "land", "LAND.dbo.v_parcel"),
        ("postgresql", "land", "agency.v_parcel"),  # a schema of the connection's own database
        ("oracle", "LAND", "agency.v_parcel"),
    ):
        check_target(backend, database, target)


def test_a_stored_source_refused_when_a_query_runs_is_audited_and_said_in_the_clerks_language(confined, root):
    """A text-file source outside SOURCE_FILE_ROOTS, stored past every check: the clerk's query shows the
    other section and, for this one, why in Chinese (English when asked); the refusal is an audit event
    naming the source, the rule, the form and the query (nothing of the file, nothing typed)."""
    from app.models.audit import AuditEvent
    from app.models.queries import FormSection, QueryLog, SectionColumn, SectionFilter

    client = confined.test_client()
    source = _stored(confined, kind="textfile", path="/etc/passwd",
                     options=json.dumps({"header": False, "delimiter": ":", "names": ["id_no", "x"]}))  # fmt: skip
    code = f"test.accounts.{uuid.uuid4().hex[:6]}"
    with confined.app_context():
        src = db.session.get(DataSource, source)
        source_code = src.code
        section = FormSection(title="帳號檔", source=src, target="", display="table", sort_order=2)
        section.filters = [SectionFilter(column="id_no", op="ne", input_name="id_no")]
        section.columns = [SectionColumn(column="id_no", label="內容", sort_order=1)]
        good = factories.sqlite_source(f"OK-{uuid.uuid4().hex[:6]}",
                                       str(root / f"people-{confined.config['TEST_BACKEND']}.db"))  # fmt: skip
        factories.people_form(code, good, extra_sections=[section])
    clerk = api_token(client, "clerk")
    payload = {"form": code, "case_no": "1151203-0003", "reason": "", "business_item": "TAX-CHECK",
               "params": {"id_no": "A123456789"}}  # fmt: skip
    r = client.post("/api/v1/query/run", json=payload, headers=bearer(clerk))
    assert r.status_code == 200, r.json
    people, passwd = r.json["sections"]
    assert people["rows"] and passwd["rows"] == []
    assert "資料來源允許的資料夾" in passwd["error"], passwd["error"]
    assert "root:" not in r.text
    from flask_babel import force_locale

    from app.connectors.base import REFUSALS

    with confined.test_request_context(), force_locale("en"):  # a reader who chose English
        assert str(REFUSALS["outside_roots"]) == "the file is outside the folders allowed for data sources"
    with confined.app_context():
        query_id = db.session.scalar(select(QueryLog.id).where(QueryLog.form_code == code).order_by(QueryLog.id))
        events = db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "source_refused", AuditEvent.object_id == str(source))
            .order_by(AuditEvent.id)
        ).all()
    assert len(events) == 1, [e.detail for e in events]
    first = json.loads(events[0].detail)
    assert events[0].outcome == "refused" and events[0].actor == "clerk" and events[0].object_type == "DataSource"
    assert {k: first[k] for k in ("source", "kind", "field", "rule", "form", "query")} == {
        "source": source_code,
        "kind": "textfile",
        "field": "path",
        "rule": "outside_roots",
        "form": code,
        "query": query_id,
    }
    assert "A123456789" not in events[0].detail and "/etc/passwd" not in events[0].detail
