"""Land and building lookups name one property (issue 17, item 1): the demo
world keeps duplicate numbers across sections on purpose (建物 00135-000 in
西區 and 東平鄉; 東平段 / 6 in 一小段 and 二小段), so the clerk is shown the
candidates, picks one, and only that one goes on the record and the printout."""

import json

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models.audit import AuditEvent
from app.models.queries import QueryLog
from app.services.query import format_value
from tests.conftest import api_token, bearer, csrf_token, login


def run(client, token, form, params, item, pick=None, status=200):
    body = {"form": form, "case_no": "1151203-0017", "reason": "", "business_item": item, "params": params}
    if pick is not None:
        body["pick"] = pick
    r = client.post("/api/v1/query/run", json=body, headers=bearer(token))
    assert r.status_code == status, r.json
    return r.json


def section(result, title):
    s = next(s for s in result["sections"] if s["title"] == title)
    assert s["error"] is None, s["error"]
    return s


def _last_log(app, form_code):
    with app.app_context():
        return db.session.scalars(
            select(QueryLog).where(QueryLog.form_code == form_code).order_by(QueryLog.id.desc())
        ).first()


@pytest.mark.parametrize("typed", ["18-1", "0018-0001", "00180001", "１８－１"])
def test_a_parcel_number_is_accepted_as_clerks_write_it_and_shown_as_0018_0001(client, typed):
    token = api_token(client, "clerk")
    result = run(client, token, "land.parcel", {"section_name": "中正段", "parcel_no": typed}, "TAX-LAND")
    assert result["outcome"] == "ok"
    marking = section(result, "土地標示部")
    assert len(marking["rows"]) == 1
    assert "0018-0001" in marking["rows"][0] and "00180001" not in marking["rows"][0]


def test_parcel_and_building_numbers_display_in_the_registers_written_form():
    assert format_value("00180001", "parcel") == "0018-0001"
    assert format_value("00180001,00180002", "parcel") == "0018-0001、0018-0002"
    assert format_value("00173-000", "building") == "00173-000"
    assert format_value("00173000", "building") == "00173-000"
    assert format_value("not a number", "parcel") == "not a number"


def test_the_building_number_is_accepted_as_173_or_00173_000_or_00173000(client):
    token = api_token(client, "clerk")
    shown = []
    for typed in ("173", "173-0", "00173-000", "00173000"):
        result = run(client, token, "building.unit", {"building_no": typed}, "TAX-HOUSE")
        shown.append(section(result, "建物標示部")["rows"])
    assert shown[0] and all(s == shown[0] for s in shown)


def test_a_building_number_in_two_townships_gives_the_candidates_without_owners_then_the_pick(app, client):
    token = api_token(client, "clerk")
    first = run(client, token, "building.unit", {"building_no": "00135-000"}, "TAX-HOUSE")
    assert first["outcome"] == "candidates" and first["verification_code"] == ""
    assert first["sections"] == []
    cands = first["candidates"]
    assert len(cands["rows"]) == 2
    assert {r["values"][cands["columns"].index("鄉鎮市區")] for r in cands["rows"]} == {"西區", "東平鄉"}
    text = json.dumps(first, ensure_ascii=False)
    assert "所有權人" not in text and "路" not in text  # no owners, no door address
    log = _last_log(app, "building.unit")
    assert log.outcome == "candidates" and log.row_count == 2 and log.verification_code is None
    with app.app_context():
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.object_type == "QueryLog", AuditEvent.object_id == str(log.id))
        ).first()
        assert event is not None and event.outcome == "candidates"

    east = next(r for r in cands["rows"] if "東平鄉" in r["values"])
    second = run(client, token, "building.unit", {"building_no": "00135-000"}, "TAX-HOUSE", pick=east["pick"])
    assert second["outcome"] == "ok" and second["verification_code"]
    marking = section(second, "建物標示部")
    assert len(marking["rows"]) == 1 and "東平鄉" in marking["rows"][0]
    owners = section(second, "建物所有權部")
    assert owners["rows"] and owners.get("groups") and len(owners["groups"]) == 1
    stored = json.loads(_last_log(app, "building.unit").snapshot)
    assert "西區" not in json.dumps(stored, ensure_ascii=False)


