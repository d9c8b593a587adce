"""The command that runs one query: grant, purpose and inputs checked (a
refusal is recorded in the log and the audit trail), sections read, the
result stored as shown, logged and audited, and a verification code issued."""

from __future__ import annotations

import datetime
import json
import time
from dataclasses import dataclass, field

from flask import current_app

from app.lib import verifycode
from app.services.actors import Actor
from app.services.command import refuse, transaction
from app.services.errors import DomainError, InvalidInput
from app.services.query.grants import find_form
from app.services.query.inputs import check_purpose, validate_inputs
from app.services.query.lookup import check_pick, rule_section
from app.services.query.record import add_subjects, log_values, snapshot_digest, write_refused, write_run
from app.services.query.sections import read_candidates, read_sections


@dataclass
class QueryRun:
    """A query just run: its log row's id, verification code and outcome, and
    the result exactly as shown (the stored snapshot). Outcome ``candidates``:
    the input names several properties, listed in ``snapshot["candidates"]``
    (no verification code, no sections read)."""

    id: int
    verification_code: str
    outcome: str
    snapshot: dict = field(default_factory=dict)


def _refused(session, who: Actor, form, form_code, purpose: dict, params, exc: DomainError) -> DomainError:
    """Roll back what was begun, record the refused query (its log row and
    audit event) in a transaction of its own, and return ``exc`` to raise."""
    session.rollback()
    with transaction(session):
        write_refused(session, who, log_values(who, form, form_code, purpose, params, "refused", str(exc)))
    return exc


def _record_refusals(session, who: Actor, form_code: str, query_id, refusals) -> None:
    """Each source the operators' confinement refused while the query ran (a source
    stored before the rule, or written to the database directly) is a security event:
    audited in a transaction of its own (who, the source, the rule, the form and the
    query; nothing of the file or the inputs)."""
    for config, exc in refusals:
        detail = {"source": config.name, "kind": config.kind, "field": exc.field, "rule": exc.rule,
                  "form": form_code, "query": query_id}  # fmt: skip
        refuse(session, InvalidInput(exc.message), who, "source_refused", object_type="DataSource",
               object_id=config.id, detail=detail)  # fmt: skip


def _outcome(sections: list[dict]) -> str:
    failed = sum(1 for s in sections if s["error"])
    return "ok" if not failed else ("source_error" if failed == len(sections) else "partial")


def run_query(
    session,
    who: Actor,
    form_code: str,
    case_no: str | None,
    reason: str | None,
    business_item: str | None,
    params: dict,
    pick: list | None = None,
) -> QueryRun:
    """Run one query for ``who`` and record it; every refusal is recorded too.

    ``pick``: the property picked among the candidates of an earlier run (the
    values of the one-property rule's key columns, ``app.services.query.lookup``).
    Raises NotFound / Forbidden (form), InvalidInput (purpose, inputs, pick).
    """
    started = time.perf_counter()
    purpose = {"case_no": case_no, "reason": reason, "business_item": business_item}
    form = None
    try:
        form = find_form(session, who, form_code)
        item = check_purpose(form, case_no, reason, business_item, agency_code=who.agency_code)
        clean = validate_inputs(form, params)
        pick = check_pick(form, pick)
    except DomainError as exc:
        raise _refused(session, who, form, form_code, purpose, params, exc) from None
    requester_info = {"agency": who.agency_code, "user": who.username, "case_no": case_no, "reason": reason}
    blocked, refusals = False, []
    if pick is None and rule_section(form) is not None:
        found = read_candidates(form, clean, requester_info, refusals)
        blocked = found is None  # unlisted: reading the sections might mix several properties
        if found is not None and len(found["rows"]) > 1:
            return _candidates(session, who, form, form_code, purpose, item, clean, found, started)
        if found is not None and len(found["rows"]) == 1:  # one property: every section reads that one
            pick = found["rows"][0]["pick"]
    named: set[str] = set()  # people the sources' rows are about (a household's members)
    sections = read_sections(form, who, clean, requester_info, pick, refusals, blocked, named)
    outcome = _outcome(sections)
    now = datetime.datetime.utcnow()
    snapshot = {
        "form": form.code,
        "title": form.title,
        "at": now.isoformat(timespec="seconds") + "Z",
        "agency": who.agency_name or who.agency_code,
        "user": who.username,
        "case_no": case_no or "",
        "reason": reason or "",
        "business_item": f"{item.name}（{item.code}）",
        "sections": sections,
    }
    logged = {**clean, "_pick": pick} if pick is not None else clean
    values = log_values(
        who, form, form_code, purpose, logged, outcome, "; ".join(s["error"] for s in sections if s["error"]) or None
    )
    add_subjects(values, named)
    values.update(
        at=now,
        row_count=sum(len(s["rows"]) for s in sections),
        duration_ms=round((time.perf_counter() - started) * 1000, 1),
        snapshot=json.dumps(snapshot, ensure_ascii=False),
        snapshot_sha256=snapshot_digest(snapshot),
        verification_code=verifycode.new_code(),
        valid_until=now + datetime.timedelta(days=current_app.config["VERIFY_VALID_DAYS"]),
    )
    with transaction(session):
        new_id = write_run(session, who, values, {"form": form.code, "rows": values["row_count"]})
    if refusals:
        _record_refusals(session, who, snapshot["form"], new_id, refusals)
    return QueryRun(id=new_id, verification_code=values["verification_code"], outcome=outcome, snapshot=snapshot)


def _candidates(
    session, who: Actor, form, form_code, purpose: dict, item, clean: dict, found: dict, started
) -> QueryRun:
    """Several properties match: the listing (what identifies each, no owners)
    is recorded as a query (log row with outcome ``candidates``, its listing
    stored as shown, its audit event); it gets no verification code."""
    now = datetime.datetime.utcnow()
    snapshot = {
        "form": form.code,
        "title": form.title,
        "at": now.isoformat(timespec="seconds") + "Z",
        "agency": who.agency_name or who.agency_code,
        "user": who.username,
        "case_no": purpose["case_no"] or "",
        "reason": purpose["reason"] or "",
        "business_item": f"{item.name}（{item.code}）",
        "sections": [],
        "candidates": found,
    }
    values = log_values(who, form, form_code, purpose, clean, "candidates")
    values.update(
        at=now,
        row_count=len(found["rows"]),
        duration_ms=round((time.perf_counter() - started) * 1000, 1),
        snapshot=json.dumps(snapshot, ensure_ascii=False),
        snapshot_sha256=snapshot_digest(snapshot),
    )
    with transaction(session):
        new_id = write_run(session, who, values, {"form": form.code, "candidates": len(found["rows"])})
    return QueryRun(id=new_id, verification_code="", outcome="candidates", snapshot=snapshot)
