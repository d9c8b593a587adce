"""Notification categories: which ones an agency may notify under, and the
rules an administrator's category must meet."""

from __future__ import annotations

import re

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.models.notify import (
    ATTACHMENT_TYPES,
    CITIZEN_MAIL_STAGES,
    FIELD_TYPES,
    WEB_APPLICANTS,
    CategoryAttachment,
    CategoryField,
    NotificationCategory,
)
from app.models.org import Agency
from app.services import actors
from app.services.actors import Actor
from app.services.errors import InvalidInput
from app.services.notify import results


def usable_categories(session, actor: Actor) -> list[NotificationCategory]:
    """The active categories the actor's agency may notify under (all, with ``all_agencies``)."""
    cats = session.scalars(
        select(NotificationCategory)
        .where(NotificationCategory.active.is_(True))
        .options(
            selectinload(NotificationCategory.notifying_agencies),
            selectinload(NotificationCategory.default_receivers),
        )
        .order_by(NotificationCategory.main_item, NotificationCategory.sub_item)
    )
    every = actor.can(actors.ALL_AGENCIES)
    return [c for c in cats if every or any(a.id == actor.agency_id for a in c.notifying_agencies)]


def _category_view(c: NotificationCategory) -> results.CategoryView:
    return results.CategoryView(
        id=c.id,
        main_item=c.main_item,
        sub_item=c.sub_item,
        kind=c.kind,
        consent_required=bool(c.consent_required),
        due_days=c.due_days,
        description=c.description,
        default_receivers=[results.agency_ref(a) for a in c.default_receivers],
    )


def list_categories(session, actor: Actor) -> list[results.CategoryView]:
    """The categories the actor's agency may use, with their default receivers. Reads only."""
    return [_category_view(c) for c in usable_categories(session, actor)]


def registration_form(session, actor: Actor, category_id: int) -> results.RegistrationForm | None:
    """The category (None when the actor may not use it) and the agencies a
    case may be sent to: its active defaults first, then the others; never
    the actor's own agency. Reads only."""
    cat = next((c for c in usable_categories(session, actor) if c.id == category_id), None)
    if cat is None:
        return None
    defaults = [a for a in cat.default_receivers if a.active and a.id != actor.agency_id]
    default_ids = {a.id for a in defaults}
    others = session.scalars(select(Agency).where(Agency.active.is_(True)).order_by(Agency.kind, Agency.code))
    agencies = defaults + [a for a in others if a.id not in default_ids and a.id != actor.agency_id]
    fields = [
        results.FieldView(f.name, f.label, f.type, bool(f.old_new), bool(f.required), f.max_length or 200, f.help)
        for f in cat.web_fields
    ]
    return results.RegistrationForm(
        category=_category_view(cat),
        agencies=[results.agency_ref(a) for a in agencies],
        default_ids=default_ids,
        fields=fields,
    )


def validate_category(session, cat: NotificationCategory) -> None:
    if not (cat.main_item or "").strip() or not (cat.sub_item or "").strip():
        raise InvalidInput(_l("A category needs a main item and a sub item."))
    if cat.kind not in ("citizen", "agency"):
        raise InvalidInput(_l("Choose the kind: citizen application or agency notification."))
    if cat.due_days is not None and not (1 <= int(cat.due_days) <= 365):
        raise InvalidInput(_l("Due days must be between 1 and 365."))
    if not cat.default_receivers:
        raise InvalidInput(_l("A category needs at least one default receiving agency."))
    if cat.web_open:
        if cat.kind != "citizen":
            raise InvalidInput(_l("Only citizen-application categories can be opened to web applications."))
        if cat.web_agency is None:
            raise InvalidInput(_l("A category open to web applications needs its web-notifying agency."))
        if any(a.id == cat.web_agency.id for a in cat.default_receivers):
            raise InvalidInput(_l("The web-notifying agency cannot also be a receiving agency."))
    if (cat.web_applicant or "citizen") not in WEB_APPLICANTS:
        raise InvalidInput(_l("Choose who applies on the web: citizens or businesses."))
    stages = cat.citizen_mail_stages
    if stages is not None and (
        not isinstance(stages, str) or any(s not in CITIZEN_MAIL_STAGES for s in stages.split(",") if s)
    ):
        raise InvalidInput(
            _l("The stages that e-mail the citizen are of: %(stages)s.", stages=", ".join(CITIZEN_MAIL_STAGES))
        )


_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def validate_category_field(session, field: CategoryField) -> None:
    """An application field an Admin configures: a key, a label, a known type, a sane length."""
    if field.category is None:
        raise InvalidInput(_l("Choose the category."))
    if not _KEY.match(field.name or ""):
        raise InvalidInput(_l("The key is lower-case letters, digits and _ (starting with a letter)."))
    if not (field.label or "").strip():
        raise InvalidInput(_l("The field needs a label."))
    if (field.type or "text") not in FIELD_TYPES:
        raise InvalidInput(_l("Choose a field type."))
    if field.max_length is not None and not (1 <= int(field.max_length) <= 2000):
        raise InvalidInput(_l("The maximum length must be between 1 and 2000."))


def attachment_types(slot: CategoryAttachment) -> list[str]:
    """The file types a slot accepts, as listed by the Admin."""
    return [t.strip().lower() for t in (slot.types or "").split(",") if t.strip()]


def validate_category_attachment(session, slot: CategoryAttachment) -> None:
    """An attachment an application accepts: a key, a label, types among PDF, JPEG, PNG, TIFF."""
    if slot.category is None:
        raise InvalidInput(_l("Choose the category."))
    if not _KEY.match(slot.name or ""):
        raise InvalidInput(_l("The key is lower-case letters, digits and _ (starting with a letter)."))
    if not (slot.label or "").strip():
        raise InvalidInput(_l("The attachment needs a label."))
    types = attachment_types(slot)
    if not types or any(t not in ATTACHMENT_TYPES for t in types):
        raise InvalidInput(
            _l("Accepted file types: a comma-separated list of %(types)s.", types=", ".join(ATTACHMENT_TYPES))
        )
    slot.types = ",".join(dict.fromkeys(types))
