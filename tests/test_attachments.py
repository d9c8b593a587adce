"""Uploaded consent forms: type from content, seal/verify, stamped copy on every page.

No platform database: a tiny Flask app gives current_app (the seal key) and Babel."""

from __future__ import annotations

import io
import json
import logging
import re
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pytest
from flask import Flask
from flask_babel import Babel
from PIL import Image, ImageDraw, ImageFile, ImageFont
from pypdf import PdfReader, PdfWriter, Transformation
from pypdf.generic import (
    ArrayObject,
    DictionaryObject,
    IndirectObject,
    NameObject,
    RectangleObject,
    StreamObject,
    TextStringObject,
)
from reportlab.lib.pagesizes import A4, A5, landscape, letter
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas

from app.services.errors import InvalidInput
from app.services.notify import attachments as att
from app.services.printout import _find_font_files, cjk_font

ARTIFACTS = Path(__file__).parent / "artifacts"
AGENCY = "示範縣東區戶政事務所"
CASE = "1151126-0001"
LINES = [AGENCY, "115/11/26 14:05", f"案號 {CASE}", "僅供跨機關通報使用"]
MB = 1024 * 1024


@pytest.fixture(autouse=True)
def flask_app():
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "test-secret-key"
    Babel(app)
    with app.app_context():
        yield app


# --- inputs made here ------------------------------------------------------------------


def _font(size: int):
    path = _find_font_files().get("uming.ttc")
    return ImageFont.truetype(path, size) if path else ImageFont.load_default(size)


def scan(width: int = 620, height: int = 877, label: str = "第 1 頁") -> Image.Image:
    """A grey 'scanned' consent form: title, text lines, a signature box."""
    image = Image.new("L", (width, height), 236)
    draw = ImageDraw.Draw(image)
    u = width / 620
    draw.text((width / 2, 60 * u), "個人資料跨機關通報同意書", font=_font(int(30 * u)), fill=25, anchor="mm")
    body = _font(int(16 * u))
    text = [
        "立同意書人　王小明　（身分證統一編號　Ａ１２３＊＊＊＊＊＊）",
        "同意示範縣東區戶政事務所將本人戶籍資料",
        "通報社會福利、衛生及勞動等相關機關，",
        "以辦理福利服務及後續追蹤事宜。",
        "本同意書僅供本案使用，不得作為其他用途。",
    ]
    for i, line in enumerate(text):
        draw.text((50 * u, (130 + 34 * i) * u), line, font=body, fill=40)
    for i in range(8):
        y = (330 + 40 * i) * u
        draw.line((50 * u, y, width - 50 * u, y), fill=150, width=max(1, int(u)))
    draw.rectangle((width - 260 * u, height - 190 * u, width - 50 * u, height - 80 * u), outline=30, width=2)
    draw.text((width - 250 * u, height - 180 * u), "立同意書人簽章", font=body, fill=40)
    draw.text((50 * u, height - 60 * u), f"中華民國 115 年 11 月 26 日　{label}", font=body, fill=40)
    return image


def image_bytes(image: Image.Image, fmt: str, **kwargs) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kwargs)
    return out.getvalue()


def png_rows(width: int, height: int, mode: str = "L") -> bytes:
    """A PNG of width x height written a row at a time (the pixels are never all in
    memory): a grey or RGBA gradient across each row, which compresses to little."""
    channels, colour_type = {"L": (1, 0), "RGBA": (4, 6)}[mode]

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\x00" + bytes(((x * 255) // max(1, width - 1)) for x in range(width) for _ in range(channels))
    packer = zlib.compressobj(6)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0))
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )


