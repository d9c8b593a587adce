"""Uploaded attachments (scanned consent forms): type check, integrity seal and
a stamped copy.

* The ORIGINAL bytes are kept untouched. Their SHA-256 is sealed with an HMAC
  under the platform key (``ATTACHMENT_SEAL_KEY``, else ``SECRET_KEY``), so
  neither an edited file nor an edited stored digest passes :func:`verify`
  without the key.
* The type comes from the content (magic bytes), never from the file name; a
  name whose extension claims another type is refused, and so is a PDF that
  pypdf cannot parse or an image that Pillow cannot decode.
* Decoding is bounded: an image's frames (every page of a TIFF) are measured
  from their headers (Pillow opens lazily) and refused over the operator's
  pixel budget (``ATTACHMENT_MAX_PIXELS``) or page limit
  (``ATTACHMENT_MAX_PAGES``) before a pixel is decoded; then one frame is
  decoded at a time.
* :func:`stamp` derives a PDF copy whose every page carries a semi-transparent
  diagonal mark and a legible box with the sending agency, the time and the
  case number (防偽戳記). Images (and every frame of a multi-page TIFF) become
  one A4 page each, at most 300 dpi (reduced a band of rows at a time). The
  copy of a PDF carries no active content (scripts, actions that run or open
  something, embedded files: see :mod:`app.services.pdf.disarm`); the
  original stays as it came.

Nothing here logs a file name: it may carry the citizen's personal data.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import io
import logging
import math
import re
import unicodedata

from flask import current_app
from flask_babel import lazy_gettext as _l
from PIL import Image, ImageSequence
from pypdf import PdfReader, PdfWriter, Transformation
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas

from app.services.errors import InvalidInput
from app.services.pdf.disarm import disarm
from app.services.pdf.text import draw_text, text_width
from app.services.printout import cjk_font

log = logging.getLogger(__name__)

ALLOWED = {
    "application/pdf": (".pdf",),
    "image/jpeg": (".jpg", ".jpeg"),
    "image/png": (".png",),
    "image/tiff": (".tif", ".tiff"),
}
LABELS = {"application/pdf": "PDF", "image/jpeg": "JPEG", "image/png": "PNG", "image/tiff": "TIFF"}
PIL_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/tiff": "TIFF"}

MAX_NAME = 120
# Defaults of ATTACHMENT_MAX_PIXELS and ATTACHMENT_MAX_PAGES (config.py): five A4 pages at
# 300 dpi, or one at 600 dpi; Pillow holds up to 4 bytes a pixel (200 MB for one such frame).
MAX_IMAGE_PIXELS = 50_000_000
MAX_IMAGE_PAGES = 100
# The stamped copy shows an image on an A4 page: 300 dpi of A4's long side is plenty.
STAMP_MAX_SIDE = 3508
STAMP_BAND_ROWS = 256  # a large frame is flattened and reduced this many rows at a time
SEAL_CONTEXT = b"attachment-seal/v1\x00"  # domain separation: the key may be SECRET_KEY

MSG_EMPTY = _l("The file is empty.")
MSG_TOO_LARGE = _l("The file is larger than %(limit)s MB.")
MSG_TYPE = _l("Only PDF, JPEG, PNG or TIFF files can be uploaded.")
MSG_MISMATCH = _l("The file name says %(claimed)s but the content is %(actual)s.")
MSG_PDF_DAMAGED = _l("The PDF file is damaged and cannot be read.")
MSG_PDF_PASSWORD = _l("The PDF file is password-protected; upload it without a password.")
MSG_IMAGE_DAMAGED = _l("The image file is damaged and cannot be read.")
MSG_IMAGE_HUGE = _l(
    "The image is too large to process (more than %(limit)s million pixels, all pages counted); nothing was stored."
)
MSG_IMAGE_PAGES = _l("The image has more than %(limit)s pages; nothing was stored.")

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
# An extension worth reading as a type claim: short, ASCII letters/digits, at least one letter
# (so "v1.2" is no claim, and a long tail such as an ID number is never echoed back).
_EXTENSION = re.compile(r"\.(?=[0-9]*[A-Za-z])[A-Za-z0-9]{1,5}")
_FORBIDDEN_IN_NAME = set('<>:"/\\|?*')


# --- type ------------------------------------------------------------------------


def sniff(data: bytes) -> str | None:
    """The MIME type from the magic bytes, or None if not one of :data:`ALLOWED`."""
    head = bytes(data[:16])
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    return None


def safe_filename(name: str) -> str:
    """A file name fit to store and show: the last path part only, without control,
    format (e.g. right-to-left override) or reserved characters; CJK is kept;
    at most 120 characters, keeping the extension."""
    text = unicodedata.normalize("NFC", str(name or ""))
    text = re.split(r"[/\\]", text)[-1]
    text = "".join(
        " " if ch.isspace() else ch
        for ch in text
        if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn") and ch not in _FORBIDDEN_IN_NAME
    )
    text = re.sub(r" {2,}", " ", text).strip(" .")
    if not text:
        return "attachment"
    if len(text) > MAX_NAME:
        stem, ext = _split_extension(text)
        text = stem[: MAX_NAME - len(ext)].rstrip(" .") + ext if len(ext) < MAX_NAME // 2 else text[:MAX_NAME]
    return text


def _split_extension(name: str) -> tuple[str, str]:
    dot = name.rfind(".")
    if dot > 0 and _EXTENSION.fullmatch(name[dot:]):
        return name[:dot], name[dot:]
    return name, ""


def check_upload(filename: str, data: bytes, max_bytes: int) -> str:
    """The content's MIME type, or :class:`InvalidInput` if the upload is empty, too
    large, not PDF/JPEG/PNG/TIFF, named as another type, or damaged."""
    size = len(data or b"")
    if size == 0:
        _refuse("empty", MSG_EMPTY)
    if size > max_bytes:
        _refuse("too large", MSG_TOO_LARGE, size=size, limit=_megabytes(max_bytes))
    mime = sniff(data)
    if mime is None:
        _refuse("unsupported type", MSG_TYPE, size=size)
    _stem, ext = _split_extension(safe_filename(filename))
    if ext and ext.lower() not in ALLOWED[mime]:
        claimed = next((LABELS[m] for m, exts in ALLOWED.items() if ext.lower() in exts), ext[1:].upper())
        _refuse("extension mismatch", MSG_MISMATCH, size=size, mime=mime, claimed=claimed, actual=LABELS[mime])
    if mime == "application/pdf":
        _open_pdf(data)
    else:
        _check_image(data, mime, size)
    return mime


def _refuse(reason: str, message, size: int | None = None, mime: str | None = None, **params):
    log.info("attachment refused: %s (size %s, type %s)", reason, size, mime)
    raise InvalidInput(message, **params)


def _megabytes(n: int) -> str:
    return f"{round(n / (1024 * 1024), 1):g}"  # 10 -> "10", 2.5 -> "2.5"


def _open_pdf(data: bytes) -> PdfReader:
    """A parsed, readable PDF; InvalidInput if damaged or locked by a password."""
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise _Locked
        pages = reader.pages
        if len(pages) == 0:
            raise ValueError("no pages")
        for page in pages:
            _ = page.mediabox, page.cropbox, page.rotation
            page.get_contents()
    except _Locked:
        _refuse("pdf password", MSG_PDF_PASSWORD, size=len(data), mime="application/pdf")
    except Exception as exc:  # pypdf raises many kinds on a broken file
        log.info("attachment pdf unreadable: %s", type(exc).__name__)
        _refuse("pdf damaged", MSG_PDF_DAMAGED, size=len(data), mime="application/pdf")
    return reader


class _Locked(Exception):
    pass


class ImageOverBudget(InvalidInput):
    """An image refused before decoding: over the pixel budget (``rule`` "pixels") or the
    page limit ("pages"); ``limit`` the operator's number, ``mime`` its type."""

    def __init__(self, message, rule: str, budget: int, mime: str, **params):
        super().__init__(message, **params)
        self.rule, self.limit, self.mime = rule, budget, mime


