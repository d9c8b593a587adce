"""Cross-agency notification cases: registration, access, dispatch actions,
e-mails at each stage, completion, work lists."""

from __future__ import annotations

import contextlib
import datetime
import re
from dataclasses import dataclass, field

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import defer, joinedload, selectinload
from sqlalchemy.orm.exc import StaleDataError

from app.lib import identifiers
from app.lib.rocdate import TAIPEI, format_roc, format_roc_datetime
from app.models.notify import (
    Attachment,
    CaseEvent,
    CaseSequence,
    Dispatch,
    MailTemplate,
    NotificationCase,
    NotificationCategory,
)
from app.models.org import Agency, PlatformUser
from app.models.outbox import CITIZEN, NORMAL
from app.services import actors, attachments, audit, outbox, survey, workflow
from app.services.actors import Actor
from app.services.errors import Conflict, Forbidden, InvalidInput, NotFound

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z0-9-]{2,}$")
_PHONE = re.compile(r"^[0-9+()#\- ]{6,20}$")

DEFAULT_TEMPLATES = {
    # stage: (subject, body)
    "registered": ("【跨機關通報】案件 {case_no} 已受理",
                   "{citizen_name} 您好：\n\n您於 {date} 在{notifier}申辦的「{category}」已受理，案號 {case_no}。\n"
                   "我們將通報{receivers}辦理，各機關辦理情形將以電子郵件通知您。\n\n{notifier} 敬上"),
    "dispatched": ("【跨機關通報】案件 {case_no} 已通報相關機關",
                   "{citizen_name} 您好：\n\n案號 {case_no}「{category}」已於 {date} 通報下列機關：{receivers}。\n\n{notifier} 敬上"),
    "accepted": ("【跨機關通報】{agency}已受理案件 {case_no}",
                 "{citizen_name} 您好：\n\n{agency}已於 {date} 受理案號 {case_no}「{category}」，將由承辦人辦理。\n\n{notifier} 敬上"),
    "dispatch_closed": ("【跨機關通報】{agency}已辦結案件 {case_no}",
                        "{citizen_name} 您好：\n\n{agency}已於 {date} 辦結案號 {case_no}「{category}」。\n處理結果：{result}\n\n{notifier} 敬上"),
    "completed": ("【跨機關通報】案件 {case_no} 已全部辦結",
                  "{citizen_name} 您好：\n\n案號 {case_no}「{category}」的所有通報機關（{receivers}）均已辦結。\n"
                  "感謝您的耐心。{survey}\n\n{notifier} 敬上"),
    "receiver_dispatched": ("【跨機關通報】新通報案件 {case_no}：{category}",
                            "{agency} 您好：\n\n{notifier}於 {date} 通報案號 {case_no}「{category}」，請登入平台分案辦理，"
                            "辦理期限 {due}。\n"),
    "notifier_dispatch_closed": ("【跨機關通報】{agency}已辦結案件 {case_no}",
                                 "{notifier} 您好：\n\n{agency}已於 {date} 辦結案號 {case_no}「{category}」（{control}）。\n"
                                 "處理結果：{result}\n"),
}  # fmt: skip
CONTROL_LABELS = {"closed": "結案", "continuing": "續辦"}


@dataclass
class Citizen:
    name: str = ""
    id_no: str = ""
    email: str = ""
    phone: str = ""
    address: str = ""


@dataclass
class Upload:
    filename: str
    data: bytes
    kind: str = "other"  # consent | other


@dataclass
class CaseDraft:
    category_id: int
    citizen: Citizen
    content: str
    receivers: list[int] | None = None  # agency ids; None = the category's defaults
    uploads: list[Upload] = field(default_factory=list)


# --- categories ----------------------------------------------------------------


def usable_categories(session, actor: Actor) -> list[NotificationCategory]:
    cats = session.scalars(select(NotificationCategory).where(NotificationCategory.active.is_(True))
                           .order_by(NotificationCategory.main_item, NotificationCategory.sub_item))  # fmt: skip
    return [
        c for c in cats if actor.can(actors.ALL_AGENCIES) or any(a.id == actor.agency_id for a in c.notifying_agencies)
    ]


