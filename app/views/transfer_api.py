"""REST API of confidential file transfer (JWT from /api/v1/security/login).

POST /api/v1/transfers registers a transfer and returns its configuration
file; PUT/GET /api/v1/transfers/<id>/payload and /result move the CMS files
(raw request bodies, streamed to disk). /api/v1/certificates registers the
caller's own certificate.
"""

from __future__ import annotations

import base64
import binascii

from flask import request, send_file
from flask_appbuilder.api import BaseApi, expose, safe
from flask_appbuilder.security.decorators import protect
from flask_babel import lazy_gettext as _l

from app.extensions import db
from app.models.org import PlatformUser
from app.services import certificates, transfer
from app.services.errors import DomainError, InvalidInput
from app.views.notify_api import _iso, actor, domain_errors


def case_json(case, who) -> dict:
    return {
        "id": case.id,
        "upload_no": case.upload_no,
        "item": {"id": case.item_id, "description": case.item.description, "ftp_allowed": case.item.ftp_allowed},
        "sending_agency": {"code": case.sending_agency.code, "name": case.sending_agency.name},
        "receiving_agency": {"code": case.receiving_agency.code, "name": case.receiving_agency.name},
        "source": case.source,
        "record_count": case.record_count,
        "remarks": case.remarks,
        "state": case.state,
        "sender": case.sender.username,
        "recipients": [
            {"username": r.user.username, "cert_sha256": r.certificate.fingerprint} for r in case.recipients
        ],  # fmt: skip
        "payload": {"channel": case.payload_channel, "sha256": case.payload_sha256, "size": case.payload_size},
        "result": {"channel": case.result_channel, "sha256": case.result_sha256, "size": case.result_size},
        "notes": case.notes if transfer.notes_visible(case, who) else None,
        "registered_at": _iso(case.registered_at),
        "uploaded_at": _iso(case.uploaded_at),
        "received_at": _iso(case.received_at),
        "processed_at": _iso(case.processed_at),
        "result_received_at": _iso(case.result_received_at),
        "allowed_actions": transfer.allowed_actions(case, who),
    }


def cert_json(c) -> dict:
    return {"id": c.id, "serial": c.serial, "subject": c.subject, "issuer": c.issuer, "fingerprint": c.fingerprint,
            "usage": c.usage.split(","), "status": c.status, "not_before": _iso(c.not_before),
            "not_after": _iso(c.not_after)}  # fmt: skip