def _check_image(data: bytes, mime: str, size: int) -> None:
    try:
        with _open_image(data, mime) as image:
            for _frame in _decoded_frames(image):
                pass
    except _OverBudget as exc:
        log.info("attachment refused: %s (size %s, type %s)", exc.reason, size, mime)
        raise ImageOverBudget(exc.message, exc.rule, exc.value, mime, limit=exc.limit) from None
    except Exception as exc:
        log.info("attachment image unreadable: %s", type(exc).__name__)
        _refuse("image damaged", MSG_IMAGE_DAMAGED, size=size, mime=mime)


class _OverBudget(Exception):
    def __init__(self, reason: str, message, limit: str, rule: str, value: int):
        super().__init__(reason)
        self.reason, self.message, self.limit = reason, message, limit
        self.rule, self.value = rule, value  # "pixels" or "pages", and the limit as a number


def _budget() -> tuple[int, int]:
    """The operator's pixel budget (all frames together) and page limit for one image."""
    config = current_app.config
    return (
        int(config.get("ATTACHMENT_MAX_PIXELS") or MAX_IMAGE_PIXELS),
        int(config.get("ATTACHMENT_MAX_PAGES") or MAX_IMAGE_PAGES),
    )


def _too_many_pixels(budget: int) -> _OverBudget:
    return _OverBudget("image too large", MSG_IMAGE_HUGE, f"{budget / 1_000_000:g}", "pixels", budget)