def validate_category(session, cat: NotificationCategory) -> None:
    if not (cat.main_item or "").strip() or not (cat.sub_item or "").strip():
        raise InvalidInput(_l("A category needs a main item and a sub item."))
    if cat.kind not in ("citizen", "agency"):
        raise InvalidInput(_l("Choose the kind: citizen application or agency notification."))
    if cat.due_days is not None and not (1 <= int(cat.due_days) <= 365):
        raise InvalidInput(_l("Due days must be between 1 and 365."))
    if not cat.default_receivers:
        raise InvalidInput(_l("A category needs at least one default receiving agency."))


def validate_template(session, tpl: MailTemplate) -> None:
    from app.models.notify import STAGES

    if tpl.stage not in STAGES:
        raise InvalidInput(_l("Unknown stage."))
    try:
        _render(tpl.subject or "", _SafeDict()), _render(tpl.body or "", _SafeDict())
    except (ValueError, IndexError) as exc:
        raise InvalidInput(_l("The template has a broken placeholder; use {case_no}, {agency} and the like.")) from exc


# --- registration ----------------------------------------------------------------


def _taipei_today() -> datetime.date:
    return datetime.datetime.now(TAIPEI).date()


def next_case_no(session) -> str:
    """ROC date + the day's sequence (1151126-0001), unique under concurrent registration.

    On a server database the number is taken by one statement committed on
    its own (autocommit: one round trip), so registrations do not queue behind
    each other's row lock for their whole length (a registration that then
    fails leaves a gap, never a duplicate). SQLite serialises writers anyway:
    there it is taken in the caller's transaction.
    """
    day = _taipei_today()
    if session.get_bind().dialect.name == "sqlite":
        return _take_number(session, day, nested=True)
    with session.get_bind().connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        return _take_number(conn, day, nested=False)


def _take_number(conn, day, nested: bool) -> str:
    """``nested``: in the caller's transaction (a savepoint around the day's
    first INSERT); otherwise each statement commits on its own."""
    t = CaseSequence.__table__
    for _ in range(5):
        value = conn.execute(update(t).where(t.c.day == day).values(value=t.c.value + 1).returning(t.c.value)).scalar()
        if value is not None:
            return f"{format_roc(day, 'compact')}-{value:04d}"
        try:
            with conn.begin_nested() if nested else contextlib.nullcontext():
                conn.execute(insert(t).values(day=day, value=1))
            return f"{format_roc(day, 'compact')}-0001"
        except IntegrityError:
            continue  # another registration created the day's row first
    raise Conflict(_l("Too many registrations at once; please try again."))


def _check_citizen(c: Citizen, kind: str) -> Citizen:
    c = Citizen(**{k: (getattr(c, k) or "").strip() for k in ("name", "id_no", "email", "phone", "address")})
    c.id_no = c.id_no.upper()
    if kind == "citizen":
        if not c.name:
            raise InvalidInput(_l("The citizen's name is required."))
        if not c.email:
            raise InvalidInput(_l("The citizen's e-mail address is required to report progress."))
    if c.id_no and not identifiers.is_person_id(c.id_no):
        raise InvalidInput(_l("The ID number is not valid (check the format and the check digit)."))
    if kind == "citizen" and not c.id_no:
        raise InvalidInput(_l("The citizen's ID number is required."))
    if c.email and not _EMAIL.match(c.email):
        raise InvalidInput(_l("The e-mail address is not valid."))
    if c.phone and not _PHONE.match(c.phone):
        raise InvalidInput(_l("The phone number is not valid."))
    if len(c.name) > 60 or len(c.address) > 200:
        raise InvalidInput(_l("The name or address is too long."))
    return c


