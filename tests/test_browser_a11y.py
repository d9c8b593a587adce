"""Accessible to every clerk (issue 18, item 10): axe-core (npm, tests/package.json) over every
page of every demo role's menu, the main pages behind them (a show and an edit page, a case,
a dispatch, a query form and its result, a new transfer) and the public pages (password and
card sign-in, the verify page, error pages, a survey link, the citizens' portal), at desktop
(1280x800) and phone (390x844) sizes, WCAG 2.0/2.1 A and AA: no serious or critical violation.

One chromium, one context per role; each page is loaded once and checked at both sizes.
Every finding names the page, the size, the rule and the elements. A summary of the pages
checked and passing goes to tests/artifacts/a11y-summary.txt; screenshots of a few pages to
tests/artifacts/a11y-*.png."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest

from tests.conftest import ARTIFACTS, DEMO_PASSWORD, api_token, bearer
from tests.test_menus import ROLES, menu_links
from tests.test_notify import act, register

AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
RUN_AXE = (
    "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})"
    ".then(r => r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')"
    ".map(v => ({id: v.id, impact: v.impact, targets: v.nodes.slice(0, 5).map(n => n.target.join(' '))})))"
)
# pages whose screenshots (desktop and phone) a person looks at
SHOTS = {"/login/", "/notify/", "/query/history/"}
SUMMARY: dict[str, bool] = {}
SECONDS: dict[str, float] = {}


@pytest.fixture(scope="module")
def axe_source() -> str:
    assert AXE.exists(), "axe-core is missing: run `npm ci --prefix tests` (test.sh does)"
    return AXE.read_text()


@pytest.fixture(scope="module")
def world(live_app):
    """A case registered by the household office (its land-office dispatch opened by the
    supervisor), and a tax clerk's query with its verification code."""
    client = live_app.app.test_client()
    notifier = api_token(client, "notifier")
    cats = client.get("/api/v1/categories/", headers=bearer(notifier)).json["result"]
    address = next(c for c in cats if c["sub_item"] == "地址變更")
    case = register(client, notifier, address["id"]).json
    dispatch = next(d["id"] for d in case["result"]["dispatches"] if d["agency"]["code"] == "LAND")
    supervisor = api_token(client, "supervisor.land")
    opened = client.get(f"/api/v1/dispatches/{dispatch}", headers=bearer(supervisor)).json["result"]
    act(client, supervisor, dispatch, "assign", handler="handler.land", version=opened["version"])
    clerk = api_token(client, "clerk")
    forms = client.get("/api/v1/query/forms", headers=bearer(clerk)).json["result"]
    form = forms[0]
    params = {i["name"]: "A123456789" for i in form["inputs"] if i.get("required")}
    run = client.post("/api/v1/query/run", headers=bearer(clerk), json={
        "form": form["code"], "case_no": "1151203-0042", "reason": "", "params": params,
        "business_item": (form.get("business_items") or [{}])[0].get("code", ""),
    })  # fmt: skip
    query = run.json if run.status_code == 200 else {}
    return {"case_no": case["case_no"], "dispatch": dispatch, "form": form["code"], "query": query}


def check(page, axe_source: str, path: str, findings: list[str]) -> None:
    """axe-core over the page as loaded, at desktop then phone size (the page's CSP stays as it is:
    the script goes in through the DevTools protocol)."""
    ok = True
    for name, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.wait_for_timeout(50)  # let the layout settle at the new width
        if page.evaluate("() => typeof axe === 'undefined'"):
            page.evaluate(axe_source)
        for v in page.evaluate(RUN_AXE, TAGS):
            ok = False
            findings.append(f"{path} [{name}] {v['impact']} {v['id']}: {', '.join(v['targets'])}")
        if path in SHOTS:
            slug = path.strip("/").replace("/", "-") or "home"
            page.screenshot(path=str(ARTIFACTS / f"a11y-{slug}-{name}.png"), full_page=True)
    page.set_viewport_size(DESKTOP)
    SUMMARY[path] = SUMMARY.get(path, True) and ok


def visit(page, base: str, path: str, axe_source: str, findings: list[str], status: int | None = 200) -> None:
    started = time.monotonic()
    answer = page.goto(base + path)
    page.wait_for_load_state("load")
    if status is not None:
        assert answer.status == status, f"{path}: HTTP {answer.status}"
    check(page, axe_source, path, findings)
    SECONDS[path] = SECONDS.get(path, 0.0) + time.monotonic() - started


def sign_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_load_state("load")


def extra_pages(username: str, world: dict) -> list[str]:
    """The main pages behind a role's menu (show, edit, case, dispatch, query form and result)."""
    if username == "admin":
        return ["/agencyview/show/1", "/agencyview/edit/1", "/users/show/1", "/users/edit/2"]
    if username == "notifier":
        return [f"/notify/case/{world['case_no']}", "/notify/new"]
    if username in ("supervisor.land", "handler.land"):
        return [f"/notify/dispatch/{world['dispatch']}", f"/notify/case/{world['case_no']}"]
    if username == "clerk":
        pages = [f"/query/form/{world['form']}"]
        if world["query"].get("query_id"):
            pages.append(f"/query/result/{world['query']['query_id']}")
        return pages
    if username == "transfer.tax":
        return ["/transfer/new"]
    return []


def report(findings: list[str], who: str) -> None:
    assert not findings, f"{who}: {len(findings)} serious or critical axe-core violations:\n" + "\n".join(findings)


