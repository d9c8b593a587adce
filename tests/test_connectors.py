"""The connectors against real peers: SQLite files, the PostgreSQL and MariaDB
servers of the machine, the demo simulators served by werkzeug, real files.

No Flask app of the platform is involved: connectors run without it.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import threading
import time
import uuid

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine
from werkzeug.serving import make_server

from app.connectors import Filter, SectionSpec, SourceConfig, SourceError, close_all, connector_for
from app.connectors import sql as sql_module
from app.connectors.sql import SqlConnector, compile_statement
from tests.conftest import free_port
from tests.fax_kind import fax_kind  # noqa: F401  (the fixture)

PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
MARIADB_ADMIN_URL = os.environ.get("TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/")
SECRET = "S3cret!"
REQUESTER = {"agency": "376570000A", "user": "clerk", "case_no": "115-TAX-0001", "reason": "稅籍查核"}

# id_no, name, district, income: names with % and _ to prove LIKE input is literal
PEOPLE = [
    ("A123456789", "王小明", "東區", 500000),
    ("B220000001", "王大同", "東區", 1200000),
    ("C120000002", "陳100%", "西區", 300000),
    ("D220000003", "林_一", "西區", 800000),
    ("E120000004", "林一", "西區", 650000),
    ("F220000005", "張美麗", "東區", 420000),
    ("G120000006", "李志明", "北區", 990000),
    ("H220000007", "吳%%", "北區", 150000),
]


def person_table(metadata: MetaData) -> Table:
    return Table(
        "person",
        metadata,
        Column("id_no", String(10), primary_key=True),
        Column("name", String(40), nullable=False),
        Column("district", String(10), nullable=False),
        Column("income", Integer, nullable=False),
        mysql_charset="utf8mb4",
    )


def load_people(engine) -> None:
    metadata = MetaData()
    table = person_table(metadata)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), [dict(zip(("id_no", "name", "district", "income"), p)) for p in PEOPLE])


def assert_answers_with_a_latency(connector) -> None:
    """test() answered with the latency of a real round: seconds, above zero."""
    latency = connector.test()
    assert isinstance(latency, float) and latency > 0


# --- servers and files -----------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres_db():
    name = f"conn_test_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine = create_engine(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}")
    load_people(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE SCHEMA agency")
        conn.exec_driver_sql("CREATE VIEW agency.v_person AS SELECT id_no, name, district FROM person")
        conn.exec_driver_sql("CREATE VIEW slow_person AS SELECT p.id_no FROM person p, pg_sleep(5)")
    engine.dispose()
    yield name
    close_all()
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(scope="module")
def mariadb_db():
    name = f"conn_test_{uuid.uuid4().hex[:8]}"
    admin = create_engine(MARIADB_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    engine = create_engine(MARIADB_ADMIN_URL + name + "?charset=utf8mb4")
    load_people(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE VIEW slow_person AS SELECT id_no FROM person WHERE SLEEP(1) = 0")
    engine.dispose()
    yield name
    close_all()
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE `{name}`")
    admin.dispose()


@pytest.fixture(scope="module")
def sqlite_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sqlite") / "agency.db"
    engine = create_engine(f"sqlite:///{path}")
    load_people(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE VIEW slow_person AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
            "SELECT x AS id_no FROM c WHERE x < 0"
        )
    engine.dispose()
    return str(path)


def sql_source(backend: str, databases: dict, **overrides) -> SourceConfig:
    if backend == "sqlite":
        base = {"database": databases["sqlite"], "options": {"dialect": "sqlite"}}
    elif backend == "postgresql":
        base = {
            "host": "127.0.0.1",
            "port": 5432,
            "database": databases["postgresql"],
            "account": "postgres",
            "options": {"dialect": "postgresql"},
        }
    else:
        base = {
            "host": "127.0.0.1",
            "port": 3306,
            "database": databases["mariadb"],
            "account": "root",
            "options": {"dialect": "mysql"},
        }
    settings = {"kind": "sql", "name": f"test-{backend}", "timeout": 5.0, "row_cap": 100, **base, **overrides}
    return SourceConfig.of(**settings)


@pytest.fixture(scope="module")
def databases(sqlite_file, postgres_db, mariadb_db):
    return {"sqlite": sqlite_file, "postgresql": postgres_db, "mariadb": mariadb_db}


BACKENDS = ("sqlite", "postgresql", "mariadb")


def source_id(name: str) -> str:
    """Test ids "source-sqlite", not "[sqlite]" (that names the PLATFORM database in conftest's summary)."""
    return f"source-{name}"


@pytest.fixture(scope="module")
def seed_dir(tmp_path_factory):
    from seed_data.loader import write_files

    out = tmp_path_factory.mktemp("seed")
    write_files(out)
    return out


class Served:
    """A WSGI app on a free port in a thread."""

    def __init__(self, app):
        self.port = free_port()
        self.server = make_server("127.0.0.1", self.port, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def simulators(seed_dir):
    from app.simulators.serve import make_app

    app = make_app(seed_dir)
    served = Served(app)
    served.app = app
    yield served
    served.stop()


@pytest.fixture(scope="module")
def register(seed_dir):
    return json.loads((seed_dir / "household.json").read_text(encoding="utf-8"))


# --- SQL: one statement, three databases ----------------------------------------------------


def test_the_same_section_gives_the_same_rows_on_sqlite_postgresql_and_mariadb(databases):
    section = SectionSpec(
        target="person",
        columns=("id_no", "name", "income"),
        filters=(Filter("district", "district"),),
        order_by=("-income",),
    )
    results = {b: connector_for(sql_source(b, databases)).fetch(section, {"district": "東區"}) for b in BACKENDS}
    expected = [
        {"id_no": "B220000001", "name": "王大同", "income": 1200000},
        {"id_no": "A123456789", "name": "王小明", "income": 500000},
        {"id_no": "F220000005", "name": "張美麗", "income": 420000},
    ]
    for backend, result in results.items():
        assert result.columns == ["id_no", "name", "income"], backend
        assert result.rows == expected, backend
        assert result.truncated is False


OPERATOR_CASES = [
    ("eq", "name", "王小明", {"A123456789"}),
    ("ne", "district", "東區", {"C120000002", "D220000003", "E120000004", "G120000006", "H220000007"}),
    ("lt", "income", 300000, {"H220000007"}),
    ("le", "income", 300000, {"C120000002", "H220000007"}),
    ("gt", "income", 990000, {"B220000001"}),
    ("ge", "income", "990000", {"B220000001", "G120000006"}),  # a typed-in string against an integer column
    ("like", "name", "明", {"A123456789", "G120000006"}),
    ("prefix", "name", "王", {"A123456789", "B220000001"}),
    ("in", "id_no", ["A123456789", "H220000007", "Z999999999"], {"A123456789", "H220000007"}),
    ("in", "id_no", "A123456789, C120000002", {"A123456789", "C120000002"}),
]


@pytest.mark.parametrize("backend", BACKENDS, ids=source_id)
def test_every_operator_selects_the_same_rows_on(backend, databases):
    connector = connector_for(sql_source(backend, databases))
    for op, column, value, expected in OPERATOR_CASES:
        section = SectionSpec(target="person", columns=("id_no",), filters=(Filter(column, "v", op),))
        got = {r["id_no"] for r in connector.fetch(section, {"v": value}).rows}
        assert got == expected, (backend, op, value)


@pytest.mark.parametrize("backend", BACKENDS, ids=source_id)
def test_percent_and_underscore_typed_by_a_clerk_match_literally(backend, databases):
    connector = connector_for(sql_source(backend, databases))

    def ids(op, value):
        section = SectionSpec(target="person", columns=("id_no",), filters=(Filter("name", "v", op),))
        return {r["id_no"] for r in connector.fetch(section, {"v": value}).rows}

    assert ids("prefix", "陳100%") == {"C120000002"}
    assert ids("prefix", "%") == set()  # not a wildcard: no name starts with a literal %
    assert ids("prefix", "吳%") == {"H220000007"}
    assert ids("like", "_") == {"D220000003"}  # only the name that holds an underscore
    assert ids("prefix", "林_") == {"D220000003"}  # 林一 does not match 林_


@pytest.mark.parametrize("backend", BACKENDS, ids=source_id)
def test_sql_looking_input_is_only_a_value_and_finds_nothing(backend, databases):
    connector = connector_for(sql_source(backend, databases))
    for op in ("eq", "like", "prefix"):
        for attack in ("' OR 1=1 --", "x'; DROP TABLE person; --", '" OR ""="'):
            section = SectionSpec(target="person", columns=("id_no",), filters=(Filter("name", "v", op),))
            assert connector.fetch(section, {"v": attack}).rows == []
    count = connector.fetch(SectionSpec(target="person", columns=("id_no",)), {})
    assert len(count.rows) == len(PEOPLE)  # the table is still there, whole


@pytest.mark.parametrize("backend", BACKENDS, ids=source_id)
def test_a_lookup_on_the_driver_gives_what_sqlalchemys_own_execution_gives(backend, databases):
    """The compiled SELECT runs on the driver's cursor (no SQLAlchemy around
    it) for every operator, an ``in`` list included; it gives the very rows
    SQLAlchemy's own execution of the same Core statement gives."""
    connector = connector_for(sql_source(backend, databases))
    sections = [
        (
            SectionSpec(
                target="person",
                columns=("id_no", "name", "income"),
                filters=(Filter(column, "v", op),),
                order_by=("-income",),
            ),
            {"v": value},
        )
        for op, column, value, _ in OPERATOR_CASES + [("eq", "district", None, set())]
    ]
    sections.append((SectionSpec(target="person", filters=(Filter("id_no", "v"),)), {"v": "A123456789"}))
    for section, params in sections:
        with connector.engine().connect() as conn:
            result = conn.execute(*sql_module.statement_and_params(section, params, 100))
            expected = [dict(zip(result.keys(), row, strict=True)) for row in result]
        assert connector.fetch(section, params).rows == expected, (backend, section.filters)


def test_oracle_and_sql_server_run_on_the_driver_with_the_row_cap_written_into_the_sql():
    """Their row cap is part of the text; SQL Server's driver takes its arguments by position, in the text's order."""
    from sqlalchemy.dialects.mssql import pyodbc
    from sqlalchemy.dialects.oracle import oracledb

    section = SectionSpec(
        target="person",
        columns=("id_no",),
        filters=(Filter("id_no", "v"), Filter("name", "n", "in"), Filter("district", "d", "prefix")),
    )
    params = {"v": "A123456789", "n": ["王小明", "林一"], "d": "東"}
    sql, args = sql_module.driver_statement(sql_module.prepare(section, params, 50), oracledb.dialect())
    assert "FETCH FIRST 51 ROWS ONLY" in sql and ":name_1_2" in sql
    assert args == {"id_no_1": "A123456789", "name_1_1": "王小明", "name_1_2": "林一", "district_1": "東%"}
    sql, args = sql_module.driver_statement(sql_module.prepare(section, params, 50), pyodbc.dialect(paramstyle="qmark"))
    assert "TOP 51" in sql and sql.count("?") == 4
    assert args == ("A123456789", "王小明", "林一", "東%")


def test_each_source_runs_the_sql_its_own_server_was_compiled_for():
    """Two MySQL servers, one with ANSI_QUOTES: the same section is compiled
    for each (a column name in double quotes is a string to the other)."""
    from sqlalchemy.dialects.mysql import pymysql

    plain, ansi = pymysql.dialect(), pymysql.dialect()
    ansi.identifier_preparer = ansi.preparer(ansi, server_ansiquotes=True)
    section = SectionSpec(target="人員", columns=("名稱",), filters=(Filter("身分證號", "v"),))
    first = sql_module.driver_statement(sql_module.prepare(section, {"v": "A123456789"}, 50), ansi)[0]
    second = sql_module.driver_statement(sql_module.prepare(section, {"v": "A123456789"}, 50), plain)[0]
    assert '"名稱"' in first and "`名稱`" in second and '"' not in second


def test_the_row_cap_keeps_the_first_rows_and_says_more_exist(databases):
    for backend in BACKENDS:
        section = SectionSpec(target="person", columns=("id_no",), order_by=("id_no",))
        capped = connector_for(sql_source(backend, databases, row_cap=3)).fetch(section, {})
        assert [r["id_no"] for r in capped.rows] == ["A123456789", "B220000001", "C120000002"]
        assert capped.truncated is True
        exact = connector_for(sql_source(backend, databases, row_cap=len(PEOPLE))).fetch(section, {})
        assert len(exact.rows) == len(PEOPLE) and exact.truncated is False


def test_a_schema_qualified_view_is_read_on_postgresql(databases):
    section = SectionSpec(target="agency.v_person", columns=("name",), filters=(Filter("id_no", "id_no"),))
    result = connector_for(sql_source("postgresql", databases)).fetch(section, {"id_no": "A123456789"})
    assert result.rows == [{"name": "王小明"}]


def test_all_columns_come_back_when_the_section_lists_none(databases):
    section = SectionSpec(target="person", filters=(Filter("id_no", "id_no"),))
    result = connector_for(sql_source("sqlite", databases)).fetch(section, {"id_no": "A123456789"})
    assert result.columns == ["id_no", "name", "district", "income"]
    assert result.rows == [{"id_no": "A123456789", "name": "王小明", "district": "東區", "income": 500000}]


@pytest.mark.parametrize("backend", BACKENDS, ids=source_id)
def test_a_slow_view_is_cancelled_at_the_timeout_and_the_source_keeps_working(backend, databases):
    connector = connector_for(sql_source(backend, databases, timeout=1.0))
    connector.test()  # the pool holds a live connection: only the statement is timed
    started = time.monotonic()
    with pytest.raises(SourceError) as err:
        connector.fetch(SectionSpec(target="slow_person", columns=("id_no",)), {})
    elapsed = time.monotonic() - started
    assert err.value.reason == "timeout", err.value.message
    assert elapsed < 2.0
    assert "took longer than 1 s" in err.value.message
    again = connector.fetch(
        SectionSpec(target="person", columns=("id_no",), filters=(Filter("id_no", "i"),)), {"i": "A123456789"}
    )
    assert again.rows == [{"id_no": "A123456789"}]


@pytest.mark.parametrize("dialect", ["postgresql", "mysql", "oracle"], ids=source_id)
def test_an_unreachable_server_fails_fast_and_never_shows_the_password(dialect):
    source = SourceConfig.of(
        kind="sql",
        name=f"dead-{dialect}",
        host="127.0.0.1",
        port=1,
        database="agency",
        account="reader",
        secret=SECRET,
        timeout=3.0,
        options={"dialect": dialect},
    )
    started = time.monotonic()
    with pytest.raises(SourceError) as err:
        connector_for(source).fetch(SectionSpec(target="person", columns=("id_no",)), {})
    assert time.monotonic() - started < 1.5
    assert err.value.reason == "unreachable"
    # refused, timed out or unreachable: one message (which ports are open is the server log's business)
    assert "127.0.0.1:1" in err.value.message and "cannot reach" in err.value.message
    assert "refused" not in err.value.message
    assert SECRET not in err.value.message and SECRET not in repr(err.value.args)


def test_a_wrong_account_is_refused_in_plain_words(databases):
    source = sql_source("mariadb", databases, account="nobody", secret=SECRET)
    with pytest.raises(SourceError) as err:
        connector_for(source).test()
    assert err.value.reason == "refused"
    assert SECRET not in err.value.message and "nobody" not in err.value.message


def test_an_unknown_table_is_a_configuration_error(databases):
    for backend in BACKENDS:
        with pytest.raises(SourceError) as err:
            connector_for(sql_source(backend, databases)).fetch(SectionSpec(target="no_such_view", columns=("a",)), {})
        assert err.value.reason == "config", backend


def test_a_missing_sqlite_file_is_not_found(tmp_path):
    source = SourceConfig.of(kind="sql", name="gone", database=str(tmp_path / "none.db"), options={"dialect": "sqlite"})
    with pytest.raises(SourceError) as err:
        connector_for(source).test()
    assert err.value.reason == "not_found"


def test_the_sqlite_source_is_opened_read_only(databases):
    connector = connector_for(sql_source("sqlite", databases))
    connector.test()
    with connector.engine().connect() as conn:
        with pytest.raises(Exception, match="readonly"):
            conn.exec_driver_sql("DELETE FROM person")


def test_oracle_and_sql_server_statements_compile_with_bound_parameters():
    section = SectionSpec(
        target="hr.v_person",
        columns=("id_no", "name"),
        filters=(Filter("id_no", "id_no"), Filter("name", "name", "prefix"), Filter("district", "d", "in")),
        order_by=("name",),
    )
    params = {"id_no": "A123456789", "name": "王%", "d": ["東區", "西區"]}
    oracle_sql = compile_statement("oracle", section, params, row_cap=50)
    assert ":id_no_1" in oracle_sql and ":name_1" in oracle_sql and ":district_1_1" in oracle_sql
    assert "FETCH FIRST 51 ROWS ONLY" in oracle_sql
    assert "ESCAPE '/'" in oracle_sql
    mssql_sql = compile_statement("mssql", section, params, row_cap=50)
    assert "TOP 51" in mssql_sql
    assert mssql_sql.count("?") == 4  # id_no, name, two districts
    for sql in (oracle_sql, mssql_sql):
        assert "hr.v_person" in sql
        for value in ("A123456789", "王", "東區", "西區"):
            assert value not in sql


def test_a_missing_driver_names_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "oracledb", None)  # "import oracledb" now fails
    monkeypatch.setitem(sys.modules, "pyodbc", None)
    oracle = SqlConnector(
        SourceConfig.of(kind="sql", host="db.example", database="ORCL", options={"dialect": "oracle"})
    )
    with pytest.raises(SourceError) as err:
        oracle.fetch(SectionSpec(target="v_person", columns=("id_no",)), {})
    assert err.value.reason == "driver" and "pip install oracledb" in err.value.message
    mssql = SqlConnector(SourceConfig.of(kind="sql", host="db.example", database="hr", options={"dialect": "mssql"}))
    with pytest.raises(SourceError) as err:
        mssql.test()
    assert err.value.reason == "driver"
    assert "apt-get install unixodbc" in err.value.message and "pip install pyodbc" in err.value.message


def test_an_unknown_dialect_is_a_configuration_error():
    with pytest.raises(SourceError) as err:
        SqlConnector(SourceConfig.of(kind="sql", options={"dialect": "db2"}))
    assert err.value.reason == "config"


# --- connector_for: one cached connector (one pool) per source --------------------------------


def test_connector_for_caches_per_source_and_rebuilds_when_settings_change(databases):
    source = sql_source("sqlite", databases, id=9001, name="cached")
    first = connector_for(source)
    first.test()
    assert connector_for(sql_source("sqlite", databases, id=9001, name="cached")) is first
    changed = connector_for(sql_source("sqlite", databases, id=9001, name="cached", timeout=2.0))
    assert changed is not first
    assert not first.pool.is_open  # the old pool was closed
    assert connector_for(sql_source("sqlite", databases, id=9001, name="cached", timeout=2.0)) is changed
    other = connector_for(sql_source("sqlite", databases, id=9002, name="cached"))
    assert other is not changed


# --- text files ----------------------------------------------------------------------------


def write_csv(path, rows, encoding="cp950", delimiter=","):
    with open(path, "w", encoding=encoding, newline="") as fh:
        csv.writer(fh, delimiter=delimiter).writerows(rows)


TAX_ROWS = [
    ("身分證號", "姓名", "年度", "所得額"),
    ("A123456789", "王小明", "113", "882000"),
    ("A123456789", "王小明", "112", "54479"),
    ("B220000001", "王大同", "113", "1200000"),
    ("C120000002", "陳100%", "113", "300000"),
]


def test_a_big5_csv_is_read_and_looked_up_by_its_key_column(tmp_path):
    path = tmp_path / "tax.csv"
    write_csv(path, TAX_ROWS)
    source = SourceConfig.of(
        kind="textfile",
        name="tax",
        path=str(path),
        row_cap=10,
        options={"format": "csv", "encoding": "big5", "key_columns": ["身分證號"]},
    )
    connector = connector_for(source)
    assert_answers_with_a_latency(connector)
    result = connector.fetch(
        SectionSpec(target="", filters=(Filter("身分證號", "id_no"),), columns=("年度", "所得額"), order_by=("年度",)),
        {"id_no": "A123456789"},
    )
    assert result.rows == [{"年度": "112", "所得額": "54479"}, {"年度": "113", "所得額": "882000"}]
    assert connector.fetch(SectionSpec(target="", filters=(Filter("身分證號", "i"),)), {"i": "Z1"}).rows == []
    # other operators scan; numbers compare as numbers
    rich = connector.fetch(
        SectionSpec(target="", filters=(Filter("所得額", "v", "ge"),), columns=("姓名",)), {"v": "800000"}
    )
    assert [r["姓名"] for r in rich.rows] == ["王小明", "王大同"]
    assert [
        r["姓名"]
        for r in connector.fetch(
            SectionSpec(target="", filters=(Filter("姓名", "v", "prefix"),), columns=("姓名",)), {"v": "陳100%"}
        ).rows
    ] == ["陳100%"]


def test_a_tsv_file_and_the_row_cap(tmp_path):
    path = tmp_path / "tax.tsv"
    write_csv(path, TAX_ROWS, encoding="utf-8", delimiter="\t")
    source = SourceConfig.of(kind="textfile", name="tsv", path=str(path), row_cap=2, options={"format": "tsv"})
    result = connector_for(source).fetch(SectionSpec(target="", columns=("姓名",)), {})
    assert result.rows == [{"姓名": "王小明"}, {"姓名": "王小明"}] and result.truncated is True


def test_the_demo_tax_and_vehicle_files_are_read(seed_dir):
    tax = connector_for(
        SourceConfig.of(
            kind="textfile",
            name="demo-tax",
            path=str(seed_dir / "tax_income.csv"),
            options={"encoding": "big5", "key_columns": ["統一編號/身分證號"]},
        )
    )
    rows = tax.fetch(SectionSpec(target="", filters=(Filter("統一編號/身分證號", "id_no"),)), {"id_no": "A123456789"})
    assert rows.rows and {r["姓名"] for r in rows.rows} == {"王小明"}
    layout = json.loads((seed_dir / "vehicles.layout.json").read_text(encoding="utf-8"))
    vehicles = connector_for(
        SourceConfig.of(
            kind="textfile",
            name="demo-vehicles",
            path=str(seed_dir / "vehicles.txt"),
            options={"format": "fixed", "layout": layout, "key_columns": ["owner_id_no"]},
        )
    )
    mine = vehicles.fetch(SectionSpec(target="", filters=(Filter("owner_id_no", "id_no"),)), {"id_no": "A123456789"})
    assert mine.rows and all(r["owner_name"] == "王小明" for r in mine.rows)
    assert all(r["plate"] and " " not in r["plate"] for r in mine.rows)


def test_a_fixed_width_big5_file_counted_in_bytes(tmp_path):
    path = tmp_path / "cars.dat"
    lines = ["ABC-1234A123456789王小明  ", "XYZ-5678B220000001王大同  "]
    path.write_bytes(b"".join(line.encode("cp950") + b"\r\n" for line in lines))
    layout = [
        {"name": "plate", "start": 0, "width": 8},
        {"name": "owner", "start": 8, "width": 10},
        {"name": "name", "start": 18, "width": 8},
    ]
    source = SourceConfig.of(
        kind="textfile",
        name="bytes",
        path=str(path),
        options={
            "format": "fixed",
            "encoding": "big5",
            "width_unit": "byte",
            "layout": layout,
            "key_columns": ["owner"],
        },
    )
    result = connector_for(source).fetch(SectionSpec(target="", filters=(Filter("owner", "o"),)), {"o": "B220000001"})
    assert result.rows == [{"plate": "XYZ-5678", "owner": "B220000001", "name": "王大同"}]


def test_a_changed_file_is_reloaded_and_a_deleted_one_is_reported_missing(tmp_path):
    path = tmp_path / "tax.csv"
    write_csv(path, TAX_ROWS)
    source = SourceConfig.of(
        kind="textfile", name="reload", path=str(path), options={"encoding": "cp950", "key_columns": ["身分證號"]}
    )
    connector = connector_for(source)
    section = SectionSpec(target="", filters=(Filter("身分證號", "id_no"),), columns=("姓名",))
    assert connector.fetch(section, {"id_no": "D220000003"}).rows == []

    write_csv(path, [*TAX_ROWS, ("D220000003", "林_一", "113", "800000")])
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert connector.fetch(section, {"id_no": "D220000003"}).rows == [{"姓名": "林_一"}]

    path.unlink()
    with pytest.raises(SourceError) as err:
        connector.fetch(section, {"id_no": "A123456789"})  # loaded before: still never served
    assert err.value.reason == "not_found" and "file not found" in err.value.message
    with pytest.raises(SourceError) as err:
        connector.test()
    assert err.value.reason == "not_found"


def test_textfile_test_checks_the_header_and_key_columns(tmp_path):
    path = tmp_path / "tax.csv"
    write_csv(path, TAX_ROWS)
    bad = SourceConfig.of(
        kind="textfile", name="badkey", path=str(path), options={"encoding": "cp950", "key_columns": ["id_no"]}
    )
    with pytest.raises(SourceError) as err:
        connector_for(bad).test()
    assert err.value.reason == "config" and "id_no" in err.value.message
    wrong_encoding = SourceConfig.of(kind="textfile", name="utf8", path=str(path), options={"encoding": "utf-8"})
    with pytest.raises(SourceError) as err:
        connector_for(wrong_encoding).test()
    assert err.value.reason == "bad_response"


def test_a_big5_file_with_a_rare_character_it_cannot_hold_names_the_line_and_column_not_the_value(tmp_path):
    """Big5 systems write the characters Big5 lacks (王䶵明) as user-defined codes
    (0xFA40...), which cp950 cannot read: the message says where, never what."""
    path = tmp_path / "tax.csv"
    lines = [b",".join(cell.encode("cp950") for cell in row) for row in TAX_ROWS[:3]]
    lines.append("E120000004,王".encode("cp950") + b"\xfa\x40" + "明,113,500".encode("cp950"))
    path.write_bytes(b"\r\n".join(lines) + b"\r\n")
    source = SourceConfig.of(
        kind="textfile", name="eudc", path=str(path), options={"encoding": "big5", "key_columns": ["身分證號"]}
    )
    with pytest.raises(SourceError) as err:
        connector_for(source).fetch(SectionSpec(target="", columns=("姓名",)), {})
    message = str(err.value.message)
    assert err.value.reason == "bad_response"
    assert "line 4" in message and "column 姓名" in message and "cp950" in message
    assert "王" not in message.replace("column 姓名", "") and "E120000004" not in message
    # the same file as a fixed-width, byte-counted layout names the layout's column
    path.write_bytes("E120000004".encode("cp950") + "王".encode("cp950") + b"\xfa\x40" + b"\r\n")
    fixed = SourceConfig.of(
        kind="textfile",
        name="eudc-fixed",
        path=str(path),
        options={
            "format": "fixed",
            "encoding": "cp950",
            "width_unit": "byte",
            "layout": [{"name": "id_no", "start": 0, "width": 10}, {"name": "name", "start": 10, "width": 6}],
        },
    )
    with pytest.raises(SourceError) as err:
        connector_for(fixed).fetch(SectionSpec(target=""), {})
    assert "line 1" in str(err.value.message) and "column name" in str(err.value.message)


# --- web service: the business registry simulator ---------------------------------------------


def business_source(url: str, **overrides) -> SourceConfig:
    return SourceConfig.of(
        **{"kind": "rest", "name": "business", "url": f"{url}/business", "timeout": 3.0, **overrides}
    )


ONE_COMPANY = SectionSpec(target="/companies/{ban}", filters=(Filter("ban", "ban"),), columns=("ban", "name", "status"))
SEARCH = SectionSpec(
    target="/companies",
    columns=("ban", "name"),
    filters=(Filter("name", "name", "like"),),
    options={"params": {"name": "{name}"}, "rows_path": "data.items"},
)


def test_rest_reads_one_company_and_searches_by_name(simulators, seed_dir):
    companies = json.loads((seed_dir / "business.json").read_text(encoding="utf-8"))
    first = companies[0]
    connector = connector_for(business_source(simulators.url))
    assert_answers_with_a_latency(connector)
    one = connector.fetch(ONE_COMPANY, {"ban": first["ban"]})
    assert one.rows == [{"ban": first["ban"], "name": first["name"], "status": first["status"]}]
    found = connector.fetch(SEARCH, {"name": "股份有限公司"})
    expected = [c["ban"] for c in companies if "股份有限公司" in c["name"]]
    assert [r["ban"] for r in found.rows] == expected[: len(found.rows)] and found.rows


def test_rest_not_found_is_an_empty_result_and_inputs_cannot_change_the_path(simulators):
    connector = connector_for(business_source(simulators.url))
    assert connector.fetch(ONE_COMPANY, {"ban": "04595257"}).rows == []  # valid number, no such company
    assert connector.fetch(ONE_COMPANY, {"ban": "../../egate/ping"}).rows == []
    with pytest.raises(SourceError) as err:
        connector.fetch(ONE_COMPANY, {"ban": "12"})  # the service rejects it: HTTP 400
    assert err.value.reason == "config"


def test_rest_fails_fast_as_unreachable_when_the_service_stops(seed_dir):
    from app.simulators.serve import make_app

    served = Served(make_app(seed_dir))
    connector = connector_for(business_source(served.url, name="stopping"))
    assert connector.fetch(SEARCH, {"name": "銀行"}).rows  # a kept-alive connection exists now
    served.stop()
    started = time.monotonic()
    with pytest.raises(SourceError) as err:
        connector.fetch(SEARCH, {"name": "銀行"})
    assert err.value.reason == "unreachable"
    assert time.monotonic() - started < 1.5


# --- the household e-gate ---------------------------------------------------------------------


def egate(simulators):
    return connector_for(SourceConfig.of(kind="egate", name="egate", url=f"{simulators.url}/egate", timeout=3.0))


def run(connector, txn: str, field: str, value: str, **section):
    spec = SectionSpec(target=txn, filters=(Filter(field, "q"),), **section)
    return connector.fetch(spec, {"q": value, "_requester": REQUESTER})


def test_egate_rq01_gives_the_whole_household_and_rq02_the_person(simulators):
    connector = egate(simulators)
    assert_answers_with_a_latency(connector)
    person = run(connector, "RQ02", "id_no", "A123456789")
    assert len(person.rows) == 1 and person.rows[0]["name"] == "王小明"
    household = run(connector, "RQ01", "id_no", "A123456789", columns=("relation", "name", "id_no", "address"))
    assert len(household.rows) >= 3
    assert household.rows[0]["relation"] == "戶長" and household.rows[0]["name"] == "王小明"
    assert len({r["address"] for r in household.rows}) == 1
    by_number = run(connector, "RQ01", "household_no", person.rows[0]["household_no"], columns=("id_no",))
    assert [r["id_no"] for r in by_number.rows] == [r["id_no"] for r in household.rows]
    sent = simulators.app.extensions["egate_blueprint"].requests[-1]
    assert sent["requester"] == REQUESTER and sent["txn"] == "RQ01"


def test_egate_rq04_rq07_rq08_rq14_answer_from_the_register(simulators, register):
    connector = egate(simulators)
    change = register["name_changes"][0]
    renamed = run(connector, "RQ04", "id_no", change["id_no"])
    assert {"old_name": change["old_name"], "new_name": change["new_name"]}.items() <= renamed.rows[0].items()

    removal = register["household_removals"][0]
    whole = run(connector, "RQ07", "household_no", removal["household_no"])
    assert whole.rows and all(r["removal_date"] == removal["date"] for r in whole.rows)

    left = register["person_removals"][0]
    personal = run(connector, "RQ08", "id_no", left["id_no"])
    assert [(r["removal_date"], r["reason"]) for r in personal.rows] == [(left["date"], left["reason"])]

    moved = register["address_changes"][0]
    plates = run(connector, "RQ14", "household_no", moved["household_no"])
    assert {"old_address": moved["old_address"], "new_address": moved["new_address"]}.items() <= plates.rows[0].items()
    assert run(connector, "RQ14", "id_no", "A123456789").columns  # known person, maybe no change: no error


def test_egate_unknown_person_is_empty_and_bad_requests_are_refused_plainly(simulators):
    connector = egate(simulators)
    assert run(connector, "RQ02", "id_no", "A100000001").rows == []  # valid checksum, nobody
    with pytest.raises(SourceError) as err:
        run(connector, "RQ99", "id_no", "A123456789")
    assert err.value.reason == "config"
    with pytest.raises(SourceError) as err:
        run(connector, "RQ02", "household_no", "U1000128")  # RQ02 asks by ID number only
    assert err.value.reason == "config"
    with pytest.raises(SourceError) as err:
        run(connector, "RQ02", "id_no", "' OR 1=1 --")
    assert err.value.reason == "config"
    with pytest.raises(SourceError) as err:  # no requester: the gate refuses to answer anonymously
        connector.fetch(SectionSpec(target="RQ02", filters=(Filter("id_no", "q"),)), {"q": "A123456789"})
    assert err.value.reason == "config"


def test_the_simulators_answer_invalid_input_with_400_json(simulators):
    import httpx

    with httpx.Client(base_url=simulators.url) as client:
        for response in (
            client.post("/egate/rq/RQ02", content=b"not json", headers={"Content-Type": "application/json"}),
            client.post("/egate/rq/RQ02", json={"query": {"id_no": ["A"]}, "requester": REQUESTER}),
            client.get("/business/companies"),
            client.get("/business/companies", params={"name": "x", "limit": "lots"}),
        ):
            assert response.status_code == 400
            assert response.headers["content-type"].startswith("application/json")
            assert "Traceback" not in response.text


def test_the_platform_never_loads_the_simulators():
    """The e-gate and business-registry simulators serve the demo and the tests
    from their own process; the platform itself (every view, connector and
    command registered) runs without them."""
    import subprocess

    probe = (
        "import sys\n"
        "from app import create_app\n"
        "from config import TestConfig\n"
        "create_app(TestConfig)\n"
        "import app.connectors.egate, app.connectors.rest, app.cli\n"
        "print(sorted(m for m in sys.modules if m.startswith('app.simulators')))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


# --- the registry of kinds and what each source offers the form designer ---------------------


@pytest.mark.usefixtures("fax_kind")
def test_a_new_kind_module_dropped_in_the_package_is_offered_and_validated_without_other_edits():
    from app.connectors import choices, connector_class, kinds
    from app.models.sources import DataSource
    from app.services.errors import InvalidInput
    from app.services.sources import validate_source

    assert kinds()[:4] == ["sql", "textfile", "rest", "egate"] and kinds()[-1] == "fax"
    assert ("fax", "Fax gateway") in [(k, str(label)) for k, label in choices()]  # the admin screen's select list
    validate_source(None, DataSource(code="FAX", name="傳真", kind="fax", url="http://fax.example", options="{}"))
    with pytest.raises(InvalidInput, match="url"):
        validate_source(None, DataSource(code="FAX", name="傳真", kind="fax", options="{}"))
    with pytest.raises(InvalidInput, match="host"):  # a field the kind does not use is refused, not ignored
        validate_source(None, DataSource(code="FAX", name="傳真", kind="fax", url="http://f", host="x", options="{}"))
    with pytest.raises(InvalidInput, match="pages"):  # its own options, typed by its own schema
        validate_source(None, DataSource(code="FAX", name="傳真", kind="fax", url="http://f", options='{"pages": "2"}'))
    assert connector_class("fax").__module__ == "app.connectors.zz_fax"
    fax = connector_for(SourceConfig.of(kind="fax", name="fax", url="http://fax.example", options={"pages": 2}))
    assert [(e.target, e.label) for e in fax.describe()] == [("inbox", "http://fax.example")]  # the defaults filled in
    assert [r["page"] for r in fax.fetch(SectionSpec(target="inbox", columns=("page",)), {}).rows] == [1, 2]
    with pytest.raises(SourceError) as err:  # settings written past the checks: the fields named, never the values
        connector_for(SourceConfig.of(kind="fax", name="bad-fax", url="http://f", options={"pages": "lots"}))
    assert err.value.reason == "config" and "options.pages" in err.value.message and "lots" not in err.value.message


def test_each_kind_checks_its_own_settings_with_clear_field_messages():
    from marshmallow import ValidationError

    from app.connectors import connector_class

    def problems(kind, settings):
        with pytest.raises(ValidationError) as err:
            connector_class(kind).validate(settings)
        return err.value.messages

    assert "dialect" in problems("sql", {"host": "h", "database": "d", "options": {"dialect": "db2"}})["options"]
    assert "host" in problems("sql", {"database": "d", "options": {"dialect": "postgresql"}})
    assert problems("sql", {"host": "h", "port": True, "database": "d", "options": {"dialect": "mysql"}}) == {
        "port": ["Not a valid integer."]
    }  # a boolean is not a port
    assert "layout" in problems("textfile", {"path": "/x.txt", "options": {"format": "fixed"}})["options"]
    assert "encoding" in problems("textfile", {"path": "/x.txt", "options": {"encoding": "no-such"}})["options"]
    assert "surprise" in problems("rest", {"url": "https://x", "options": {"surprise": 1}})["options"]
    assert "url" in problems("egate", {"url": "ftp://x"})
    assert (
        connector_class("sql").validate({"database": "/a.db", "options": {"dialect": "sqlite"}})["database"] == "/a.db"
    )


@pytest.mark.parametrize("backend", BACKENDS, ids=source_id)
def test_a_sql_source_describes_its_tables_and_views_with_column_types(backend, databases):
    entities = {e.target: e for e in connector_for(sql_source(backend, databases)).describe()}
    person = entities["person"]
    assert person.kind == "table"
    assert [c.name for c in person.columns] == ["id_no", "name", "district", "income"]
    assert "VARCHAR" in person.columns[0].type.upper() and "INT" in person.columns[3].type.upper()
    assert entities["slow_person"].kind == "view"
    if backend == "postgresql":
        assert [c.name for c in entities["agency.v_person"].columns] == ["id_no", "name", "district"]


def test_an_unreachable_sql_source_cannot_describe_itself_and_says_why():
    source = SourceConfig.of(
        kind="sql",
        name="dead-describe",
        host="127.0.0.1",
        port=1,
        database="x",
        secret=SECRET,
        timeout=2.0,
        options={"dialect": "postgresql"},
    )
    with pytest.raises(SourceError) as err:
        connector_for(source).describe()
    assert err.value.reason == "unreachable" and SECRET not in err.value.message


def test_a_text_file_describes_its_columns_from_the_header_or_the_layout(tmp_path, seed_dir):
    path = tmp_path / "tax.csv"
    write_csv(path, TAX_ROWS)
    csv_source = SourceConfig.of(kind="textfile", name="describe-csv", path=str(path), options={"encoding": "big5"})
    [entity] = connector_for(csv_source).describe()
    assert (entity.target, entity.kind, entity.label) == ("", "file", "tax.csv")
    assert [(c.name, c.type) for c in entity.columns] == [(n, "text") for n in TAX_ROWS[0]]
    layout = json.loads((seed_dir / "vehicles.layout.json").read_text(encoding="utf-8"))
    fixed = SourceConfig.of(
        kind="textfile",
        name="describe-fixed",
        path=str(seed_dir / "vehicles.txt"),
        options={"format": "fixed", "layout": layout},
    )
    assert [c.name for c in connector_for(fixed).describe()[0].columns] == [item["name"] for item in layout]


def test_a_web_service_describes_what_its_administrator_declared(simulators):
    declared = {
        "resources": [
            {
                "target": "/companies/{ban}",
                "label": "公司",
                "columns": [{"name": "ban"}, {"name": "capital", "type": "number"}],
            }
        ]
    }
    described = connector_for(business_source(simulators.url, name="declared", options=declared)).describe()
    assert [(e.target, e.kind, e.label) for e in described] == [("/companies/{ban}", "resource", "公司")]
    assert [(c.name, c.type) for c in described[0].columns] == [("ban", "text"), ("capital", "number")]
    assert connector_for(business_source(simulators.url, name="undeclared")).describe() == []


def test_the_egate_describes_its_transactions_their_fields_and_what_each_is_asked_by(simulators):
    from app.connectors.egate import RECORD_FIELDS

    described = {e.target: e for e in egate(simulators).describe()}
    assert list(described) == ["RQ01", "RQ02", "RQ04", "RQ07", "RQ08", "RQ14"]
    assert described["RQ02"].label == "個人戶籍" and described["RQ02"].inputs == ("id_no",)
    assert [c.name for c in described["RQ07"].columns] == list(RECORD_FIELDS["RQ07"])
    assert dict((c.name, c.type) for c in described["RQ08"].columns)["removal_date"] == "date"


def test_a_postgresql_source_whose_connection_is_killed_mid_query_fails_plainly_and_the_next_query_works(databases):
    """A real pg_terminate_backend while a fetch runs on the driver: the fetch
    fails in plain words, the lost connection and its pool are retired
    (drivercursor: invalidate, dispose), and the next fetch gets a fresh one."""
    from sqlalchemy import text

    connector = connector_for(sql_source("postgresql", databases, name="killed", timeout=5.0))
    connector.test()
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    killed = []

    def kill_the_slow_query():
        deadline = time.monotonic() + 4
        with admin.connect() as conn:
            while not killed and time.monotonic() < deadline:
                pid = conn.execute(
                    text(
                        "SELECT pid FROM pg_stat_activity WHERE datname = :db AND query LIKE '%slow_person%' "
                        "AND state = 'active' AND pid <> pg_backend_pid()"
                    ),
                    {"db": databases["postgresql"]},
                ).scalar()
                if pid:
                    killed.append(conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar())

    killer = threading.Thread(target=kill_the_slow_query)
    killer.start()
    try:
        with pytest.raises(SourceError) as err:
            connector.fetch(SectionSpec(target="slow_person", columns=("id_no",)), {})
    finally:
        killer.join()
        admin.dispose()
    assert killed == [True]
    assert err.value.reason == "unreachable" and "ended the connection" in err.value.message, err.value.message
    assert "slow_person" not in err.value.message  # never the SQL
    again = connector.fetch(
        SectionSpec(target="person", columns=("id_no",), filters=(Filter("id_no", "i"),)), {"i": "A123456789"}
    )
    assert again.rows == [{"id_no": "A123456789"}]
