"""REST API of cross-agency notification: what a household registration
system calls when a record changes, and what receiving agencies act with."""

from __future__ import annotations

import base64
import binascii
import functools

from flask import current_app, request
from flask_appbuilder.api import BaseApi, expose, safe
from flask_appbuilder.security.decorators import protect
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.extensions import db
from app.lib.identifiers import mask_id
from app.lib.rocdate import format_roc_datetime
from app.models.notify import NotificationCategory
from app.services import actors, notify, workflow
from app.services.actors import Actor
from app.services.errors import DomainError, InvalidInput
from app.web import current_actor


def actor() -> Actor:
    return current_actor()


def _iso(value):
    return value.isoformat(timespec="seconds") + "Z" if value else None


def dispatch_json(d, viewer: Actor) -> dict:
    return {
        "id": d.id,
        "case_no": d.case.case_no,
        "agency": {"code": d.agency.code, "name": d.agency.name},
        "state": d.state,
        "version": d.version,
        "sent_at": _iso(d.sent_at),
        "sent_by": d.sent_by,
        "received_at": _iso(d.received_at),
        "received_by": d.received_by,
        "assigned_at": _iso(d.assigned_at),
        "handler": d.handler.username if d.handler else None,
        "accepted_at": _iso(d.accepted_at),
        "processed_at": _iso(d.processed_at),
        "closed_at": _iso(d.closed_at),
        "result": d.result,
        "control_type": d.control_type,
        "notes": d.notes,
        "return_reason": d.return_reason,
        "due_at": _iso(d.due_at),
        "allowed_actions": workflow.allowed_actions(d, viewer),
    }


def case_json(case, dispatches, viewer: Actor) -> dict:
    own = case.agency_id == viewer.agency_id or viewer.can(actors.ALL_AGENCIES)
    return {
        "case_no": case.case_no,
        "category": {"id": case.category.id, "main_item": case.category.main_item, "sub_item": case.category.sub_item,
                     "kind": case.category.kind},
        "notifying_agency": {"code": case.agency.code, "name": case.agency.name},
        "status": case.status,
        "created_at": _iso(case.created_at),
        "due_at": _iso(case.due_at),
        "completed_at": _iso(case.completed_at),
        "citizen": {
            "name": case.citizen_name,
            "id_no": case.citizen_id_no if own else mask_id(case.citizen_id_no or ""),
            "email": case.citizen_email if own else None,
            "phone": case.citizen_phone,
            "address": case.citizen_address,
        },
        "content": case.content,
        "attachments": [{"id": a.id, "kind": a.kind, "filename": a.filename, "mime": a.mime, "size": a.size,
                         "sha256": a.sha256} for a in case.attachments],
        "dispatches": [dispatch_json(d, viewer) for d in dispatches],
        "events": [{"at": _iso(e.at), "at_roc": format_roc_datetime(e.at), "user": e.username, "agency": e.agency_code,
                    "action": e.action, "note": e.note}
                   for e in case.events
                   if own or e.dispatch_id is None or e.dispatch_id in {d.id for d in dispatches}],
    }  # fmt: skip


def domain_errors(fn):
    """Domain errors become their status and message (one place for the API)."""

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        try:
            return fn(self, *args, **kwargs)
        except DomainError as exc:
            db.session.rollback()
            return self.response(exc.status, message=str(exc))

    return wrapper


