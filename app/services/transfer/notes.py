"""The receiving agency's processing notes (command)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from app.services.actors import Actor
from app.services.command import transaction
from app.services.errors import Conflict, InvalidInput
from app.services.transfer import rules
from app.services.transfer.answers import CaseAnswer, case_answer
from app.services.transfer.registration import record_step

MAX_NOTES = 4000


def record_notes(session, actor: Actor, case_id, notes: str) -> CaseAnswer:
    """Command: the receiving agency's notes while it processes the file (audited without the text)."""
    notes = (notes or "").strip()
    with transaction(session):
        case = rules.receiving_case(session, actor, case_id, _l("Only the receiving agency records processing notes."))
        if case.state != "received":
            raise Conflict(
                _l("Notes can be recorded while the file is being processed (now: %(state)s)."),
                state=rules.STATE_LABELS[case.state],
            )
        if not notes or len(notes) > MAX_NOTES:
            raise InvalidInput(_l("Write the processing notes (at most 4,000 characters)."))
        case.notes = notes
        record_step(session, actor, case, "noted", {"length": len(notes)}, note=notes[:200])
        return case_answer(case, actor)