def three_page_pdf() -> bytes:
    """Page 1: an A4 scan; 2: landscape Letter with a media box off the origin;
    3: A5 shown rotated by 90 degrees."""
    out = io.BytesIO()
    c = Canvas(out)
    font = cjk_font()
    c.setPageSize(A4)
    c.drawImage(ImageReader(scan(1240, 1754)), 0, 0, width=A4[0], height=A4[1])
    c.showPage()
    c.setPageSize(landscape(letter))
    c.setFont(font, 18)
    c.drawString(72, 500, "第二頁：橫式附件")
    c.showPage()
    c.setPageSize(A5)
    c.setPageRotation(90)
    c.setFont(font, 18)
    c.drawString(40, 500, "第三頁：旋轉 90 度")
    c.showPage()
    c.save()
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(out.getvalue())))
    page = writer.pages[1]
    page.add_transformation(Transformation().translate(50, 40))
    w, h = landscape(letter)
    page.mediabox.lower_left = (50, 40)
    page.mediabox.upper_right = (50 + w, 40 + h)
    result = io.BytesIO()
    writer.write(result)
    return result.getvalue()


def rotated_pdf() -> bytes:
    """Four A5 pages shown rotated by 0, 90, 180 and 270 degrees."""
    out = io.BytesIO()
    c = Canvas(out, pagesize=A5)
    for rotation in (0, 90, 180, 270):
        c.setPageRotation(rotation)
        c.drawString(40, 40, f"rotation {rotation}")
        c.showPage()
    c.save()
    return out.getvalue()


def js(code: str) -> DictionaryObject:
    return DictionaryObject({NameObject("/S"): NameObject("/JavaScript"), NameObject("/JS"): TextStringObject(code)})


def annotation(subtype: str, **entries) -> DictionaryObject:
    annot = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Annot"),
            NameObject("/Subtype"): NameObject(subtype),
            NameObject("/Rect"): RectangleObject([72, 72, 200, 100]),
        }
    )
    annot.update({NameObject(f"/{key}"): value for key, value in entries.items()})
    return annot


def active_pdf() -> bytes:
    """The three-page consent PDF armed as a hostile sender would: document JavaScript,
    an open action, document and page additional actions, a Launch link, a link whose
    harmless GoTo chains on to JavaScript, a form field running a script on each
    keystroke, an attached executable (document and annotation), a Screen annotation,
    a bookmark that runs JavaScript, and an XFA form."""
    from pypdf.actions import JavaScript

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(three_page_pdf())))
    writer.add_open_action(JavaScript("app.alert('document script');"))  # /Names /JavaScript
    writer.add_attachment("payload.exe", b"MZ\x90\x00 not a consent form")  # /Names /EmbeddedFiles
    root = writer.root_object
    root[NameObject("/OpenAction")] = js("app.launchURL('http://attacker.example/');")
    root[NameObject("/AA")] = DictionaryObject({NameObject("/WC"): js("app.alert('closing');")})
    xfa = StreamObject()
    xfa.set_data(b"<xdp:xdp><script>xfa.host.messageBox('xfa')</script></xdp:xdp>")
    widget = annotation("/Widget", FT=NameObject("/Tx"), T=TextStringObject("name"))
    widget[NameObject("/AA")] = DictionaryObject({NameObject("/K"): js("event.rc = true; app.alert('key');")})
    root[NameObject("/AcroForm")] = DictionaryObject(
        {NameObject("/Fields"): ArrayObject([widget]), NameObject("/XFA"): xfa}
    )
    page = writer.pages[0]
    page[NameObject("/AA")] = DictionaryObject(
        {
            NameObject("/O"): js("app.alert('page opened');"),
            NameObject("/C"): DictionaryObject(
                {NameObject("/S"): NameObject("/Launch"), NameObject("/F"): TextStringObject("cmd.exe")}
            ),
        }
    )
    goto_then_js = DictionaryObject(
        {
            NameObject("/S"): NameObject("/GoTo"),
            NameObject("/D"): ArrayObject([writer.pages[1].indirect_reference, NameObject("/Fit")]),
            NameObject("/Next"): js("app.alert('after the jump');"),
        }
    )
    embedded = StreamObject()
    embedded.set_data(b"MZ\x90\x00 another executable")
    embedded[NameObject("/Type")] = NameObject("/EmbeddedFile")
    filespec = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Filespec"),
            NameObject("/F"): TextStringObject("tool.exe"),
            NameObject("/EF"): DictionaryObject({NameObject("/F"): embedded}),
        }
    )
    page[NameObject("/Annots")] = ArrayObject(
        [
            annotation(
                "/Link", A=DictionaryObject({NameObject("/S"): NameObject("/Launch"), NameObject("/F"): filespec})
            ),
            annotation("/Link", A=goto_then_js),
            widget,
            annotation("/FileAttachment", FS=filespec),
            annotation("/Screen", A=js("app.alert('screen');")),
        ]
    )
    bookmark = writer.add_outline_item(title="同意書", page_number=0).get_object()
    bookmark[NameObject("/A")] = js("app.alert('bookmark');")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


