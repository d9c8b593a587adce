"""REST API of confidential file transfer (JWT from /api/v1/security/login).

POST /api/v1/transfers registers a transfer and returns its configuration
file; PUT/GET /api/v1/transfers/<id>/payload and /result move the CMS files
(raw request bodies, streamed to disk). /api/v1/certificates registers the
caller's own certificate. Bodies are loaded and answers dumped through
``app.schemas.transfer``; domain errors and invalid input are answered by the
application's handlers (``app.web``).
"""

from __future__ import annotations

from flask import request, send_file
from flask_appbuilder.api import BaseApi, expose
from flask_appbuilder.security.decorators import protect

from app.extensions import db
from app.schemas import transfer as schemas
from app.services import transfer
from app.web import current_actor

COMPONENTS = (
    schemas.TransferDraftSchema,
    schemas.TransferNotesSchema,
    schemas.TransferCaseSchema,
    schemas.StaffCertificateUploadSchema,
    schemas.StaffCertificateSchema,
    schemas.TransferUsableItemSchema,
)


def json_body():
    """The request's JSON object; app.web has already refused malformed JSON (depth, numbers, surrogates)."""
    return request.get_json()


def case_json(answer) -> dict:
    return schemas.case_schema.dump(answer)


class TransferBaseApi(BaseApi):
    """What the transfer APIs share: their tag, schemas, and the answers several
    operations give (registered once in the document by FAB, from ``responses``)."""

    openapi_spec_tag = "Transfer"
    openapi_spec_component_schemas = COMPONENTS
    responses = {
        **BaseApi.responses,
        "transfer_case": {
            "description": "The case",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {"result": {"$ref": "#/components/schemas/TransferCaseSchema"}},
                    }
                }
            },
        },
        "transfer_file": {
            "description": "The CMS file",
            "content": {"application/pkcs7-mime": {"schema": {"type": "string", "format": "binary"}}},
        },
    }


