"""Malformed requests get a clear 4xx in the caller's language, never a 500.

Each kind is refused before any view runs (app.web): numbers in paths beyond
64 bits, JSON bodies with lone surrogates, deep nesting or huge numbers, bodies
over MAX_CONTENT_LENGTH, and FAB's list parameters (page, page size, sort
column, ``?q=``). What still escapes an API call is a JSON 500 without details.
"""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models.org import Agency
from tests.conftest import api_token, bearer, login


@pytest.fixture
def admin_api(client):
    return bearer(api_token(client, "admin"))


def _no_agency(app, **where) -> bool:
    with app.app_context():
        found = db.session.scalar(select(Agency).filter_by(**where))
        db.session.remove()
    return found is None


def test_a_record_number_beyond_64_bits_is_simply_not_found(client, admin_api):
    for path in (
        "/api/v1/dispatches/99999999999999999999999",
        "/api/v1/agencies/9223372036854775808",
    ):
        answer = client.get(path, headers=admin_api)
        assert answer.status_code == 404, path
        assert answer.json["message"] == "查無此頁面或資料。"
    answer = client.put("/api/v1/agencies/99999999999999999999999", json={"name": "x"}, headers=admin_api)
    assert answer.status_code == 404
    login(client, "admin")
    assert client.get("/users/show/99999999999999999999999").status_code == 404


def test_a_lone_surrogate_in_a_body_is_refused_and_nothing_is_saved(app, client, admin_api):
    body = '{"code": "SURR", "name": "\\ud800", "kind": "other", "active": true}'
    answer = client.post("/api/v1/agencies/", data=body, content_type="application/json", headers=admin_api)
    assert answer.status_code == 400
    assert answer.json["message"] == "請求內容含有無效的 Unicode 文字。"
    assert _no_agency(app, code="SURR")


def test_a_valid_surrogate_pair_is_ordinary_text(client, admin_api):
    body = '{"code": "PAIR", "name": "\\ud83d\\ude00", "kind": "other", "active": true}'
    answer = client.post("/api/v1/agencies/", data=body, content_type="application/json", headers=admin_api)
    assert answer.status_code == 201, answer.json
    assert client.delete(f"/api/v1/agencies/{answer.json['id']}", headers=admin_api).status_code == 200


def test_a_deeply_nested_body_is_refused_before_any_view(client, admin_api):
    body = "[" * 50000 + "]" * 50000
    answer = client.post("/api/v1/agencies/", data=body, content_type="application/json", headers=admin_api)
    assert answer.status_code == 400
    assert answer.json["message"] == "請求內容的巢狀層次過深。"


def test_a_number_beyond_64_bits_in_a_body_is_refused(app, client, admin_api):
    body = '{"code": "HUGE", "name": "大數", "kind": "other", "active": true, "id": 99999999999999999999999}'
    answer = client.post("/api/v1/agencies/", data=body, content_type="application/json", headers=admin_api)
    assert answer.status_code == 400
    assert answer.json["message"] == "請求內容含有超出範圍的數值。"
    body = '{"username": "huge", "roles": [99999999999999999999999]}'
    answer = client.post("/api/v1/users/", data=body, content_type="application/json", headers=admin_api)
    assert answer.status_code == 400
    assert _no_agency(app, code="HUGE")


def test_a_body_that_is_not_json_is_refused_in_the_callers_language(client, admin_api):
    answer = client.post("/api/v1/agencies/", data="{'code': ", content_type="application/json", headers=admin_api)
    assert answer.status_code == 400
    assert answer.json["message"] == "請求內容不是有效的 JSON。"


def test_the_refusal_speaks_english_to_a_user_who_chose_english(client):
    login(client, "admin")
    client.get("/lang/en", follow_redirects=True)
    try:
        answer = client.post("/api/v1/agencies/", data="[" * 100 + "]" * 100, content_type="application/json")
        assert answer.status_code == 400
        assert answer.json["message"] == "The request body is nested too deeply."
    finally:
        client.get("/lang/zh_TW", follow_redirects=True)


