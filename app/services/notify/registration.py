"""Registering a case: the command, its input objects, the case number, the
checks of the citizen's data, the category and the receiving agencies."""

from __future__ import annotations

import contextlib
import datetime
import hmac
import json
import re
import unicodedata
from dataclasses import dataclass, field

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from app.lib import identifiers
from app.lib.rocdate import TAIPEI, format_roc, format_roc_datetime
from app.models.notify import (
    Attachment,
    CaseEvent,
    CaseSequence,
    CaseSignature,
    Dispatch,
    NotificationCase,
    NotificationCategory,
)
from app.models.org import Agency, PlatformUser
from app.models.queries import QueryLog
from app.services import actors
from app.services.actors import Actor
from app.services.command import refuse, transaction
from app.services.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.services.notify import attachments, mails, results
from app.services.notify.fields import check_fields, field_lines
from app.services.notify.holds import dispatch_waits_for_fee, hold
from app.services.notify.records import MAX_ID, audit_case
from app.services.roles import NOTIFY_CASES

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z0-9-]{2,}$")
_PHONE = re.compile(r"^[0-9+()#\- ]{6,20}$")


@dataclass
class Citizen:
    name: str = ""
    id_no: str = ""
    email: str = ""
    phone: str = ""
    address: str = ""
    # An online application's applicant is known by the keyed hash of the ID number bound to the
    # card (a business by its number's): given instead of, or beside, the number.
    id_hash: str = ""
    # How the citizen is told of progress: "email" (the default when an e-mail address is
    # given), or without one "phone" or "postal" (a notice the office makes, recorded).
    contact_by: str = ""


CONTACT_WAYS = ("email", "phone", "postal")


@dataclass
class Upload:
    filename: str
    data: bytes
    kind: str = "other"  # consent | other


@dataclass
class WebFiling:
    """What makes a case an online application: the category's web-notifying agency is
    recorded as the notifier, and the applicant's signature (a ``CaseSignature`` not yet
    added) is kept with the case in place of the scanned consent form."""

    agency: Agency
    signature: CaseSignature


@dataclass
class CaseDraft:
    category: int | str  # its id, or "main item/sub item"
    citizen: Citizen
    content: str
    receivers: list[int | str] | None = None  # agency ids or codes; None = the category's defaults
    uploads: list[Upload] = field(default_factory=list)
    # The category's structured fields (name -> value or {"old", "new"}); None: not given (the
    # free-text content alone, as household systems post it), checked in full when given.
    fields: dict | None = None
    # The number a lookup in the household register took for this registration (app.services.notify.lookup).
    case_no: str | None = None


def id_hash(id_no: str) -> str:
    from app.services.query import subject_hash

    return subject_hash(id_no)


# What a name's spelling may vary by and still be the same name: spaces and the middle dots
# of indigenous and foreign names (王 小明, 王小明; 瓦歷斯·諾幹, 瓦歷斯‧諾幹).
_NAME_NOISE = re.compile(r"[\s·‧•・.]+")


def name_hash(name: str) -> str:
    """The keyed hash of a citizen's name in its normal form (NFKC, no spaces or middle
    dots, case folded): the case search finds a name by exact match of this, never by
    decrypting names. Domain-separated from the ID numbers' hashes. Empty for no name."""
    normal = _NAME_NOISE.sub("", unicodedata.normalize("NFKC", name or "")).casefold()
    if not normal:
        return ""
    key = current_app.config["SUBJECT_HASH_KEY"].encode()
    return hmac.digest(key, b"name\x00" + normal.encode(), "sha256").hex()


# --- the case number -------------------------------------------------------------------


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


# --- the number a register lookup took (app.services.notify.lookup) ---------------------

NOT_YOURS = _l("This case number was not taken by your lookup in the household register, or a case already has it.")


def lookup_form() -> str:
    return current_app.config.get("NOTIFY_LOOKUP_FORM", "notify.citizen")


def reserved_case_no(session, actor: Actor, case_no: str) -> str:
    """``case_no`` if this actor's register lookup took it and no case has it yet. Raises InvalidInput."""
    case_no = (case_no or "").strip()
    taken = session.scalar(
        select(QueryLog.id).where(
            QueryLog.case_no == case_no, QueryLog.user_id == actor.user_id, QueryLog.form_code == lookup_form()
        )
    )
    used = session.scalar(select(NotificationCase.id).where(NotificationCase.case_no == case_no))
    if not case_no or taken is None or used is not None:
        raise InvalidInput(NOT_YOURS)
    return case_no


# --- the checks --------------------------------------------------------------------------