def register_case(session, actor: Actor, draft: CaseDraft) -> NotificationCase:
    """Register a case, its attachments and one dispatch per receiving agency,
    with the timeline, audit and e-mails, in one transaction (the caller commits).

    Raises NotFound, Forbidden, InvalidInput.
    """
    # One round trip for the category with its agencies and templates (a
    # handful of rows each, so the joined product stays small).
    cat = (
        session.scalars(
            select(NotificationCategory)
            .where(NotificationCategory.id == draft.category_id)
            .options(
                joinedload(NotificationCategory.notifying_agencies),
                joinedload(NotificationCategory.default_receivers),
                joinedload(NotificationCategory.templates),
            )  # fmt: skip
        )
        .unique()
        .one_or_none()
        if isinstance(draft.category_id, int)
        else None
    )
    if cat is None or not cat.active:
        raise NotFound(_l("No such notification category."))
    if not actor.can(actors.ALL_AGENCIES) and not any(a.id == actor.agency_id for a in cat.notifying_agencies):
        raise Forbidden(_l("Your agency may not notify under this category."))
    citizen = _check_citizen(draft.citizen, cat.kind)
    content = (draft.content or "").strip()
    if not content:
        raise InvalidInput(_l("Describe what changed (the notification content)."))
    if len(content) > 8000:
        raise InvalidInput(_l("The notification content is too long."))
    receiver_ids = draft.receivers if draft.receivers is not None else [a.id for a in cat.default_receivers]
    wanted = list(dict.fromkeys(receiver_ids))
    found = {a.id: a for a in cat.default_receivers}
    if any(i not in found for i in wanted):
        found = {a.id: a for a in session.scalars(select(Agency).where(Agency.id.in_(wanted)))}
    receivers = [found.get(i) for i in wanted]
    if not receivers or any(a is None or not a.active for a in receivers):
        raise InvalidInput(_l("Choose at least one active receiving agency."))
    if any(a.id == actor.agency_id for a in receivers):
        raise InvalidInput(_l("An agency cannot notify itself."))
    max_bytes = current_app.config["ATTACHMENT_MAX_BYTES"]
    checked = []
    for up in draft.uploads:
        mime = attachments.check_upload(up.filename, up.data, max_bytes)
        checked.append((up, mime))
    if cat.consent_required and not any(up.kind == "consent" for up, _ in checked):
        raise InvalidInput(_l("This category requires the citizen's scanned consent form."))

    now = datetime.datetime.utcnow()
    case = NotificationCase(
        case_no=next_case_no(session), category=cat, agency_id=actor.agency_id, operator_id=actor.user_id,
        citizen_name=citizen.name or None, citizen_id_no=citizen.id_no or None,
        citizen_id_hash=_id_hash(citizen.id_no) if citizen.id_no else None, citizen_email=citizen.email or None,
        citizen_phone=citizen.phone or None, citizen_address=citizen.address or None, content=content,
        status="open", created_at=now, due_at=now + datetime.timedelta(days=cat.due_days or 7),
        # A new case's lists start empty and known: nothing is loaded back for the answer.
        attachments=[], dispatches=[], events=[],
    )  # fmt: skip
    notifier = session.get(Agency, actor.agency_id)
    case.agency = notifier
    session.add(case)
    stamp_lines = [notifier.name if notifier else "", format_roc_datetime(now, seconds=False), f"案號 {case.case_no}",
                   "僅供跨機關通報使用"]  # fmt: skip
    for up, mime in checked:
        sha = attachments.digest(up.data)
        session.add(Attachment(
            case=case, kind=up.kind if up.kind in ("consent", "other") else "other",
            filename=attachments.safe_filename(up.filename), mime=mime, size=len(up.data), sha256=sha,
            seal=attachments.seal(sha), original=up.data,
            stamped=attachments.stamp(up.data, mime, stamp_lines) if up.kind == "consent" else None,
            uploaded_at=now, uploaded_by=actor.username,
        ))  # fmt: skip
    session.add(CaseEvent(case=case, at=now, username=actor.username, agency_code=actor.agency_code,
                          action="register", note=f"{cat}"))  # fmt: skip
    for agency in receivers:
        d = Dispatch(case=case, agency=agency, state="sent", sent_at=now, sent_by=actor.username,
                     due_at=case.due_at)  # fmt: skip
        session.add(d)
    session.add(CaseEvent(case=case, at=now, username=actor.username, agency_code=actor.agency_code,
                          action="dispatch", note="、".join(a.name for a in receivers)))  # fmt: skip
    ctx = _context(case)
    if cat.kind == "citizen":
        _mail(session, case, "registered", case.citizen_email, ctx)
        _mail(session, case, "dispatched", case.citizen_email, ctx)
    for d in case.dispatches:
        if d.agency.email:
            _mail(session, case, "receiver_dispatched", d.agency.email, {**ctx, "agency": d.agency.name})
    # Last: its flush writes the case, dispatches, timeline and mails at once.
    _audit(session, actor, "case_register", case, detail={"case_no": case.case_no, "dispatches": len(receivers)})
    return case


