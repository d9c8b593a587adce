"""Reading transfer cases: one case, the work lists, a case by its upload number."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from app.models.transfer import TransferCase, TransferRecipient
from app.services.actors import Actor
from app.services.errors import InvalidInput
from app.services.transfer import rules
from app.services.transfer.answers import CaseAnswer, case_answer

LIST_LIMIT = 200


def view_case(session, actor: Actor, case_id) -> CaseAnswer:
    """One case of the actor's agency, as this actor may see it (a read: nothing recorded)."""
    return case_answer(rules.get_case(session, actor, case_id), actor)


def _box_filter(box: str, mine):
    if box == "outgoing":
        return (TransferCase.sending_agency_id == mine) & TransferCase.state.in_(("registered", "uploaded", "received"))
    if box == "incoming":
        return (TransferCase.receiving_agency_id == mine) & TransferCase.state.in_(
            ("uploaded", "received", "processed")
        )
    if box == "completed":
        return (TransferCase.sending_agency_id == mine) & TransferCase.state.in_(("processed", "result_received"))
    return or_(TransferCase.sending_agency_id == mine, TransferCase.receiving_agency_id == mine)


def list_cases(session, actor: Actor, box: str = "all", limit: int = LIST_LIMIT) -> list[CaseAnswer]:
    """The actor's agency's cases in one work list (outgoing, incoming, completed or all), newest first."""
    if box not in rules.BOXES:
        raise InvalidInput(_l("Unknown list."))
    stmt = (
        select(TransferCase)
        .options(
            selectinload(TransferCase.item),
            selectinload(TransferCase.sending_agency),
            selectinload(TransferCase.receiving_agency),
            selectinload(TransferCase.sender),
            selectinload(TransferCase.receiver),
            selectinload(TransferCase.recipients).selectinload(TransferRecipient.user),
            selectinload(TransferCase.recipients).selectinload(TransferRecipient.certificate),
        )
        .where(_box_filter(box, actor.agency_id))
        .order_by(TransferCase.id.desc())
        .limit(limit)
    )
    return [case_answer(c, actor, with_events=False) for c in session.scalars(stmt)]


def find_by_upload_no(session, upload_no: str) -> TransferCase | None:
    return session.scalar(select(TransferCase).where(TransferCase.upload_no == upload_no))
