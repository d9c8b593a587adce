"""The printout: watermark, QR code and the A4 PDF (read back with poppler-utils).

These tests need no database: a bare Flask app supplies ``current_app`` for the
verify address. The first page is rendered to tests/artifacts/printout-page1.png
for a human to look at.
"""

from __future__ import annotations

import datetime
import re
import subprocess
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import pytest
from flask import Flask
from PIL import Image

from app.services import printout
from app.services.pdf import fonts

ARTIFACTS = Path(__file__).parent / "artifacts"
BASE_URL = "https://query.example.gov.tw/"
CODE = "ANX0-PJ6F-WGH7-JSCZ-R"
WATERMARK = "示範縣地方稅務局 clerk 115/11/26 23:04 限公務使用"


def make_snapshot(rows: int = 12, **extra) -> dict:
    snapshot = {
        "query_id": 12,
        "form": "land.parcel",
        "title": "土地標示部＋所有權部",
        "at": "2026-11-26T15:04:05Z",
        "agency": "示範縣地方稅務局",
        "user": "clerk",
        "case_no": "1151126-0001",
        "reason": "地價稅查核",
        "business_item": "TAX-LAND",
        "sections": [
            {
                "title": "土地標示部",
                "display": "table",
                "columns": [
                    {"name": "parcel_no", "label": "地號"},
                    {"name": "section", "label": "段小段"},
                    {"name": "area", "label": "面積"},
                    {"name": "zone", "label": "使用分區"},
                    {"name": "note", "label": "其他登記事項"},
                ],
                "rows": [
                    [
                        f"0018{i:04d}",
                        "中正段",
                        f"{100 + i}.45 m²",
                        "住宅區",
                        "重測前：中正段 123-4 地號" if i % 3 else None,
                    ]
                    for i in range(rows)
                ],
                "error": None,
                "truncated": rows > 100,
                "source": "地政系統",
            },
            {
                "title": "土地所有權部",
                "display": "fields",
                "columns": [
                    {"name": "owner", "label": "所有權人"},
                    {"name": "id_no", "label": "統一編號"},
                    {"name": "share", "label": "權利範圍"},
                    {"name": "address", "label": "住址"},
                ],
                "rows": [["王＊明", "A12＊＊＊＊789", "1/2", "示範縣中正市民生路一段 100 號"], ["陳＊華", None, "1/2"]],
                "error": None,
                "truncated": False,
                "source": "地政系統",
            },
            {
                "title": "地籍圖",
                "display": "map",
                "columns": [],
                "rows": [],
                "error": "來源未回應",
                "truncated": False,
                "source": "地籍圖資系統",
            },
        ],
    }
    snapshot.update(extra)
    return snapshot


ENTRY = SimpleNamespace(
    id=12,
    verification_code=CODE,
    valid_until=datetime.datetime(2026, 12, 26, 15, 4, 5),
    snapshot_sha256="3f2a" * 16,
)


@pytest.fixture(scope="module")
def flask_app():
    app = Flask(__name__)
    app.config["PUBLIC_BASE_URL"] = BASE_URL
    with app.app_context():
        yield app


@pytest.fixture(scope="module")
def pdf_path(flask_app, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("printout") / "printout.pdf"
    path.write_bytes(printout.render_pdf(ENTRY, make_snapshot()))
    return path


@pytest.fixture(scope="module")
def long_pdf_path(flask_app, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("printout") / "printout-500.pdf"
    path.write_bytes(printout.render_pdf(ENTRY, make_snapshot(rows=500)))
    return path


def run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=60).stdout


def text_of(path: Path, first: int | None = None, last: int | None = None) -> str:
    """pdftotext in content-stream order (the diagonal watermark would scatter layout mode)."""
    pages = ["-f", str(first), "-l", str(last or first)] if first else []
    return run("pdftotext", "-raw", *pages, str(path), "-")


def squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)


def page_count(path: Path) -> int:
    return int(re.search(r"^Pages:\s+(\d+)", run("pdfinfo", str(path)), re.M).group(1))


# --- small helpers ---------------------------------------------------------------------


def test_watermark_text_is_in_taipei_time_and_roc_year():
    assert printout.watermark_text(make_snapshot()) == WATERMARK
    # 16:30 UTC on New Year's Eve is already the next day (and year) in Taipei.
    late = make_snapshot(at="2026-12-31T16:30:00Z")
    assert printout.watermark_text(late) == "示範縣地方稅務局 clerk 116/01/01 00:30 限公務使用"
    assert printout.watermark_text({"agency": "甲機關", "user": "u"}) == "甲機關 u 限公務使用"


