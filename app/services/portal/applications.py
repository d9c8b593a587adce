"""Applying online: the categories the county opens to the web for the visitor (citizens or
businesses), the application's canonical content, and the signed application registered
through the same workflow as a counter case (``app.services.notify.registration``).

The canonical content is what the card signs (PKCS#7 / CMS SignedData through the local
signing component, as the card sign-in): UTF-8 JSON with sorted keys and no spaces::

    {"applicant": {"key": <the keyed hash of the bound ID, or the business number>, "kind": ...},
     "attachments": [{"filename", "sha256", "slot"}...],   # in the category's order
     "category": {"id", "main_item", "sub_item"},
     "contact": {"email", "phone"},
     "fields": {<key>: "value" | {"new": ..., "old": ...}},
     "time": "2026-12-03T05:30:00Z", "version": 1}

The server builds it again from what is submitted and verifies that the signature covers
exactly it, that the signer's certificate chains to the roots and is not revoked (OCSP, else
the CRL: ``app.services.certauth``), and that the card is the one the person signed in with
(the same binding as the sign-in). Every refusal is audited and registers nothing.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
from dataclasses import dataclass, field

from asn1crypto import cms
from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, select
from sqlalchemy.orm import selectinload

from app.lib import identifiers
from app.models.notify import CaseSignature, NotificationCategory
from app.models.portal import ApplicationDraft, ApplicationDraftFile
from app.services import audit, certauth
from app.services.actors import Actor
from app.services.cards import bindings
from app.services.command import refuse, transaction
from app.services.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from app.services.notify import attachments as files_check
from app.services.notify.categories import attachment_types
from app.services.notify.fields import FieldMessages, check_fields, field_lines
from app.services.notify.registration import CaseDraft, Citizen, Upload, WebFiling, register_web_case
from app.services.portal.person import Person, person_of
from app.services.query.record import subject_hash

VERSION = 1
MAX_VALUE = 2000
# How far the application's time may lie from the server's when it is submitted.
MAX_AGE = datetime.timedelta(hours=1)
MAX_AHEAD = datetime.timedelta(minutes=5)
DRAFT_MINUTES = 30
MIME_TYPES = {"application/pdf": "pdf", "image/jpeg": "jpeg", "image/png": "png", "image/tiff": "tiff"}
TYPE_LABELS = {"pdf": "PDF", "jpeg": "JPEG", "png": "PNG", "tiff": "TIFF"}

NOT_OPEN = _l("This category is not open to your online applications.")
MISSING_FIELD = _l("Fill in \u201c%(field)s\u201d: the application was not sent.")
MISSING_OLD_NEW = _l("Fill in both the old and the new \u201c%(field)s\u201d: the application was not sent.")
UNKNOWN_FIELD = _l("The application holds a field this category does not ask for: it was not sent.")
TOO_LONG = _l("\u201c%(field)s\u201d is longer than %(limit)s characters: the application was not sent.")
BAD_DATE = _l("\u201c%(field)s\u201d must be a date (year-month-day): the application was not sent.")
BAD_NUMBER = _l("\u201c%(field)s\u201d must be a number: the application was not sent.")
MISSING_FILE = _l("Attach \u201c%(file)s\u201d: the application was not sent.")
UNKNOWN_FILE = _l("The application holds an attachment this category does not accept: it was not sent.")
ONE_FILE = _l("Attach one file as \u201c%(file)s\u201d: the application was not sent.")
WRONG_TYPE = _l("\u201c%(file)s\u201d accepts only %(types)s files: the application was not sent.")
FILE_REFUSED = _l("\u201c%(file)s\u201d: %(reason)s")
NO_EMAIL = _l("Give your e-mail address: the agencies report their progress to it.")
BAD_EMAIL = _l("The e-mail address is not valid: the application was not sent.")
BAD_PHONE = _l("The phone number is not valid: the application was not sent.")
BAD_ID = _l("The ID number is not the one bound to your card: the application was not sent.")
BAD_TIME = _l("The application's time is not now (sign it again): nothing was registered.")
NO_SIGNATURE = _l("Sign the application with your card first: nothing was registered.")
BAD_SIGNATURE_TEXT = _l("The signature is not valid base64: nothing was registered.")
WRONG_CONTENT = _l(
    "The signature does not cover exactly the application that was sent (it was signed over other content, "
    "or the content was changed after signing): nothing was registered."
)
CARD_REFUSED = _l("The card's signature was refused: %(reason)s Nothing was registered.")
NOT_YOUR_CARD = _l(
    "The application was signed with another card than the one you signed in with: sign it with your own "
    "card. Nothing was registered."
)
DUPLICATE = _l("This signed application was registered already.")
NO_DRAFT = _l("No such application waiting for your signature (it expires after %(minutes)s minutes).")

_CONTENT_REASONS = {"wrong_content", "bad_signature"}


@dataclass(frozen=True)
class FieldSpec:
    name: str
    label: str
    label_en: str | None
    type: str
    old_new: bool
    required: bool
    max_length: int
    help: str | None


@dataclass(frozen=True)
class SlotSpec:
    name: str
    label: str
    label_en: str | None
    types: list[str]
    required: bool


@dataclass(frozen=True)
class OpenCategory:
    """A category the visitor may apply for online, with what it asks for."""

    id: int
    main_item: str
    sub_item: str
    description: str | None
    applicant: str
    agency_name: str
    receivers: list[str]
    fields: list[FieldSpec]
    attachments: list[SlotSpec]


@dataclass
class ApplicationFile:
    slot: str
    filename: str
    data: bytes


@dataclass
class Application:
    """What the person submits: the category, the field values (a pair ``{"old", "new"}`` for
    an old/new field), contact, the full ID number (citizens: the platform keeps only its keyed
    hash, and the agencies need it), the files, and the time of the content signed."""

    category: int
    fields: dict
    email: str = ""
    phone: str = ""
    id_number: str = ""
    files: list[ApplicationFile] = field(default_factory=list)
    time: datetime.datetime | None = None


@dataclass(frozen=True)
class Prepared:
    """An application checked and put in its canonical form, ready to sign."""

    content: bytes
    time: datetime.datetime
    draft_id: int | None = None

    @property
    def text(self) -> str:
        return self.content.decode("utf-8")


@dataclass(frozen=True)
class Review:
    """A draft as its review page shows it."""

    draft_id: int
    category: OpenCategory
    fields: dict
    email: str
    phone: str
    files: list[dict]
    content: str
    time: datetime.datetime
    expires_at: datetime.datetime


# --- the categories ------------------------------------------------------------------------------


def _open_stmt():
    return (
        select(NotificationCategory)
        .where(NotificationCategory.active.is_(True), NotificationCategory.web_open.is_(True))
        .options(
            selectinload(NotificationCategory.web_fields),
            selectinload(NotificationCategory.web_attachments),
            selectinload(NotificationCategory.web_agency),
            selectinload(NotificationCategory.default_receivers),
        )
        .order_by(NotificationCategory.main_item, NotificationCategory.sub_item)
    )


def _shape(cat: NotificationCategory) -> OpenCategory:
    return OpenCategory(
        id=cat.id,
        main_item=cat.main_item,
        sub_item=cat.sub_item,
        description=cat.description,
        applicant=cat.web_applicant,
        agency_name=cat.web_agency.name if cat.web_agency else "",
        receivers=[a.name for a in cat.default_receivers if a.active],
        fields=[
            FieldSpec(
                f.name, f.label, f.label_en, f.type, bool(f.old_new), bool(f.required), f.max_length or 200, f.help
            )  # fmt: skip
            for f in cat.web_fields
        ],
        attachments=[
            SlotSpec(a.name, a.label, a.label_en, attachment_types(a), bool(a.required)) for a in cat.web_attachments
        ],
    )


def _applies(person: Person, cat: NotificationCategory) -> bool:
    return cat.web_agency_id is not None and person.subject is not None and cat.web_applicant == person.kind


def open_categories(session, actor: Actor) -> list[OpenCategory]:
    """The categories open to the visitor's online applications (citizens' or businesses'). Raises Forbidden."""
    person = person_of(session, actor)
    return [_shape(c) for c in session.scalars(_open_stmt()) if _applies(person, c)]


