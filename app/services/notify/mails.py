"""The e-mails of each stage of a case: default texts, the category's own
templates, and queueing them in the command's transaction (the outbox)."""

from __future__ import annotations

import datetime

from flask_babel import lazy_gettext as _l

from app.lib.rocdate import TAIPEI, format_roc
from app.models.notify import STAGES, MailTemplate, NotificationCase
from app.models.outbox import CITIZEN, NORMAL
from app.services import outbox
from app.services.errors import InvalidInput

DEFAULT_TEMPLATES = {
    # stage: (subject, body)
    "registered": (
        "【跨機關通報】案件 {case_no} 已受理",
        "{citizen_name} 您好：\n\n您於 {date} 在{notifier}申辦的「{category}」已受理，案號 {case_no}。\n"
        "我們將通報{receivers}辦理，各機關辦理情形將以電子郵件通知您。\n\n{notifier} 敬上",
    ),
    "dispatched": (
        "【跨機關通報】案件 {case_no} 已通報相關機關",
        "{citizen_name} 您好：\n\n案號 {case_no}「{category}」已於 {date} 通報下列機關：{receivers}。\n\n{notifier} 敬上",
    ),
    "accepted": (
        "【跨機關通報】{agency}已受理案件 {case_no}",
        "{citizen_name} 您好：\n\n{agency}已於 {date} 受理案號 {case_no}「{category}」，將由承辦人辦理。\n\n{notifier} 敬上",
    ),
    "dispatch_closed": (
        "【跨機關通報】{agency}已辦結案件 {case_no}",
        "{citizen_name} 您好：\n\n{agency}已於 {date} 辦結案號 {case_no}「{category}」。\n處理結果：{result}\n\n"
        "{notifier} 敬上",
    ),
    "completed": (
        "【跨機關通報】案件 {case_no} 已全部辦結",
        "{citizen_name} 您好：\n\n案號 {case_no}「{category}」的所有通報機關（{receivers}）均已辦結。\n"
        "感謝您的耐心。{survey}\n\n{notifier} 敬上",
    ),
    "receiver_dispatched": (
        "【跨機關通報】新通報案件 {case_no}：{category}",
        "{agency} 您好：\n\n{notifier}於 {date} 通報案號 {case_no}「{category}」，請登入平台分案辦理，辦理期限 {due}。\n",
    ),
    "notifier_dispatch_closed": (
        "【跨機關通報】{agency}已辦結案件 {case_no}",
        "{notifier} 您好：\n\n{agency}已於 {date} 辦結案號 {case_no}「{category}」（{control}）。\n處理結果：{result}\n",
    ),
}
CONTROL_LABELS = {"closed": "結案", "continuing": "續辦"}


class SafeDict(dict):
    """Unknown placeholders stay as they are."""

    def __missing__(self, key):
        return "{" + key + "}"


def render(text: str, ctx: dict) -> str:
    return text.format_map(ctx)


def validate_template(session, tpl: MailTemplate) -> None:
    if tpl.stage not in STAGES:
        raise InvalidInput(_l("Unknown stage."))
    try:
        render(tpl.subject or "", SafeDict()), render(tpl.body or "", SafeDict())
    except (ValueError, IndexError) as exc:
        raise InvalidInput(_l("The template has a broken placeholder; use {case_no}, {agency} and the like.")) from exc


def context(case: NotificationCase) -> SafeDict:
    return SafeDict(
        case_no=case.case_no,
        category=str(case.category),
        citizen_name=case.citizen_name or "",
        notifier=case.agency.name if case.agency else "",
        receivers="、".join(d.agency.name for d in case.dispatches),
        date=format_roc(datetime.datetime.now(TAIPEI).date(), "long"),
        due=format_roc(case.due_at) if case.due_at else "",
        agency="",
        result="",
        control="",
    )


def queue(
    session, case: NotificationCase, stage: str, recipient: str | None, ctx: dict, extra: str | None = None
) -> None:
    """Queue the stage's mail in the caller's transaction; ``extra`` is appended
    when the (possibly customised) template does not place it."""
    if not recipient:
        return
    if recipient == case.citizen_email and stage in (case.mail_off or "").split(","):
        return  # the citizen turned this stage's e-mail off on the portal
    tpl = next((t for t in case.category.templates if t.stage == stage), None)
    subject, body = (tpl.subject, tpl.body) if tpl else DEFAULT_TEMPLATES[stage]
    text = render(body, SafeDict({"survey": "", **ctx}))
    if extra and extra not in text:
        text = f"{text.rstrip()}\n\n{extra}"
    priority = CITIZEN if recipient == case.citizen_email else NORMAL
    outbox.enqueue(
        session, recipient, render(subject, ctx)[:255], text, topic=f"case:{case.case_no}:{stage}", priority=priority
    )