def _contact_way(c: Citizen) -> str:
    """How the citizen hears of progress: as chosen, else e-mail when there is an
    address for it, else a postal notice, else a phone call. Raises InvalidInput."""
    way = c.contact_by.lower() or ("email" if c.email else "postal" if c.address else "phone" if c.phone else "")
    if way not in CONTACT_WAYS:
        if not c.contact_by:
            raise InvalidInput(
                _l("Give an e-mail address, a phone number or a postal address to tell the citizen of progress.")
            )
        raise InvalidInput(_l("Choose how the citizen is told of progress: e-mail, phone or postal notice."))
    needs = {"email": (c.email, _l("An e-mail address is needed to tell the citizen by e-mail.")),
             "phone": (c.phone, _l("A phone number is needed to tell the citizen by phone.")),
             "postal": (c.address, _l("An address is needed to send the citizen postal notices."))}  # fmt: skip
    given, message = needs[way]
    if not given:
        raise InvalidInput(message)
    return way


def check_citizen(c: Citizen, kind: str) -> Citizen:
    keys = ("name", "id_no", "email", "phone", "address", "id_hash", "contact_by")
    c = Citizen(**{k: (getattr(c, k) or "").strip() for k in keys})
    c.id_no = c.id_no.upper()
    if kind == "citizen":
        if not c.name:
            raise InvalidInput(_l("The citizen's name is required."))
        c.contact_by = _contact_way(c)
    elif c.contact_by and c.contact_by not in CONTACT_WAYS:
        raise InvalidInput(_l("Choose how the citizen is told of progress: e-mail, phone or postal notice."))
    if c.id_no and not identifiers.is_person_id(c.id_no):
        raise InvalidInput(_l("The ID number is not valid (check the format and the check digit)."))
    if kind == "citizen" and not c.id_no and not c.id_hash:
        raise InvalidInput(_l("The citizen's ID number is required."))
    if c.email and not _EMAIL.match(c.email):
        raise InvalidInput(_l("The e-mail address is not valid."))
    if c.phone and not _PHONE.match(c.phone):
        raise InvalidInput(_l("The phone number is not valid."))
    if len(c.name) > 60 or len(c.address) > 200:
        raise InvalidInput(_l("The name or address is too long."))
    return c


def category_for(session, actor: Actor, ref) -> NotificationCategory:
    """The category ``ref`` (id or "main item/sub item") if the actor's agency may notify
    under it. Raises NotFound, Forbidden, InvalidInput."""
    return _category(session, actor, ref)


def _category(session, actor: Actor, ref, web: WebFiling | None = None) -> NotificationCategory:
    """The category by id or "main item/sub item", with its agencies and templates in one round trip."""
    stmt = select(NotificationCategory).options(
        joinedload(NotificationCategory.notifying_agencies),
        joinedload(NotificationCategory.default_receivers),
        joinedload(NotificationCategory.templates),
    )
    if isinstance(ref, str) and ref.strip().isdigit():
        ref = int(ref.strip())
    if isinstance(ref, int) and not isinstance(ref, bool):
        cat = session.scalars(stmt.where(NotificationCategory.id == ref)).unique().one_or_none()
    elif isinstance(ref, str) and "/" in ref:
        main, sub = (p.strip() for p in ref.split("/", 1))
        stmt = stmt.where(NotificationCategory.main_item == main, NotificationCategory.sub_item == sub)
        cat = session.scalars(stmt).unique().first()
    else:
        raise InvalidInput(_l("Give the category as its id or as 'main item/sub item'."))
    if cat is None or not cat.active:
        raise NotFound(_l("No such notification category."))
    if web is not None:
        if not cat.web_open or cat.web_agency_id != web.agency.id:
            raise NotFound(_l("No such notification category."))
        return cat
    if not actor.can(actors.ALL_AGENCIES) and not any(a.id == actor.agency_id for a in cat.notifying_agencies):
        raise Forbidden(_l("Your agency may not notify under this category."))
    return cat


def _receivers(session, notifier_id: int | None, cat: NotificationCategory, refs) -> list[Agency]:
    """The receiving agencies by id or code (the category's defaults when not given)."""
    if refs is None:
        refs = [a.id for a in cat.default_receivers]
    wanted = list(dict.fromkeys(r.strip().upper() if isinstance(r, str) else r for r in refs))
    by_ref = {a.id: a for a in cat.default_receivers} | {a.code: a for a in cat.default_receivers}
    if any(r not in by_ref for r in wanted):
        ids = [r for r in wanted if isinstance(r, int) and 0 < r <= MAX_ID]
        codes = [r for r in wanted if isinstance(r, str)]
        for a in session.scalars(select(Agency).where(or_(Agency.id.in_(ids), Agency.code.in_(codes)))):
            by_ref[a.id] = by_ref[a.code] = a
    if any(isinstance(r, str) and r not in by_ref for r in wanted):
        raise InvalidInput(_l("Unknown receiving agency."))
    receivers = list(dict.fromkeys(by_ref.get(r) for r in wanted))
    if not receivers or any(a is None or not a.active for a in receivers):
        raise InvalidInput(_l("Choose at least one active receiving agency."))
    if any(a.id == notifier_id for a in receivers):
        raise InvalidInput(_l("An agency cannot notify itself."))
    return receivers