ACTIVE_KEYS = {"/JavaScript", "/JS", "/OpenAction", "/AA", "/EmbeddedFiles", "/EF", "/EmbeddedFile", "/XFA"}
# Every action type but GoTo (a jump within the document); /S also names other things (transparency groups...).
ACTIONS = {
    "/GoToR", "/GoToE", "/Launch", "/Thread", "/URI", "/Sound", "/Movie", "/Hide", "/Named", "/SubmitForm",
    "/ResetForm", "/ImportData", "/JavaScript", "/SetOCGState", "/Rendition", "/Trans", "/GoTo3DView",
    "/RichMediaExecute",
}  # fmt: skip
ACTIVE_NAMES = {"/JavaScript", "/Launch", "/EmbeddedFile", "/FileAttachment", "/Screen", "/RichMedia", "/Movie"}


def active_content(pdf_bytes: bytes) -> list[str]:
    """Every piece of active content reachable in the document, as 'path: what'."""
    reader = PdfReader(io.BytesIO(pdf_bytes))
    found, seen = [], set()

    def walk(obj, path: str) -> None:
        if isinstance(obj, IndirectObject):
            if (obj.idnum, obj.generation) in seen:
                return
            seen.add((obj.idnum, obj.generation))
            obj = obj.get_object()
        if isinstance(obj, DictionaryObject):  # stream dictionaries included
            for key, value in obj.items():
                if key in ACTIVE_KEYS:
                    found.append(f"{path}: key {key}")
                if key == "/S" and value in ACTIONS:
                    found.append(f"{path}: action {value}")
                if key != "/Parent":
                    walk(value, f"{path}{key}")
        elif isinstance(obj, ArrayObject):
            for i, value in enumerate(obj):
                walk(value, f"{path}[{i}]")
        elif isinstance(obj, NameObject) and obj in ACTIVE_NAMES:
            found.append(f"{path}: name {obj}")

    walk(reader.trailer, "trailer")
    return found


@pytest.fixture(scope="module")
def pdf() -> bytes:
    return three_page_pdf()


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    # Stored sideways with EXIF orientation 6 (turn 90 degrees clockwise to show): upright it is portrait.
    exif = Image.Exif()
    exif[0x0112] = 6
    return image_bytes(scan().convert("RGB").rotate(90, expand=True), "JPEG", quality=80, exif=exif)


@pytest.fixture(scope="module")
def png() -> bytes:
    return image_bytes(scan().convert("RGBA"), "PNG")


@pytest.fixture(scope="module")
def tiff() -> bytes:
    first, second = scan(label="第 1 頁"), scan(label="第 2 頁").convert("1")  # a bilevel fax-like frame
    return image_bytes(first, "TIFF", save_all=True, append_images=[second])


# --- helpers ------------------------------------------------------------------------------


def run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=30).stdout


def page_texts(pdf_bytes: bytes, tmp_path: Path) -> list[str]:
    """Each page's axis-aligned text (-nodiag drops the diagonal mark: what is left is the box)."""
    path = tmp_path / f"stamped-{len(pdf_bytes)}.pdf"
    path.write_bytes(pdf_bytes)
    return [
        run("pdftotext", "-nodiag", "-f", str(n), "-l", str(n), str(path), "-")
        for n in range(1, att.page_count(pdf_bytes) + 1)
    ]


