"""Looking the citizen up in the household register while a case is registered.

The notifier types the ID number; the name and the address come from the
household register through the e-gate, read by the query form that
``NOTIFY_LOOKUP_FORM`` names (configuration, as every query: its source,
transaction code and columns; granted to the notifying agencies' Notifier
role). The read is a query like any other (app.services.query.run): logged,
audited, its data subject recorded for "who looked at my data", and its
purpose is the case being registered: the case number is taken when the
register is read, the query log carries it with the reason
"通報案件登記：<category>", and the case registered from that form keeps the
same number."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from flask_babel import lazy_gettext as _l

from app.lib import identifiers
from app.services import actors
from app.services.actors import Actor
from app.services.command import transaction
from app.services.errors import Forbidden, InvalidInput
from app.services.notify.registration import category_for, lookup_form, next_case_no, reserved_case_no
from app.services.query.run import run_query
from app.services.roles import NOTIFY_CASES

REASON = "通報案件登記：{category}"


@dataclass(frozen=True)
class CitizenFound:
    """What the register says of the citizen, and the case number the lookup was made for."""

    case_no: str
    query_id: int | None
    found: bool
    name: str = ""
    address: str = ""
    household_no: str = ""
    error: str = ""


def look_up_citizen(session, actor: Actor, category, id_no: str, case_no: str | None = None) -> CitizenFound:
    """Read the citizen's name and address from the household register for a case
    of ``category`` being registered; ``case_no``: the number an earlier lookup of
    this registration took (else a new one is taken).

    Raises Forbidden (role, category, form not granted), NotFound (category),
    InvalidInput (ID number, a case number not this actor's)."""
    if not (actor.can(NOTIFY_CASES) or actor.can(actors.ALL_AGENCIES)):
        raise Forbidden(_l("Your role may not register notification cases."))
    cat = category_for(session, actor, category)
    id_no = (id_no or "").strip().upper()
    if not identifiers.is_person_id(id_no):
        raise InvalidInput(_l("The ID number is not valid (check the format and the check digit)."))
    with transaction(session):  # SQLite takes the number in the session's transaction: keep it
        case_no = reserved_case_no(session, actor, case_no) if case_no else next_case_no(session)
    run = run_query(
        session,
        actor,
        lookup_form(),
        case_no,
        REASON.format(category=f"{cat.main_item}－{cat.sub_item}"),
        current_app.config.get("NOTIFY_LOOKUP_ITEM", "HH-NOTIFY"),
        {"id_no": id_no},
    )
    for section in run.snapshot.get("sections") or []:
        if section.get("error"):
            return CitizenFound(case_no, run.id, False, error=section["error"])
        names = [c["name"] for c in section.get("columns") or []]
        for row in section.get("rows") or []:
            record = dict(zip(names, row))
            return CitizenFound(
                case_no,
                run.id,
                True,
                name=record.get("name", ""),
                address=record.get("address", ""),
                household_no=record.get("household_no", ""),
            )
    return CitizenFound(case_no, run.id, False)
