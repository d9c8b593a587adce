"""REST API of cross-agency notification: what a household registration
system calls when a record changes, and what receiving agencies act with.

Each method parses the request through ``app.schemas.notify``, calls one
command of ``app.services.notify`` and dumps its result with the same
schemas; domain errors and invalid input become their status in app.web.
"""

from __future__ import annotations

from flask import request
from flask_appbuilder.api import BaseApi, expose
from flask_appbuilder.security.decorators import protect

from app.extensions import db
from app.schemas import notify as schemas
from app.services import notify
from app.services.reports import replica
from app.views.base import json_answer, json_body
from app.web import current_actor

CASE_REGISTRATION = schemas.CaseRegistrationSchema()
CITIZEN_LOOKUP = schemas.CitizenLookupSchema()
CITIZEN_FOUND = schemas.CitizenFoundSchema()
DISPATCH_ACTION = schemas.DispatchActionSchema()
CATEGORY_LIST = schemas.CategoryListSchema()
CASE_ANSWER = schemas.CaseAnswerSchema()
CASE_REGISTERED = schemas.CaseRegisteredSchema()
DISPATCH_ANSWER = schemas.DispatchAnswerSchema()
CASE_WORKLIST = schemas.CaseWorklistSchema()
DISPATCH_WORKLIST = schemas.DispatchWorklistSchema()
ATTACHMENT_CHECK = schemas.AttachmentCheckSchema()
CASE_SEARCH = schemas.CaseSearchSchema()
CASE_SEARCH_ANSWER = schemas.CaseSearchAnswerSchema()


class NotifyApi(BaseApi):
    """What the notification APIs share: their tag, schemas and error answers."""

    openapi_spec_tag = "Notification"
    openapi_spec_component_schemas = schemas.COMPONENTS
    responses = {
        **BaseApi.responses,
        "409": {
            "description": "Conflict: the dispatch changed meanwhile, or the step is not allowed in its state",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/MessageSchema"}}},
        },
    }


class CategoryApi(NotifyApi):
    resource_name = "categories"

    @expose("/", methods=["GET"])
    @protect()
    def list(self):
        """The notification categories the caller's agency may use.
        ---
        get:
          summary: The notification categories the agency of the caller may use
          responses:
            200:
              description: The categories with their default receiving agencies
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/CategoryListSchema'
            401:
              $ref: '#/components/responses/401'
        """
        return json_answer(CATEGORY_LIST, {"result": notify.list_categories(db.session, current_actor())})


class CaseApi(NotifyApi):
    resource_name = "cases"
    # The register lookup is part of registering: whoever may register a case may make it.
    method_permission_name = {"lookup": "register"}

    @expose("/", methods=["POST"])
    @protect()
    def register(self):
        """Register a case and send it to the receiving agencies.
        ---
        post:
          summary: Register a case and send it to the receiving agencies
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  $ref: '#/components/schemas/CaseRegistrationSchema'
          responses:
            201:
              description: The case as the registering agency sees it
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/CaseRegisteredSchema'
            400:
              $ref: '#/components/responses/400'
            401:
              $ref: '#/components/responses/401'
            403:
              $ref: '#/components/responses/403'
            404:
              $ref: '#/components/responses/404'
            409:
              $ref: '#/components/responses/409'
        """
        draft = json_body(CASE_REGISTRATION)
        case = notify.register_case(db.session, current_actor(), draft)
        return json_answer(CASE_REGISTERED, {"case_no": case.case_no, "result": case}, 201)

    @expose("/search", methods=["POST"])
    @protect()
    def search(self):
        """Search the cases the caller may see (a search by citizen is audited).
        ---
        post:
          summary: Search the cases the caller may see, a page at a time, newest first
          description: >-
            Every criterion is optional and closed cases are included. A notifier, supervisor
            or handler finds the cases their agency notified or has a dispatch of; a manager
            finds every agency's cases but never by ID number or name (403). The citizen's ID
            number and name are matched by keyed hash, exactly (the name's spaces and middle
            dots ignored); such a search is recorded in the audit trail. A POST so that
            personal data never travels in a URL. The rows hold no personal data.
          requestBody:
            required: false
            content:
              application/json:
                schema:
                  $ref: '#/components/schemas/CaseSearchSchema'
          responses:
            200:
              description: One page of the cases found
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/CaseSearchAnswerSchema'
            400:
              $ref: '#/components/responses/400'
            401:
              $ref: '#/components/responses/401'
            403:
              $ref: '#/components/responses/403'
        """
        criteria, who = json_body(CASE_SEARCH, optional=True), current_actor()
        found, _freshness = replica.read(db.session, lambda s: notify.search_cases(db.session, who, criteria, reader=s))
        return json_answer(CASE_SEARCH_ANSWER, found)

    @expose("/lookup", methods=["POST"])
    @protect()
    def lookup(self):
        """Read the citizen's name and address from the household register for a case being registered.
        ---
        post:
          summary: The citizen's name and address from the household register, for a case being registered
          description: >-
            Runs the register lookup form as a query whose purpose is the case:
            the case number is taken now, the query log and audit trail carry
            it, and the case registered with that `case_no` keeps it.
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  $ref: '#/components/schemas/CitizenLookupSchema'
          responses:
            200:
              description: What the register holds, and the case number
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/CitizenFoundSchema'
            400:
              $ref: '#/components/responses/400'
            401:
              $ref: '#/components/responses/401'
            403:
              $ref: '#/components/responses/403'
            404:
              $ref: '#/components/responses/404'
        """
        body = json_body(CITIZEN_LOOKUP)
        found = notify.look_up_citizen(db.session, current_actor(), body["category"], body["id_no"], body["case_no"])
        return json_answer(CITIZEN_FOUND, found)

    @expose("/<case_no>", methods=["GET"])
    @protect()
    def get(self, case_no):
        """A case as the caller may see it.
        ---
        get:
          summary: A case as the caller may see it
          description: >-
            The notifying agency sees the whole case; a receiving agency sees the
            ID number of the citizen masked, no e-mail and only its own dispatch.
          parameters:
          - in: path
            name: case_no
            required: true
            schema:
              type: string
              maxLength: 20
          responses:
            200:
              description: The case
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/CaseAnswerSchema'
            401:
              $ref: '#/components/responses/401'
            404:
              $ref: '#/components/responses/404'
        """
        return json_answer(CASE_ANSWER, {"result": notify.view_case(db.session, current_actor(), case_no)})