# --- reading ---------------------------------------------------------------------


def _id_hash(id_no: str) -> str:
    from app.services.query import subject_hash

    return subject_hash(id_no)


def find_case(session, actor: Actor, case_no: str) -> tuple[NotificationCase, list[Dispatch]]:
    """The case and the dispatches this actor may see.

    The notifying agency sees all its case's dispatches; a receiving agency
    sees the case and only its own dispatch; anyone else gets NotFound.
    """
    case = session.scalar(select(NotificationCase).where(NotificationCase.case_no == str(case_no)[:20]))
    if case is None:
        raise NotFound(_l("No such case."))
    if actor.can(actors.ALL_AGENCIES) or case.agency_id == actor.agency_id:
        return case, list(case.dispatches)
    mine = [d for d in case.dispatches if d.agency_id == actor.agency_id]
    if not mine:
        raise NotFound(_l("No such case."))  # never confirm another agency's case exists
    return case, mine


def open_dispatch(session, actor: Actor, dispatch_id: int) -> Dispatch:
    """A dispatch of the actor's agency; the first opening by the receiving
    agency records who received it and when."""
    d = session.get(Dispatch, dispatch_id)
    if d is None:
        raise NotFound(_l("No such dispatch."))
    if d.agency_id != actor.agency_id and not (d.case.agency_id == actor.agency_id or actor.can(actors.ALL_AGENCIES)):
        raise NotFound(_l("No such dispatch."))
    if d.agency_id == actor.agency_id and d.state == "sent" and actor.roles & {"Supervisor", "Handler"}:
        workflow.apply(session, d, "receive", actor)
        _audit(session, actor, "dispatch_receive", d.case, dispatch=d)
        session.commit()
    return d


