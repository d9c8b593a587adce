"""The transfer screens: work lists, registering a transfer, the case page with
its uploads (progress bar) and downloads, and each officer's certificates.
Thin: the rules live in app.services.transfer and app.services.certificates."""

from __future__ import annotations

import io

from flask import abort, flash, jsonify, redirect, request, send_file, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import gettext
from flask_babel import lazy_gettext as _l

from app.extensions import db
from app.models.org import PlatformUser
from app.services import certificates, transfer
from app.services.errors import DomainError, InvalidInput
from app.web import current_actor as actor

TABS = (
    ("outgoing", _l("Sent by my agency")),
    ("incoming", _l("Received by my agency")),
    ("completed", _l("Results returned")),
)
UPLOAD_KINDS = ("payload", "result")


def _labels() -> dict:
    return {
        "states": transfer.STATE_LABELS,
        "event_labels": transfer.ACTION_LABELS,
        "channels": transfer.CHANNEL_LABELS,
        "cert_statuses": certificates.STATUS_LABELS,
        "usages": certificates.USAGE_LABELS,
    }


def _upload_stream():
    """The uploaded bytes: the raw body (progress-bar upload) or a form's file field."""
    if request.mimetype == "multipart/form-data":
        f = request.files.get("file")
        if f is None or not f.filename:
            raise InvalidInput(_l("Choose the encrypted file to upload."))
        return f.stream
    return request.stream