class TransferApi(BaseApi):
    resource_name = "transfers"
    openapi_spec_tag = "Transfer"

    @expose("/", methods=["GET"])
    @protect()
    @safe
    def list(self):
        """The caller's agency's transfers: ?box=outgoing|incoming|completed|all."""
        box = request.args.get("box", "all")
        if box not in transfer.BOXES:
            return self.response_400(message=str(_l("Unknown list.")))
        who = actor()
        return self.response(200, result=[case_json(c, who) for c in transfer.cases_for(db.session, who, box)])

    @expose("/", methods=["POST"])
    @protect()
    @safe
    @domain_errors
    def register(self):
        """{item, source, record_count, upload_no?, remarks?, recipients?: [certificate ids]} -> case + config file."""
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self.response_400(message=str(_l("The request must be a JSON object.")))
        recipients = body.get("recipients")
        if recipients is not None and not isinstance(recipients, list):
            raise InvalidInput(_l("Recipients must be a list of certificate ids."))
        draft = transfer.TransferDraft(
            item_id=str(body.get("item") or ""),
            source=str(body.get("source") or ""),
            record_count=body.get("record_count"),
            upload_no=str(body.get("upload_no") or ""),
            remarks=str(body.get("remarks") or ""),
            recipient_cert_ids=recipients,
        )
        who = actor()
        case = transfer.register(db.session, who, draft)
        # Built before the commit, which would expire every loaded row and reload them one by one.
        result, config = case_json(case, who), transfer.config_file(case)
        db.session.commit()
        return self.response(201, result=result, config=config)

    @expose("/<int:pk>", methods=["GET"])
    @protect()
    @safe
    @domain_errors
    def get(self, pk):
        who = actor()
        return self.response(200, result=case_json(transfer.get_case(db.session, who, pk), who))

    @expose("/<int:pk>/config", methods=["GET"])
    @protect()
    @safe
    @domain_errors
    def config(self, pk):
        """The configuration file for the kit (`--config`)."""
        case = transfer.config_for(db.session, actor(), pk)
        config = transfer.config_file(case)
        db.session.commit()
        return self.response(200, **config)

    @expose("/<int:pk>/payload", methods=["PUT"])
    @protect()
    @safe
    @domain_errors
    def put_payload(self, pk):
        """Upload the encrypted file (raw CMS body)."""
        who = actor()
        case = transfer.upload_payload(db.session, who, pk, request.stream, "api")
        db.session.commit()
        return self.response(200, result=case_json(case, who))

    @expose("/<int:pk>/payload", methods=["GET"])
    @protect()
    @safe
    @domain_errors
    def get_payload(self, pk):
        """Download the encrypted file (the receiving agency; the first download marks it received)."""
        case, path = transfer.download_payload(db.session, actor(), pk)
        db.session.commit()
        return send_file(path, mimetype="application/pkcs7-mime", as_attachment=True,
                         download_name=f"{case.upload_no}.p7m")  # fmt: skip

    @expose("/<int:pk>/result", methods=["PUT"])
    @protect()
    @safe
    @domain_errors
    def put_result(self, pk):
        """Upload the encrypted result (enveloped for the sender)."""
        who = actor()
        case = transfer.upload_result(db.session, who, pk, request.stream, "api")
        db.session.commit()
        return self.response(200, result=case_json(case, who))

    @expose("/<int:pk>/result", methods=["GET"])
    @protect()
    @safe
    @domain_errors
    def get_result(self, pk):
        case, path = transfer.download_result(db.session, actor(), pk)
        db.session.commit()
        return send_file(path, mimetype="application/pkcs7-mime", as_attachment=True,
                         download_name=f"{case.upload_no}-result.p7m")  # fmt: skip

    @expose("/<int:pk>/notes", methods=["POST"])
    @protect()
    @safe
    @domain_errors
    def notes(self, pk):
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self.response_400(message=str(_l("The request must be a JSON object.")))
        who = actor()
        case = transfer.record_notes(db.session, who, pk, str(body.get("notes") or ""))
        db.session.commit()
        return self.response(200, result=case_json(case, who))


class CertificateApi(BaseApi):
    resource_name = "certificates"
    openapi_spec_tag = "Transfer"

    @expose("/", methods=["GET"])
    @protect()
    @safe
    def list(self):
        """The caller's own certificates."""
        return self.response(200, result=[cert_json(c) for c in certificates.of_user(db.session, actor().user_id)])

    @expose("/", methods=["POST"])
    @protect()
    @safe
    def register(self):
        """{"certificate": PEM text or base64 DER} registers the caller's certificate."""
        body = request.get_json(silent=True)
        who = actor()
        try:
            if not isinstance(body, dict) or not isinstance(body.get("certificate"), str):
                raise InvalidInput(_l('Send {"certificate": PEM text or base64 DER}.'))
            text = body["certificate"].strip()
            if text.startswith("-----BEGIN"):
                data = text.encode()
            else:
                try:
                    data = base64.b64decode(text, validate=True)
                except (binascii.Error, ValueError) as exc:
                    raise InvalidInput(_l("This file is not an X.509 certificate (PEM or DER).")) from exc
            cert = certificates.register(db.session, who, db.session.get(PlatformUser, who.user_id), data)
            db.session.commit()
        except DomainError as exc:
            db.session.rollback()
            certificates.record_refusal(db.session, who, str(exc))
            db.session.commit()
            return self.response(exc.status, message=str(exc))
        return self.response(201, result=cert_json(cert))


def register(appbuilder) -> None:
    appbuilder.add_api(TransferApi)
    appbuilder.add_api(CertificateApi)
