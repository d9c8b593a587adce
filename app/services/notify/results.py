"""What a viewer may see of a case, in one place, as plain result objects.

The rule (the screen and the API both render these objects):

- the notifying agency sees the whole case: the citizen's full ID number and
  e-mail, every dispatch, the whole timeline;
- anyone else who may see the case (a receiving agency, or a holder of the
  ``all_agencies`` capability) sees the ID number masked (``******6789``),
  no e-mail, the dispatches it may see and the timeline events of the case
  itself and of those dispatches;
- a receiving agency sees only its own dispatch; an ``all_agencies`` holder
  sees every dispatch; anyone else sees nothing (``visible_dispatches`` None).

The objects hold values only (no database rows), so they can be built inside
a command's transaction and rendered after its commit.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from sqlalchemy import exists, false, or_, true

from app.lib.identifiers import mask_id
from app.lib.rocdate import format_roc_datetime
from app.models.notify import Attachment, CaseEvent, Dispatch, NotificationCase, NotificationCategory
from app.services import actors
from app.services.actors import Actor
from app.services.notify import workflow


@dataclass(frozen=True)
class AgencyRef:
    id: int
    code: str
    name: str


@dataclass(frozen=True)
class PersonRef:
    id: int
    username: str
    full_name: str
    title: str | None = None


@dataclass(frozen=True)
class CategoryRef:
    id: int
    main_item: str
    sub_item: str
    kind: str
    label: str


@dataclass(frozen=True)
class CitizenView:
    name: str
    id_no: str
    email: str | None
    phone: str
    address: str
    contact_by: str = "email"  # email | phone | postal


@dataclass(frozen=True)
class AttachmentView:
    id: int
    kind: str
    filename: str
    mime: str
    size: int
    sha256: str
    uploaded_by: str | None
    uploaded_at: datetime.datetime | None
    stamped: bool


@dataclass(frozen=True)
class EventView:
    at: datetime.datetime
    username: str | None
    agency_code: str | None
    agency_name: str
    action: str
    note: str | None
    dispatch_id: int | None

    @property
    def at_roc(self) -> str:
        return format_roc_datetime(self.at)


@dataclass(frozen=True)
class DispatchView:
    id: int
    case_no: str
    category: CategoryRef
    notifying_agency: AgencyRef | None
    agency: AgencyRef
    state: str
    version: int
    sent_at: datetime.datetime | None
    sent_by: str | None
    received_at: datetime.datetime | None
    received_by: str | None
    assigned_at: datetime.datetime | None
    assigned_by: str | None
    handler: PersonRef | None
    accepted_at: datetime.datetime | None
    processed_at: datetime.datetime | None
    closed_at: datetime.datetime | None
    returned_at: datetime.datetime | None
    result: str | None
    control_type: str | None
    notes: str | None
    return_reason: str | None
    due_at: datetime.datetime | None
    overdue: bool
    allowed_actions: tuple[str, ...]


@dataclass(frozen=True)
class CaseView:
    case_no: str
    category: CategoryRef
    notifying_agency: AgencyRef | None
    registered_by: PersonRef | None
    status: str
    created_at: datetime.datetime
    due_at: datetime.datetime | None
    completed_at: datetime.datetime | None
    overdue: bool
    citizen: CitizenView
    content: str
    own: bool  # the viewer's agency notified it
    attachments: list[AttachmentView] = field(default_factory=list)
    dispatches: list[DispatchView] = field(default_factory=list)
    events: list[EventView] = field(default_factory=list)
    signed: bool = False  # an online application: the applicant's card signature is kept with it


@dataclass(frozen=True)
class DispatchDetail:
    """The dispatch page: the dispatch, its case as the viewer may see it, whom it may be assigned to."""

    dispatch: DispatchView
    case: CaseView
    handlers: list[PersonRef] = field(default_factory=list)


@dataclass(frozen=True)
class CaseRow:
    """A line of the notifying agency's work list (no personal data)."""

    case_no: str
    status: str
    category: CategoryRef
    created_at: datetime.datetime
    due_at: datetime.datetime | None
    overdue: bool
    dispatches: list[DispatchView]


@dataclass(frozen=True)
class WorkList:
    box: str
    page: int
    size: int
    items: list  # CaseRow for "cases", DispatchView otherwise

    def __len__(self) -> int:
        return len(self.items)

    @property
    def count(self) -> int:
        return len(self.items)

    @property
    def more(self) -> bool:
        return len(self.items) == self.size

    @property
    def overdue(self) -> int:
        return sum(1 for i in self.items if i.overdue)


@dataclass(frozen=True)
class CategoryView:
    id: int
    main_item: str
    sub_item: str
    kind: str
    consent_required: bool
    due_days: int | None
    description: str | None
    default_receivers: list[AgencyRef]


@dataclass(frozen=True)
class FieldView:
    """A structured field the category declares (an ``old_new`` one is a pair)."""

    name: str
    label: str
    type: str
    old_new: bool
    required: bool
    max_length: int
    help: str | None


@dataclass(frozen=True)
class RegistrationForm:
    """What the new-case page offers: the category, the agencies it may be sent to
    and the structured fields it declares."""

    category: CategoryView
    agencies: list[AgencyRef]  # the category's defaults first, then every other active agency
    default_ids: set[int]
    fields: list[FieldView] = field(default_factory=list)


@dataclass(frozen=True)
class AttachmentCheck:
    id: int
    case_no: str
    filename: str
    kind: str
    sha256: str
    uploaded_by: str | None
    uploaded_at: datetime.datetime | None
    intact: bool


# --- the rule ---------------------------------------------------------------------------


