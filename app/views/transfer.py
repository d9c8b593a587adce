"""The transfer screens: work lists, registering a transfer, the case page with
its uploads (progress bar) and downloads, and each officer's certificates.
Thin: each screen parses the form through ``app.schemas.transfer``, calls a
command of ``app.services.transfer`` and renders what it answers."""

from __future__ import annotations

import io

from flask import Response, abort, flash, jsonify, redirect, request, send_file, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from marshmallow import ValidationError

from app.extensions import db
from app.schemas import transfer as schemas
from app.services import transfer
from app.services.errors import DomainError, InvalidInput
from app.services.transfer import pki
from app.services.transfer.kit import COMMAND as KIT_COMMAND
from app.services.transfer.kit import kit_download
from app.web import current_actor as actor

TABS = (
    ("outgoing", _l("Sent by my agency")),
    ("incoming", _l("Received by my agency")),
    ("completed", _l("Results returned")),
)
UPLOAD_KINDS = ("payload", "result")
DRAFT_TEXTS = ("source", "record_count", "upload_no", "remarks")


def _labels() -> dict:
    return {
        "states": transfer.STATE_LABELS,
        "event_labels": transfer.ACTION_LABELS,
        "channels": transfer.CHANNEL_LABELS,
        "cert_statuses": pki.STATUS_LABELS,
        "usages": pki.USAGE_LABELS,
    }