def _open_category(session, person: Person, category_id) -> NotificationCategory:
    cat = None
    if isinstance(category_id, int) and not isinstance(category_id, bool) and 0 < category_id < 2**31:
        cat = session.scalars(_open_stmt().where(NotificationCategory.id == category_id)).first()
    if cat is None or not _applies(person, cat):
        raise NotFound(NOT_OPEN)
    return cat


def category_form(session, actor: Actor, category_id) -> OpenCategory:
    """One open category with its fields and attachments. Raises NotFound, Forbidden."""
    return _shape(_open_category(session, person_of(session, actor), category_id))


# --- checking and the canonical content -----------------------------------------------------------


PORTAL_FIELDS = FieldMessages(
    missing=MISSING_FIELD,
    missing_old_new=MISSING_OLD_NEW,
    unknown=UNKNOWN_FIELD,
    too_long=TOO_LONG,
    bad_date=BAD_DATE,
    bad_number=BAD_NUMBER,
)


def _fields(cat: NotificationCategory, given) -> dict:
    if not isinstance(given, dict):
        raise InvalidInput(UNKNOWN_FIELD)
    return check_fields(cat.web_fields, given, PORTAL_FIELDS)


def _files(cat: NotificationCategory, given: list[ApplicationFile]) -> list[tuple[ApplicationFile, str]]:
    """The files in the category's order, each of a type its slot accepts: [(file, sha256)]."""
    slots = {a.name: a for a in cat.web_attachments}
    if any(f.slot not in slots for f in given):
        raise InvalidInput(UNKNOWN_FILE)
    max_bytes = current_app.config["ATTACHMENT_MAX_BYTES"]
    out = []
    for slot in cat.web_attachments:
        mine = [f for f in given if f.slot == slot.name]
        if not mine:
            if slot.required:
                raise InvalidInput(MISSING_FILE, file=slot.label)
            continue
        if len(mine) > 1:
            raise InvalidInput(ONE_FILE, file=slot.label)
        upload = mine[0]
        types = attachment_types(slot)
        allowed = "、".join(TYPE_LABELS[t] for t in types if t in TYPE_LABELS)
        if files_check.sniff(upload.data or b"") not in {m for m, t in MIME_TYPES.items() if t in types}:
            raise InvalidInput(WRONG_TYPE, file=slot.label, types=allowed)
        try:
            files_check.check_upload(upload.filename, upload.data, max_bytes)
        except InvalidInput as exc:
            raise InvalidInput(FILE_REFUSED, file=slot.label, reason=str(exc)) from None
        upload.filename = files_check.safe_filename(upload.filename)
        out.append((upload, files_check.digest(upload.data)))
    return out


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z0-9-]{2,}$")
_PHONE = re.compile(r"^[0-9+()#\- ]{6,20}$")


