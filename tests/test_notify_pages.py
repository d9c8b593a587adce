"""Cross-agency notification through the web pages: the household office
registers an address change with the citizen's consent scan, the land office
receives, assigns, handles and closes it; other agencies see nothing."""

import io
import re

from flask_babel import gettext
from sqlalchemy import select

from app.extensions import db
from app.models.notify import Attachment, Dispatch, NotificationCase, NotificationCategory
from tests.conftest import login

CITIZEN = {
    "name": "陳美玲",
    "id_no": "A123456789",
    "email": "chen.meiling@example.tw",
    "phone": "03-8225678",
    "address": "示範縣東區中山路二段45號3樓",
}


def consent_pdf() -> bytes:
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, invariant=1)  # the same bytes every time
    c.drawString(72, 720, "Consent form (scan) - page pages story")
    c.showPage()
    c.save()
    return buf.getvalue()


def signed_in(app, username):
    client = app.test_client()
    page = login(client, username)
    assert page.status_code == 200 and username in page.text
    return client


def category_id(app, sub_item: str) -> int:
    with app.app_context():
        return db.session.scalar(select(NotificationCategory.id).where(NotificationCategory.sub_item == sub_item))


def form_data(app, category: int, with_consent=True, **changes) -> dict:
    with app.app_context():
        cat = db.session.get(NotificationCategory, category)
        receivers = [str(a.id) for a in cat.default_receivers]
    data = {"category": str(category), "receivers": receivers, **CITIZEN, "content": "民眾遷入新址，請更新住址。"}
    if with_consent:
        data["consent"] = (io.BytesIO(consent_pdf()), "同意書.pdf", "application/pdf")
    data.update(changes)
    return data


def post_case(client, data: dict):
    return client.post("/notify/new", data=data, content_type="multipart/form-data")


def land_dispatch(app, case_no: str) -> Dispatch:
    with app.app_context():
        d = db.session.scalar(
            select(Dispatch)
            .join(NotificationCase)
            .where(NotificationCase.case_no == case_no, Dispatch.agency.has(code="LAND"))
        )
        db.session.expunge(d)
        return d


def version_in(html: str, action: str) -> str:
    form = html[html.index(f'id="form-{action}"') :]
    return re.search(r'name="version" value="(\d+)"', form).group(1)


def register_through_the_page(app) -> str:
    notifier = signed_in(app, "notifier")
    r = post_case(notifier, form_data(app, category_id(app, "地址變更")))
    assert r.status_code == 302, r.text
    return r.headers["Location"].rsplit("/", 1)[-1]