def _number(text: str):
    """A form field's digits as a number; anything else stays text, for the schema to refuse."""
    text = (text or "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 19 else text


def _draft_input(form) -> dict:
    """The registration form as the JSON the schema loads (the same as the API's body)."""
    data = {k: form.get(k, "") for k in ("source", "upload_no", "remarks")}
    data["item"] = _number(form.get("item", ""))
    data["record_count"] = _number(form.get("record_count", ""))
    data["recipients"] = [_number(x) for x in form.getlist("recipients")]
    return data


def _first_message(exc: ValidationError) -> str:
    """The first field message of a refused form, for the page."""
    messages = exc.normalized_messages()
    while isinstance(messages, dict | list) and messages:
        messages = next(iter(messages.values())) if isinstance(messages, dict) else messages[0]
    return str(messages)


def _upload_stream():
    """The uploaded bytes and their announced length: the raw body (progress-bar upload, its
    Content-Length) or a form's file field (whole once the form parser has seen its boundary)."""
    if request.mimetype == "multipart/form-data":
        f = request.files.get("file")
        if f is None or not f.filename:
            raise InvalidInput(_l("Choose the encrypted file to upload."))
        return f.stream, None
    return request.stream, request.content_length


class TransferView(BaseView):
    """資料傳遞: confidential files between agencies, encrypted by the kit."""

    route_base = "/transfer"
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        who = actor()
        tabs = [{"box": box, "label": label, "items": transfer.list_cases(db.session, who, box)} for box, label in TABS]
        current = next((t for t in tabs if t["box"] == request.args.get("tab")), tabs[0])
        if request.args.get("tab") is None and not current["items"] and tabs[1]["items"]:
            current = tabs[1]
        has_cert = transfer.sender_certificate(db.session, who) is not None
        return self.render_template("transfer/index.html", tabs=tabs, current=current, has_cert=has_cert, **_labels())

    @expose("/new", methods=["GET", "POST"])
    @has_access
    def new(self):
        who = actor()
        items = transfer.items_for(db.session, who)
        ref = request.values.get("item", "")
        item = next((i for i in items if str(i.id) == ref), items[0] if len(items) == 1 else None)
        values = {k: request.form.get(k, "") for k in DRAFT_TEXTS}
        proposed = transfer.proposed_recipients(db.session, item) if item else []
        ticked = {c.id for c in proposed}
        error = None
        if request.method == "POST":
            data = _draft_input(request.form)
            ticked = {i for i in data["recipients"] if isinstance(i, int)}
            try:
                done = transfer.register(db.session, who, schemas.draft_schema.load(data))
            except ValidationError as exc:
                error = _first_message(exc)
            except DomainError as exc:
                error = str(exc)
            else:
                no = done.case.upload_no
                flash(
                    gettext("Transfer %(no)s is registered. Download its configuration file for the kit.", no=no),
                    "success",
                )
                return redirect(url_for("TransferView.case", case_id=done.case.id))
        page = self.render_template(
            "transfer/new.html",
            items=items,
            item=item,
            proposed=proposed,
            ticked=ticked,
            values=values,
            error=error,
            sender_cert=transfer.sender_certificate(db.session, who),
        )
        return page, 400 if error else 200

    @expose("/case/<int:case_id>")
    @has_access
    def case(self, case_id):
        answer = transfer.view_case(db.session, actor(), case_id)
        return self.render_template(
            "transfer/case.html", case=answer, actions=answer.allowed_actions, kit_command=KIT_COMMAND, **_labels()
        )

    @expose("/case/<int:case_id>/config")
    @has_access
    def config(self, case_id):
        done = transfer.download_config(db.session, actor(), case_id)
        data = io.BytesIO(transfer.config_bytes(done.config))
        return send_file(data, mimetype="application/json", as_attachment=True, download_name=done.filename)

    @expose("/case/<int:case_id>/upload/<kind>", methods=["POST", "PUT"])
    @has_access
    def upload(self, case_id, kind):
        if kind not in UPLOAD_KINDS:
            abort(404)
        wants_json = request.method == "PUT" or request.accept_mimetypes.best == "application/json"
        do = transfer.upload_payload if kind == "payload" else transfer.upload_result
        try:
            stream, declared = _upload_stream()
            answer = do(db.session, actor(), case_id, stream, "web", declared)
        except DomainError as exc:
            if not wants_json:
                raise
            # The progress-bar upload shows the refusal in place (the application's handler would redirect).
            return jsonify(message=str(exc)), exc.status
        stored = answer.payload if kind == "payload" else answer.result
        msg = gettext("The encrypted file is registered (SHA-256 %(sha)s…).", sha=stored.sha256[:16])
        flash(msg, "success")  # shown by the page the progress-bar upload reloads too
        if wants_json:
            return jsonify(message=msg, state=answer.state, url=url_for("TransferView.case", case_id=answer.id))
        return redirect(url_for("TransferView.case", case_id=answer.id))

    @expose("/case/<int:case_id>/download/<kind>")
    @has_access
    def download(self, case_id, kind):
        if kind not in UPLOAD_KINDS:
            abort(404)
        do = transfer.download_payload if kind == "payload" else transfer.download_result
        done = do(db.session, actor(), case_id)
        return send_file(done.path, mimetype=done.mimetype, as_attachment=True, download_name=done.filename)

    @expose("/case/<int:case_id>/notes", methods=["POST"])
    @has_access
    def notes(self, case_id):
        notes = schemas.notes_schema.load({"notes": request.form.get("notes", "")})["notes"]
        transfer.record_notes(db.session, actor(), case_id, notes)
        flash(gettext("The processing notes are saved."), "success")
        return redirect(url_for("TransferView.case", case_id=case_id))

    @expose("/kit")
    @has_access
    def kit(self):
        return self.render_template("transfer/kit.html", kit=kit_download())

    @expose("/kit/<filename>")
    @has_access
    def kit_file(self, filename):
        kit = kit_download()
        if filename != kit.filename:
            abort(404)  # an older version's name: the page links the current one
        data = io.BytesIO(kit.data)
        return send_file(
            data, mimetype="application/zip", as_attachment=True, download_name=kit.filename, etag=kit.sha256
        )

    @expose("/kit.sha256")
    @has_access
    def kit_checksum(self):
        return Response(kit_download().checksum_line(), mimetype="text/plain")

    @expose("/certificates", methods=["GET", "POST"])
    @has_access
    def certificates(self):
        who = actor()
        error = None
        if request.method == "POST":
            f = request.files.get("certificate")
            data = f.read(pki.MAX_FILE_BYTES + 1) if f is not None and f.filename else None
            try:
                cert = transfer.upload_certificate(db.session, who, data)
            except DomainError as exc:  # refused and audited by the command; the page says why
                error = str(exc)
            else:
                flash(gettext("Certificate %(serial)s is registered.", serial=cert.serial), "success")
                return redirect(url_for("TransferView.certificates"))
        certs = transfer.my_certificates(db.session, who)
        page = self.render_template("transfer/certificates.html", certs=certs, error=error, **_labels())
        return page, 400 if error else 200

    @expose("/certificates/<int:cert_id>/withdraw", methods=["POST"])
    @has_access
    def withdraw(self, cert_id):
        transfer.withdraw_certificate(db.session, actor(), cert_id)
        flash(gettext("The certificate is withdrawn; no new transfer will be encrypted for it."), "success")
        return redirect(url_for("TransferView.certificates"))


def register(appbuilder) -> None:
    appbuilder.add_view(
        TransferView,
        "Transfers",
        label=_l("Transfers"),
        icon="fa-lock",
        category="Transfer",
        category_label=_l("File transfer"),
        category_icon="fa-exchange",
        href="/transfer/",
    )
    appbuilder.add_link(
        "My certificates",
        label=_l("My certificates"),
        href="/transfer/certificates",
        icon="fa-id-card",
        category="Transfer",
    )
    appbuilder.add_link(
        "Transfer kit",
        label=_l("Transfer kit"),
        href="/transfer/kit",
        icon="fa-download",
        category="Transfer",
    )