def case_number_boxes(pdf_bytes: bytes, tmp_path: Path) -> list[tuple[float, float, dict]]:
    """Per page: (shown width, shown height, bbox of the case number in the stamp box)."""
    path = tmp_path / f"bbox-{len(pdf_bytes)}.pdf"
    path.write_bytes(pdf_bytes)
    html = run("pdftotext", "-nodiag", "-bbox", str(path), "-")
    pages = []
    for page in re.finditer(r'<page width="([\d.]+)" height="([\d.]+)">(.*?)</page>', html, re.S):
        words = re.findall(
            r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">' + re.escape(CASE) + "</word>",
            page.group(3),
        )
        assert len(words) == 1, words
        box = dict(zip(("x0", "y0", "x1", "y1"), map(float, words[0])))
        pages.append((float(page.group(1)), float(page.group(2)), box))
    return pages


def assert_stamped_everywhere(stamped: bytes, pages: int, tmp_path: Path) -> None:
    assert stamped.startswith(b"%PDF-")
    assert att.page_count(stamped) == pages
    texts = page_texts(stamped, tmp_path)
    assert len(texts) == pages
    for text in texts:
        assert CASE in text and AGENCY in text and "115/11/26 14:05" in text
    for width, height, box in case_number_boxes(stamped, tmp_path):
        # Upright (horizontal) and in the top right corner of the page as shown.
        assert box["y1"] - box["y0"] < 0.3 * (box["x1"] - box["x0"])
        assert box["x0"] > width / 2 and box["y1"] < height / 4


# --- type ----------------------------------------------------------------------------------


def test_sniff_each_type_from_content(pdf, jpeg, png, tiff):
    assert att.sniff(pdf) == "application/pdf"
    assert att.sniff(jpeg) == "image/jpeg"
    assert att.sniff(png) == "image/png"
    assert att.sniff(tiff) == "image/tiff"
    assert att.sniff(b"II\x00*" + b"\x00" * 8) is None  # little-endian mark with the big-endian magic
    assert att.sniff(b"MM\x00*" + b"\x00" * 8) == "image/tiff"
    assert att.sniff(b"MZ\x90\x00") is None
    assert att.sniff(b"") is None


def test_check_upload_accepts_each_type_named_or_unnamed(pdf, jpeg, png, tiff):
    assert att.check_upload("同意書.pdf", pdf, 10 * MB) == "application/pdf"
    assert att.check_upload("同意書.JPEG", jpeg, 10 * MB) == "image/jpeg"
    assert att.check_upload("C:\\掃描\\同意書.jpg", jpeg, 10 * MB) == "image/jpeg"
    assert att.check_upload("同意書.png", png, 10 * MB) == "image/png"
    assert att.check_upload("同意書.tif", tiff, 10 * MB) == "image/tiff"
    assert att.check_upload("同意書", tiff, 10 * MB) == "image/tiff"  # no extension, no claim


def refusal(filename: str, data: bytes, max_bytes: int = 10 * MB) -> str:
    with pytest.raises(InvalidInput) as info:
        att.check_upload(filename, data, max_bytes)
    assert info.value.status == 400
    return str(info.value)


def test_a_file_that_lies_about_its_type_is_refused(png, pdf):
    assert refusal("同意書.pdf", png) == "The file name says PDF but the content is PNG."
    assert refusal("scan.tiff", pdf) == "The file name says TIFF but the content is PDF."
    assert refusal("同意書.pdf.exe", pdf) == "The file name says EXE but the content is PDF."
    # The right-to-left override trick ("同意書\u202egpj.exe" shows as "同意書exe.jpg") does not help.
    assert refusal("同意書\u202egpj.exe", pdf) == "The file name says EXE but the content is PDF."


@pytest.mark.parametrize(
    "name, data",
    [
        ("setup.exe", b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 64),
        ("同意書.zip", b"PK\x03\x04\x14\x00\x00\x00" + b"\x00" * 64),
        ("同意書.pdf", "這不是 PDF，只是文字。".encode()),
    ],
)
def test_executables_archives_and_text_are_refused(name, data):
    assert refusal(name, data) == "Only PDF, JPEG, PNG or TIFF files can be uploaded."