def _contact(person: Person, app: Application) -> tuple[str, str]:
    email, phone = (app.email or "").strip(), (app.phone or "").strip()
    if not email:
        raise InvalidInput(NO_EMAIL)
    if len(email) > 200 or not _EMAIL.match(email):
        raise InvalidInput(BAD_EMAIL)
    if phone and not _PHONE.match(phone):
        raise InvalidInput(BAD_PHONE)
    return email, phone


def _id_number(person: Person, app: Application) -> str:
    """A citizen's full ID number, which must be the one bound to the card (by its keyed hash)."""
    if person.kind != "citizen":
        return ""
    number = (app.id_number or "").strip().upper()
    if not identifiers.is_person_id(number) or subject_hash(number) != person.subject:
        raise InvalidInput(BAD_ID)
    return number


def _stamp(moment: datetime.datetime) -> str:
    return moment.replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def canonical(cat: NotificationCategory, person: Person, fields: dict, email: str, phone: str, files, moment) -> bytes:
    """The canonical content of an application (the bytes the card signs)."""
    applicant = {"kind": person.kind, "key": person.business_no if person.kind == "business" else person.subject}
    body = {
        "version": VERSION,
        "category": {"id": cat.id, "main_item": cat.main_item, "sub_item": cat.sub_item},
        "applicant": applicant,
        "fields": fields,
        "contact": {"email": email, "phone": phone},
        "attachments": [{"slot": f.slot, "filename": f.filename, "sha256": sha} for f, sha in files],
        "time": _stamp(moment),
    }
    return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


@dataclass
class _Checked:
    cat: NotificationCategory
    person: Person
    fields: dict
    email: str
    phone: str
    id_number: str
    files: list
    time: datetime.datetime
    content: bytes


def _check(session, person: Person, app: Application, now: datetime.datetime) -> _Checked:
    cat = _open_category(session, person, app.category)
    fields = _fields(cat, app.fields)
    email, phone = _contact(person, app)
    id_number = _id_number(person, app)
    files = _files(cat, app.files)
    moment = (app.time or now).replace(microsecond=0)
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.UTC).replace(tzinfo=None)
    content = canonical(cat, person, fields, email, phone, files, moment)
    return _Checked(cat, person, fields, email, phone, id_number, files, moment, content)