class TransferView(BaseView):
    """資料傳遞: confidential files between agencies, encrypted by the kit."""

    route_base = "/transfer"
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        who = actor()
        tabs = [{"box": box, "label": label, "items": transfer.cases_for(db.session, who, box)} for box, label in TABS]
        current = next((t for t in tabs if t["box"] == request.args.get("tab")), tabs[0])
        if request.args.get("tab") is None and not current["items"] and tabs[1]["items"]:
            current = tabs[1]
        has_cert = bool(certificates.usable(db.session, [who.user_id], "sign"))
        return self.render_template("transfer/index.html", tabs=tabs, current=current, has_cert=has_cert, **_labels())

    @expose("/new", methods=["GET", "POST"])
    @has_access
    def new(self):
        who = actor()
        items = transfer.items_for(db.session, who)
        ref = request.values.get("item", "")
        item = next((i for i in items if str(i.id) == ref), items[0] if len(items) == 1 else None)
        values = {k: request.form.get(k, "") for k in ("source", "record_count", "upload_no", "remarks")}
        proposed = transfer.proposed_recipients(db.session, item) if item else []
        ticked = {c.id for c in proposed}
        error = None
        if request.method == "POST":
            ticked = {int(x) for x in request.form.getlist("recipients") if x.isdigit() and len(x) < 10}
            draft = transfer.TransferDraft(item_id=ref, recipient_cert_ids=sorted(ticked), **values)
            try:
                case = transfer.register(db.session, who, draft)
                db.session.commit()
            except DomainError as exc:
                db.session.rollback()
                error = str(exc)
            else:
                flash(gettext("Transfer %(no)s is registered. Download its configuration file for the kit.",
                              no=case.upload_no), "success")  # fmt: skip
                return redirect(url_for("TransferView.case", case_id=case.id))
        try:
            sender_cert = transfer.signing_certificate(db.session, who)
        except DomainError:
            sender_cert = None
        page = self.render_template(
            "transfer/new.html", items=items, item=item, proposed=proposed, ticked=ticked, values=values,
            error=error, sender_cert=sender_cert,
        )  # fmt: skip
        return page, 400 if error else 200

    @expose("/case/<int:case_id>")
    @has_access
    def case(self, case_id):
        who = actor()
        try:
            case = transfer.get_case(db.session, who, case_id)
        except DomainError as exc:
            abort(exc.status)
        return self.render_template(
            "transfer/case.html", case=case, actions=transfer.allowed_actions(case, who),
            show_notes=transfer.notes_visible(case, who), **_labels(),
        )  # fmt: skip

    @expose("/case/<int:case_id>/config")
    @has_access
    def config(self, case_id):
        try:
            case = transfer.config_for(db.session, actor(), case_id)
            data = transfer.config_bytes(case)
            db.session.commit()
        except DomainError as exc:
            db.session.rollback()
            abort(exc.status)
        return send_file(io.BytesIO(data), mimetype="application/json", as_attachment=True,
                         download_name=f"transfer-{case.upload_no}.json")  # fmt: skip

    @expose("/case/<int:case_id>/upload/<kind>", methods=["POST", "PUT"])
    @has_access
    def upload(self, case_id, kind):
        if kind not in UPLOAD_KINDS:
            abort(404)
        who = actor()
        wants_json = request.method == "PUT" or request.accept_mimetypes.best == "application/json"
        try:
            stream = _upload_stream()
            do = transfer.upload_payload if kind == "payload" else transfer.upload_result
            case = do(db.session, who, case_id, stream, "web")
            db.session.commit()
        except DomainError as exc:
            db.session.rollback()
            if wants_json:
                return jsonify(message=str(exc)), exc.status
            flash(str(exc), "danger")
            return redirect(url_for("TransferView.case", case_id=case_id))
        msg = gettext("The encrypted file is registered (SHA-256 %(sha)s…).",
                      sha=(case.payload_sha256 if kind == "payload" else case.result_sha256)[:16])  # fmt: skip
        flash(msg, "success")  # shown by the page the progress-bar upload reloads too
        if wants_json:
            return jsonify(message=msg, state=case.state, url=url_for("TransferView.case", case_id=case.id))
        return redirect(url_for("TransferView.case", case_id=case.id))

    @expose("/case/<int:case_id>/download/<kind>")
    @has_access
    def download(self, case_id, kind):
        if kind not in UPLOAD_KINDS:
            abort(404)
        who = actor()
        try:
            do = transfer.download_payload if kind == "payload" else transfer.download_result
            case, path = do(db.session, who, case_id)
            db.session.commit()
        except DomainError as exc:
            db.session.rollback()
            abort(exc.status)
        name = f"{case.upload_no}{'' if kind == 'payload' else '-result'}.p7m"
        return send_file(path, mimetype="application/pkcs7-mime", as_attachment=True, download_name=name)

    @expose("/case/<int:case_id>/notes", methods=["POST"])
    @has_access
    def notes(self, case_id):
        try:
            transfer.record_notes(db.session, actor(), case_id, request.form.get("notes", ""))
            db.session.commit()
        except DomainError as exc:
            db.session.rollback()
            flash(str(exc), "danger")
        else:
            flash(gettext("The processing notes are saved."), "success")
        return redirect(url_for("TransferView.case", case_id=case_id))

    @expose("/certificates", methods=["GET", "POST"])
    @has_access
    def certificates(self):
        who = actor()
        error = None
        if request.method == "POST":
            f = request.files.get("certificate")
            try:
                if f is None or not f.filename:
                    raise InvalidInput(_l("Choose your certificate file (.cer, .crt or .pem)."))
                data = f.read(certificates.MAX_FILE_BYTES + 1)
                user = db.session.get(PlatformUser, who.user_id)
                cert = certificates.register(db.session, who, user, data)
                db.session.commit()
            except DomainError as exc:
                db.session.rollback()
                error = str(exc)
                certificates.record_refusal(db.session, who, error)
                db.session.commit()
            else:
                flash(gettext("Certificate %(serial)s is registered.", serial=cert.serial), "success")
                return redirect(url_for("TransferView.certificates"))
        certs = certificates.of_user(db.session, who.user_id)
        page = self.render_template("transfer/certificates.html", certs=certs, error=error, **_labels())
        return page, 400 if error else 200

    @expose("/certificates/<int:cert_id>/withdraw", methods=["POST"])
    @has_access
    def withdraw(self, cert_id):
        try:
            certificates.withdraw(db.session, actor(), cert_id)
            db.session.commit()
        except DomainError as exc:
            db.session.rollback()
            flash(str(exc), "danger")
        else:
            flash(gettext("The certificate is withdrawn; no new transfer will be encrypted for it."), "success")
        return redirect(url_for("TransferView.certificates"))


def register(appbuilder) -> None:
    appbuilder.add_view(TransferView, "Transfers", label=_l("Transfers"), icon="fa-lock", category="Transfer",
                        category_label=_l("File transfer"), category_icon="fa-exchange", href="/transfer/")  # fmt: skip
    appbuilder.add_link("My certificates", label=_l("My certificates"), href="/transfer/certificates",
                        icon="fa-id-card", category="Transfer")  # fmt: skip
