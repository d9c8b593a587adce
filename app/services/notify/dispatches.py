"""The dispatch commands: opening one (the receiving agency's first opening
records its receipt) and each workflow action with its consequences."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm.exc import StaleDataError

from app.models.notify import CaseEvent, Dispatch, NotificationCase
from app.models.org import PlatformUser
from app.services import actors, payments, survey
from app.services.actors import Actor
from app.services.command import transaction
from app.services.errors import Conflict, NotFound
from app.services.notify import mails, results, workflow
from app.services.notify.records import MAX_ID, audit_case, row
from app.services.notify.worklists import handlers_of


@dataclass(frozen=True)
class Action:
    """What a dispatch action carries (``version``: the one the actor saw)."""

    version: int | None = None
    handler: int | str | None = None  # assign: a user id or username
    result: str | None = None
    control_type: str | None = None
    notes: str | None = None
    reason: str | None = None
    publish_result: bool | None = None  # process: show the result to the applicant on the portal


def _visible_dispatch(session, actor: Actor, dispatch_id) -> Dispatch:
    """A dispatch of the actor's agency or case (or any, with ``all_agencies``); NotFound otherwise."""
    d = row(session, Dispatch, dispatch_id)
    if d is None:
        raise NotFound(_l("No such dispatch."))
    mine = actor.same_agency(d.agency_id) or actor.same_agency(d.case.agency_id)
    if not (mine or actor.can(actors.ALL_AGENCIES)):
        raise NotFound(_l("No such dispatch."))
    return d


def _detail(session, actor: Actor, d: Dispatch) -> results.DispatchDetail:
    view = results.dispatch_view(d, actor)
    case = d.case
    shown = results.visible_dispatches(case, actor) or [d]
    handlers = handlers_of(session, d.agency_id) if "assign" in view.allowed_actions else []
    return results.DispatchDetail(
        dispatch=view,
        case=results.case_view(case, actor, shown),
        handlers=[results.person_ref(u) for u in handlers],
    )


def open_dispatch(session, actor: Actor, dispatch_id) -> results.DispatchDetail:
    """Open a dispatch (a recorded event): when the receiving agency opens a
    dispatch still "sent", its receipt is recorded (who, when), on the case's
    timeline and in the audit trail, in this command's transaction. Opening it
    again, or by anyone else, changes nothing.

    Raises NotFound (no such dispatch, or not the actor's to see).
    """
    with transaction(session):
        d = _visible_dispatch(session, actor, dispatch_id)
        receivable = workflow.TRANSITIONS[("sent", "receive")][1]
        if actor.same_agency(d.agency_id) and d.state == "sent" and workflow.may(actor, receivable):
            workflow.apply(session, d, "receive", actor)
            session.flush()
            audit_case(session, actor, "dispatch_receive", d.case, dispatch=d)
        return _detail(session, actor, d)


def _find_user(session, ref) -> PlatformUser | None:
    if ref is None or ref == "":
        return None
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit() and len(ref) < 19):
        return row(session, PlatformUser, int(ref))
    return session.scalar(select(PlatformUser).where(PlatformUser.username == str(ref)[:128]))


def _capabilities_of(session, user: PlatformUser | None) -> frozenset[str]:
    return actors.capabilities_of(session, [r.id for r in user.roles]) if user is not None else frozenset()


def _complete(session, actor: Actor, case: NotificationCase, ctx: dict, citizen_mail: str | None) -> None:
    """Every dispatch closed: the case is complete; the last e-mail carries the questionnaire link."""
    case.status, case.completed_at = "completed", datetime.datetime.utcnow()
    session.add(
        CaseEvent(
            case=case, at=case.completed_at, username=actor.username, agency_code=actor.agency_code, action="complete"
        )
    )
    audit_case(session, actor, "case_complete", case)
    target = citizen_mail or (case.agency.email if case.agency else None)
    invitation = survey.invite(session, case) if citizen_mail else None
    if target:
        survey_ctx = {**ctx, "survey": f"\n{invitation}" if invitation else ""}
        mails.queue(session, case, "completed", target, survey_ctx, extra=invitation)
    if not citizen_mail:
        mails.notice(session, case, "completed", ctx)


def _consequences(session, actor: Actor, d: Dispatch, action: str) -> list[int]:
    """The e-mails of the step, and the case's completion when its last dispatch closes; the
    payments a refusal marked for refund (refunded through the provider after the commit)."""
    case = d.case
    ctx = {
        **mails.context(case),
        "agency": d.agency.name,
        "result": d.result or "",
        "control": mails.CONTROL_LABELS.get(d.control_type or "", ""),
    }
    citizen_mail = case.citizen_email if case.category.kind == "citizen" else None
    if action == "accept":
        mails.to_citizen(session, case, "accepted", ctx)
    if action != "close":
        return []
    refunds = payments.refunds_on_refusal(session, actor, case, d.agency_id) if d.control_type == "refused" else []
    mails.to_citizen(session, case, "dispatch_closed", ctx)
    if case.agency and case.agency.email:
        mails.queue(session, case, "notifier_dispatch_closed", case.agency.email, ctx)
    if all(x.state == "closed" for x in case.dispatches):
        _complete(session, actor, case, ctx, citizen_mail)
    return refunds


def act(session, actor: Actor, dispatch_id, action: str, step: Action) -> results.DispatchView:
    """Apply one workflow action, its audit event and e-mails, in one transaction.

    Raises NotFound, Forbidden, Conflict (illegal transition, stale version,
    a concurrent change), InvalidInput.
    """
    if action not in workflow.ACTION_LABELS:
        raise NotFound(_l("No such action."))
    if step.version is not None and not 0 <= step.version <= MAX_ID:
        raise Conflict(workflow.STALE)
    try:
        with transaction(session):
            d = row(session, Dispatch, dispatch_id)
            if d is None or not (actor.same_agency(d.agency_id) or actor.can(actors.ALL_AGENCIES)):
                raise NotFound(_l("No such dispatch."))
            handler = _find_user(session, step.handler) if action == "assign" else None
            workflow.apply(
                session,
                d,
                action,
                actor,
                expected_version=step.version,
                handler=handler,
                handler_capabilities=_capabilities_of(session, handler),
                result=step.result,
                control_type=step.control_type,
                notes=step.notes,
                reason=step.reason,
            )
            if action == "process" and step.publish_result is not None:
                d.result_public = bool(step.publish_result)
            session.flush()  # the version check: a concurrent change matches no row
            audit_case(session, actor, f"dispatch_{action}", d.case, dispatch=d)
            refunds = _consequences(session, actor, d, action)
            session.flush()
            shaped = results.dispatch_view(d, actor)
    except StaleDataError as exc:
        raise Conflict(workflow.STALE) from exc
    if refunds:  # through the provider, after the commit; the payments worker retries what fails
        payments.refund_payments(session, refunds)
    return shaped