class TransferApi(TransferBaseApi):
    resource_name = "transfers"

    @expose("/", methods=["GET"])
    @protect()
    def list(self):
        """The caller's agency's transfers.
        ---
        get:
          summary: The caller's agency's transfers in one work list, newest first
          parameters:
          - in: query
            name: box
            schema: {type: string, enum: [outgoing, incoming, completed, all], default: all}
          responses:
            200:
              description: The cases
              content:
                application/json:
                  schema:
                    type: object
                    properties:
                      result: {type: array, items: {$ref: '#/components/schemas/TransferCaseSchema'}}
            400: {$ref: '#/components/responses/400'}
            401: {$ref: '#/components/responses/401'}
            403: {$ref: '#/components/responses/403'}
        """
        box = schemas.box_schema.load(request.args.to_dict())["box"]
        cases = transfer.list_cases(db.session, current_actor(), box)
        return self.response(200, result=schemas.case_schema.dump(cases, many=True))

    @expose("/items", methods=["GET"])
    @protect()
    def items(self):
        """The transfer items the caller's agency may use.
        ---
        get:
          summary: The active transfer items the caller's agency sends, with the receiving staff's certificates
          description: Read-only, for a transfer officer's own system; managing items stays with administrators.
          responses:
            200:
              description: The items
              content:
                application/json:
                  schema:
                    type: object
                    properties:
                      result: {type: array, items: {$ref: '#/components/schemas/TransferUsableItemSchema'}}
            401: {$ref: '#/components/responses/401'}
            403: {$ref: '#/components/responses/403'}
        """
        items = transfer.usable_items(db.session, current_actor())
        return self.response(200, result=schemas.usable_item_schema.dump(items, many=True))

    @expose("/", methods=["POST"])
    @protect()
    def register(self):
        """Register a transfer.
        ---
        post:
          summary: Register a transfer; answers the case and its configuration file for the kit
          requestBody:
            required: true
            content:
              application/json:
                schema: {$ref: '#/components/schemas/TransferDraftSchema'}
          responses:
            201:
              description: The registered case and its configuration file
              content:
                application/json:
                  schema:
                    type: object
                    properties:
                      result: {$ref: '#/components/schemas/TransferCaseSchema'}
                      config: {type: object}
            400: {$ref: '#/components/responses/400'}
            401: {$ref: '#/components/responses/401'}
            403: {$ref: '#/components/responses/403'}
            409: {description: The upload number is already in use}
        """
        draft = schemas.draft_schema.load(json_body())
        done = transfer.register(db.session, current_actor(), draft)
        return self.response(201, result=case_json(done.case), config=done.config)

    @expose("/<int:pk>", methods=["GET"])
    @protect()
    def get(self, pk):
        """One case.
        ---
        get:
          summary: One case of the caller's agency
          parameters:
          - pk
          responses:
            200: {$ref: '#/components/responses/transfer_case'}
            401: {$ref: '#/components/responses/401'}
            403: {$ref: '#/components/responses/403'}
            404: {$ref: '#/components/responses/404'}
        """
        return self.response(200, result=case_json(transfer.view_case(db.session, current_actor(), pk)))

    @expose("/<int:pk>/config", methods=["GET"])
    @protect()
    def config(self, pk):
        """The configuration file for the kit.
        ---
        get:
          summary: The configuration file for the kit (`--config`), for either agency's officers (audited)
          parameters:
          - pk
          responses:
            200:
              description: The configuration file
              content:
                application/json:
                  schema: {type: object}
            401: {$ref: '#/components/responses/401'}
            403: {$ref: '#/components/responses/403'}
            404: {$ref: '#/components/responses/404'}
        """
        config = transfer.download_config(db.session, current_actor(), pk).config
        return self.response(200, **config)

    @expose("/<int:pk>/payload", methods=["PUT"])
    @protect()
    def put_payload(self, pk):
        """Upload the encrypted file.
        ---
        put:
          summary: Upload the encrypted file (CMS EnvelopedData for exactly the case's recipients)
          parameters:
          - pk
          requestBody:
            required: true
            content:
              application/octet-stream:
                schema: {type: string, format: binary}
          responses:
            200: {$ref: '#/components/responses/transfer_case'}
            400: {description: 'Refused, nothing registered: the body was shorter than its Content-Length, or the file is
              not whole CMS (cut off, data after its end), not encrypted, or for the wrong people'}
            401: {$ref: '#/components/responses/401'}
            403: {$ref: '#/components/responses/403'}
            404: {$ref: '#/components/responses/404'}
            409: {description: The case already has its encrypted file}
            413: {description: The file is larger than the platform accepts}
            507: {description: The platform's storage is full}
        """
        answer = transfer.upload_payload(db.session, current_actor(), pk, request.stream, "api", request.content_length)
        return self.response(200, result=case_json(answer))

    @expose("/<int:pk>/payload", methods=["GET"])
    @protect()
    def get_payload(self, pk):
        """Download the encrypted file.
        ---
        get:
          summary: Download the encrypted file (the receiving agency; the first download marks it received)
          parameters:
          - pk
          responses:
            200: {$ref: '#/components/responses/transfer_file'}
            401: {$ref: '#/components/responses/401'}
            403: {$ref: '#/components/responses/403'}
            404: {$ref: '#/components/responses/404'}
            409: {description: Nothing has been uploaded yet}
        """
        return _send(transfer.download_payload(db.session, current_actor(), pk))

    @expose("/<int:pk>/result", methods=["PUT"])
    @protect()
    def put_result(self, pk):
        """Upload the encrypted result.
        ---
        put:
          summary: Upload the encrypted result (enveloped for the sender)
          parameters:
          - pk
          requestBody:
            required: true
            content:
              application/octet-stream:
                schema: {type: string, format: binary}
          responses:
            200: {$ref: '#/components/responses/transfer_case'}
            400: {$ref: '#/components/responses/400'}
            401: {$ref: '#/components/responses/401'}
            403: {$ref: '#/components/responses/403'}
            404: {$ref: '#/components/responses/404'}
            409: {description: The file was not received yet}
            413: {description: The file is larger than the platform accepts}
            507: {description: The platform's storage is full}
        """
        answer = transfer.upload_result(db.session, current_actor(), pk, request.stream, "api", request.content_length)
        return self.response(200, result=case_json(answer))

    @expose("/<int:pk>/result", methods=["GET"])
    @protect()
    def get_result(self, pk):
        """Download the encrypted result.
        ---
        get:
          summary: Download the encrypted result (the sending agency; the first download completes the case)
          parameters:
          - pk
          responses:
            200: {$ref: '#/components/responses/transfer_file'}
            401: {$ref: '#/components/responses/401'}
            403: {$ref: '#/components/responses/403'}
            404: {$ref: '#/components/responses/404'}
            409: {description: No result yet}
        """
        return _send(transfer.download_result(db.session, current_actor(), pk))

    @expose("/<int:pk>/notes", methods=["POST"])
    @protect()
    def notes(self, pk):
        """Record processing notes.
        ---
        post:
          summary: The receiving agency's processing notes
          parameters:
          - pk
          requestBody:
            required: true
            content:
              application/json:
                schema: {$ref: '#/components/schemas/TransferNotesSchema'}
          responses:
            200: {$ref: '#/components/responses/transfer_case'}
            400: {$ref: '#/components/responses/400'}
            401: {$ref: '#/components/responses/401'}
            403: {$ref: '#/components/responses/403'}
            404: {$ref: '#/components/responses/404'}
            409: {description: Not the time for notes}
        """
        notes = schemas.notes_schema.load(json_body())["notes"]
        return self.response(200, result=case_json(transfer.record_notes(db.session, current_actor(), pk, notes)))