def test_empty_and_oversize_files_are_refused(pdf):
    assert refusal("同意書.pdf", b"") == "The file is empty."
    assert refusal("同意書.pdf", pdf + b"\x00" * MB, max_bytes=1 * MB) == "The file is larger than 1 MB."
    assert (
        refusal("同意書.pdf", b"%PDF-" + b"\x00" * 3 * MB, max_bytes=5 * MB // 2) == "The file is larger than 2.5 MB."
    )


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_damaged_files_are_refused(png, jpeg):
    assert refusal("同意書.pdf", b"%PDF-1.4 garbage") == "The PDF file is damaged and cannot be read."
    assert refusal("同意書.png", png[: len(png) // 2]) == "The image file is damaged and cannot be read."
    assert refusal("同意書.jpg", jpeg[:200]) == "The image file is damaged and cannot be read."
    assert refusal("同意書.tif", b"II*\x00" + b"\xff" * 40) == "The image file is damaged and cannot be read."


def test_an_image_bomb_is_refused_before_it_is_decoded():
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    # A PNG header that declares 20000 x 20000 pixels (400 million), with no image data behind it.
    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0))
        + chunk(b"IEND", b"")
    )
    assert (
        refusal("big.png", bomb)
        == "The image is too large to process (more than 50 million pixels, all pages counted); nothing was stored."
    )


def test_a_password_protected_pdf_is_refused(pdf):
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="AES-128")
    locked = io.BytesIO()
    writer.write(locked)
    message = refusal("同意書.pdf", locked.getvalue())
    assert message == "The PDF file is password-protected; upload it without a password."


def test_refusals_never_log_the_file_name(png, caplog):
    caplog.set_level(logging.DEBUG)
    refusal("王小明A123456789.pdf", png)
    refusal("王小明A123456789.pdf", b"%PDF-1.4 garbage")
    assert "attachment refused" in caplog.text
    assert "王小明" not in caplog.text and "A123456789" not in caplog.text


def test_safe_filename_keeps_chinese_and_drops_paths_and_control_characters():
    assert att.safe_filename("王小明 同意書.pdf") == "王小明 同意書.pdf"
    assert att.safe_filename("../../etc/passwd") == "passwd"
    assert att.safe_filename("C:\\Users\\戶政\\掃描\\同意書.tif") == "同意書.tif"
    assert att.safe_filename("同\x00意\n書\x1b.pdf") == "同意書.pdf"
    assert att.safe_filename("同意書\u202egpj.exe") == "同意書gpj.exe"
    assert att.safe_filename('a<b>:"|?*.png') == "ab.png"
    assert att.safe_filename("") == att.safe_filename("../..") == "attachment"
    long = att.safe_filename("同" * 300 + ".pdf")
    assert len(long) == 120 and long.endswith(".pdf")


# --- integrity -------------------------------------------------------------------------------