def test_verify_url_uses_public_base_url_or_the_default():
    app = Flask(__name__)
    with app.app_context():
        assert printout.verify_url(CODE) == f"https://127.0.0.1:8443/verify/{CODE}"
    app.config["PUBLIC_BASE_URL"] = "https://example.gov.tw/"
    with app.app_context():
        assert printout.verify_url(CODE) == f"https://example.gov.tw/verify/{CODE}"


def test_qr_data_uri_is_a_well_formed_svg_of_the_verify_url(flask_app):
    uri = printout.qr_data_uri(CODE)
    assert uri.startswith("data:image/svg+xml")
    header, _, payload = uri.partition(",")
    svg = ET.fromstring(urllib.parse.unquote(payload))
    assert svg.tag.endswith("svg")
    titles = [el.text for el in svg.iter() if el.tag.endswith("title")]
    assert titles == [f"https://query.example.gov.tw/verify/{CODE}"]
    assert any(el.tag.endswith("path") for el in svg.iter())  # the modules


# --- the PDF ----------------------------------------------------------------------------


def test_pdf_holds_real_chinese_text(pdf_path):
    data = pdf_path.read_bytes()
    assert data.startswith(b"%PDF")
    text = text_of(pdf_path)
    for expected in ("土地標示部＋所有權部", "限公務使用", CODE, "查詢機關", "查詢人員", "案號", "事由", "業務項目"):
        assert expected in text, expected
    assert "示範縣地方稅務局" in text and "地價稅查核" in text and "1151126-0001" in text
    assert "115/11/26 23:04:05" in text  # header time: Taipei, ROC year
    assert "重測前：中正段 123-4 地號" in text  # a table cell
    assert "所有權人 王＊明" in text  # a fields section: label beside value
    assert "來源未回應" in text  # a failed source
    assert f"驗證網址：https://query.example.gov.tw/verify/{CODE}" in text
    assert "SHA-256：3f2a3f2a3f2a3f2a…" in text
    assert "驗證期限：115/12/26 23:04" in text
    pages = page_count(pdf_path)
    assert f"第 1 頁／共 {pages} 頁" in text and f"第 {pages} 頁／共 {pages} 頁" in text
    assert squeezed(WATERMARK) in squeezed(text)


def test_pdf_metadata_and_embedded_font(pdf_path):
    info = run("pdfinfo", str(pdf_path))
    assert re.search(r"^Title:\s+土地標示部＋所有權部", info, re.M)
    assert re.search(r"^Author:\s+示範縣地方稅務局", info, re.M)
    assert re.search(r"^Page size:.*\(A4\)", info, re.M)
    if printout.cjk_font() == printout.FONT_NAME:  # a TrueType CJK font was found: subset and embedded
        fonts = [line.split() for line in run("pdffonts", str(pdf_path)).splitlines()[2:]]
        cjk = [f for f in fonts if "+" in f[0]]
        assert cjk, fonts
        assert cjk[0][-5:-3] == ["yes", "yes"]  # emb, sub


def test_first_page_png_is_not_blank(pdf_path):
    ARTIFACTS.mkdir(exist_ok=True)
    png = ARTIFACTS / "printout-page1.png"
    png.unlink(missing_ok=True)
    run("pdftoppm", "-r", "60", "-png", "-f", "1", "-l", "1", "-singlefile", str(pdf_path), str(png.with_suffix("")))
    assert png.exists() and png.stat().st_size > 20_000
    with Image.open(png) as image:
        grey = image.convert("L")
        assert abs(grey.width - 496) <= 2 and abs(grey.height - 702) <= 2  # A4 at 60 dpi
        histogram = grey.histogram()
    total = sum(histogram)
    dark = sum(histogram[:128])  # text, rules, QR modules
    marked = total - histogram[255]
    assert dark / total > 0.004
    assert marked / total > 0.15


def test_the_qr_code_on_the_printed_page_scans_to_the_verification_page(pdf_path, tmp_path):
    """Read back from the rendered page by a real decoder (zxing-cpp), as a
    citizen's phone would read the paper."""
    import zxingcpp

    png = tmp_path / "page1.png"
    run("pdftoppm", "-r", "150", "-png", "-f", "1", "-l", "1", "-singlefile", str(pdf_path), str(png.with_suffix("")))
    with Image.open(png) as image:
        found = zxingcpp.read_barcodes(image.convert("L"))
    assert [(b.format.name, b.text) for b in found] == [("QRCode", f"https://query.example.gov.tw/verify/{CODE}")]