def test_an_address_change_is_registered_assigned_handled_and_closed_through_the_pages(app):
    notifier = signed_in(app, "notifier")
    menu = notifier.get("/notify/new")
    assert menu.status_code == 200 and "戶籍異動" in menu.text and "地址變更" in menu.text
    address = category_id(app, "地址變更")
    form = notifier.get(f"/notify/new?category={address}")
    assert form.status_code == 200
    for code in ("LAND", "TAX", "MOTOR"):
        assert re.search(rf'id="receiver-{code}"\s+checked', form.text), code
    assert not re.search(r'id="receiver-SOCIAL"\s+checked', form.text) and 'id="receiver-SOCIAL"' in form.text
    assert 'id="receiver-HH-EAST"' not in form.text  # an agency cannot notify itself

    # Without the consent scan: refused in Chinese, and nothing typed is lost.
    r = post_case(notifier, form_data(app, address, with_consent=False))
    assert r.status_code == 400
    assert "此類別須上傳民眾同意書掃描檔" in r.text
    assert 'value="陳美玲"' in r.text and "民眾遷入新址，請更新住址。" in r.text and 'value="A123456789"' in r.text

    r = post_case(notifier, form_data(app, address))
    assert r.status_code == 302, r.text
    case_no = r.headers["Location"].rsplit("/", 1)[-1]
    page = notifier.get(r.headers["Location"])
    assert page.status_code == 200 and case_no in page.text and "同意書.pdf" in page.text
    assert "A123456789" in page.text  # the notifying agency sees the whole ID number

    supervisor = signed_in(app, "supervisor.land")
    incoming = supervisor.get("/notify/?tab=incoming")
    assert case_no in incoming.text and "worklist-incoming" in incoming.text
    assert 'id="tab-cases"' not in incoming.text and 'id="tab-work"' not in incoming.text
    d = land_dispatch(app, case_no)
    assert d.state == "sent" and d.received_at is None
    opened = supervisor.get(f"/notify/dispatch/{d.id}")
    assert opened.status_code == 200 and 'id="form-assign"' in opened.text and "handler.land" in opened.text
    d = land_dispatch(app, case_no)
    assert d.state == "received" and d.received_by == "supervisor.land" and d.received_at is not None
    case_view = supervisor.get(f"/notify/case/{case_no}")
    assert "******6789" in case_view.text and "A123456789" not in case_view.text
    r = supervisor.post(
        f"/notify/dispatch/{d.id}/act/assign",
        data={"handler": "handler.land", "version": version_in(opened.text, "assign")},
    )
    assert r.status_code == 302
    assert land_dispatch(app, case_no).state == "assigned"

    handler = signed_in(app, "handler.land")
    assert case_no in handler.get("/notify/").text
    page = handler.get(f"/notify/dispatch/{d.id}")
    r = handler.post(f"/notify/dispatch/{d.id}/act/accept", data={"version": version_in(page.text, "accept")})
    assert r.status_code == 302
    page = handler.get(f"/notify/dispatch/{d.id}")
    # A result without the control type is refused; what was typed stays.
    r = handler.post(
        f"/notify/dispatch/{d.id}/act/process",
        data={"version": version_in(page.text, "process"), "result": "已更新所有權人住址。"},
    )
    assert r.status_code == 400 and "請選擇管制類別" in r.text and "已更新所有權人住址。" in r.text
    r = handler.post(
        f"/notify/dispatch/{d.id}/act/process",
        data={
            "version": version_in(page.text, "process"),
            "result": "已更新所有權人住址。",
            "control_type": "closed",
            "notes": "依通報辦理",
        },
    )
    assert r.status_code == 302
    assert land_dispatch(app, case_no).state == "processed"

    page = supervisor.get(f"/notify/dispatch/{d.id}")
    assert 'id="form-close"' in page.text and 'id="form-return"' in page.text
    r = supervisor.post(f"/notify/dispatch/{d.id}/act/close", data={"version": version_in(page.text, "close")})
    assert r.status_code == 302
    closed = land_dispatch(app, case_no)
    assert closed.state == "closed" and closed.control_type == "closed" and closed.closed_at is not None
    timeline = notifier.get(f"/notify/case/{case_no}").text
    assert "已更新所有權人住址。" in timeline and "supervisor.land" in timeline


def test_a_stale_form_says_someone_else_changed_the_dispatch(app):
    case_no = register_through_the_page(app)
    d = land_dispatch(app, case_no)
    supervisor = signed_in(app, "supervisor.land")
    page = supervisor.get(f"/notify/dispatch/{d.id}").text
    stale = version_in(page, "assign")
    assert (
        supervisor.post(
            f"/notify/dispatch/{d.id}/act/assign", data={"handler": "handler.land", "version": stale}
        ).status_code
        == 302
    )
    r = supervisor.post(
        f"/notify/dispatch/{d.id}/act/assign", data={"handler": "handler.land", "version": stale}, follow_redirects=True
    )
    assert r.status_code == 200 and "alert-warning" in r.text and f"/notify/dispatch/{d.id}" == r.request.path