def _refused(session, actor: Actor, exc: DomainError, category_id, step: str, reason: str | None = None):
    detail = {"step": step}
    if reason:
        detail["code"] = reason
    object_id = category_id if isinstance(category_id, int) and not isinstance(category_id, bool) else None
    return refuse(session, exc, actor, "portal.application", object_type="NotificationCategory",
                  object_id=object_id, detail=detail)  # fmt: skip


def prepare(session, actor: Actor, app: Application, keep: bool = False) -> Prepared:
    """Command: check an application and give its canonical content to sign (the time is now).
    ``keep``: hold it as a draft for the portal's review page (its files too, for DRAFT_MINUTES).
    Raises Forbidden, NotFound, InvalidInput (audited)."""
    person = person_of(session, actor)
    now = datetime.datetime.utcnow()
    try:
        checked = _check(session, person, app, now if keep else (app.time or now))
    except DomainError as exc:
        raise _refused(session, actor, exc, app.category, "prepare") from None
    if not keep:
        return Prepared(checked.content, checked.time)
    body = {"fields": checked.fields, "email": checked.email, "phone": checked.phone,
            "id_number": checked.id_number, "time": _stamp(checked.time)}  # fmt: skip
    with transaction(session):
        session.execute(delete(ApplicationDraft).where(ApplicationDraft.expires_at < now))
        draft = ApplicationDraft(
            user_id=actor.user_id, category_id=checked.cat.id, body=json.dumps(body, ensure_ascii=False),
            created_at=now, expires_at=now + datetime.timedelta(minutes=DRAFT_MINUTES),
            files=[ApplicationDraftFile(slot=f.slot, filename=f.filename, data=f.data) for f, _sha in checked.files],
        )  # fmt: skip
        session.add(draft)
        session.flush()
        audit.record(session, "portal.application_draft", object_type="NotificationCategory",
                     object_id=checked.cat.id, detail={"draft": draft.id}, actor=actor)  # fmt: skip
        return Prepared(checked.content, checked.time, draft.id)


def _draft(session, actor: Actor, draft_id) -> ApplicationDraft:
    draft = None
    if isinstance(draft_id, int) and 0 < draft_id < 2**31:
        draft = session.scalar(
            select(ApplicationDraft)
            .where(ApplicationDraft.id == draft_id, ApplicationDraft.user_id == actor.user_id)
            .options(selectinload(ApplicationDraft.files))
        )
    if draft is None or draft.expires_at <= datetime.datetime.utcnow():
        raise refuse(session, NotFound(NO_DRAFT, minutes=DRAFT_MINUTES), actor, "portal.application_draft_refused",
                     object_type="ApplicationDraft")  # fmt: skip
    return draft


def _application_of(draft: ApplicationDraft) -> Application:
    body = json.loads(draft.body)
    return Application(
        category=draft.category_id,
        fields=body["fields"],
        email=body["email"],
        phone=body["phone"],
        id_number=body["id_number"],
        files=[ApplicationFile(f.slot, f.filename, bytes(f.data)) for f in draft.files],
        time=datetime.datetime.fromisoformat(body["time"].rstrip("Z")),
    )


def review(session, actor: Actor, draft_id) -> Review:
    """Command: my draft as its review page shows it (audited: it holds my data). Raises NotFound (audited)."""
    person = person_of(session, actor)
    draft = _draft(session, actor, draft_id)
    app = _application_of(draft)
    checked = _check(session, person, app, app.time)
    with transaction(session):
        audit.record(session, "portal.application_review", object_type="ApplicationDraft", object_id=draft.id,
                     actor=actor)  # fmt: skip
    return Review(
        draft_id=draft.id, category=_shape(checked.cat), fields=checked.fields, email=checked.email,
        phone=checked.phone, content=checked.content.decode("utf-8"), time=checked.time, expires_at=draft.expires_at,
        files=[{"slot": f.slot, "filename": f.filename, "sha256": sha, "size": len(f.data)} for f, sha in checked.files],
    )  # fmt: skip


# --- the signature and the registration -----------------------------------------------------------


def signing_time(pkcs7_der: bytes) -> datetime.datetime | None:
    """The signing time a CMS SignedData's signer carries (naive UTC), or None."""
    try:
        info = cms.ContentInfo.load(pkcs7_der)["content"]["signer_infos"][0]
        for attr in info["signed_attrs"] or []:
            if attr["type"].native == "signing_time":
                return attr["values"][0].native.astimezone(datetime.UTC).replace(tzinfo=None)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None
    return None


