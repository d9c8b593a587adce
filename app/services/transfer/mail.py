"""The e-mail a transfer step sends, queued in the step's own transaction (outbox)."""

from __future__ import annotations

import datetime

from flask import current_app

from app.lib.rocdate import format_roc_datetime
from app.models.transfer import TransferCase
from app.services import outbox


def _texts(case: TransferCase, kind: str, when: str, link: str) -> tuple[list, str, str]:
    """(people, subject, body with ``{name}``) of the notice for an uploaded payload or result."""
    if kind == "payload":
        subject = f"【機關資料傳遞】{case.sending_agency.name}傳來加密檔案（上傳編號 {case.upload_no}）"
        body = (
            f"{{name}} 您好：\n\n{case.sending_agency.name}已於 {when} 上傳「{case.item.description}」的加密檔案"
            f"（上傳編號 {case.upload_no}，{case.record_count} 筆）。\n"
            f"請登入平台下載，並以您的憑證以解密工具解密：\n{link}\n"
        )
        return [r.user for r in case.recipients], subject, body
    subject = f"【機關資料傳遞】{case.receiving_agency.name}已回傳處理結果（上傳編號 {case.upload_no}）"
    body = (
        f"{{name}} 您好：\n\n{case.receiving_agency.name}已於 {when} 回傳「{case.item.description}」的加密處理結果"
        f"（上傳編號 {case.upload_no}）。\n請登入平台下載：\n{link}\n"
    )
    return [case.sender], subject, body


def notify_upload(session, case: TransferCase, kind: str) -> None:
    """Tell the other agency's people that a payload (kind "payload") or a result arrived."""
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    when = format_roc_datetime(now, seconds=False)
    link = f"{current_app.config['PUBLIC_BASE_URL'].rstrip('/')}/transfer/case/{case.id}"
    people, subject, body = _texts(case, kind, when, link)
    for person in people:
        if person.email:
            text = body.replace("{name}", person.get_full_name())
            outbox.enqueue(session, person.email, subject, text, topic=f"transfer:{case.upload_no}:{kind}")
