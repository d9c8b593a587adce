"""A user's query history, reopening a stored result (audited), and the
public check of a printout's verification code."""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select

from app.lib import verifycode
from app.lib.rocdate import utc_midnight
from app.models.queries import QueryLog
from app.services import actors, audit
from app.services.actors import Actor
from app.services.command import transaction
from app.services.errors import Forbidden, InvalidInput, NotFound
from app.services.query.record import snapshot_digest

MAX_HISTORY = 200
MAX_ID = 9223372036854775807  # ids are 64-bit
REOPEN_WAYS = ("page", "print", "pdf", "api")


def may_read_everyones(who: Actor) -> bool:
    return who.can(actors.READ_ALL_QUERIES)


def history(
    session,
    who: Actor,
    *,
    form_code=None,
    case_no=None,
    date_from=None,
    date_to=None,
    everyone=False,
    limit=50,
    offset=0,
) -> list[QueryLog]:
    """A user's own queries, newest first; auditors may ask for everyone's.
    Days are Taipei days, as the history shows its times."""
    stmt = select(QueryLog).order_by(QueryLog.at.desc(), QueryLog.id.desc())
    if not (everyone and may_read_everyones(who)):
        stmt = stmt.where(QueryLog.user_id == who.user_id)
    if form_code:
        stmt = stmt.where(QueryLog.form_code == form_code)
    if case_no:
        stmt = stmt.where(or_(QueryLog.case_no == case_no, QueryLog.reason.contains(case_no)))
    if date_from:
        stmt = stmt.where(QueryLog.at >= utc_midnight(date_from))
    if date_to:
        stmt = stmt.where(QueryLog.at < utc_midnight(date_to + datetime.timedelta(days=1)))
    limit = max(1, min(int(limit), MAX_HISTORY))
    return list(session.scalars(stmt.limit(limit).offset(max(0, int(offset)))))


def stored_result(session, who: Actor, query_id: int, way: str = "page") -> tuple[QueryLog, dict]:
    """The stored result exactly as shown; only its author or an auditor may
    read it. Every reopening is recorded with its ``way`` (REOPEN_WAYS: on
    screen, printed, as a PDF, through the API), and so is every attempt on
    someone else's query (recorded as refused, then Forbidden is raised)."""
    detail = {"as": way if way in REOPEN_WAYS else "page"}
    with transaction(session):
        entry = session.get(QueryLog, query_id) if 0 < query_id <= MAX_ID else None
        if entry is None:
            raise NotFound(_l("No such query."))
        allowed = entry.user_id == who.user_id or may_read_everyones(who)
        if allowed and not entry.snapshot:
            raise NotFound(_l("This query was refused; it has no result."))
        if allowed and entry.outcome == "candidates" and detail["as"] in ("print", "pdf"):
            raise NotFound(_l("A list of candidates has no printout; pick one and run the query."))
        audit.record(
            session,
            "query_reopen",
            object_type="QueryLog",
            object_id=entry.id,
            outcome="ok" if allowed else "refused",
            detail=detail,
            actor=who,
        )
    if not allowed:
        raise Forbidden(_l("You may only reopen your own queries."))
    return entry, json.loads(entry.snapshot)


@dataclass(frozen=True)
class CodeCheck:
    """The public answer about a code: 200 and what it confirms, or the
    refusal's status (400 a typo, 404 unknown, expired, altered) and why."""

    status: int
    answer: dict


def check_code(session, code: str) -> CodeCheck:
    """``verify_code`` as the public's answer: never raises for a bad code."""
    try:
        return CodeCheck(200, verify_code(session, code))
    except (InvalidInput, NotFound) as exc:
        return CodeCheck(exc.status, {"valid": False, "message": str(exc)})


def verify_code(session, code: str) -> dict:
    """What a printout's verification code confirms, without personal data.

    Raises InvalidInput for a malformed code (typo) and NotFound for an
    unknown, expired or altered one.
    """
    canonical = verifycode.normalise(code) if isinstance(code, str) else None
    if canonical is None:
        raise InvalidInput(_l("This is not a valid verification code; please check what you typed."))
    entry = session.scalar(select(QueryLog).where(QueryLog.verification_code == canonical))
    if entry is None:  # the electronic receipts of paid fees carry codes of the same kind
        from app.services.receipts import verify_receipt

        receipt = verify_receipt(session, canonical)
        if receipt is not None:
            return receipt
    if entry is None or not entry.snapshot:
        raise NotFound(_l("No printout carries this verification code."))
    if entry.valid_until and entry.valid_until < datetime.datetime.utcnow():
        raise NotFound(_l("This verification code has expired."))
    snapshot = json.loads(entry.snapshot)
    if snapshot_digest(snapshot) != entry.snapshot_sha256:
        raise NotFound(_l("The stored record behind this code has been altered."))
    return {
        "valid": True,
        "verification_code": canonical,
        "agency": snapshot.get("agency"),
        "form": entry.form_title,
        "issued_at": snapshot.get("at"),
        "valid_until": entry.valid_until.isoformat(timespec="seconds") + "Z" if entry.valid_until else None,
        "sha256": entry.snapshot_sha256,
    }