def act(session, actor: Actor, dispatch_id: int, action: str, *, version=None, handler=None,
        result=None, control_type=None, notes=None, reason=None) -> Dispatch:  # fmt: skip
    """Apply one workflow action and its consequences; commits.

    Raises NotFound, Forbidden, Conflict (illegal transition, stale version,
    a concurrent change), InvalidInput.
    """
    if action not in workflow.ACTION_LABELS:
        raise NotFound(_l("No such action."))
    d = session.get(Dispatch, dispatch_id)
    if d is None or (d.agency_id != actor.agency_id and not actor.can(actors.ALL_AGENCIES)):
        raise NotFound(_l("No such dispatch."))
    handler_user = None
    if action == "assign":
        handler_user = _find_user(session, handler)
    workflow.apply(session, d, action, actor, expected_version=version, handler=handler_user, result=result,
                   control_type=control_type, notes=notes, reason=reason)  # fmt: skip
    try:
        session.flush()  # the version check: a concurrent change matches no row
    except StaleDataError as exc:
        session.rollback()
        raise Conflict(_l("Someone else has changed this dispatch in the meantime; reload it and try again.")) from exc
    _audit(session, actor, f"dispatch_{action}", d.case, dispatch=d)
    case = d.case
    ctx = {**_context(case), "agency": d.agency.name, "result": d.result or "",
           "control": CONTROL_LABELS.get(d.control_type or "", "")}  # fmt: skip
    citizen_mail = case.citizen_email if case.category.kind == "citizen" else None
    if action == "accept" and citizen_mail:
        _mail(session, case, "accepted", citizen_mail, ctx)
    if action == "close":
        if citizen_mail:
            _mail(session, case, "dispatch_closed", citizen_mail, ctx)
        if case.agency and case.agency.email:
            _mail(session, case, "notifier_dispatch_closed", case.agency.email, ctx)
        if all(x.state == "closed" for x in case.dispatches):
            case.status, case.completed_at = "completed", datetime.datetime.utcnow()
            session.add(CaseEvent(case=case, at=case.completed_at, username=actor.username,
                                  agency_code=actor.agency_code, action="complete"))  # fmt: skip
            _audit(session, actor, "case_complete", case)
            target = citizen_mail or (case.agency.email if case.agency else None)
            # The citizen's last e-mail carries the one-time satisfaction questionnaire link.
            invitation = survey.invite(session, case) if citizen_mail else None
            if target:
                survey_ctx = {**ctx, "survey": f"\n{invitation}" if invitation else ""}
                _mail(session, case, "completed", target, survey_ctx, extra=invitation)
    try:
        session.commit()
    except StaleDataError as exc:
        session.rollback()
        raise Conflict(_l("Someone else has changed this dispatch in the meantime; reload it and try again.")) from exc
    return d


def _find_user(session, ref) -> PlatformUser | None:
    if ref is None or ref == "":
        return None
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        return session.get(PlatformUser, int(ref))
    return session.scalar(select(PlatformUser).where(PlatformUser.username == str(ref)[:128]))


def handlers_of(session, agency_id: int) -> list[PlatformUser]:
    users = session.scalars(
        select(PlatformUser).where(PlatformUser.agency_id == agency_id, PlatformUser.active.is_(True))
    )
    return [u for u in users if any(r.name == "Handler" for r in u.roles)]


@dataclass
class WorkItem:
    dispatch: Dispatch
    overdue: bool


_PERSONAL = ("citizen_name", "citizen_id_no", "citizen_email", "citizen_phone", "citizen_address", "content")


def _list_columns():
    """A work list shows no personal data: leave those (encrypted) columns unread."""
    return [defer(getattr(NotificationCase, c)) for c in _PERSONAL]


def worklist(session, actor: Actor, box: str, limit: int | None = None, offset: int = 0) -> list:
    """Notifier: my agency's cases; Supervisor: incoming/to assign/to review;
    Handler: my work. Strictly by agency; newest first, a page at a time
    (WORKLIST_PAGE_SIZE), with what the list shows loaded in the same queries."""
    now = datetime.datetime.utcnow()
    limit = limit or int(current_app.config.get("WORKLIST_PAGE_SIZE", 50))
    if box == "cases":
        cases = session.scalars(
            select(NotificationCase)
            .where(NotificationCase.agency_id == actor.agency_id)
            .options(*_list_columns(), joinedload(NotificationCase.category),
                     selectinload(NotificationCase.dispatches).joinedload(Dispatch.agency))
            .order_by(NotificationCase.created_at.desc()).limit(limit).offset(offset)
        ).unique()  # fmt: skip
        return [(c, c.status != "completed" and c.due_at is not None and c.due_at < now) for c in cases]
    stmt = (
        select(Dispatch)
        .where(Dispatch.agency_id == actor.agency_id)
        .options(joinedload(Dispatch.case).options(*_list_columns(), joinedload(NotificationCase.category),
                                                   joinedload(NotificationCase.agency)),
                 joinedload(Dispatch.agency), joinedload(Dispatch.handler))
        .order_by(Dispatch.sent_at.desc())
    )  # fmt: skip
    if box == "incoming":
        stmt = stmt.where(Dispatch.state.in_(("sent", "received", "processed")))
    elif box == "work":
        stmt = stmt.where(Dispatch.handler_id == actor.user_id, Dispatch.state.in_(("assigned", "accepted")))
    elif box == "all":
        pass
    else:
        raise NotFound(_l("No such work list."))
    return [WorkItem(d, d.state != "closed" and d.due_at is not None and d.due_at < now)
            for d in session.scalars(stmt.limit(limit).offset(offset)).unique()]  # fmt: skip


