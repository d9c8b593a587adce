"""When a source cannot answer, the clerk reads why in their own language.

A text file without the column a section reads, a web service that refuses the
county (HTTP 403), a household e-gate that does not accept the platform's
credentials (status E401): the clerk's query page and the query API say so in
Traditional Chinese by default and in English to a clerk who chose English,
naming the source's file or host but never what the clerk typed.
"""

from __future__ import annotations

import html
import json
import logging
import re
import threading
import uuid

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from app.extensions import db
from app.models.queries import FormSection, SectionColumn, SectionFilter
from app.models.sources import DataSource
from tests import factories
from tests.conftest import api_token, bearer, free_port, login

ID_NO = "A123456789"


def _form_with(app, tmp_path, source_columns: dict, section: dict) -> str:
    """A form for tax clerks: the people of an agency's database, then a section on the source under test."""
    code = f"test.msg.{uuid.uuid4().hex[:6]}"
    with app.app_context():
        people = factories.sqlite_source(f"OK-{uuid.uuid4().hex[:6]}", factories.people_db(tmp_path / "people.db"))
        src = DataSource(code=f"MSG-{uuid.uuid4().hex[:6]}", name="待測來源", timeout=2, row_cap=50, enabled=True,
                         **source_columns)  # fmt: skip
        db.session.add(src)
        extra = FormSection(title="待測區段", source=src, target=section["target"], display="table", sort_order=2)
        extra.filters = [SectionFilter(column=section["filter"], op="eq", input_name="id_no")]
        extra.columns = [SectionColumn(column=c, label=c, sort_order=n) for n, c in enumerate(section["columns"], 1)]
        factories.people_form(code, people, extra_sections=[extra])
    return code


def platform_log(caplog) -> str:
    """What the platform logged (not the peers' own request logs, served by werkzeug here)."""
    return "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("werkzeug"))


def _query_page(client, form: str) -> tuple[str, str]:
    """The clerk sends the query from the page: (the page as read, the failing section's message)."""
    r = client.post(f"/query/form/{form}", data={"case_no": "MSG-1", "reason": "", "business_item": "TAX-CHECK",
                                                 "id_no": ID_NO})  # fmt: skip
    assert r.status_code == 200, r.text[-2000:]
    page = html.unescape(r.text)
    assert "王○明" in page  # the other section answers
    errors = re.findall(r'<div class="alert alert-danger" role="alert">(.*?)</div>', page, re.S)
    assert len(errors) == 1, errors
    return page, errors[0]


def _query_api(client, token: str, form: str, query: str = "") -> dict:
    """The clerk's query through the API: the failing section."""
    body = {"form": form, "case_no": "MSG-2", "reason": "", "business_item": "TAX-CHECK", "params": {"id_no": ID_NO}}
    r = client.post(f"/api/v1/query/run{query}", json=body, headers=bearer(token))
    assert r.status_code == 200, r.json
    people, failing = r.json["sections"]
    assert people["rows"] and people["error"] is None
    assert failing["rows"] == [] and failing["error"]
    return failing


# --- a text file without the column the section reads --------------------------------------------------


def test_a_text_file_without_the_sections_column_is_said_on_the_query_page_in_chinese_and_in_english(
    app, client, tmp_path
):
    csv = tmp_path / "vehicles.csv"
    csv.write_text("id_no,plate\nA123456789,ABC-1234\n", encoding="utf-8")
    form = _form_with(app, tmp_path, {"kind": "textfile", "path": str(csv)},
                      {"target": "", "filter": "id_no", "columns": ["id_no", "engine_cc"]})  # fmt: skip
    login(client, "clerk")
    try:
        page, error = _query_page(client, form)
        assert error == "資料來源無法回應：檔案沒有「engine_cc」欄位", error
        client.get("/lang/en", follow_redirects=True)
        page, error = _query_page(client, form)
        assert error == "The source could not answer: the file has no column 'engine_cc'", error
        assert ID_NO not in error
    finally:
        client.get("/lang/zh_TW", follow_redirects=True)
        client.get("/logout/")


# --- a web service that refuses the request -----------------------------------------------------------


@pytest.fixture
def refusing_service():
    """A web service that refuses every request (HTTP 403), as one that does not know the county's agency."""

    @Request.application
    def refuse(_request):
        return Response(json.dumps({"error": "forbidden"}), status=403, content_type="application/json")

    server = make_server("127.0.0.1", free_port(), refuse, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


def test_a_web_service_refusing_the_request_is_said_in_the_api_answer_in_chinese_and_in_english(
    app, client, tmp_path, refusing_service, caplog
):
    caplog.set_level(logging.DEBUG)
    form = _form_with(app, tmp_path, {"kind": "rest", "url": f"http://{refusing_service}"},
                      {"target": "/people/{id_no}", "filter": "id_no", "columns": ["name"]})  # fmt: skip
    token = api_token(client, "clerk")
    failing = _query_api(client, token, form)
    assert failing["error"] == f"資料來源無法回應：位於 {refusing_service} 的網路服務 拒絕此請求（HTTP 403）", failing
    english = _query_api(client, token, form, "?_l_=en")  # an API client asking in English
    assert english["error"] == (
        f"The source could not answer: the web service at {refusing_service} refused the request (HTTP 403)"
    ), english
    assert ID_NO not in failing["error"] and ID_NO not in english["error"]
    assert ID_NO not in platform_log(caplog)  # the log lines name the service, never what the clerk typed


# --- a household e-gate that does not accept the credentials ------------------------------------------


@pytest.fixture
def guarded_egate(tmp_path):
    """The e-gate simulator demanding an account and password (E401 without them)."""
    from app.simulators.serve import make_app
    from seed_data.loader import write_files

    write_files(tmp_path)  # the demo household register it serves
    server = make_server("127.0.0.1", free_port(), make_app(tmp_path, ("gate", "right")), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


def test_an_egate_refusing_the_credentials_is_said_on_the_query_page_and_in_the_api_in_each_language(
    app, client, tmp_path, guarded_egate, caplog
):
    caplog.set_level(logging.DEBUG)
    form = _form_with(app, tmp_path, {"kind": "egate", "url": f"http://{guarded_egate}/egate", "account": "gate",
                                      "secret": "wrong-password", "options": json.dumps({"auth": "basic"})},
                      {"target": "RQ02", "filter": "id_no", "columns": ["name", "address"]})  # fmt: skip
    zh = f"資料來源無法回應：位於 {guarded_egate} 的戶役政電子閘門 不接受此認證資料（E401）"
    en = f"The source could not answer: the household e-gate at {guarded_egate} did not accept the credentials (E401)"
    login(client, "clerk")
    try:
        _, error = _query_page(client, form)
        assert error == zh, error
        client.get("/lang/en", follow_redirects=True)
        _, error = _query_page(client, form)
        assert error == en, error
    finally:
        client.get("/lang/zh_TW", follow_redirects=True)
        client.get("/logout/")
    token = api_token(client, "clerk")
    assert _query_api(client, token, form)["error"] == zh
    assert _query_api(client, token, form, "?_l_=en")["error"] == en
    assert "wrong-password" not in zh + en and ID_NO not in zh + en
    assert ID_NO not in platform_log(caplog) and "wrong-password" not in platform_log(caplog)