def _content(text: str, lines: list[str] | None = None) -> str:
    """The notification content: the structured fields' lines, then the free text
    (which may be left empty when the fields say what changed)."""
    content = (text or "").strip()
    if lines:
        content = "\n".join([*lines, *([content] if content else [])])
    if not content:
        raise InvalidInput(_l("Describe what changed (the notification content)."))
    if len(content) > 8000:
        raise InvalidInput(_l("The notification content is too long."))
    return content


def _checked_uploads(
    cat: NotificationCategory, uploads: list[Upload], signed: bool = False
) -> list[tuple[Upload, str]]:
    max_bytes = current_app.config["ATTACHMENT_MAX_BYTES"]
    checked = []
    for up in uploads:
        try:
            checked.append((up, attachments.check_upload(up.filename, up.data, max_bytes)))
        except attachments.ImageOverBudget as exc:
            raise _RefusedImage(exc, cat.id, up.kind if up.kind in ("consent", "other") else "other") from None
    # An online application's signature stands in for the scanned consent form.
    if cat.consent_required and not signed and not any(up.kind == "consent" for up, _ in checked):
        raise InvalidInput(_l("This category requires the citizen's scanned consent form."))
    return checked


# --- the command ------------------------------------------------------------------------------


def _new_case(
    session, actor: Actor, cat, citizen: Citizen, content: str, now, web=None, case_no=None, values=None
) -> NotificationCase:
    agency_id = web.agency.id if web is not None else actor.agency_id
    case = NotificationCase(
        case_no=case_no or next_case_no(session),
        contact_by=citizen.contact_by or None,
        fields=json.dumps(values, ensure_ascii=False) if values else None,
        category=cat,
        agency_id=agency_id,
        operator_id=None if web is not None else actor.user_id,
        citizen_name=citizen.name or None,
        citizen_name_hash=name_hash(citizen.name) or None,
        citizen_id_no=citizen.id_no or None,
        citizen_id_hash=citizen.id_hash or (id_hash(citizen.id_no) if citizen.id_no else None),
        citizen_email=citizen.email or None,
        citizen_phone=citizen.phone or None,
        citizen_address=citizen.address or None,
        content=content,
        status="open",
        created_at=now,
        due_at=now + datetime.timedelta(days=cat.due_days or 7),
        # A new case's lists start empty and known: nothing is loaded back for the answer.
        attachments=[],
        dispatches=[],
        events=[],
        signature=None,
    )
    case.agency = session.get(Agency, agency_id) if agency_id else None
    session.add(case)
    return case


def _add_attachments(session, actor: Actor, case: NotificationCase, checked, now) -> None:
    notifier = case.agency.name if case.agency else ""
    stamp_lines = [notifier, format_roc_datetime(now, seconds=False), f"案號 {case.case_no}", "僅供跨機關通報使用"]
    for up, mime in checked:
        sha = attachments.digest(up.data)
        consent = up.kind == "consent"
        attachment = Attachment(
            case=case,
            kind=up.kind if up.kind in ("consent", "other") else "other",
            filename=attachments.safe_filename(up.filename),
            mime=mime,
            size=len(up.data),
            sha256=sha,
            seal=attachments.seal(sha),
            original=up.data,
            stamped=attachments.stamp(up.data, mime, stamp_lines) if consent else None,
            uploaded_at=now,
            uploaded_by=actor.username,
        )
        session.add(attachment)


def _dispatch(session, actor: Actor, case: NotificationCase, receivers: list[Agency], now) -> None:
    agency_code = case.agency.code if case.agency is not None else actor.agency_code

    def event(action: str, note: str) -> CaseEvent:
        return CaseEvent(case=case, at=now, username=actor.username, agency_code=agency_code, action=action, note=note)

    session.add(event("register", str(case.category)))
    for agency in receivers:
        dispatch = Dispatch(
            case=case, agency=agency, state="sent", sent_at=now, sent_by=actor.username, due_at=case.due_at
        )
        session.add(dispatch)
    session.add(event("dispatch", "、".join(a.name for a in receivers)))


