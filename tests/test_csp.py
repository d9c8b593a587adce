"""The Content-Security-Policy allows no inline script but the page's own: every
screen's inline scripts (ours and Flask-AppBuilder's) carry the nonce its header
names, a fresh one per response, and no element carries an inline event handler
or a javascript: address. (The browser stories check the same in chromium.)"""

import re
from html.parser import HTMLParser

import pytest

from tests.conftest import login


class Scripts(HTMLParser):
    """What in a page would run as inline script."""

    def __init__(self):
        super().__init__()
        self.inline_nonces: list[str | None] = []  # one per <script> without src
        self.handlers: list[str] = []  # onclick=..., href="javascript:..."

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script" and "src" not in attrs:
            self.inline_nonces.append(attrs.get("nonce"))
        for name, value in attrs.items():
            if name.startswith("on"):
                self.handlers.append(f"<{tag} {name}=...>")
            elif name in ("href", "src", "action", "formaction") and (value or "").strip().lower().startswith(
                "javascript:"
            ):
                self.handlers.append(f"<{tag} {name}={value!r}>")


def script_src(response) -> str:
    policy = response.headers["Content-Security-Policy"]
    return re.search(r"script-src ([^;]*)", policy).group(1).split()


def assert_scripts_only_by_nonce(response, path: str) -> None:
    assert response.status_code == 200, (path, response.status_code)
    sources = script_src(response)
    assert "'unsafe-inline'" not in sources and "'unsafe-eval'" not in sources, (path, sources)
    page = Scripts()
    page.feed(response.text)
    assert not page.handlers, (path, page.handlers)
    nonces = [s[len("'nonce-") : -1] for s in sources if s.startswith("'nonce-")]
    if page.inline_nonces:
        assert len(nonces) == 1 and len(nonces[0]) >= 22, (path, sources)  # 128 bits or more
        assert set(page.inline_nonces) == {nonces[0]}, (path, page.inline_nonces, nonces)


ADMIN_SCREENS = [
    "/",
    "/agencyview/list/",
    "/agencyview/add",
    "/businessitemview/list/",
    "/users/list/",
    "/users/add",
    "/roles/list/",
    "/auditeventview/list/",
    "/datasourceview/list/",
    "/datasourceview/add",
    "/queryformview/list/",
    "/formdesigner/",
    "/questionnaireview/list/",
    "/questionnaireview/add",
    "/notificationcategoryview/list/",
    "/outboxview/list/",
    "/notify/",
    "/transfer/",
    "/reports/",
    "/reports/weekly-queries/",
    "/survey-stats/",
    "/users/userinfo/",
    "/resetmypassword/form",
    "/swagger/v1",
]


def test_the_policy_names_no_unsafe_inline_script_and_a_fresh_nonce_per_page(client):
    first, second = client.get("/login/"), client.get("/login/")
    assert_scripts_only_by_nonce(first, "/login/")
    assert "'self'" in script_src(first)
    assert script_src(first) != script_src(second)  # a new nonce each time
    api = client.get("/api/v1/agencies/")  # no page, no nonce: only files of our own
    assert script_src(api) == ["'self'"]


def test_every_admin_screen_runs_inline_scripts_only_with_its_nonce(client):
    login(client, "admin")
    for path in ADMIN_SCREENS:
        assert_scripts_only_by_nonce(client.get(path), path)
    client.get("/logout/")


@pytest.mark.parametrize(
    "username, screens",
    [
        ("clerk", ["/query/", "/query/history/"]),
        ("notifier", ["/notify/", "/notify/new"]),
        ("transfer.social", ["/transfer/", "/transfer/new", "/transfer/certificates"]),
        ("manager", ["/reports/", "/survey-stats/"]),
    ],
)
def test_every_work_screen_runs_inline_scripts_only_with_its_nonce(client, username, screens):
    login(client, username)
    for path in screens:
        assert_scripts_only_by_nonce(client.get(path), path)
    if username == "clerk":
        forms = re.findall(r'href="(/query/form/[^"]+)"', client.get("/query/").text)
        assert forms
        for path in forms[:3]:
            assert_scripts_only_by_nonce(client.get(path), path)
    client.get("/logout/")


def test_public_pages_run_no_inline_script_without_the_nonce(client):
    for path in ("/login/", "/verify/"):
        assert_scripts_only_by_nonce(client.get(path), path)
