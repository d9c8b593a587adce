"""Traditional Chinese (Taiwan) by default, English on request, complete catalogue."""

from pathlib import Path

from babel.messages.pofile import read_po

from tests.conftest import login

PO = Path(__file__).parent.parent / "app" / "translations" / "zh_TW" / "LC_MESSAGES" / "messages.po"


def _catalog():
    with PO.open("rb") as fh:
        return read_po(fh)


def test_every_string_ours_and_fabs_has_a_taiwanese_translation():
    catalog = _catalog()
    untranslated = [m.id for m in catalog if m.id and not m.string]
    assert untranslated == []
    assert len(catalog) > 200  # FAB's own strings are in it, not only ours


def test_the_catalogue_uses_taiwan_wording_not_hong_kong_or_simplified():
    catalog = _catalog()
    text = "\n".join(m.string for m in catalog if m.id)
    for word in ("用戶", "用户", "搜索", "登录", "数据"):
        assert word not in text
    assert catalog["User Name"].string == "帳號"
    assert catalog["Search"].string == "查詢"


def test_the_login_page_speaks_traditional_chinese_by_default(client):
    r = client.get("/login/")
    assert r.status_code == 200
    assert "登入" in r.text and "帳號" in r.text and "密碼" in r.text
    assert "Sign In" not in r.text


def test_english_can_be_chosen_from_the_menu(client):
    login(client, "admin")
    r = client.get("/", follow_redirects=True)
    assert "機關" in r.text and "安全管理" in r.text
    r = client.get("/lang/en", follow_redirects=True)
    assert "Agencies" in r.text and "Security" in r.text
    client.get("/lang/zh_TW", follow_redirects=True)


def test_form_validation_messages_are_in_chinese(client):
    login(client, "admin")
    r = client.post("/agencyview/add", data={"code": "", "name": "", "kind": "other"})
    assert "此欄位是必需的" in r.text  # WTForms' zh_TW catalogue, not its Simplified one
    assert "该字段" not in r.text and "必填字段" not in r.text


def test_home_page_shows_todays_date_in_roc_form(client):
    login(client, "clerk")
    r = client.get("/")
    assert "民國1" in r.text and "clerk" in r.text
