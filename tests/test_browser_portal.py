"""Browser story (Playwright + Debian's chromium) of the citizens' portal: a citizen signs in
with a demo card through the signing component's popup, lands on the portal (its own look,
phone-sized), follows a case three agencies act on, sees a tax clerk's query of their data
(run through the back office's API in the same test), flags it, the tax bureau's Auditor
answers on the back office's page, and the citizen reads the answer, in Chinese and English.
axe-core (npm, tests/package.json) checks every portal page: no serious or critical violation.
Screenshots in tests/artifacts/portal-*.png."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from app.extensions import db
from tests import factories
from tests.conftest import ARTIFACTS, DEMO_PASSWORD, Database, api_token, bearer, build_app, free_port
from tests.test_notify import CITIZEN, act, register

AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def axe_source() -> str:
    assert AXE.exists(), "axe-core is missing: run `npm ci --prefix tests` (test.sh does)"
    return AXE.read_text()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from werkzeug.serving import make_server

    from app.simulators.signer import make_app
    from tests.cards import card_pki, responders

    responders()
    pki = card_pki()
    app_port, signer_port = free_port(), free_port()
    origin = f"http://127.0.0.1:{app_port}"
    signer = make_app(pki["dir"], None, origins=(origin,))
    signer_server = make_server("127.0.0.1", signer_port, signer, threaded=True)
    threading.Thread(target=signer_server.serve_forever, daemon=True).start()
    directory = tmp_path_factory.mktemp("portal-browser")
    database = Database("sqlite", directory)
    application = build_app(database.url, CERT_SIGNER_URL=f"http://127.0.0.1:{signer_port}")
    with application.app_context():
        src = factories.sqlite_source(f"SRC-{uuid.uuid4().hex[:6]}", factories.people_db(directory / "people.db"))
        form = factories.people_form(f"portal.people.{uuid.uuid4().hex[:6]}", src).code
        db.session.remove()
    server = make_server("127.0.0.1", app_port, application, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield SimpleNamespace(url=origin, app=application, reader=signer.extensions["reader"], pki=pki, form=form)
    server.shutdown()
    signer_server.shutdown()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"portal-{name}.png"), full_page=True)


def accessible(page, axe_source: str) -> None:
    """axe-core over the page as shown (WCAG 2.0/2.1 A and AA): no serious or critical violation.
    Evaluated through the DevTools protocol, so the page's CSP (no inline scripts) stays as it is."""
    page.evaluate(axe_source)
    found = page.evaluate(
        "() => axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})"
        ".then(r => r.violations.map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target)})))"
    )
    bad = [v for v in found if v["impact"] in ("serious", "critical")]
    assert not bad, f"{page.url}: {bad}"


def card_sign_in(page, world, card: str) -> None:
    world.reader.insert(card)
    page.goto(f"{world.url}/signin/card/")
    page.fill("#pin", "1234")
    with page.expect_popup() as popup:
        page.click("#card-sign-in")
    popup.value.wait_for_event("close")