@pytest.mark.browser
@pytest.mark.parametrize("username", ROLES)
def test_every_page_of_the_roles_menu_passes_axe_core_at_desktop_and_phone_sizes(
    live_app, world, browser, axe_source, username
):
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport=DESKTOP, locale="zh-TW")
    page = context.new_page()
    sign_in(page, live_app.url, username)
    links = menu_links(page.content())
    assert links, f"{username} sees no menu"
    findings: list[str] = []
    check(page, axe_source, "/", findings)
    for path in [*links, *extra_pages(username, world)]:
        visit(page, live_app.url, path, axe_source, findings)
    context.close()
    report(findings, username)


@pytest.mark.browser
def test_the_public_pages_pass_axe_core_at_desktop_and_phone_sizes(live_app, world, browser, axe_source):
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport=DESKTOP, locale="zh-TW")
    page = context.new_page()
    base, findings = live_app.url, []
    code = world["query"].get("verification_code")
    for path, status in (("/login/", 200), ("/signin/card/", 200), ("/verify/", 200),
                         (f"/verify/{code}" if code else "/verify/?code=0000", None),
                         ("/verify/?code=XXXX-XXXX", None), ("/no-such-page", 404),
                         ("/survey/no-such-invitation", None)):  # fmt: skip
        visit(page, base, path, axe_source, findings, status)
    context.close()
    report(findings, "public pages")


@pytest.mark.browser
def test_a_citizens_portal_pages_pass_axe_core_at_desktop_and_phone_sizes(live_app, world, browser, axe_source):
    from tests.cards import responders, sign_pkcs7

    responders()  # the card PKI's OCSP and CRL, which the sign-in checks
    context = browser.new_context(viewport=DESKTOP, locale="zh-TW")
    page = context.new_page()
    base, findings = live_app.url, []
    page.goto(f"{base}/signin/card/")
    nonce = page.request.post(f"{base}/signin/card/challenge").json()["nonce"]
    signature = base64.b64encode(sign_pkcs7("citizen-wang", nonce.encode())).decode()
    answer = page.request.post(f"{base}/signin/card/", form={"signature": signature})
    assert answer.ok, answer.status
    visit(page, base, "/signin/card/register", axe_source, findings)
    page.request.post(f"{base}/signin/card/register", form={"id_number": "A123456789", "name": "王小明"})
    for path, status in (("/portal/", 200), ("/portal/cases/", 200), (f"/portal/cases/{world['case_no']}", 200),
                         ("/portal/accesses/", 200), ("/portal/apply/", 200), ("/portal/no-such-page", 404)):  # fmt: skip
        visit(page, base, path, axe_source, findings, status)
    context.close()
    report(findings, "citizen portal")


@pytest.mark.browser
def test_the_phone_menu_button_the_skip_link_and_the_page_language_work(live_app, browser):
    """What axe-core cannot see: the named phone menu button opens the menu and says so, the
    skip link takes the keyboard to the content, a show page holds FAB's dialogs once, and the
    page's language follows the language menu."""
    context = browser.new_context(viewport=PHONE, locale="zh-TW")
    page = context.new_page()
    sign_in(page, live_app.url, "admin")
    assert page.get_attribute("html", "lang") == "zh-Hant-TW"
    toggle = page.get_by_role("button", name="選單")
    assert toggle.get_attribute("aria-expanded") == "false" and not page.is_visible("#platform-navbar")
    toggle.click()
    page.wait_for_function("() => document.querySelector('.navbar-toggle').getAttribute('aria-expanded') === 'true'")
    assert page.is_visible("#platform-navbar") and "組織管理" in page.inner_text("#platform-navbar")
    page.goto(f"{live_app.url}/agencyview/show/1")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.className") == "skip-link"
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"
    ids = page.evaluate("() => Array.from(document.querySelectorAll('[id]'), e => e.id)")
    assert ids.count("modal-confirm") == 1 and ids.count("modal-alert") == 1, "FAB's dialogs twice on a show page"
    page.goto(f"{live_app.url}/lang/en")
    page.goto(f"{live_app.url}/roles/list/")
    assert page.get_attribute("html", "lang") == "en"
    assert page.get_attribute(".action_check_all", "aria-label") == "Select all rows"
    page.set_viewport_size(DESKTOP)
    page.screenshot(path=str(ARTIFACTS / "a11y-roles-en-desktop.png"))
    context.close()


@pytest.mark.browser
def test_a_link_inside_a_sentence_on_the_dispatch_page_is_underlined(live_app, world, browser):
    """The dispatch page's "see the case" link sat in its line by colour alone (WCAG 1.4.1), which
    axe-core flags only in longer text: its underline is checked here."""
    context = browser.new_context(viewport=DESKTOP, locale="zh-TW")
    page = context.new_page()
    sign_in(page, live_app.url, "supervisor.land")
    page.goto(f"{live_app.url}/notify/dispatch/{world['dispatch']}")
    link = page.locator("a[href$='#case-attachments']")
    assert "underline" in link.evaluate("a => getComputedStyle(a).textDecorationLine")
    context.close()


def test_zz_write_the_summary():
    """The figures of this run: pages checked and passing (read by a person, not asserted)."""
    if not SUMMARY:
        pytest.skip("no page was checked")
    passing = sorted(p for p, ok in SUMMARY.items() if ok)
    failing = sorted(p for p, ok in SUMMARY.items() if not ok)
    ARTIFACTS.mkdir(exist_ok=True)
    text = [f"{len(passing)} of {len(SUMMARY)} pages pass axe-core (serious/critical, WCAG 2.0/2.1 A+AA)"]
    text += [f"FAIL {p}" for p in failing] + [f"pass {p}" for p in passing]
    text += [f"{s:6.1f} s {p}" for p, s in sorted(SECONDS.items(), key=lambda i: -i[1])]
    (ARTIFACTS / "a11y-summary.txt").write_text("\n".join(text) + "\n")
    print(text[0])
