"""The e-mails of each stage of a case: default texts, the category's own
templates, and queueing them in the command's transaction (the outbox)."""

from __future__ import annotations

import datetime

from flask import current_app
from flask_babel import lazy_gettext as _l

from app.lib.rocdate import TAIPEI, format_roc, format_roc_datetime
from app.models.notify import PROGRESS_STAGES, STAGES, CaseEvent, MailTemplate, NotificationCase
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
        "{citizen_name} 您好：\n\n案號 {case_no}「{category}」的所有通報機關（{receivers}）均已辦結。\n{changes}"
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
CONTROL_LABELS = {"closed": "結案", "continuing": "續辦", "refused": "駁回"}
# The citizen's progress mails queued within the window go as one: this text, a line for each change.
PROGRESS_DIGEST = (
    "【跨機關通報】案件 {case_no} 辦理進度",
    "{citizen_name} 您好：\n\n案號 {case_no}「{category}」的辦理進度如下：\n{changes}\n\n{notifier} 敬上",
)
PROGRESS_LINES = {
    "dispatched": "{at} 已通報：{receivers}",
    "accepted": "{at} {agency}已受理",
    "dispatch_closed": "{at} {agency}已辦結，處理結果：{result}",
}
# The completion mail lists the changes not yet mailed at {changes} (at its end if it has no {changes}).
CHANGES_HEADING = "\n尚未通知您的辦理情形：\n"


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
        changes="",
    )


NOTICE_WAYS = ("phone", "postal")


def notice(session, case: NotificationCase, stage: str, ctx: dict) -> None:
    """A citizen without an e-mail address is told by phone or by a postal notice: the
    stage's notice, with what the e-mail would have said as its subject, goes on the
    case's timeline (``notice_phone`` / ``notice_postal``) for the notifying office to
    make. Only for the stages the category tells the citizen of."""
    way = case.contact_by
    if case.category.kind != "citizen" or case.citizen_email or way not in NOTICE_WAYS:
        return
    if not case.category.mails_citizen(stage) or stage in (case.mail_off or "").split(","):
        return
    tpl = next((t for t in case.category.templates if t.stage == stage), None)
    subject = render((tpl.subject if tpl else DEFAULT_TEMPLATES[stage][0]), SafeDict(ctx))
    session.add(
        CaseEvent(
            case=case,
            at=datetime.datetime.utcnow(),
            agency_code=case.agency.code if case.agency else None,
            action=f"notice_{way}",
            note=subject[:500],
        )
    )


def to_citizen(session, case: NotificationCase, stage: str, ctx: dict, extra: str | None = None) -> None:
    """The stage's e-mail to the citizen, or the phone or postal notice recorded in its place."""
    if case.category.kind != "citizen":
        return
    if case.citizen_email:
        queue(session, case, stage, case.citizen_email, ctx, extra)
    else:
        notice(session, case, stage, ctx)


def queue(
    session, case: NotificationCase, stage: str, recipient: str | None, ctx: dict, extra: str | None = None
) -> None:
    """Queue the stage's mail in the caller's transaction; ``extra`` is appended
    when the (possibly customised) template does not place it.

    The citizen gets the stages the category mails (citizen_mail_stages) that the
    citizen did not turn off on the portal. The citizen's progress mails wait
    CITIZEN_MAIL_WINDOW_MINUTES and go out with the others of the case queued
    meanwhile as one mail; the completion mail carries those still waiting."""
    if not recipient:
        return
    citizen = recipient == case.citizen_email
    if citizen and not case.category.mails_citizen(stage):
        return  # the category does not mail the citizen at this stage
    if citizen and stage in (case.mail_off or "").split(","):
        return  # the citizen turned this stage's e-mail off on the portal
    tpl = next((t for t in case.category.templates if t.stage == stage), None)
    subject, body = (tpl.subject, tpl.body) if tpl else DEFAULT_TEMPLATES[stage]
    text = _text(body, {"survey": "", **ctx, "changes": ""}, extra)
    subject = render(subject, SafeDict(ctx))[:255]
    topic = f"case:{case.case_no}:{stage}"
    if not citizen or stage not in (*PROGRESS_STAGES, "completed"):
        outbox.enqueue(session, recipient, subject, text, topic=topic, priority=CITIZEN if citizen else NORMAL)
        return
    key = f"citizen:{case.case_no}"
    if stage == "completed":
        digest = _text(body, {"survey": "", **ctx, "changes": f"{CHANGES_HEADING}{outbox.CHANGES}\n\n"}, extra)
        if outbox.CHANGES not in digest:
            digest = f"{digest.rstrip()}\n{CHANGES_HEADING}{outbox.CHANGES}"
        outbox.enqueue(session, recipient, subject, text, topic=topic, priority=CITIZEN, coalesce_key=key,
                       digest_subject=subject, digest_body=digest)  # fmt: skip
        return
    now = datetime.datetime.utcnow()
    window = datetime.timedelta(minutes=float(current_app.config.get("CITIZEN_MAIL_WINDOW_MINUTES", 10)))
    line = render(PROGRESS_LINES[stage], SafeDict({**ctx, "at": format_roc_datetime(now, seconds=False)}))
    outbox.enqueue(
        session,
        recipient,
        subject,
        text,
        topic=topic,
        priority=CITIZEN,
        coalesce_key=key,
        part=line,
        digest_subject=render(PROGRESS_DIGEST[0], SafeDict(ctx))[:255],
        digest_body=render(PROGRESS_DIGEST[1], SafeDict({**ctx, "changes": outbox.CHANGES})),
        not_before=now + window,
    )


def _text(body: str, ctx: dict, extra: str | None) -> str:
    text = render(body, SafeDict(ctx))
    if extra and extra not in text:
        text = f"{text.rstrip()}\n\n{extra}"
    return text