def test_another_agency_gets_not_found_on_the_case_and_its_dispatch(app):
    case_no = register_through_the_page(app)
    d = land_dispatch(app, case_no)
    social = signed_in(app, "supervisor.social")
    assert social.get(f"/notify/case/{case_no}").status_code == 404
    assert social.get(f"/notify/dispatch/{d.id}").status_code == 404
    assert social.post(f"/notify/dispatch/{d.id}/act/assign", data={"handler": "handler.social"}).status_code == 404
    with app.app_context():
        att = db.session.scalar(select(NotificationCase).where(NotificationCase.case_no == case_no)).attachments[0].id
    assert social.get(f"/notify/attachment/{att}").status_code == 404
    assert social.get(f"/notify/check/{att}").status_code == 404
    # The tax bureau, also a receiver, sees the case but only its own dispatch.
    tax = signed_in(app, "supervisor.tax")
    page = tax.get(f"/notify/case/{case_no}").text
    assert 'id="dispatch-TAX"' in page and 'id="dispatch-LAND"' not in page
    assert tax.get(f"/notify/dispatch/{d.id}").status_code == 404


def test_the_consent_scan_downloads_unchanged_and_checks_intact(app):
    case_no = register_through_the_page(app)
    notifier = signed_in(app, "notifier")
    with app.app_context():
        att = db.session.scalar(select(NotificationCase).where(NotificationCase.case_no == case_no)).attachments[0].id
    r = notifier.get(f"/notify/attachment/{att}?copy=original")
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    assert r.headers["Content-Disposition"].startswith("attachment")
    assert r.data == consent_pdf()
    stamped = notifier.get(f"/notify/attachment/{att}?copy=stamped")
    assert stamped.status_code == 200 and stamped.data.startswith(b"%PDF") and stamped.data != r.data
    assert notifier.get(f"/notify/attachment/{att}?copy=other").status_code == 404
    land = signed_in(app, "supervisor.land")  # a receiving agency may read it too
    assert land.get(f"/notify/attachment/{att}").data == consent_pdf()
    check = notifier.get(f"/notify/check/{att}")
    with app.test_request_context():
        intact = gettext("The file is intact: the same as when it was registered.")
    assert check.status_code == 200 and intact in check.text and "alert-success" in check.text
    with app.app_context():
        stored = db.session.get(Attachment, att)
        data = bytearray(stored.original)
        data[len(data) // 2] ^= 0x01  # one bit changed behind the platform's back
        stored.original = bytes(data)
        db.session.commit()
    check = notifier.get(f"/notify/check/{att}")
    assert (
        check.status_code == 200
        and intact not in check.text
        and 'class="alert alert-danger" id="check-result"' in check.text
    )


def test_the_case_page_and_the_api_show_the_same_to_an_admin_and_to_another_agencys_supervisor(app):
    """One rule for what a viewer sees: only the notifying agency sees the full ID number and e-mail."""
    from tests.conftest import api_token, bearer

    case_no = register_through_the_page(app)
    api = app.test_client()
    for username, agencies in (("admin", {"LAND", "TAX", "MOTOR"}), ("supervisor.tax", {"TAX"})):
        shown = api.get(f"/api/v1/cases/{case_no}", headers=bearer(api_token(api, username))).json["result"]
        page = signed_in(app, username).get(f"/notify/case/{case_no}").text
        assert shown["citizen"]["id_no"] == "******6789", username
        assert shown["citizen"]["email"] is None, username
        assert "******6789" in page and "A123456789" not in page, username
        assert CITIZEN["email"] not in page, username
        assert {d["agency"]["code"] for d in shown["dispatches"]} == agencies, username
        assert set(re.findall(r'id="dispatch-([A-Z-]+)"', page)) == agencies, username
    notifier = api.get(f"/api/v1/cases/{case_no}", headers=bearer(api_token(api, "notifier"))).json["result"]
    assert notifier["citizen"]["id_no"] == "A123456789" and notifier["citizen"]["email"] == CITIZEN["email"]
    page = signed_in(app, "notifier").get(f"/notify/case/{case_no}").text
    assert "A123456789" in page and CITIZEN["email"] in page


def test_an_admin_opens_the_category_and_mail_template_screens_with_their_choices(app):
    admin = signed_in(app, "admin")
    for url in ("/notificationcategoryview/list/", "/notificationcategoryview/add", "/mailtemplateview/add"):
        assert admin.get(url).status_code == 200, url
    assert 'value="citizen"' in admin.get("/notificationcategoryview/add").text
    assert 'value="registered"' in admin.get("/mailtemplateview/add").text