def _uploads(items) -> list[notify.Upload]:
    uploads = []
    for item in items or []:
        if not isinstance(item, dict):
            raise InvalidInput(_l("Attachments must be objects with filename and content_base64."))
        try:
            data = base64.b64decode(item.get("content_base64") or "", validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput(_l("An attachment is not valid base64.")) from exc
        uploads.append(notify.Upload(str(item.get("filename") or "upload"), data, str(item.get("kind") or "other")))
    return uploads


class CategoryApi(BaseApi):
    resource_name = "categories"
    openapi_spec_tag = "Notification"

    @expose("/", methods=["GET"])
    @protect()
    @safe
    def list(self):
        """The notification categories the caller's agency may use."""
        who = actor()
        return self.response(200, result=[
            {"id": c.id, "main_item": c.main_item, "sub_item": c.sub_item, "kind": c.kind,
             "consent_required": c.consent_required, "due_days": c.due_days,
             "default_receivers": [{"id": a.id, "code": a.code, "name": a.name} for a in c.default_receivers]}
            for c in notify.usable_categories(db.session, who)
        ])  # fmt: skip


class CaseApi(BaseApi):
    resource_name = "cases"
    openapi_spec_tag = "Notification"

    @expose("/", methods=["POST"])
    @protect()
    @safe
    @domain_errors
    def register(self):
        """Register a case: {category, citizen: {...}, content, receivers?, attachments?}."""
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self.response_400(message=str(_l("The request must be a JSON object.")))
        citizen = body.get("citizen") or {}
        if not isinstance(citizen, dict):
            raise InvalidInput(_l("The citizen must be an object."))
        receivers = body.get("receivers")
        draft = notify.CaseDraft(
            category_id=_category_id(body.get("category")),
            citizen=notify.Citizen(
                **{k: str(citizen.get(k) or "") for k in ("name", "id_no", "email", "phone", "address")}
            ),
            content=str(body.get("content") or ""),
            receivers=None if receivers is None else [_agency_id(r) for r in receivers],
            uploads=_uploads(body.get("attachments")),
        )
        who = actor()
        case = notify.register_case(db.session, who, draft)
        # Built before the commit, which would expire every loaded row and reload them one by one.
        result = case_json(case, list(case.dispatches), who)
        db.session.commit()
        return self.response(201, case_no=result["case_no"], result=result)

    @expose("/<case_no>", methods=["GET"])
    @protect()
    @safe
    @domain_errors
    def get(self, case_no):
        """A case with the dispatches the caller may see."""
        who = actor()
        case, dispatches = notify.find_case(db.session, who, case_no)
        return self.response(200, result=case_json(case, dispatches, who))


class DispatchApi(BaseApi):
    resource_name = "dispatches"
    openapi_spec_tag = "Notification"

    @expose("/<int:pk>", methods=["GET"])
    @protect()
    @safe
    @domain_errors
    def get(self, pk):
        """One dispatch; the receiving agency's first opening records its receipt."""
        who = actor()
        return self.response(200, result=dispatch_json(notify.open_dispatch(db.session, who, pk), who))

    @expose("/<int:pk>/<action>", methods=["POST"])
    @protect()
    @safe
    @domain_errors
    def act(self, pk, action):
        """receive | assign {handler} | accept | process {result, control_type, notes} | close | return {reason}."""
        body = request.get_json(silent=True) or {}
        if not isinstance(body, dict):
            return self.response_400(message=str(_l("The request must be a JSON object.")))
        who = actor()
        d = notify.act(db.session, who, pk, action, version=body.get("version"), handler=body.get("handler"),
                       result=body.get("result"), control_type=body.get("control_type"), notes=body.get("notes"),
                       reason=body.get("reason"))  # fmt: skip
        return self.response(200, result=dispatch_json(d, who))


class WorklistApi(BaseApi):
    resource_name = "worklist"
    openapi_spec_tag = "Notification"

    @expose("/<box>", methods=["GET"])
    @protect()
    @safe
    @domain_errors
    def get(self, box):
        """cases (notifying agency) | incoming (supervisor) | work (handler) | all."""
        who = actor()
        size = current_app.config["WORKLIST_PAGE_SIZE"]
        page = int(request.args["page"]) if request.args.get("page", "").isdigit() else 1
        items = notify.worklist(db.session, who, box, limit=size, offset=(max(1, min(page, 10_000)) - 1) * size)
        if box == "cases":
            result = [{"case_no": c.case_no, "status": c.status, "overdue": late, "category": str(c.category),
                       "created_at": _iso(c.created_at)} for c, late in items]  # fmt: skip
        else:
            result = [{**dispatch_json(i.dispatch, who), "overdue": i.overdue} for i in items]
        return self.response(200, count=len(result), overdue=sum(1 for r in result if r["overdue"]), page=page,
                             more=len(result) == size, result=result)  # fmt: skip


class AttachmentApi(BaseApi):
    resource_name = "attachments"
    openapi_spec_tag = "Notification"

    @expose("/<int:pk>/check", methods=["GET"])
    @protect()
    @safe
    @domain_errors
    def check(self, pk):
        """Is this attachment the file that was registered?"""
        att, ok = notify.check_attachment(db.session, actor(), pk)
        return self.response(200, intact=ok, sha256=att.sha256, filename=att.filename)


def _category_id(ref) -> int:
    if isinstance(ref, int):
        return ref
    if isinstance(ref, str) and ref.isdigit():
        return int(ref)
    if isinstance(ref, str) and "/" in ref:
        main, sub = (p.strip() for p in ref.split("/", 1))
        cat = db.session.scalar(select(NotificationCategory).where(NotificationCategory.main_item == main,
                                                                   NotificationCategory.sub_item == sub))  # fmt: skip
        if cat is not None:
            return cat.id
    raise InvalidInput(_l("Give the category as its id or as 'main item/sub item'."))


def _agency_id(ref) -> int:
    from app.models.org import Agency

    if isinstance(ref, int):
        return ref
    if isinstance(ref, str):
        agency = db.session.scalar(select(Agency).where(Agency.code == ref.strip().upper()))
        if agency is not None:
            return agency.id
    raise InvalidInput(_l("Unknown receiving agency."))


def register(appbuilder) -> None:
    for api in (CategoryApi, CaseApi, DispatchApi, WorklistApi, AttachmentApi):
        appbuilder.add_api(api)