def sees_in_full(case: NotificationCase, viewer: Actor) -> bool:
    """Only the notifying agency sees the citizen's full ID number and e-mail."""
    return viewer.same_agency(case.agency_id)


def visible_dispatches(case: NotificationCase, viewer: Actor) -> list[Dispatch] | None:
    """The dispatches this viewer may see, or None when the case is not theirs to see at all."""
    if sees_in_full(case, viewer) or viewer.can(actors.ALL_AGENCIES):
        return list(case.dispatches)
    mine = [d for d in case.dispatches if d.agency_id == viewer.agency_id]
    return mine or None


def agency_cases(agency_id: int | None):
    """The same rule as SQL over cases: the cases an agency notified or has a dispatch of."""
    if agency_id is None:
        return false()
    received = exists().where(Dispatch.case_id == NotificationCase.id, Dispatch.agency_id == agency_id)
    return or_(NotificationCase.agency_id == agency_id, received)


def visible_cases(viewer: Actor):
    """``visible_dispatches`` as a WHERE clause over cases: those it does not answer None for."""
    return true() if viewer.can(actors.ALL_AGENCIES) else agency_cases(viewer.agency_id)


def visible_dispatch_of_case(viewer: Actor):
    """``visible_dispatches`` as a WHERE clause over a case's dispatches (joined to the case)."""
    if viewer.can(actors.ALL_AGENCIES):
        return true()
    if viewer.agency_id is None:
        return false()
    return or_(NotificationCase.agency_id == viewer.agency_id, Dispatch.agency_id == viewer.agency_id)


def citizen_of(case: NotificationCase, viewer: Actor) -> CitizenView:
    full = sees_in_full(case, viewer)
    return CitizenView(
        name=case.citizen_name or "",
        id_no=(case.citizen_id_no or "") if full else mask_id(case.citizen_id_no or ""),
        email=case.citizen_email if full else None,
        phone=case.citizen_phone or "",
        address=case.citizen_address or "",
        contact_by=case.contact_by or "email",
    )


# --- building the objects ------------------------------------------------------------------


def _utcnow() -> datetime.datetime:
    return datetime.datetime.utcnow()


def agency_ref(agency) -> AgencyRef | None:
    return AgencyRef(agency.id, agency.code, agency.name) if agency is not None else None


def person_ref(user) -> PersonRef | None:
    if user is None:
        return None
    return PersonRef(user.id, user.username, user.get_full_name(), getattr(user, "title", None))


def category_ref(cat: NotificationCategory) -> CategoryRef:
    return CategoryRef(cat.id, cat.main_item, cat.sub_item, cat.kind, str(cat))


def dispatch_view(d: Dispatch, viewer: Actor, now: datetime.datetime | None = None) -> DispatchView:
    now = now or _utcnow()
    case = d.case
    return DispatchView(
        id=d.id,
        case_no=case.case_no,
        category=category_ref(case.category),
        notifying_agency=agency_ref(case.agency),
        agency=agency_ref(d.agency),
        state=d.state,
        version=d.version,
        sent_at=d.sent_at,
        sent_by=d.sent_by,
        received_at=d.received_at,
        received_by=d.received_by,
        assigned_at=d.assigned_at,
        assigned_by=d.supervisor.username if d.supervisor_id and d.supervisor else None,
        handler=person_ref(d.handler) if d.handler_id else None,
        accepted_at=d.accepted_at,
        processed_at=d.processed_at,
        closed_at=d.closed_at,
        returned_at=d.returned_at,
        result=d.result,
        control_type=d.control_type,
        notes=d.notes,
        return_reason=d.return_reason,
        due_at=d.due_at,
        overdue=d.state != "closed" and d.due_at is not None and d.due_at < now,
        allowed_actions=tuple(workflow.allowed_actions(d, viewer)),
    )


def attachment_view(a: Attachment) -> AttachmentView:
    return AttachmentView(
        a.id, a.kind, a.filename, a.mime, a.size, a.sha256, a.uploaded_by, a.uploaded_at, a.stamped is not None
    )


def _events(case: NotificationCase, dispatch_ids: set[int], names: dict[str, str]) -> list[EventView]:
    def shown(e: CaseEvent) -> bool:
        return e.dispatch_id is None or e.dispatch_id in dispatch_ids

    return [
        EventView(
            at=e.at,
            username=e.username,
            agency_code=e.agency_code,
            agency_name=names.get(e.agency_code or "", e.agency_code or ""),
            action=e.action,
            note=e.note,
            dispatch_id=e.dispatch_id,
        )
        for e in case.events
        if shown(e)
    ]


def case_view(case: NotificationCase, viewer: Actor, dispatches: list[Dispatch], operator=None) -> CaseView:
    """The case as ``viewer`` may see it; ``dispatches`` from ``visible_dispatches``."""
    now = _utcnow()
    names = {a.code: a.name for a in (case.agency, *(d.agency for d in dispatches)) if a is not None}
    return CaseView(
        case_no=case.case_no,
        category=category_ref(case.category),
        notifying_agency=agency_ref(case.agency),
        registered_by=person_ref(operator if operator is not None else case.operator),
        status=case.status,
        created_at=case.created_at,
        due_at=case.due_at,
        completed_at=case.completed_at,
        overdue=case.status != "completed" and case.due_at is not None and case.due_at < now,
        citizen=citizen_of(case, viewer),
        content=case.content,
        own=sees_in_full(case, viewer),
        attachments=[attachment_view(a) for a in case.attachments],
        dispatches=[dispatch_view(d, viewer, now) for d in dispatches],
        events=_events(case, {d.id for d in dispatches}, names),
        signed=case.signature is not None,
    )