def test_a_body_over_the_limit_is_413_as_json_on_the_api_and_a_page_elsewhere(app, client, admin_api):
    too_big = b"x" * (app.config["MAX_CONTENT_LENGTH"] + 1)
    answer = client.post("/api/v1/agencies/", data=too_big, content_type="application/json", headers=admin_api)
    assert answer.status_code == 413
    assert answer.json["message"] == "請求內容過大，未做任何變更。"
    login(client, "admin")
    page = client.post("/agencyview/add", data=too_big, content_type="application/x-www-form-urlencoded")
    assert page.status_code == 413
    assert "請求內容過大" in page.text


@pytest.mark.parametrize(
    "query",
    [
        "_oc_PlatformUserView=username%27&_od_PlatformUserView=asc",  # a sort column that is none
        "_oc_PlatformUserView=password&_od_PlatformUserView=desc",  # a column not offered for sorting
        "_psize_PlatformUserView=99999999999",
        "_page_PlatformUserView=99999999999999999999999",
        "_page_PlatformUserView=abc",
    ],
)
def test_a_list_screen_refuses_a_sort_column_page_or_page_size_it_does_not_offer(client, query):
    login(client, "admin")
    answer = client.get(f"/users/list/?{query}")
    assert answer.status_code == 400
    assert "此清單的頁碼、每頁筆數或排序欄位無效" in answer.text


def test_a_list_screen_still_sorts_and_pages_as_offered(client):
    login(client, "admin")
    answer = client.get(
        "/users/list/?_oc_PlatformUserView=username&_od_PlatformUserView=desc&_psize_PlatformUserView=50"
    )
    assert answer.status_code == 200
    assert "clerk" in answer.text


@pytest.mark.parametrize(
    "q",
    [
        "garbage",
        "(page:99999999999999999999999,page_size:10)",
        "(page:true)",
        "(order_column:zzz,order_direction:asc)",
        "(order_column:code,order_direction:sideways)",
    ],
)
def test_an_api_list_query_that_cannot_be_read_is_refused(client, admin_api, q):
    answer = client.get(f"/api/v1/agencies/?q={q}", headers=admin_api)
    assert answer.status_code == 400
    assert answer.json["message"] == "清單查詢條件（q）無效。"


def test_an_api_list_still_sorts_by_an_offered_column(client, admin_api):
    answer = client.get("/api/v1/agencies/?q=(order_column:code,order_direction:desc)", headers=admin_api)
    assert answer.status_code == 200
    codes = [row["code"] for row in answer.json["result"]]
    assert codes == sorted(codes, reverse=True)


def test_an_api_list_asking_for_a_huge_page_size_gets_at_most_the_maximum(client, admin_api):
    answer = client.get("/api/v1/users/?q=(page_size:99999999999)", headers=admin_api)
    assert answer.status_code == 200
    assert 0 < len(answer.json["result"]) <= 100


def test_an_unexpected_error_in_an_api_is_a_json_500_without_details(app, client, admin_api, monkeypatch, caplog):
    def crash(**kwargs):
        raise RuntimeError("A123456789 王小明")  # what a careless error message could carry

    endpoint = next(r.endpoint for r in app.url_map.iter_rules() if r.rule == "/api/v1/agencies/<int:pk>")
    monkeypatch.setitem(app.view_functions, endpoint, crash)
    with caplog.at_level(logging.ERROR):
        answer = client.get("/api/v1/agencies/1", headers=admin_api)
    assert answer.status_code == 500
    assert answer.json == {"message": "平台無法完成此請求，請稍後再試。"}
    assert "RuntimeError" in caplog.text
    assert "A123456789" not in caplog.text and "王小明" not in caplog.text


@pytest.mark.parametrize("related", [{"roles": [{}]}, {"roles": [True]}, {"agency": {"code": "TAX"}}, {"roles": "1"}])
def test_a_related_record_given_as_anything_but_its_id_is_refused(client, admin_api, related):
    body = {"username": "related.shape", "first_name": "甲", "last_name": "乙", "email": "rel@example.gov.tw"}
    answer = client.post("/api/v1/users/", json={**body, **related}, headers=admin_api)
    assert answer.status_code == 422, answer.json
    name = next(iter(related))
    assert answer.json["message"][name] == ["請提供關聯資料的 id（整數）。"]
