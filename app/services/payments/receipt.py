"""電子收據: the receipt of a paid fee as an A4 PDF (receipt number, amount in figures and in
capital numerals, payer, collecting agency, fee item, date, verification code with its QR
code, checkable at /verify/<code> like the printouts), and what the code confirms."""

from __future__ import annotations

import io

import segno
from flask_babel import lazy_gettext as _l
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import SimpleDocTemplate, Spacer, Table, TableStyle
from sqlalchemy import select

from app.lib.rocdate import format_roc_datetime
from app.lib.twamount import capital_ntd
from app.models.notify import NotificationCase
from app.models.payments import Payment
from app.services import audit
from app.services.actors import Actor
from app.services.command import refuse, transaction
from app.services.errors import Conflict, NotFound
from app.services.payments.checkout import METHOD_LABELS, NO_PAYMENT
from app.services.pdf.fonts import cjk_font
from app.services.pdf.qr import QrFlowable
from app.services.pdf.text import Paragraph
from app.services.portal.person import person_of
from app.services.printout import verify_url
from app.services.receipts import digest

NOT_PAID = _l("A receipt is issued for a paid fee only.")


def receipt_pdf(session, actor: Actor, payment_id: int) -> tuple[str, bytes]:
    """Command: my receipt as (file name, PDF), the download audited. Raises NotFound (another's:
    audited), Conflict (not paid)."""
    person = person_of(session, actor)
    payment = None
    if person.kind == "citizen" and person.subject and isinstance(payment_id, int) and 0 < payment_id < 2**31:
        payment = session.scalar(
            select(Payment)
            .join(NotificationCase, NotificationCase.id == Payment.case_id)
            .where(Payment.id == payment_id, NotificationCase.citizen_id_hash == person.subject)
        )
    if payment is None:
        raise refuse(session, NotFound(NO_PAYMENT), actor, "payment.receipt_refused", object_type="Payment")
    if payment.state not in ("paid", "refunded") or not payment.receipt_no:
        raise Conflict(NOT_PAID)
    pdf = render(payment)
    with transaction(session):
        audit.record(session, "payment.receipt", object_type="Payment", object_id=payment.id, actor=actor,
                     detail={"receipt_no": payment.receipt_no})  # fmt: skip
    return f"receipt-{payment.receipt_no}.pdf", pdf


def render(p: Payment) -> bytes:
    font = cjk_font()
    title = ParagraphStyle("t", fontName=font, fontSize=18, leading=24, alignment=1)
    body = ParagraphStyle("b", fontName=font, fontSize=11, leading=16)
    small = ParagraphStyle("s", fontName=font, fontSize=8.5, leading=12)
    agency = p.fee_item.agency.name if p.fee_item.agency else ""
    rows = [
        ("收據號碼", p.receipt_no),
        ("繳費日期", format_roc_datetime(p.paid_at, seconds=False)),
        ("繳款人", p.case.citizen_name or ""),
        ("收費機關", agency),
        ("規費項目", p.fee_item.name),
        ("案號", p.case.case_no),
        ("金額", f"NT$ {p.amount:,}"),
        ("金額（大寫）", capital_ntd(p.amount)),
        ("繳費方式", str(METHOD_LABELS.get(p.method, p.method))),
        ("訂單編號", p.order_no),
    ]
    table = Table([[Paragraph(k, body), Paragraph(v, body)] for k, v in rows], colWidths=[35 * mm, 120 * mm])
    table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.5, "#555555"), ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                               ("BACKGROUND", (0, 0), (0, -1), "#EEEEEE")]))  # fmt: skip
    qr = QrFlowable(segno.make_qr(verify_url(p.verification_code), error="m", boost_error=False), 32 * mm)
    check = Table([[qr, Paragraph(f"驗證碼 {p.verification_code}<br/>請至 {verify_url(p.verification_code)} "
                                  f"或掃描左方 QR 碼驗證本收據。<br/>SHA-256 {digest(p)}", small)]],
                  colWidths=[36 * mm, 119 * mm])  # fmt: skip
    story = [Paragraph(f"{agency}<br/>電子收據", title), Spacer(1, 8 * mm), table, Spacer(1, 8 * mm), check]
    if p.state == "refunded":
        story += [
            Spacer(1, 4 * mm),
            Paragraph(f"本筆款項已於 {format_roc_datetime(p.refunded_at, seconds=False)} 退費。", body),
        ]
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=25 * mm, rightMargin=25 * mm, topMargin=25 * mm,
                            bottomMargin=20 * mm, title=f"電子收據 {p.receipt_no}", author=agency, lang="zh-TW")  # fmt: skip
    doc.build(story)
    return buffer.getvalue()