def _hold(session, actor: Actor, case: NotificationCase, receivers: list[Agency], now) -> None:
    """A fee is due before dispatch: the receiving agencies wait for the payment (app.services.payments)."""
    session.add(CaseEvent(case=case, at=now, username=actor.username, agency_code=actor.agency_code,
                          action="register", note=str(case.category)))  # fmt: skip
    session.add(CaseEvent(case=case, at=now, username=actor.username, agency_code=actor.agency_code,
                          action="await_payment", note="、".join(a.name for a in receivers)))  # fmt: skip
    session.flush()
    hold(session, case, receivers)


def _queue_mails(session, case: NotificationCase) -> None:
    ctx = mails.context(case)
    if case.category.kind == "citizen":
        mails.to_citizen(session, case, "registered", ctx)
        if case.dispatches:  # none while a fee due before dispatch is unpaid
            mails.to_citizen(session, case, "dispatched", ctx)
    for d in case.dispatches:
        if d.agency.email:
            mails.queue(session, case, "receiver_dispatched", d.agency.email, {**ctx, "agency": d.agency.name})


def register_case(session, actor: Actor, draft: CaseDraft) -> results.CaseView:
    """Register a case, its attachments and one dispatch per receiving agency,
    with the timeline, the audit event and the e-mails, in one transaction.

    Returns the case as the registering agency sees it. Raises NotFound,
    Forbidden, InvalidInput, Conflict.
    """
    if not (actor.can(NOTIFY_CASES) or actor.can(actors.ALL_AGENCIES)):
        raise Forbidden(_l("Your role may not register notification cases."))
    try:
        return _register(session, actor, draft)
    except _RefusedImage as refused:
        # An image over the operators' decoding limits (a possible decompression bomb): a
        # security event. Which category (no case was made), which limit; never the image or its name.
        exc = refused.error
        detail = {"rule": exc.rule, "limit": exc.limit, "kind": refused.kind, "mime": exc.mime}
        raise refuse(session, exc, actor, "attachment_refused", object_type="NotificationCategory",
                     object_id=refused.category_id, detail=detail) from None  # fmt: skip


class _RefusedImage(Exception):
    def __init__(self, error: attachments.ImageOverBudget, category_id: int, kind: str):
        super().__init__(error)
        self.error, self.category_id, self.kind = error, category_id, kind


def register_web_case(session, actor: Actor, draft: CaseDraft, web: WebFiling) -> str:
    """Register an online application through the same workflow as a counter case: the
    category's web-notifying agency is recorded as the notifier, the signature is kept with
    the case (in place of the consent scan), the receiving agencies are the category's.

    The caller (``app.services.portal.applications``) has verified the signature and the
    applicant. Returns the case number. Raises NotFound, InvalidInput, Conflict."""
    try:
        return _register(session, actor, CaseDraft(**{**draft.__dict__, "receivers": None}), web)
    except _RefusedImage as refused:
        raise refused.error from None


def _register(session, actor: Actor, draft: CaseDraft, web: WebFiling | None = None):
    with transaction(session):
        cat = _category(session, actor, draft.category, web)
        citizen = check_citizen(draft.citizen, cat.kind)
        values = None if draft.fields is None or web is not None else check_fields(cat.web_fields, draft.fields)
        content = _content(draft.content, field_lines(cat.web_fields, values) if values else None)
        case_no = None
        if draft.case_no and web is None:
            case_no = reserved_case_no(session, actor, draft.case_no)
        notifier_id = web.agency.id if web is not None else actor.agency_id
        receivers = _receivers(session, notifier_id, cat, draft.receivers)
        checked = _checked_uploads(cat, draft.uploads, signed=web is not None)
        now = datetime.datetime.utcnow()
        case = _new_case(session, actor, cat, citizen, content, now, web, case_no, values)
        _add_attachments(session, actor, case, checked, now)
        if web is not None:
            web.signature.case = case
            session.add(web.signature)
        if dispatch_waits_for_fee(session, cat.id):
            _hold(session, actor, case, receivers, now)
        else:
            _dispatch(session, actor, case, receivers, now)
        _queue_mails(session, case)
        # Last: its flush writes the case, dispatches, timeline and mails at once.
        detail = {"case_no": case.case_no, "dispatches": len(receivers)}
        audit_case(session, actor, "case_register", case, detail={**detail, "web": True} if web else detail)
        if web is not None:
            return case.case_no
        # Built before the commit, which would expire every loaded row and reload them one by one.
        operator = session.get(PlatformUser, actor.user_id) if actor.user_id else None
        return results.case_view(case, actor, list(case.dispatches), operator=operator)