def check_attachment(session, actor: Actor, attachment_id: int) -> tuple[Attachment, bool]:
    att = session.get(Attachment, attachment_id)
    if att is None:
        raise NotFound(_l("No such attachment."))
    find_case(session, actor, att.case.case_no)  # access check
    ok = attachments.verify(att.original, att.sha256, att.seal)
    _audit(session, actor, "attachment_check", att.case, detail={"attachment": att.id, "intact": ok})
    session.commit()
    return att, ok


def download_attachment(session, actor: Actor, attachment_id: int, copy: str) -> tuple[Attachment, bytes]:
    """The original or the stamped copy, for those who may see the case; every
    download of a consent scan (personal data) leaves an audit record."""
    att = session.get(Attachment, attachment_id)
    if att is None or copy not in ("original", "stamped"):
        raise NotFound(_l("No such attachment."))
    find_case(session, actor, att.case.case_no)  # the access rule
    data = att.original if copy == "original" else att.stamped
    if not data:
        raise NotFound(_l("No such attachment."))
    _audit(session, actor, "attachment_download", att.case, detail={"attachment": att.id, "copy": copy})
    session.commit()
    return att, data


def case_search_by_citizen(session, actor: Actor, id_no: str) -> list[NotificationCase]:
    """The actor's agency's cases about a citizen, found by keyed hash."""
    if not identifiers.is_person_id((id_no or "").upper()):
        raise InvalidInput(_l("The ID number is not valid (check the format and the check digit)."))
    return list(session.scalars(select(NotificationCase).where(
        NotificationCase.citizen_id_hash == _id_hash(id_no.upper()),
        or_(NotificationCase.agency_id == actor.agency_id,
            NotificationCase.id.in_(select(Dispatch.case_id).where(Dispatch.agency_id == actor.agency_id))))))  # fmt: skip


# --- e-mails, audit ------------------------------------------------------------------


class _SafeDict(dict):
    def __missing__(self, key):
        return "{" + key + "}"


def _render(text: str, ctx: dict) -> str:
    return text.format_map(ctx)


def _context(case: NotificationCase) -> _SafeDict:
    return _SafeDict(
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


def _mail(session, case: NotificationCase, stage: str, recipient: str | None, ctx: dict,
          extra: str | None = None) -> None:  # fmt: skip
    """``extra`` is appended when the (possibly customised) template does not place it."""
    if not recipient:
        return
    tpl = next((t for t in case.category.templates if t.stage == stage), None)
    subject, body = (tpl.subject, tpl.body) if tpl else DEFAULT_TEMPLATES[stage]
    text = _render(body, _SafeDict({"survey": "", **ctx}))
    if extra and extra not in text:
        text = f"{text.rstrip()}\n\n{extra}"
    priority = CITIZEN if recipient == case.citizen_email else NORMAL
    outbox.enqueue(session, recipient, _render(subject, ctx)[:255], text, topic=f"case:{case.case_no}:{stage}",
                   priority=priority)  # fmt: skip


def _audit(session, actor: Actor, action: str, case: NotificationCase, dispatch: Dispatch | None = None,
           detail: dict | None = None) -> None:  # fmt: skip
    audit.record(session, action, object_type="Dispatch" if dispatch else "NotificationCase",
                 object_id=dispatch.id if dispatch else case.id,
                 detail={"case_no": case.case_no, **(detail or {})},
                 actor=actor)  # fmt: skip