def test_seal_and_verify(pdf, flask_app):
    sha = att.digest(pdf)
    sealed = att.seal(sha)
    assert re.fullmatch(r"[0-9a-f]{64}", sha) and re.fullmatch(r"[0-9a-f]{64}", sealed)
    assert att.verify(pdf, sha, sealed)
    assert att.verify(pdf, sha.upper(), sealed.upper())

    edited = bytearray(pdf)
    edited[len(edited) // 2] ^= 0x01  # one flipped bit
    assert not att.verify(bytes(edited), sha, sealed)

    forged = att.digest(bytes(edited))  # the stored digest replaced with the edited file's...
    assert not att.verify(bytes(edited), forged, sealed)  # ...keeping the old seal
    assert not att.verify(bytes(edited), forged, "0" * 64)  # ...or with a made-up seal
    wrong_key = Flask("other")
    wrong_key.config["SECRET_KEY"] = "not-the-platform-key"
    with wrong_key.app_context():
        wrong_seal = att.seal(forged)  # ...or sealed with another key
    assert wrong_seal != att.seal(forged)
    assert not att.verify(bytes(edited), forged, wrong_seal)

    assert not att.verify(pdf, "not hex", sealed) and not att.verify(pdf, sha, "")


def test_the_seal_key_is_attachment_seal_key_when_set(pdf, flask_app):
    sha = att.digest(pdf)
    with_secret = att.seal(sha)
    flask_app.config["ATTACHMENT_SEAL_KEY"] = "a-dedicated-key"
    assert att.seal(sha) != with_secret
    assert not att.verify(pdf, sha, with_secret)
    assert att.verify(pdf, sha, att.seal(sha))


# --- stamped copy ---------------------------------------------------------------------------


def test_stamped_pdf_has_the_stamp_on_every_page(pdf, tmp_path):
    original = bytes(pdf)
    stamped = att.stamp(pdf, "application/pdf", LINES)
    assert pdf == original and att.digest(pdf) == att.digest(original)  # the original is untouched
    assert_stamped_everywhere(stamped, 3, tmp_path)
    # Each page keeps its own size and rotation.
    before, after = PdfReader(io.BytesIO(pdf)).pages, PdfReader(io.BytesIO(stamped)).pages
    for a, b in zip(before, after):
        assert list(a.mediabox) == list(b.mediabox) and a.rotation == b.rotation
    assert [p.rotation for p in after] == [0, 0, 90]

    ARTIFACTS.mkdir(exist_ok=True)
    path = tmp_path / "consent-stamped.pdf"
    path.write_bytes(stamped)
    png = ARTIFACTS / "consent-stamped.png"
    png.unlink(missing_ok=True)
    run("pdftoppm", "-r", "50", "-png", "-singlefile", str(path), str(png.with_suffix("")))
    assert png.exists() and png.stat().st_size > 10_000


def test_the_stamp_is_upright_on_pages_shown_rotated_0_90_180_270(tmp_path):
    data = rotated_pdf()
    stamped = att.stamp(data, "application/pdf", LINES)
    assert_stamped_everywhere(stamped, 4, tmp_path)


@pytest.mark.parametrize(
    "fixture, mime, pages",
    [("jpeg", "image/jpeg", 1), ("png", "image/png", 1), ("tiff", "image/tiff", 2)],
)
def test_stamped_images_become_one_a4_page_per_frame(fixture, mime, pages, request, tmp_path):
    data = request.getfixturevalue(fixture)
    original = bytes(data)
    stamped = att.stamp(data, mime, LINES)
    assert data == original
    assert_stamped_everywhere(stamped, pages, tmp_path)
    for page in PdfReader(io.BytesIO(stamped)).pages:
        assert (round(float(page.mediabox.width)), round(float(page.mediabox.height))) == tuple(map(round, A4))


def test_a_jpeg_that_needs_no_turning_is_embedded_as_it_is(tmp_path):
    data = image_bytes(scan().convert("RGB"), "JPEG", quality=80)
    stamped = att.stamp(data, "image/jpeg", LINES)
    assert b"/DCTDecode" in stamped and len(stamped) < 1.5 * len(data) + 60_000  # the JPEG itself, not re-encoded
    assert_stamped_everywhere(stamped, 1, tmp_path)


def test_stamp_refuses_content_of_another_type(png):
    with pytest.raises(ValueError):
        att.stamp(png, "application/pdf", LINES)


# --- bounded decoding ------------------------------------------------------------------------


def test_an_81_megapixel_png_is_refused_by_its_header_before_any_decoding(monkeypatch):
    # The tester's scan: 9000 x 9000 pixels in well under a megabyte (it took a worker from 292 MB to 1.4 GB).
    big = png_rows(9000, 9000)
    assert len(big) < MB
    decoded = []
    original_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda image: decoded.append(image.size) or original_load(image))
    assert (
        refusal("同意書.png", big)
        == "The image is too large to process (more than 50 million pixels, all pages counted); nothing was stored."
    )
    with pytest.raises(InvalidInput):
        att.stamp(big, "image/png", LINES)
    assert decoded == []  # refused from the header alone