def _same_person(session, actor: Actor, person: Person, card) -> bool:
    """The card is the visitor's: bound to their account (as the sign-in maps it), or, for a
    business, a card of the same business number (which the sign-in would bind to it)."""
    binding = bindings.find(session, card)
    if binding is not None:
        return binding.user_id == actor.user_id
    return person.kind == "business" and card.kind == "business" and card.business_no == person.business_no


def _decode(signature) -> bytes:
    if isinstance(signature, bytes):
        return signature
    if not isinstance(signature, str) or not signature.strip():
        raise InvalidInput(NO_SIGNATURE)
    try:
        return base64.b64decode(signature.strip(), validate=True)
    except ValueError:
        raise InvalidInput(BAD_SIGNATURE_TEXT) from None


def _content_text(checked: _Checked) -> str:
    """The case's notification content as the receiving agencies read it (Chinese labels, as the county's)."""
    lines = [f"網路申辦（{checked.cat.main_item}－{checked.cat.sub_item}），申請人以憑證卡簽章。"]
    lines += field_lines(checked.cat.web_fields, checked.fields)
    labels = {a.name: a.label for a in checked.cat.web_attachments}
    for f, _sha in checked.files:
        lines.append(f"附件（{labels.get(f.slot, f.slot)}）：{f.filename}")
    return "\n".join(lines)


def submit(session, actor: Actor, app: Application, signature, draft_id: int | None = None) -> str:
    """Command: verify the card's signature over the application's canonical content and the
    signer (certificate chain and status, the signed-in person), then register the case through
    the counter's workflow with the signature kept with it. Returns the case number.

    Raises Forbidden, NotFound, InvalidInput, certauth's CardRefused (403; 503 when revocation
    cannot be checked), Conflict; every refusal audited, nothing registered."""
    person = person_of(session, actor)
    now = datetime.datetime.utcnow()
    step, reason = "check", None
    try:
        checked = _check(session, person, app, now)
        if app.time is None or not (now - MAX_AGE <= checked.time <= now + MAX_AHEAD):
            raise InvalidInput(BAD_TIME)
        step = "signature"
        der = _decode(signature)
        try:
            card = certauth.verify_signature(der, checked.content)
        except certauth.CardRefused as exc:
            reason = exc.reason
            if exc.reason in _CONTENT_REASONS:
                raise InvalidInput(WRONG_CONTENT) from None
            refused = Forbidden(CARD_REFUSED, reason=str(exc))
            refused.status = exc.status
            raise refused from None
        step = "signer"
        if not _same_person(session, actor, person, card):
            raise Forbidden(NOT_YOUR_CARD)
        sha = files_check.digest(checked.content)
        if session.scalar(select(CaseSignature.id).where(CaseSignature.content_sha256 == sha)):
            raise Conflict(DUPLICATE)
        step = "register"
        sig = CaseSignature(
            content=checked.content.decode("utf-8"), content_sha256=sha, seal=files_check.seal(sha), pkcs7=der,
            signer_kind=card.kind, signer_serial=card.serial, signer_issuer=card.issuer,
            signer_fingerprint=card.fingerprint, signed_at=signing_time(der), verified_at=now,
            verified_by=card.checked_by or None,
        )  # fmt: skip
        citizen = Citizen(name=card.holder, id_no=checked.id_number, email=checked.email, phone=checked.phone,
                          id_hash=person.subject or "")  # fmt: skip
        uploads = [Upload(f.filename, f.data, "other") for f, _sha in checked.files]
        draft = CaseDraft(category=checked.cat.id, citizen=citizen, content=_content_text(checked), uploads=uploads)
        case_no = register_web_case(session, actor, draft, WebFiling(checked.cat.web_agency, sig))
    except DomainError as exc:
        raise _refused(session, actor, exc, app.category, step, reason) from None
    if draft_id is not None:
        with transaction(session):
            session.execute(delete(ApplicationDraft).where(ApplicationDraft.id == draft_id))
    return case_no


def submit_draft(session, actor: Actor, draft_id, signature) -> str:
    """Command: sign my draft (the portal's pages). Raises NotFound (audited), and as ``submit``."""
    person_of(session, actor)
    app = _application_of(_draft(session, actor, draft_id))
    return submit(session, actor, app, signature, draft_id=draft_id)


def draft_content(session, actor: Actor, draft_id) -> Prepared:
    """The canonical content of my draft, for the signing component. Raises NotFound (audited)."""
    person = person_of(session, actor)
    draft = _draft(session, actor, draft_id)
    app = _application_of(draft)
    checked = _check(session, person, app, app.time)
    return Prepared(checked.content, checked.time, draft.id)