def test_tungping_6_covers_two_subsections_and_the_pick_keeps_one_parcel_with_its_owners(app, client):
    token = api_token(client, "clerk")
    first = run(client, token, "land.parcel", {"section_name": "東平段", "parcel_no": "6"}, "TAX-LAND")
    assert first["outcome"] == "candidates"
    rows = first["candidates"]["rows"]
    assert len(rows) == 2
    sub = first["candidates"]["columns"].index("小段")
    picked = next(r for r in rows if r["values"][sub] == "二小段")
    second = run(
        client, token, "land.parcel", {"section_name": "東平段", "parcel_no": "6"}, "TAX-LAND", pick=picked["pick"]
    )
    marking = section(second, "土地標示部")
    assert len(marking["rows"]) == 1 and "二小段" in marking["rows"][0] and "0006-0000" in marking["rows"][0]
    owners = section(second, "土地所有權部")
    assert owners["rows"] and [g["title"] for g in owners["groups"]] == ["東平段二小段 0006-0000"]
    # The section named in full (or by its code) names one parcel: no candidates.
    direct = run(client, token, "land.parcel", {"section_name": "東平段二小段", "parcel_no": "6"}, "TAX-LAND")
    assert direct["outcome"] == "ok" and section(direct, "土地標示部")["rows"] == marking["rows"]
    by_code = run(client, token, "land.parcel", {"section_name": "UA0302", "parcel_no": "0006-0000"}, "TAX-LAND")
    assert section(by_code, "土地標示部")["rows"] == marking["rows"]


@pytest.mark.parametrize(
    ("params", "pick"),
    [
        ({"section_name": "東平段", "parcel_no": "6-A"}, None),
        ({"section_name": "東平段", "parcel_no": "12345-1"}, None),
        ({"section_name": "沒有這段", "parcel_no": "6"}, None),
        ({"section_name": "東平段", "parcel_no": "6"}, ["UA0302"]),  # a pick of the wrong shape
        ({"section_name": "東平段", "parcel_no": "6"}, ["UA0302", 6]),
    ],
)
def test_bad_section_parcel_or_pick_is_a_clear_400_and_changes_nothing(app, client, params, pick):
    token = api_token(client, "clerk")
    before = _last_log(app, "land.parcel")
    body = {"form": "land.parcel", "case_no": "c-1", "business_item": "TAX-LAND", "params": params}
    if pick is not None:
        body["pick"] = pick
    r = client.post("/api/v1/query/run", json=body, headers={**bearer(token), "Accept-Language": "zh-TW"})
    assert r.status_code == 400
    message = json.dumps(r.json, ensure_ascii=False)
    assert "6-A" not in message and "12345" not in message
    after = _last_log(app, "land.parcel")
    assert after is None or before is None or after.outcome == "refused" or after.id == before.id


def test_the_clerk_picks_a_candidate_on_the_page(app, client):
    login(client, "clerk")
    page = client.get("/query/form/building.unit")
    token = csrf_token(page.get_data(as_text=True))
    data = {"csrf_token": token, "case_no": "c-2", "reason": "", "business_item": "TAX-HOUSE", "building_no": "135"}
    html = client.post("/query/form/building.unit", data=data).get_data(as_text=True)
    assert 'id="query-candidates"' in html and 'id="query-result"' not in html
    listing = html.split('id="query-candidates"', 1)[1]
    assert "東平鄉" in listing and "西區" in listing and listing.count('name="_pick"') == 2
    assert "verification code" not in html.lower() and "驗證碼" not in html
    log = _last_log(app, "building.unit")
    assert log.outcome == "candidates"
    stored = client.get(f"/query/result/{log.id}").get_data(as_text=True)
    assert 'id="stored-candidates"' in stored and 'id="open-pdf"' not in stored and "東平鄉" in stored
    assert client.get(f"/query/result/{log.id}/pdf").status_code == 404
    pick = json.dumps(["UA0201", "00135-000"])
    html = client.post("/query/form/building.unit", data={**data, "_pick": pick}).get_data(as_text=True)
    assert 'id="query-result"' in html and 'id="query-candidates"' not in html
    result = html.split('id="query-result"', 1)[1]
    assert "西區" in result and "東平鄉" not in result and "00135-000" in result
    assert _last_log(app, "building.unit").outcome == "ok"