def test_the_pixel_budget_is_the_operators_and_counts_every_tiff_page(flask_app, tiff):
    page = scan()  # 620 x 877 = 543,740 pixels a page
    three_pages = image_bytes(page, "TIFF", save_all=True, append_images=[page, page.convert("1")])
    flask_app.config["ATTACHMENT_MAX_PIXELS"] = 1_200_000
    assert att.check_upload("同意書.tif", tiff, 10 * MB) == "image/tiff"  # two pages: 1,087,480 pixels
    assert refusal("同意書.tif", three_pages) == (
        "The image is too large to process (more than 1.2 million pixels, all pages counted); nothing was stored."
    )
    with pytest.raises(InvalidInput):
        att.stamp(three_pages, "image/tiff", LINES)
    flask_app.config["ATTACHMENT_MAX_PIXELS"] = 500_000
    assert refusal("同意書.tif", tiff) == (
        "The image is too large to process (more than 0.5 million pixels, all pages counted); nothing was stored."
    )


def test_a_tiff_of_more_pages_than_a_form_has_is_refused_before_decoding(flask_app):
    tiny = Image.new("L", (8, 8), 255)
    many = image_bytes(tiny, "TIFF", save_all=True, append_images=[tiny] * 120)
    assert refusal("同意書.tif", many) == "The image has more than 100 pages; nothing was stored."


MEASURE = textwrap.dedent(
    """
    import json, resource, sys
    from flask import Flask
    from flask_babel import Babel
    from app.services.notify import attachments

    data = open(sys.argv[1], "rb").read()
    app = Flask("measure")
    app.config["SECRET_KEY"] = "measure"
    Babel(app)
    with app.app_context():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        mime = attachments.check_upload("scan.png", data, len(data))
        stamped = attachments.stamp(data, mime, ["示範縣東區戶政事務所", "案號 1151126-0001"])
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"before_kb": before, "after_kb": after, "stamped": len(stamped)}))
    """
)


def test_the_largest_accepted_image_is_checked_and_stamped_within_a_bounded_memory(tmp_path):
    """The worst image the budget lets in: one RGBA frame of 50 million pixels (Pillow holds
    4 bytes a pixel: 200 MB decoded). A fresh process reports its peak resident memory."""
    path = tmp_path / "largest.png"
    path.write_bytes(png_rows(5000, 10_000, mode="RGBA"))
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).parent.parent,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    peak = json.loads(done.stdout)
    grown_mb = (peak["after_kb"] - peak["before_kb"]) / 1024
    print(f"peak {peak['after_kb'] / 1024:.0f} MB, grown by {grown_mb:.0f} MB while checking and stamping")
    assert peak["stamped"] > 10_000
    assert grown_mb < 260  # one decoded frame (200 MB) and small change, never a copy of it per step


def test_a_stamped_copy_carries_no_active_content_and_the_original_is_untouched(tmp_path):
    armed = active_pdf()
    kept = bytes(armed)
    before = active_content(armed)
    for what in ("/OpenAction", "/Names/JavaScript", "/Names/EmbeddedFiles", "/AA", "/Launch", "/XFA", "/Outlines"):
        assert any(what in line for line in before), what  # the test file is armed as described
    assert att.check_upload("同意書.pdf", armed, 10 * MB) == "application/pdf"

    stamped = att.stamp(armed, "application/pdf", LINES)

    assert active_content(stamped) == []
    for token in (b"/JavaScript", b"/OpenAction", b"/Launch", b"/EmbeddedFile", b"app.alert", b"MZ\x90"):
        assert token not in stamped, token  # not even as an unreferenced object
    assert armed == kept and att.digest(armed) == att.digest(kept)  # the sealed original: byte for byte
    assert active_content(armed) == before
    # What is not active stays: every page, stamped, and the link that only jumps to page 2.
    assert_stamped_everywhere(stamped, 3, tmp_path)
    links = [a.get_object() for a in PdfReader(io.BytesIO(stamped)).pages[0].get("/Annots", [])]
    assert [(a["/Subtype"], a["/A"]["/S"]) for a in links if "/A" in a] == [("/Link", "/GoTo")]
