"""Applying online on the portal (/portal/apply/) and over REST (/api/v1/me/categories,
/api/v1/me/applications): pick an open category, fill in its fields, attach its files,
review, sign with the card through the local signing component (the card sign-in's
popup mechanism, static/card-sign.js), and the case is registered. Thin: each parses
through ``app.schemas.applications``, calls ``app.services.portal.applications``, renders."""

from __future__ import annotations

import base64
import secrets

from flask import current_app, flash, jsonify, redirect, request, url_for
from flask_appbuilder import BaseView, expose
from flask_appbuilder.api import BaseApi
from flask_appbuilder.security.decorators import protect
from flask_babel import lazy_gettext as _l
from marshmallow import ValidationError

from app.extensions import db
from app.schemas import applications as schemas
from app.schemas import portal as portal_schemas
from app.services import portal
from app.services.errors import DomainError
from app.services.portal import applications
from app.services.portal.applications import ApplicationFile
from app.views.base import json_body
from app.views.portal import _page, card_holder
from app.web import INVALID, current_actor

APPLIED = _l("Your application is registered as case %(case_no)s and was sent to the receiving agencies.")
FILES_AGAIN = _l("For your safety the files you chose were not kept: choose them again.")
TYPE_LABELS = applications.TYPE_LABELS
ACCEPT = {"pdf": ".pdf,application/pdf", "jpeg": ".jpg,.jpeg,image/jpeg", "png": ".png,image/png",
          "tiff": ".tif,.tiff,image/tiff"}  # fmt: skip


def _form_values(category) -> dict:
    """The typed values of the apply page by field key (a pair for an old/new field)."""
    values = {}
    for spec in category.fields:
        if spec.old_new:
            old = request.form.get(f"field-{spec.name}-old", "")
            new = request.form.get(f"field-{spec.name}-new", "")
            if old or new:
                values[spec.name] = {"old": old, "new": new}
        elif request.form.get(f"field-{spec.name}", ""):
            values[spec.name] = request.form.get(f"field-{spec.name}", "")
    return values


def _form_files(category) -> list[ApplicationFile]:
    found = []
    for slot in category.attachments:
        upload = request.files.get(f"file-{slot.name}")
        if upload is not None and upload.filename:
            found.append(ApplicationFile(slot.name, upload.filename, upload.read()))
    return found


class PortalApplyView(BaseView):
    """線上申辦: apply online, signed with the card."""

    route_base = "/portal/apply"
    default_view = "index"

    @expose("/")
    @card_holder
    def index(self):
        return _page("apply_index.html", categories=applications.open_categories(db.session, current_actor()))

    @expose("/<int:category_id>", methods=["GET", "POST"])
    @card_holder
    def form(self, category_id):
        who = current_actor()
        try:
            category = applications.category_form(db.session, who, category_id)
        except DomainError as exc:
            return _page("missing.html", exc.status, message=str(exc))
        context = {"category": category, "values": {}, "error": None, "types": TYPE_LABELS, "accept": ACCEPT}
        if request.method == "GET":
            return _page("apply_form.html", **context)
        values = _form_values(category)
        files = _form_files(category)
        body = {"category": category_id, "fields": values, "email": request.form.get("email", ""),
                "phone": request.form.get("phone", ""), "id_number": request.form.get("id_number", "")}  # fmt: skip
        context["values"] = {**body, "fields": values}
        try:
            application = schemas.content_schema.load(body)
            application.files = files
            prepared = applications.prepare(db.session, who, application, keep=True)
        except ValidationError:
            context["error"] = str(INVALID)
        except DomainError as exc:
            context["error"] = str(exc)
        else:
            return redirect(url_for("PortalApplyView.review", draft_id=prepared.draft_id))
        context["files_lost"] = bool(files)
        return _page("apply_form.html", 400, **context)

    @expose("/review/<int:draft_id>", methods=["GET"])
    @card_holder
    def review(self, draft_id):
        return self._review(draft_id)

    def _review(self, draft_id, error=None, status=200):
        try:
            draft = applications.review(db.session, current_actor(), draft_id)
        except DomainError as exc:
            return _page("missing.html", exc.status, message=str(exc))
        signer = current_app.config["CERT_SIGNER_URL"]
        return _page("apply_review.html", status, draft=draft, signer=signer, error=error, types=TYPE_LABELS)

    @expose("/review/<int:draft_id>/content", methods=["POST"])
    @card_holder
    def content(self, draft_id):
        """What the signing component signs: the canonical content (base64 of its UTF-8)."""
        prepared = applications.draft_content(db.session, current_actor(), draft_id)
        return jsonify(nonce=secrets.token_urlsafe(16), tbs=base64.b64encode(prepared.content).decode(),
                       tbs_encoding="base64")  # fmt: skip

    @expose("/review/<int:draft_id>", methods=["POST"])
    @card_holder
    def sign(self, draft_id):
        try:
            case_no = applications.submit_draft(db.session, current_actor(), draft_id, request.form.get("signature"))
        except DomainError as exc:
            return self._review(draft_id, error=str(exc), status=exc.status)
        flash(str(APPLIED) % {"case_no": case_no}, "success")
        return redirect(url_for("PortalView.case", case_no=case_no))


