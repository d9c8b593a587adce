"""Every menu entry a role is shown opens for that role: no link to a page
that answers 403, 404 or FAB's "access denied" bounce."""

import re

import pytest

from tests.conftest import login

ROLES = ["admin", "designer", "clerk", "notifier", "supervisor.land", "handler.land", "transfer.tax", "manager",
         "auditor"]  # fmt: skip


def menu_links(html: str) -> list[str]:
    """The links of the navigation bar's menus (not the language or user menus)."""
    nav = re.search(r'<ul class="nav navbar-nav">(.*?)</ul>\s*<ul class="nav navbar-nav navbar-right">', html, re.S)
    assert nav, "no navigation bar"
    return sorted(set(re.findall(r'href="(/[^"#]*)"', nav.group(1))))


@pytest.mark.parametrize("username", ROLES)
def test_every_menu_entry_opens_for_the_role_that_sees_it(app, username):
    client = app.test_client()
    home = login(client, username)
    links = menu_links(home.text)
    assert links, f"{username} sees no menu"
    broken = []
    for link in links:
        answer = client.get(link, follow_redirects=True)
        denied = "Access is Denied" in answer.text or "拒絕存取" in answer.text or "沒有權限" in answer.text
        if answer.status_code != 200 or denied:
            broken.append((link, answer.status_code, "denied" if denied else ""))
    assert not broken, f"{username}: {broken}"