def test_a_pick_never_widens_what_the_inputs_match(client):
    token = api_token(client, "clerk")
    one = {"section_name": "東平段一小段", "parcel_no": "6"}
    other = run(client, token, "land.parcel", one, "TAX-LAND", pick=["UA0302", "00060000"])
    assert other["outcome"] == "ok"
    assert section(other, "土地標示部")["rows"] == [] and section(other, "土地所有權部")["rows"] == []


def test_a_pick_on_a_form_without_the_rule_is_refused(client):
    token = api_token(client, "clerk")
    body = {"form": "household.person", "case_no": "c-3", "business_item": "TAX-EXEMPT",
            "params": {"id_no": "A123456789"}, "pick": ["A123456789"]}  # fmt: skip
    r = client.post("/api/v1/query/run", json=body, headers=bearer(token))
    assert r.status_code == 400 and "A123456789" not in json.dumps(r.json)


def test_when_the_candidates_cannot_be_listed_no_section_with_the_rule_is_read(app, client, monkeypatch):
    """Else a source that failed only for the listing would mix the two buildings again."""
    from app.services.query import lookup

    monkeypatch.setattr(lookup, "candidates", lambda *args: None)
    token = api_token(client, "clerk")
    result = run(client, token, "building.unit", {"building_no": "00135-000"}, "TAX-HOUSE")
    assert result["outcome"] == "source_error"
    assert all(s["rows"] == [] and s["error"] for s in result["sections"])


def test_the_designers_rules_for_section_lists_and_the_one_property_options(app):
    from app.models.queries import FormInput, FormSection
    from app.services.errors import InvalidInput
    from app.services.query import design

    with app.app_context():
        for choices in (
            None,
            "LAND-DB",
            '{"source": "LAND-DB"}',
            '{"source": "LAND-DB", "target": "v", "columns": {"x": "y"}}',
        ):
            with pytest.raises(InvalidInput):
                design.validate_input(
                    db.session, FormInput(name="sec", label="段", type="land_section", choices=choices)
                )
        design.validate_input(
            db.session,
            FormInput(
                name="sec",
                label="段",
                type="land_section",
                choices=json.dumps({"source": "LAND-DB", "target": "v_land_section"}),
            ),
        )
        for options in ({"group_by": "parcel_no"}, {"one_property": {"key": []}}, {"one_property": {"key": ["a;b"]}}):
            with pytest.raises(InvalidInput):
                design.validate_section(
                    db.session, FormSection(title="t", target="v", display="table", options=json.dumps(options))
                )


def test_the_api_lists_the_sections_a_land_section_input_offers(client):
    token = api_token(client, "clerk")
    forms = {f["code"]: f for f in client.get("/api/v1/query/forms", headers=bearer(token)).json["result"]}
    section_input = next(i for i in forms["land.parcel"]["inputs"] if i["type"] == "land_section")
    offered = {c["value"]: c["label"] for c in section_input["choices"]}
    assert offered["UA0301"].startswith("東平段一小段") and offered["UA0302"].startswith("東平段二小段")
    assert "東平段" in offered and "中正段" not in offered  # 中正段 has no 小段: offered by code
    parcel_input = next(i for i in forms["land.parcel"]["inputs"] if i["type"] == "land_parcel")
    assert "choices" not in parcel_input
