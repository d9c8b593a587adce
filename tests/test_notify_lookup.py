"""The notifier looks the citizen up in the household register (the e-gate) to
fill name and address, the lookup audited as a query whose purpose is the case
being registered; categories declare structured fields (old/new name); the
e-mail is optional, a phone or postal notice recorded in its place. And the
rare characters (難字) of the register's names travel intact: into the case,
the e-mail, the printout and the verification page."""

from __future__ import annotations

import email
import functools
import io

from openpyxl import load_workbook
from sqlalchemy import select

from app.extensions import db
from app.models.audit import AuditEvent
from app.models.notify import CaseEvent, NotificationCase
from app.models.outbox import OutboxMessage
from app.models.queries import QueryLog
from app.services import outbox
from seed_data.world import RARE_NAMES, build_world
from tests.conftest import api_token, bearer

RENAME = "戶籍異動/更名"
RARE_ADDRESS = "示範縣西林鄉䅈山村3鄰𤧛興路18號"


@functools.cache
def rare_people() -> dict[str, str]:
    """name -> ID number of the demo world's household with rare characters."""
    return {p.name: p.id_no for p in build_world().persons if p.name in RARE_NAMES}


def lookup(client, token, id_no, category=RENAME, **extra):
    return client.post(
        "/api/v1/cases/lookup", json={"category": category, "id_no": id_no, **extra}, headers=bearer(token)
    )


def register(client, token, citizen, **extra):
    body = {"category": RENAME, "citizen": citizen, "content": "", **extra}
    return client.post("/api/v1/cases/", json=body, headers=bearer(token))


def consent() -> dict:
    import base64

    from tests.test_notify import consent_pdf

    return {"filename": "同意書.pdf", "content_base64": base64.b64encode(consent_pdf()).decode(), "kind": "consent"}


def test_the_register_fills_name_and_address_and_the_lookup_is_a_query_for_the_case_registered(app, client):
    head = rare_people()["王䶵明"]
    token = api_token(client, "notifier")
    r = lookup(client, token, head)
    assert r.status_code == 200, r.json
    found = r.json
    assert found["found"] is True and found["name"] == "王䶵明" and found["address"] == RARE_ADDRESS
    case_no = found["case_no"]
    with app.app_context():
        log = db.session.get(QueryLog, found["query_id"])
        assert log.case_no == case_no and log.form_code == "notify.citizen" and log.username == "notifier"
        assert log.reason == "通報案件登記：戶籍異動－更名" and log.business_item == "HH-NOTIFY"
        assert log.outcome == "ok" and log.subjects  # "who looked at my data" lists it
        assert db.session.scalar(
            select(AuditEvent.id).where(AuditEvent.action == "query", AuditEvent.object_id == str(log.id))
        )

    citizen = {"name": found["name"], "id_no": head, "address": found["address"], "contact_by": "postal"}
    fields = {"name": {"old": "王䶵明", "new": "王大明"}, "reason": "命名文字難以辨識"}
    r = register(client, token, citizen, case_no=case_no, fields=fields, attachments=[consent()])
    assert r.status_code == 201, r.json
    assert r.json["case_no"] == case_no  # the case keeps the number its lookup was recorded under
    with app.app_context():
        case = db.session.scalar(select(NotificationCase).where(NotificationCase.case_no == case_no))
        assert case.citizen_name == "王䶵明" and case.citizen_address == RARE_ADDRESS
        assert case.citizen_email is None and case.contact_by == "postal"
        assert "姓名：原 王䶵明 → 新 王大明" in case.content and "更名原因：命名文字難以辨識" in case.content
        assert '"new": "王大明"' in case.fields
        notices = [e for e in db.session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id))
                   if e.action == "notice_postal"]  # fmt: skip
        assert notices and case_no in notices[0].note  # the stage's notice, for the office to post
    # a number is used once, and only by the notifier whose lookup took it
    again = register(client, token, citizen, case_no=case_no, fields=fields, attachments=[consent()])
    assert again.status_code == 400
    other = lookup(client, api_token(client, "notifier"), head)
    assert other.status_code == 200
    refused = register(client, api_token(client, "supervisor.land"), citizen, case_no=other.json["case_no"])
    assert refused.status_code in (400, 403)