@pytest.mark.browser
def test_a_citizen_follows_a_case_sees_the_clerks_query_flags_it_and_reads_the_auditors_answer(
    world, browser, axe_source
):
    ARTIFACTS.mkdir(exist_ok=True)
    wang = next(c for c in world.pki["cards"] if c["name"] == "citizen-wang")
    client = world.app.test_client()
    # a household office registers an address change for wang; three agencies receive it
    notifier = api_token(client, "notifier")
    cats = client.get("/api/v1/categories/", headers=bearer(notifier)).json["result"]
    address = next(c for c in cats if c["sub_item"] == "地址變更")
    case = register(client, notifier, address["id"], citizen={**CITIZEN, "id_no": wang["id_number"]}).json
    dispatches = {d["agency"]["code"]: d["id"] for d in case["result"]["dispatches"]}

    # the citizen signs in with the card (first time: the full ID number) and lands on the portal
    page = browser.new_page(viewport=PHONE, locale="zh-TW")
    card_sign_in(page, world, "citizen-wang")
    page.wait_for_url("**/signin/card/register")
    page.fill("#id_number", wang["id_number"])
    page.fill("#name", wang["holder"])
    page.click("#register-submit")
    page.wait_for_url(f"{world.url}/portal/")
    assert "我的服務" in page.inner_text("main") and "自然人憑證" in page.inner_text("main")
    assert page.locator(".navbar").count() == 0  # not the back office's layout
    accessible(page, axe_source)
    shot(page, "1-home-zh")
    assert page.goto(f"{world.url}/query/").status == 403  # the back office stays closed
    page.goto(f"{world.url}/portal/")

    # three agencies act: the land office closes, the tax bureau accepts, motor vehicles receives
    for agency, steps in (("land", ("assign", "accept", "process", "close")), ("tax", ("assign", "accept")),
                          ("motor", ())):  # fmt: skip
        code = agency.upper()
        sup = api_token(client, f"supervisor.{agency}")
        opened = client.get(f"/api/v1/dispatches/{dispatches[code]}", headers=bearer(sup)).json["result"]
        for step in steps:
            han = api_token(client, f"handler.{agency}")
            token, body = (sup, {}) if step in ("assign", "close") else (han, {})
            if step == "assign":
                body = {"handler": f"handler.{agency}", "version": opened["version"]}
            if step == "process":
                body = {"result": "已更新地址。", "control_type": "closed"}
            r = act(client, token, dispatches[code], step, **body)
            assert r.status_code == 200, r.json
    page.click("text=我的案件")
    page.wait_for_url("**/portal/cases/")
    assert case["case_no"] in page.inner_text("#cases")
    accessible(page, axe_source)
    shot(page, "2-cases-zh")
    page.click(f"text={case['case_no']}")
    page.wait_for_url(f"**/portal/cases/{case['case_no']}")
    table = page.inner_text("#dispatches")
    rows = {line.split("\t")[0]: line.split("\t")[1] for line in table.splitlines()[1:]}
    assert rows == {"示範縣地政事務所": "已結", "示範縣地方稅務局": "已受理", "交通部公路局示範監理站": "已收件"}
    assert "handler.land" not in page.content() and "supervisor" not in page.content()
    assert page.locator("#withdraw").count() == 0  # accepted: no withdrawal
    accessible(page, axe_source)
    shot(page, "3-case-zh")
    missing = page.goto(f"{world.url}/portal/cases/1151203-999999")
    assert missing.status == 404
    accessible(page, axe_source)

    # a tax clerk looks wang up at the counter (the back office, same test)
    r = client.post("/api/v1/query/run", headers=bearer(api_token(client, "clerk")),
                    json={"form": world.form, "case_no": "1151203-0042", "reason": "", "business_item": "TAX-CHECK",
                          "params": {"id_no": wang["id_number"]}})  # fmt: skip
    assert r.status_code == 200, r.json
    query_id = r.json["query_id"]
    page.goto(f"{world.url}/portal/accesses/")
    entry = page.inner_text(f"#access-{query_id}")
    assert "示範縣地方稅務局" in entry and "clerk" not in entry and "1151203-0042" not in entry
    accessible(page, axe_source)
    shot(page, "4-accesses-zh")
    page.fill(f"#note-{query_id}", "我最近沒有到稅務局辦理任何事。")
    page.click(f"#flag-{query_id}")
    page.wait_for_load_state("networkidle")
    assert "稽核人員" in page.inner_text(f"#access-{query_id}")
    accessible(page, axe_source)
    shot(page, "5-flagged-zh")

    # the tax bureau's Auditor answers on the back office's page
    staff = browser.new_page(viewport={"width": 1200, "height": 900}, locale="zh-TW")
    staff.goto(f"{world.url}/login/")
    staff.fill("input[name=username]", "auditor.tax")
    staff.fill("input[name=password]", DEMO_PASSWORD)
    staff.click("input[type=submit]")
    staff.wait_for_load_state("networkidle")
    staff.goto(f"{world.url}/accessflags/")
    card = staff.locator(".panel", has_text="我最近沒有到稅務局辦理任何事")
    assert "clerk" in card.inner_text() and "1151203-0042" in card.inner_text()
    card.locator("textarea").fill("本局依房屋稅籍查核案 1151203-0042 查詢，經查屬實，特此說明。")
    card.locator("button[type=submit]").click()
    staff.wait_for_load_state("networkidle")
    shot(staff, "6-auditor-answers")
    staff.close()

    page.reload()
    assert "經查屬實" in page.inner_text(f"#access-{query_id}")
    accessible(page, axe_source)
    shot(page, "7-answer-zh")

    # in English, through the portal's own language switch
    page.click("a[href='/lang/en']")
    page.wait_for_load_state("networkidle")
    page.goto(f"{world.url}/portal/accesses/")
    assert "Who read my data" in page.inner_text("h1")
    accessible(page, axe_source)
    shot(page, "8-accesses-en")
    for path in ("/portal/", "/portal/cases/", f"/portal/cases/{case['case_no']}"):
        page.goto(f"{world.url}{path}")
        accessible(page, axe_source)
    shot(page, "9-case-en")
    page.close()