def test_500_rows_span_pages_each_with_watermark_and_footer(long_pdf_path):
    pages = page_count(long_pdf_path)
    assert pages >= 8
    last = text_of(long_pdf_path, pages)
    assert f"第 {pages} 頁／共 {pages} 頁" in last
    assert CODE in last and "本文件限公務使用" in last
    assert squeezed(WATERMARK) in squeezed(last)
    assert "00180499" in last  # the last row
    assert "資料筆數超過上限" in last  # the truncated note
    assert "地號 段小段 面積 使用分區 其他登記事項" in last or "土地所有權部" in last
    # Every page: its own footer, the watermark, and the table header repeated.
    texts = text_of(long_pdf_path).split("\f")[:pages]
    assert len(texts) == pages
    for number, text in enumerate(texts, start=1):
        assert f"第 {number} 頁／共 {pages} 頁" in text
        assert squeezed(WATERMARK) in squeezed(text)
    assert sum("地號 段小段 面積 使用分區 其他登記事項" in t for t in texts) >= pages - 1


def test_awkward_content_renders_within_the_page(flask_app, tmp_path):
    columns = [{"name": f"c{i}", "label": f"欄位{i}"} for i in range(14)]
    snapshot = make_snapshot(
        at=None,
        case_no=None,
        sections=[
            {
                "title": "長值",
                "display": "table",
                "columns": [{"name": "a", "label": "甲"}, {"name": "b", "label": "乙"}],
                "rows": [["長" * 6000, "x" * 9000], [None, None], ["只有一欄"]],
            },
            {"title": "多欄", "display": "table", "columns": columns, "rows": [[f"值{j}" * 5 for j in range(14)]] * 3},
            {"title": "標記字元", "display": "plan", "columns": columns[:2], "rows": [["<b>&amp;</b>", "a\nb\x00c"]]},
            {"title": "空的", "display": "table", "columns": [], "rows": []},
            {},
            {"display": "fields", "columns": None, "rows": None, "error": None},
        ],
    )
    path = tmp_path / "awkward.pdf"
    path.write_bytes(printout.render_pdf(ENTRY, snapshot))
    text = text_of(path)
    assert "<b>&amp;</b>" in text  # shown literally, not parsed as markup
    assert "查無資料" in text
    assert "以下省略" in text  # a huge value is capped
    # No word of the long cells pokes past the right margin.
    limit = printout.PAGE_W - printout.MARGIN_X + 1
    words = ET.fromstring(run("pdftotext", "-bbox", str(path), "-")).iter("{http://www.w3.org/1999/xhtml}word")
    long_words = [w for w in words if re.fullmatch(r"(長|x){5,}", w.text or "")]
    assert long_words
    assert max(float(w.get("xMax")) for w in long_words) <= limit


def test_empty_snapshot_and_bare_entry(flask_app, tmp_path):
    data = printout.render_pdf(SimpleNamespace(), {})
    assert data.startswith(b"%PDF")
    path = tmp_path / "empty.pdf"
    path.write_bytes(data)
    assert "沒有任何資料區段" in text_of(path)


def test_falls_back_to_the_cid_font_without_a_truetype_one(flask_app, tmp_path, monkeypatch):
    monkeypatch.setattr(fonts, "find_font_files", lambda *a, **k: {})
    fonts.register_cjk_font.cache_clear()
    try:
        assert printout.cjk_font() == printout.CID_FALLBACK
        path = tmp_path / "cid.pdf"
        path.write_bytes(printout.render_pdf(ENTRY, make_snapshot()))
        text = text_of(path)
        assert CODE in text and "土地標示部＋所有權部" in text and "查詢機關" in text
        assert re.search(r"MSung-Light\s+CID Type 0\s+UniCNS-UCS2-H", run("pdffonts", str(path)))
    finally:
        monkeypatch.undo()
        fonts.register_cjk_font.cache_clear()