def test_a_register_lookup_needs_a_valid_id_number_and_the_notifier_role(app, client):
    token = api_token(client, "notifier")
    r = lookup(client, token, "A123456788")
    assert r.status_code == 400 and "檢查碼" in r.json["message"]
    r = lookup(client, token, rare_people()["陳𠀋華"], case_no="1150101-9999")
    assert r.status_code == 400  # not a number this notifier's lookup took
    assert lookup(client, api_token(client, "clerk"), rare_people()["陳𠀋華"]).status_code == 403
    nobody = lookup(client, token, "U299999990")
    if nobody.status_code == 200:
        assert nobody.json["found"] is False and nobody.json["case_no"]


def test_e_mail_is_optional_and_a_way_to_tell_the_citizen_is_needed(app, client):
    token = api_token(client, "notifier")
    name_change = {"name": {"old": "陳𠀋華", "new": "陳大華"}}
    bare = {"name": "陳𠀋華", "id_no": rare_people()["陳𠀋華"]}
    r = register(client, token, bare, fields=name_change, attachments=[consent()])
    assert r.status_code == 400 and "電話" in r.json["message"] and "通訊地址" in r.json["message"]
    r = register(client, token, {**bare, "contact_by": "email"}, fields=name_change, attachments=[consent()])
    assert r.status_code == 400 and "須填寫電子郵件地址" in r.json["message"]
    r = register(client, token, {**bare, "phone": "03-8221234"}, fields=name_change, attachments=[consent()])
    assert r.status_code == 201, r.json
    with app.app_context():
        case = db.session.scalar(select(NotificationCase).where(NotificationCase.case_no == r.json["case_no"]))
        assert case.contact_by == "phone"
        actions = {e.action for e in db.session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id))}
        assert "notice_phone" in actions
        assert not db.session.scalar(
            select(OutboxMessage.id).where(OutboxMessage.topic.like(f"case:{case.case_no}:%"),
                                           OutboxMessage.recipient.is_(None))
        )  # fmt: skip


def test_declared_fields_are_checked_when_given(app, client):
    token = api_token(client, "notifier")
    citizen = {"name": "王𠂤婷", "id_no": rare_people()["王𠂤婷"], "phone": "03-8221234"}
    r = register(client, token, citizen, fields={"name": {"old": "王𠂤婷"}}, attachments=[consent()])
    assert r.status_code == 400 and "請填寫原「姓名」及新「姓名」" in r.json["message"]
    r = register(client, token, citizen, fields={"nickname": "x"}, attachments=[consent()])
    assert r.status_code == 400
    # a household system posting the free text alone, as before, still registers
    r = register(client, token, citizen, content="民眾更名，請更新。", attachments=[consent()])
    assert r.status_code == 201, r.json


def test_the_citizens_e_mail_carries_the_rare_characters_intact(app, client, smtp):
    token = api_token(client, "notifier")
    citizen = {"name": "陳𠀋華", "id_no": rare_people()["陳𠀋華"], "email": "chen.rare@example.tw"}
    r = register(client, token, citizen, fields={"name": {"old": "陳𠀋華", "new": "陳大華"}}, attachments=[consent()])
    assert r.status_code == 201, r.json
    with app.app_context():
        outbox.work_once(db.session, limit=500)
    received = [m for m in smtp.sink.wait_for(1) if "chen.rare@example.tw" in m.rcpt_tos]
    assert received
    message = email.message_from_bytes(received[0].original_content)
    body = message.get_payload(decode=True).decode(message.get_content_charset())
    assert message.get_content_charset() == "utf-8" and "陳𠀋華" in body