class DispatchApi(NotifyApi):
    resource_name = "dispatches"

    @expose("/<int:pk>", methods=["GET"])
    @protect()
    def get(self, pk):
        """One dispatch; the receiving agency's first opening records its receipt.
        ---
        get:
          summary: Open a dispatch
          description: >-
            A recorded event: when the receiving agency opens a dispatch still
            sent (not yet opened), its receipt (who, when) is recorded on the timeline
            of the case and in the audit trail. Opening it again changes nothing.
          parameters:
          - pk
          responses:
            200:
              description: The dispatch
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/DispatchAnswerSchema'
            401:
              $ref: '#/components/responses/401'
            404:
              $ref: '#/components/responses/404'
        """
        detail = notify.open_dispatch(db.session, current_actor(), pk)
        return json_answer(DISPATCH_ANSWER, {"result": detail.dispatch})

    @expose("/<int:pk>/<action>", methods=["POST"])
    @protect()
    def act(self, pk, action):
        """Take one step of the dispatch's workflow.
        ---
        post:
          summary: Take one step of the workflow of a dispatch
          description: >-
            receive | assign (handler) | accept | process (result, control_type, notes) |
            close | return (reason); give the version you saw to be refused (409) when
            someone else changed the dispatch meanwhile.
          parameters:
          - pk
          - in: path
            name: action
            required: true
            schema:
              type: string
              enum: [receive, assign, accept, process, close, return]
          requestBody:
            required: false
            content:
              application/json:
                schema:
                  $ref: '#/components/schemas/DispatchActionSchema'
          responses:
            200:
              description: The dispatch after the step
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/DispatchAnswerSchema'
            400:
              $ref: '#/components/responses/400'
            401:
              $ref: '#/components/responses/401'
            403:
              $ref: '#/components/responses/403'
            404:
              $ref: '#/components/responses/404'
            409:
              $ref: '#/components/responses/409'
        """
        step = json_body(DISPATCH_ACTION, optional=True)
        dispatch = notify.act(db.session, current_actor(), pk, action, step)
        return json_answer(DISPATCH_ANSWER, {"result": dispatch})


class WorklistApi(NotifyApi):
    resource_name = "worklist"

    @expose("/<box>", methods=["GET"])
    @protect()
    def get(self, box):
        """A work list, a page at a time, newest first.
        ---
        get:
          summary: A work list, a page at a time, newest first
          description: cases (notifying agency) | incoming (supervisor) | work (handler) | all.
          parameters:
          - in: path
            name: box
            required: true
            schema:
              type: string
              enum: [cases, incoming, work, all]
          - in: query
            name: page
            required: false
            schema:
              type: integer
              minimum: 1
              maximum: 10000
          responses:
            200:
              description: The page of the work list
              content:
                application/json:
                  schema:
                    oneOf:
                    - $ref: '#/components/schemas/CaseWorklistSchema'
                    - $ref: '#/components/schemas/DispatchWorklistSchema'
            401:
              $ref: '#/components/responses/401'
            403:
              $ref: '#/components/responses/403'
            404:
              $ref: '#/components/responses/404'
        """
        page = notify.page_number(request.args.get("page"))
        work = notify.worklist(db.session, current_actor(), box, page=page)
        return json_answer(CASE_WORKLIST if box == "cases" else DISPATCH_WORKLIST, work)


class AttachmentApi(NotifyApi):
    resource_name = "attachments"

    @expose("/<int:pk>/check", methods=["GET"])
    @protect()
    def check(self, pk):
        """Is this attachment the file that was registered? (audited)
        ---
        get:
          summary: Check that an attachment is the file that was registered (audited)
          parameters:
          - pk
          responses:
            200:
              description: Whether the stored file is intact
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/AttachmentCheckSchema'
            401:
              $ref: '#/components/responses/401'
            404:
              $ref: '#/components/responses/404'
        """
        return json_answer(ATTACHMENT_CHECK, notify.check_attachment(db.session, current_actor(), pk))


def register(appbuilder) -> None:
    for api in (CategoryApi, CaseApi, DispatchApi, WorklistApi, AttachmentApi):
        appbuilder.add_api(api)