def test_printouts_made_at_once_in_threads_take_turns_only_to_subset_the_font(flask_app, monkeypatch):
    """reportlab's font file subsets by moving one shared read position; two
    printouts saved at once used to corrupt each other (IndexError/KeyError)."""
    from reportlab.pdfbase.ttfonts import TTFontFile

    original = TTFontFile.makeSubset
    inside, most = [0], [0]
    guard = threading.Lock()

    def slow_subset(self, subset):
        with guard:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.05)  # lets the other threads run into the font, as a busy server does
        try:
            return original(self, subset)
        finally:
            with guard:
                inside[0] -= 1

    monkeypatch.setattr(TTFontFile, "makeSubset", slow_subset)
    fonts.register_cjk_font.cache_clear()  # register a font whose face has the spy
    try:
        made, failed = [], []

        def one():
            try:
                with flask_app.app_context():
                    made.append(printout.render_pdf(ENTRY, make_snapshot(rows=3)))
            except Exception as exc:  # noqa: BLE001 - the failure is what is counted
                failed.append(exc)

        threads = [threading.Thread(target=one) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not failed and len(made) == 4 and all(pdf.startswith(b"%PDF") for pdf in made)
        assert most[0] == 1
    finally:
        monkeypatch.undo()
        fonts.register_cjk_font.cache_clear()


# --- rare characters (難字) ---------------------------------------------------------------

RARE = ("王䶵明", "陳𠀋華", "王𠂤婷", "示範縣西林鄉䅈山村3鄰𤧛興路18號")


def test_rare_characters_of_the_household_register_print_with_a_glyph_each(flask_app, tmp_path):
    """王䶵明 and 陳𠀋華 used to print as empty boxes (AR PL UMing lacks CJK
    Extension A and B): each character is drawn in a font of the chain that has
    it, and copying the text out of the PDF gives the characters back."""
    from glyphs import font_of, missing_glyphs

    from seed_data.world import RARE_NAMES, RARE_ROAD, RARE_VILLAGE

    assert set(RARE[:3]) == set(RARE_NAMES) and RARE_VILLAGE in RARE[3] and RARE_ROAD in RARE[3]
    snapshot = make_snapshot(rows=2, title="戶籍資料 王䶵明")
    snapshot["sections"][1]["rows"] = [[name, "U1＊＊＊＊＊＊＊8", "1/3", RARE[3]] for name in RARE[:3]]
    snapshot["sections"].append(
        {"title": "地籍圖", "display": "table", "columns": ["所有權人"], "rows": [[n] for n in RARE[:3]]}
    )
    pdf = printout.render_pdf(ENTRY, snapshot)
    path = tmp_path / "rare.pdf"
    path.write_bytes(pdf)
    assert missing_glyphs(pdf, "".join(RARE) + WATERMARK) == {}
    # the characters UMing lacks came from the 全字庫 fonts (fonts-cns11643-sung), the rest from UMing
    assert font_of(pdf, "䶵") == ["TW-Sung-98_1"] and font_of(pdf, "䅈") == ["TW-Sung-98_1"]
    assert {font_of(pdf, ch)[0] for ch in "𠀋𠂤𤧛"} == {"TW-Sung-Ext-B-98_1"}
    assert font_of(pdf, "王")[0].startswith("UMing")
    text = squeezed(text_of(path))
    assert all(squeezed(item) in text for item in RARE)  # Extension B survives copying (ToUnicode)
    ARTIFACTS.mkdir(exist_ok=True)
    run("pdftoppm", "-png", "-r", "110", "-f", "1", "-l", "1", str(path), str(ARTIFACTS / "printout-rare"))


def test_without_the_font_chain_the_rare_characters_are_empty_boxes(flask_app, monkeypatch):
    """The check above can fail: with UMing alone, 䶵 and 𠀋 have no glyph."""
    from glyphs import missing_glyphs

    monkeypatch.setattr(fonts, "FALLBACK_CANDIDATES", ())
    fonts.CHAINS.clear()
    try:
        pdf = printout.render_pdf(ENTRY, make_snapshot(rows=1, title="王䶵明 陳𠀋華"))
        assert set(missing_glyphs(pdf, "王䶵明陳𠀋華")) == {"䶵", "𠀋"}
    finally:
        monkeypatch.undo()
        fonts.CHAINS.clear()


def test_the_font_chain_cuts_text_into_runs_and_markup_keeps_its_tags(flask_app):
    chain = fonts.chain_of(printout.cjk_font())
    runs = chain.runs("王䶵明 陳𠀋華")
    assert [piece for _font, piece in runs] == ["王", "䶵", "明 陳", "𠀋", "華"]
    assert runs[0][0] == runs[2][0] == chain.primary != runs[1][0] != runs[3][0]
    marked = chain.markup("<b>王䶵明</b>&amp;<br/>陳𠀋華")
    assert marked.startswith("<b>王<font face=") and "&amp;<br/>陳" in marked and marked.endswith("華")
    assert chain.missing("王䶵明陳𠀋華") == ""
    assert chain.missing("\U00030000") == "\U00030000"  # Extension G (2020): no font here has it