def test_a_printout_about_a_rare_name_prints_every_glyph_and_its_code_verifies(app, client):
    from glyphs import missing_glyphs

    token = api_token(client, "clerk")
    r = client.post(
        "/api/v1/query/run",
        json={"form": "household.person", "case_no": "1151203-0009", "reason": "難字列印", "business_item": "TAX-EXEMPT",
              "params": {"id_no": rare_people()["王䶵明"]}},
        headers=bearer(token),
    )  # fmt: skip
    assert r.status_code == 200, r.json
    answer = r.json
    shown = str(answer["sections"])
    assert "王䶵明" in shown and "陳𠀋華" in shown and RARE_ADDRESS in shown
    from tests.conftest import login

    login(client, "clerk")
    pdf = client.get(f"/query/result/{answer['query_id']}/pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    assert missing_glyphs(pdf.data, "王䶵明陳𠀋華" + RARE_ADDRESS) == {}
    page = client.get(f"/verify/{answer['verification_code']}")  # the stored snapshot's digest still holds
    assert page.status_code == 200 and 'id="verify-ok"' in page.text
    assert "cjk-fonts.css" in page.text  # the screen's font list with the 全字庫 fonts


def test_an_excel_export_keeps_rare_characters():
    from types import SimpleNamespace

    from app.services.reports.excel import report_xlsx

    report = SimpleNamespace(
        title="通報案件統計",
        columns=[SimpleNamespace(key="name", label="姓名"), SimpleNamespace(key="address", label="地址")],
        rows=[{"name": n, "address": RARE_ADDRESS} for n in RARE_NAMES],
        total={"name": "合計", "address": ""},
        scope=[],
        note=None,
    )
    from flask import Flask
    from flask_babel import Babel

    flask_app = Flask(__name__)
    Babel(flask_app)
    with flask_app.app_context():
        data = report_xlsx(report)
    sheet = load_workbook(io.BytesIO(data)).active
    cells = [c for row in sheet.iter_rows(values_only=True) for c in row if c]
    assert all(name in cells for name in RARE_NAMES) and RARE_ADDRESS in cells


def test_an_excel_export_names_a_font_that_has_the_rare_characters():
    """A spreadsheet draws a cell in the font it names; Calibri (and the common Ming fonts) lack
    Extension A and B. Each rare character sits in a cell or run naming a font that has it."""
    from types import SimpleNamespace

    from flask import Flask
    from flask_babel import Babel
    from openpyxl.cell.rich_text import CellRichText, TextBlock

    from app.services.reports.excel import report_xlsx
    from tests.glyphs import family_covers

    report = SimpleNamespace(
        title=f"難字戶 {RARE_NAMES[0]} 等",
        columns=[SimpleNamespace(key="name", label="姓名"), SimpleNamespace(key="address", label="地址")],
        rows=[{"name": n, "address": RARE_ADDRESS} for n in RARE_NAMES] + [{"name": "王小明", "address": "示範縣"}],
        total={"name": "合計", "address": ""},
        scope=[],
        note=None,
    )
    flask_app = Flask(__name__)
    Babel(flask_app)
    with flask_app.app_context():
        data = report_xlsx(report)
    sheet = load_workbook(io.BytesIO(data), rich_text=True).active
    rare = {ch for ch in "".join(RARE_NAMES) + RARE_ADDRESS if 0x3400 <= ord(ch) < 0x4E00 or ord(ch) >= 0x20000}
    seen = {}
    for row in sheet.iter_rows():
        for cell in row:
            value = cell.value
            if isinstance(value, CellRichText):
                for block in value:
                    if isinstance(block, TextBlock):
                        assert family_covers(block.font.rFont, block.text), (cell.coordinate, block.font.rFont)
                        seen.update((ch, block.font.rFont) for ch in block.text)
                    else:
                        assert not rare & set(block), (cell.coordinate, block)  # left to the cell's font
                text = str(value)
            elif isinstance(value, str) and rare & set(value):
                assert family_covers(cell.font.name, value), (cell.coordinate, cell.font.name)
                assert cell.font.scheme is None  # a theme font scheme would override the name
                seen.update((ch, cell.font.name) for ch in value)
                text = value
            else:
                continue
            assert text in (report.title, *RARE_NAMES, RARE_ADDRESS)
    assert rare <= seen.keys()
    assert sheet["A8"].value == "王小明" and sheet["A8"].font.name == "Calibri"  # common text keeps the sheet's font