class MeApplicationsApi(BaseApi):
    """Applying online over REST, with the JWT of the certificate sign-in."""

    resource_name = "me"
    openapi_spec_tag = "Portal"
    openapi_spec_component_schemas = schemas.COMPONENTS

    @expose("/categories", methods=["GET"])
    @protect()
    def categories(self):
        """The categories open to my online applications.
        ---
        get:
          summary: The categories open to my online applications (citizens' or businesses'), with their fields and attachments
          responses:
            200:
              description: The open categories
              content:
                application/json:
                  schema: {$ref: '#/components/schemas/OpenCategoryListSchema'}
            401: {$ref: '#/components/responses/401'}
            403: {$ref: '#/components/responses/403'}
        """
        found = applications.open_categories(db.session, current_actor())
        return self.response(200, **schemas.open_category_list_schema.dump({"result": found}))

    @expose("/applications/canonical", methods=["POST"])
    @protect()
    def canonical(self):
        """The canonical content of an application, to sign.
        ---
        post:
          summary: Check an application and give the exact content its card signature must cover
          description: >-
            The application is checked as it will be on submission (fields, attachments' types, contact, the
            citizen's ID number) and put in its canonical form: UTF-8 JSON with sorted keys and no spaces, holding
            version, category (id, main_item, sub_item), applicant (kind, key), fields, contact (email, phone),
            attachments (slot, filename, sha256, in the category's order) and time (UTC). Sign exactly these bytes
            (PKCS#7 / CMS SignedData, SHA-256, content attached or detached) with the card, then POST the same
            application with its time and the signature to /api/v1/me/applications. Nothing is stored.
          requestBody:
            required: true
            content:
              application/json:
                schema: {$ref: '#/components/schemas/ApplicationContentSchema'}
          responses:
            200:
              description: The content to sign
              content:
                application/json:
                  schema: {$ref: '#/components/schemas/CanonicalSchema'}
            400: {$ref: '#/components/responses/400'}
            401: {$ref: '#/components/responses/401'}
            403: {$ref: '#/components/responses/403'}
            404: {$ref: '#/components/responses/404'}
        """
        application = json_body(schemas.content_schema)
        prepared = applications.prepare(db.session, current_actor(), application)
        return self.response(200, **schemas.canonical_schema.dump(prepared))

    @expose("/applications", methods=["POST"])
    @protect()
    def apply(self):
        """Apply online.
        ---
        post:
          summary: Submit an application signed with my card; it is registered as a case (same workflow as the counter's)
          description: >-
            JSON; each attachment's file as base64. The server builds the canonical content again from what is sent
            (see POST /api/v1/me/applications/canonical) and verifies that the signature covers exactly it, that the
            signer's certificate chains to the trusted roots and is not revoked (OCSP, else the CRL), and that the
            card is the one I signed in with. A refusal (missing field, wrong attachment type, a signature over other
            content, a revoked or another person's card) registers nothing and is audited.
          requestBody:
            required: true
            content:
              application/json:
                schema: {$ref: '#/components/schemas/SignedApplicationSchema'}
          responses:
            201:
              description: Registered
              content:
                application/json:
                  schema: {$ref: '#/components/schemas/AppliedSchema'}
            400: {$ref: '#/components/responses/400'}
            401: {$ref: '#/components/responses/401'}
            403: {description: 'Refused: the card (revoked, untrusted, expired) or another person''s card'}
            404: {$ref: '#/components/responses/404'}
            409: {description: This signed application was registered already}
            503: {description: The card's revocation status could not be checked}
        """
        application, signature = json_body(schemas.signed_schema)
        case_no = applications.submit(db.session, current_actor(), application, signature)
        return self.response(201, **schemas.applied_schema.dump({"case_no": case_no}))

    @expose("/cases/<case_no>/mails", methods=["PUT"])
    @protect()
    def mails(self, case_no):
        """Choose which stages of my case e-mail me.
        ---
        put:
          summary: Choose which stages of my case e-mail me (the others are turned off; audited)
          parameters:
          - in: path
            name: case_no
            required: true
            schema: {type: string, maxLength: 20}
          requestBody:
            required: true
            content:
              application/json:
                schema: {$ref: '#/components/schemas/MailStagesSchema'}
          responses:
            200:
              description: The case with its chosen stages
              content:
                application/json:
                  schema: {$ref: '#/components/schemas/MyCaseSchema'}
            400: {$ref: '#/components/responses/400'}
            401: {$ref: '#/components/responses/401'}
            403: {$ref: '#/components/responses/403'}
            404: {$ref: '#/components/responses/404'}
        """
        body = json_body(portal_schemas.mail_stages_schema)
        found = portal.set_mail_stages(db.session, current_actor(), case_no, body["stages"])
        return self.response(200, **portal_schemas.my_case_schema.dump(found))


def register(appbuilder) -> None:
    appbuilder.add_view_no_menu(PortalApplyView)
    appbuilder.add_api(MeApplicationsApi)