def _send(download: transfer.Download):
    return send_file(download.path, mimetype=download.mimetype, as_attachment=True, download_name=download.filename)


class CertificateApi(TransferBaseApi):
    resource_name = "certificates"

    @expose("/", methods=["GET"])
    @protect()
    def list(self):
        """The caller's own certificates.
        ---
        get:
          summary: The caller's own certificates, newest first
          responses:
            200:
              description: The certificates
              content:
                application/json:
                  schema:
                    type: object
                    properties:
                      result: {type: array, items: {$ref: '#/components/schemas/StaffCertificateSchema'}}
            401: {$ref: '#/components/responses/401'}
            403: {$ref: '#/components/responses/403'}
        """
        certs = transfer.my_certificates(db.session, current_actor())
        return self.response(200, result=schemas.cert_schema.dump(certs, many=True))

    @expose("/", methods=["POST"])
    @protect()
    def register(self):
        """Register the caller's certificate.
        ---
        post:
          summary: Check and register the caller's own certificate (a refusal is audited with its reason)
          requestBody:
            required: true
            content:
              application/json:
                schema: {$ref: '#/components/schemas/StaffCertificateUploadSchema'}
          responses:
            201:
              description: The registered certificate
              content:
                application/json:
                  schema:
                    type: object
                    properties:
                      result: {$ref: '#/components/schemas/StaffCertificateSchema'}
            400: {$ref: '#/components/responses/400'}
            401: {$ref: '#/components/responses/401'}
            403: {$ref: '#/components/responses/403'}
            409: {description: The certificate is already registered}
        """
        text = schemas.certificate_upload_schema.load(json_body())["certificate"]
        cert = transfer.upload_certificate(db.session, current_actor(), text)
        return self.response(201, result=schemas.cert_schema.dump(cert))

    @expose("/<int:pk>/withdraw", methods=["POST"])
    @protect()
    def withdraw(self, pk):
        """Withdraw one of the caller's certificates.
        ---
        post:
          summary: Withdraw one's own certificate; no new transfer is encrypted for it
          parameters:
          - pk
          responses:
            200:
              description: The withdrawn certificate
              content:
                application/json:
                  schema:
                    type: object
                    properties:
                      result: {$ref: '#/components/schemas/StaffCertificateSchema'}
            401: {$ref: '#/components/responses/401'}
            403: {$ref: '#/components/responses/403'}
            404: {$ref: '#/components/responses/404'}
        """
        cert = transfer.withdraw_certificate(db.session, current_actor(), pk)
        return self.response(200, result=schemas.cert_schema.dump(cert))


def register(appbuilder) -> None:
    appbuilder.add_api(TransferApi)
    appbuilder.add_api(CertificateApi)