def _open_image(data: bytes, mime: str) -> Image.Image:
    """The image opened lazily (headers read, no pixel decoded) and measured: every
    frame's size from its header, the sum held to the pixel budget and the frames to
    the page limit; _OverBudget otherwise. The caller closes it."""
    budget, max_pages = _budget()
    try:
        image = Image.open(io.BytesIO(data), formats=[PIL_FORMATS[mime]])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard, far above any budget, may answer first (the warning is an
        # exception only where warnings are errors, as in the tests).
        raise _too_many_pixels(budget) from exc
    try:
        _measure(image, budget, max_pages)
    except BaseException:
        image.close()
        raise
    return image


def _measure(image: Image.Image, budget: int, max_pages: int) -> None:
    if image.format in ("TIFF", "MPO"):
        # Each page has its own size; seeking reads the next page's header only.
        total, pages = 0, 0
        while True:
            pages += 1
            if pages > max_pages:
                raise _OverBudget("image too many pages", MSG_IMAGE_PAGES, str(max_pages), "pages", max_pages)
            total += image.width * image.height
            if total > budget:
                raise _too_many_pixels(budget)
            try:
                image.seek(pages)
            except EOFError:
                break
        image.seek(0)
        return
    # PNG (an animated one's frames all have the canvas size; seeking would decode) and JPEG.
    pages = getattr(image, "n_frames", 1)
    if pages > max_pages:
        raise _OverBudget("image too many pages", MSG_IMAGE_PAGES, str(max_pages), "pages", max_pages)
    if pages * image.width * image.height > budget:
        raise _too_many_pixels(budget)


def _decoded_frames(image: Image.Image):
    """Yield each frame of a measured image, decoded, one at a time (the same object,
    reloaded: use it before taking the next). A JPEG larger than the stamp needs is
    decoded straight at a reduced scale (Pillow's draft)."""
    for frame in ImageSequence.Iterator(image):
        frame.draft(None, (STAMP_MAX_SIDE, STAMP_MAX_SIDE))
        frame.load()
        yield frame


_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _page_image(frame: Image.Image) -> Image.Image:
    """A decoded frame as the stamped page shows it: 8-bit grey or RGB on white, at
    most STAMP_MAX_SIDE pixels on its longer side (a whole-number box reduction) and
    upright (its EXIF orientation applied). Made a band of rows at a time, so no
    full-size copy of a large frame is ever held beside it."""
    factor = max(1, math.ceil(max(frame.size) / STAMP_MAX_SIDE))
    band = factor * max(1, STAMP_BAND_ROWS // factor)  # whole boxes: bands join without a seam
    page = None
    for top in range(0, frame.height, band):
        part = _flat(frame.crop((0, top, frame.width, min(frame.height, top + band))))
        if factor > 1:
            part = part.reduce(factor)
        if page is None:
            page = Image.new(part.mode, (math.ceil(frame.width / factor), math.ceil(frame.height / factor)), "white")
        page.paste(part, (0, top // factor))
    orientation = frame.getexif().get(0x0112)
    return page.transpose(_ORIENTATION[orientation]) if orientation in _ORIENTATION else page


def _flat(image: Image.Image) -> Image.Image:
    """8-bit grey for grey and bilevel modes, else RGB; transparency laid on white."""
    if image.mode in ("1", "L", "I;16", "I;16B", "I;16L", "I", "F"):
        return image.convert("L") if image.mode != "L" else image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB") if image.mode != "RGB" else image


# --- integrity -------------------------------------------------------------------


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _seal_key() -> bytes:
    key = current_app.config.get("ATTACHMENT_SEAL_KEY") or current_app.config["SECRET_KEY"]
    return key if isinstance(key, bytes) else str(key).encode("utf-8")


def seal(sha256_hex: str) -> str:
    """HMAC-SHA256, under the platform key, of a SHA-256 hex digest."""
    if not isinstance(sha256_hex, str) or not _HEX64.fullmatch(sha256_hex):
        raise ValueError("not a SHA-256 hex digest")
    return hmac.new(_seal_key(), SEAL_CONTEXT + sha256_hex.lower().encode("ascii"), hashlib.sha256).hexdigest()


def verify(data: bytes, sha256_hex: str, seal_hex: str) -> bool:
    """True only if ``data`` hashes to the stored digest and the stored seal is the
    platform's seal of that digest (both compared in constant time)."""
    if not (isinstance(sha256_hex, str) and _HEX64.fullmatch(sha256_hex)):
        return False
    if not (isinstance(seal_hex, str) and _HEX64.fullmatch(seal_hex)):
        return False
    same_data = hmac.compare_digest(digest(data), sha256_hex.lower())
    same_seal = hmac.compare_digest(seal(sha256_hex), seal_hex.lower())
    return same_data and same_seal


# --- stamped copy ----------------------------------------------------------------

STAMP_INK = colors.HexColor("#b71c1c")  # seal red
MARK_INK = colors.HexColor("#8e1b1b")
MARK_ALPHA = 0.14
BOX_FILL_ALPHA = 0.72
IMAGE_MARGIN = 10 * mm


def stamp(data: bytes, mime: str, lines: list[str]) -> bytes:
    """A PDF copy of ``data`` with the stamp (``lines``: agency, time, case number...)
    on every page. ``data`` itself is never modified."""
    if mime not in ALLOWED or sniff(data) != mime:
        raise ValueError("stamp: the content is not of the given type")
    lines = [" ".join(str(line).split()) for line in lines if str(line).strip()]
    if not lines:
        raise ValueError("stamp: nothing to stamp")
    if mime == "application/pdf":
        return _stamp_pdf(bytes(data), lines)
    return _stamp_images(bytes(data), mime, lines)


def page_count(pdf_bytes: bytes) -> int:
    return len(PdfReader(io.BytesIO(pdf_bytes)).pages)


def _visible_box(page) -> tuple[float, float, float, float]:
    """The crop box (what viewers show; the media box unless set) within the media box."""
    media, crop = page.mediabox, page.cropbox
    x0, y0 = max(float(media.left), float(crop.left)), max(float(media.bottom), float(crop.bottom))
    x1, y1 = min(float(media.right), float(crop.right)), min(float(media.top), float(crop.top))
    if x1 - x0 < 1 or y1 - y0 < 1:
        x0, y0, x1, y1 = float(media.left), float(media.bottom), float(media.right), float(media.top)
    return x0, y0, x1, y1


def _placement(page) -> tuple[tuple[float, float], tuple[float, ...]]:
    """The page's size as shown (rotation applied) and the matrix mapping an upright
    overlay of that size into the page's own user space."""
    x0, y0, x1, y1 = _visible_box(page)
    w, h = x1 - x0, y1 - y0
    rotation = int(page.rotation or 0) % 360
    if rotation == 90:  # shown turned clockwise: turn the overlay counter-clockwise
        return (h, w), (0, 1, -1, 0, x1, y0)
    if rotation == 180:
        return (w, h), (-1, 0, 0, -1, x1, y1)
    if rotation == 270:
        return (h, w), (0, -1, 1, 0, x0, y1)
    return (w, h), (1, 0, 0, 1, x0, y0)


def _stamp_pdf(data: bytes, lines: list[str]) -> bytes:
    reader = _open_pdf(data)
    try:
        removed = disarm(reader)  # in the parsed objects: the copy cloned next takes none of it along
        if removed:
            log.info("attachment pdf: %d pieces of active content left out of the stamped copy", removed)
        writer = PdfWriter(clone_from=reader)
        placements = [_placement(page) for page in writer.pages]
        sizes = list(dict.fromkeys((round(w, 2), round(h, 2)) for (w, h), _m in placements))
        # One overlay page per distinct shown size, all in one PDF (the font subset once).
        buffer = io.BytesIO()
        canvas = Canvas(buffer, pageCompression=1)
        font = cjk_font()
        for w, h in sizes:
            canvas.setPageSize((w, h))
            _draw_stamp(canvas, w, h, lines, font)
            canvas.showPage()
        canvas.save()
        overlays = PdfReader(io.BytesIO(buffer.getvalue())).pages
        index = {size: i for i, size in enumerate(sizes)}
        for page, ((w, h), matrix) in zip(writer.pages, placements):
            overlay = overlays[index[(round(w, 2), round(h, 2))]]
            page.merge_transformed_page(overlay, Transformation(matrix), over=True, expand=False)
        out = io.BytesIO()
        writer.write(out)
    except InvalidInput:
        raise
    except Exception as exc:
        log.warning("attachment pdf could not be stamped: %s", type(exc).__name__)
        raise InvalidInput(MSG_PDF_DAMAGED) from exc
    return out.getvalue()


def _stamp_images(data: bytes, mime: str, lines: list[str]) -> bytes:
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pageCompression=1)
    font = cjk_font()
    try:
        as_is = mime == "image/jpeg" and _exif_orientation(data) in (None, 1)
        with _open_image(data, mime) as image:
            for frame in _decoded_frames(image):
                if as_is and frame.mode in ("L", "RGB"):  # the JPEG bytes themselves: no re-compression
                    _stamp_image_page(canvas, ImageReader(io.BytesIO(data)), frame.size, lines, font)
                else:
                    page = _page_image(frame)
                    _stamp_image_page(canvas, ImageReader(page), page.size, lines, font)
    except _OverBudget as exc:
        raise InvalidInput(exc.message, limit=exc.limit) from exc
    except Exception as exc:
        log.warning("attachment image could not be stamped: %s", type(exc).__name__)
        raise InvalidInput(MSG_IMAGE_DAMAGED) from exc
    canvas.save()
    return buffer.getvalue()


def _stamp_image_page(canvas: Canvas, source: ImageReader, size: tuple[int, int], lines: list[str], font: str):
    """One A4 page (landscape for a wide image) showing the image within the margins, stamped."""
    width, height = size
    page_w, page_h = landscape(A4) if width > height else A4
    canvas.setPageSize((page_w, page_h))
    box_w, box_h = page_w - 2 * IMAGE_MARGIN, page_h - 2 * IMAGE_MARGIN
    scale = min(box_w / width, box_h / height)
    draw_w, draw_h = width * scale, height * scale
    canvas.drawImage(source, (page_w - draw_w) / 2, (page_h - draw_h) / 2, width=draw_w, height=draw_h)
    _draw_stamp(canvas, page_w, page_h, lines, font)
    canvas.showPage()


def _exif_orientation(data: bytes) -> int | None:
    with Image.open(io.BytesIO(data)) as image:
        return image.getexif().get(0x0112)


@functools.lru_cache(maxsize=64)
def _width(text: str, font: str, size: float) -> float:
    return text_width(text, font, size)


def _draw_stamp(canvas: Canvas, w: float, h: float, lines: list[str], font: str) -> None:
    """The stamp on a page of w x h points (upright): a faint diagonal repeated mark
    over the whole page and a legible box in the top right corner, kept free of the
    mark (so the box reads cleanly, also to text extraction)."""
    box = _box_geometry(w, h, lines, font)
    _draw_mark(canvas, w, h, "\u3000".join(lines), font, keep_free=box["rect"])
    _draw_box(canvas, box, lines, font)


def _box_geometry(w: float, h: float, lines: list[str], font: str) -> dict:
    short = min(w, h)
    margin = max(6.0, short * 0.025)
    size = max(6.0, min(11.0, short / 52))
    widest = max(_width(line, font, size) for line in lines)
    limit = w * 0.6
    if widest + 2 * size > limit:  # long lines on a narrow page: smaller type, never wider than 60 %
        size = max(4.0, size * (limit - 2 * size) / widest)
        widest = max(_width(line, font, size) for line in lines)
    pad = size * 0.8
    leading = size * 1.35
    box_w = widest + 2 * pad
    box_h = leading * (len(lines) - 1) + size + 2 * pad
    left, bottom = w - margin - box_w, h - margin - box_h
    return {"rect": (left, bottom, box_w, box_h), "size": size, "pad": pad, "leading": leading}


def _draw_box(canvas: Canvas, box: dict, lines: list[str], font: str) -> None:
    """Seal-red frame and text on a nearly opaque white ground."""
    left, bottom, box_w, box_h = box["rect"]
    size, pad = box["size"], box["pad"]
    canvas.saveState()
    canvas.setFillColor(colors.white)
    canvas.setFillAlpha(BOX_FILL_ALPHA)
    canvas.setStrokeColor(STAMP_INK)
    canvas.setLineWidth(max(0.8, size / 9))
    canvas.roundRect(left, bottom, box_w, box_h, radius=size * 0.3, stroke=1, fill=1)
    canvas.setFillAlpha(1)
    canvas.setFillColor(STAMP_INK)
    canvas.setFont(font, size)
    # A space first: text extractors (poppler) may still be inside a word begun by the
    # diagonal mark or the page's own text, and would drop the first line with it.
    canvas.drawString(left + pad, bottom + pad, " ")
    y = bottom + box_h - pad - size * 0.88
    for line in lines:
        draw_text(canvas, left + pad, y, line, font, size)
        y -= box["leading"]
    canvas.restoreState()


def _draw_mark(canvas: Canvas, w: float, h: float, mark: str, font: str, keep_free) -> None:
    """``mark`` repeated in offset diagonal rows over the page, faint so the scan stays
    readable; the characters that would fall on the ``keep_free`` rectangle are left out."""
    size = max(7.0, min(12.0, min(w, h) / 50))
    step_x = _width(mark, font, size) + 4 * size
    step_y = size * 6
    angle = math.radians(30 if w <= h else 20)
    cos, sin = math.cos(angle), math.sin(angle)
    # The free rectangle, padded, in the mark's rotated frame (origin at the page centre).
    left, bottom, box_w, box_h = keep_free
    gap = size * 0.6
    corners = [
        ((x - w / 2) * cos + (y - h / 2) * sin, -(x - w / 2) * sin + (y - h / 2) * cos)
        for x, y in (
            (left - gap, bottom - gap),
            (left + box_w + gap, bottom - gap),
            (left + box_w + gap, bottom + box_h + gap),
            (left - gap, bottom + box_h + gap),
        )
    ]
    advances = [0.0]
    for ch in mark:
        advances.append(advances[-1] + _width(ch, font, size))

    canvas.saveState()
    canvas.setFont(font, size)
    canvas.setFillColor(MARK_INK)
    canvas.setFillAlpha(MARK_ALPHA)
    canvas.translate(w / 2, h / 2)
    canvas.rotate(math.degrees(angle))
    reach = (w * w + h * h) ** 0.5 / 2
    y, row = -reach, 0
    while y < reach + step_y:
        blocked = _band_span(corners, y - size * 0.3, y + size)
        x = -reach - (row % 2) * step_x / 2
        while x < reach:
            if blocked is None or x + advances[-1] <= blocked[0] or x >= blocked[1]:
                canvas.drawString(x, y, mark)
            else:  # draw what lies before and after the free rectangle
                before = [i for i in range(len(mark)) if x + advances[i + 1] <= blocked[0]]
                after = [i for i in range(len(mark)) if x + advances[i] >= blocked[1]]
                if before:
                    canvas.drawString(x, y, mark[: before[-1] + 1])
                if after:
                    canvas.drawString(x + advances[after[0]], y, mark[after[0] :])
            x += step_x
        y += step_y
        row += 1
    canvas.restoreState()


def _band_span(polygon, low: float, high: float) -> tuple[float, float] | None:
    """The horizontal extent of a convex polygon within the band low <= v <= high."""
    xs = [u for u, v in polygon if low <= v <= high]
    for (u1, v1), (u2, v2) in zip(polygon, polygon[1:] + polygon[:1]):
        for edge in (low, high):
            if v1 != v2 and min(v1, v2) <= edge <= max(v1, v2):
                xs.append(u1 + (edge - v1) * (u2 - u1) / (v2 - v1))
    return (min(xs), max(xs)) if xs else None
