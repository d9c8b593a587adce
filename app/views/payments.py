"""Payments of fees: the provider's notification endpoint (public, CSRF-exempt,
rate-limited), the portal's pay button and the browser's way back, the REST API
under /api/v1/me/payments, the fee and payment blocks of the case pages, and
the administrators' and finance staff's screens. Thin: each parses, calls one
command of ``app.services.payments`` and renders."""

from __future__ import annotations

import datetime

from flask import Response, current_app, flash, redirect, render_template, request, url_for
from flask_appbuilder import BaseView, action, expose, has_access
from flask_appbuilder.api import BaseApi
from flask_appbuilder.security.decorators import protect
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext as _lp
from wtforms import PasswordField, SelectChoice, SelectField

from app.extensions import csrf, db
from app.lib.rocdate import format_roc_datetime
from app.models.payments import FeeItem, Payment, PaymentProvider, Reconciliation, ReconciliationMismatch
from app.schemas import payments as schemas
from app.services import payments
from app.services.errors import DomainError, NotFound
from app.services.payments import providers
from app.views.base import CommandInterface, PlatformModelView, json_body, yes_no
from app.views.portal import card_holder
from app.web import current_actor

STATES = {
    "created": _lp("payment state", "Created"),
    "pending": _l("Waiting for the gateway"),
    "paid": _l("Paid"),
    "failed": _lp("payment state", "Failed"),
    "expired": _l("Expired"),
    "refunded": _l("Refunded"),
}
DUE = {"before_dispatch": _l("Before dispatch"), "after_approval": _l("After approval")}


class PaymentNotifyView(BaseView):
    """Where the providers post their notifications (server to server)."""

    route_base = "/payments"

    @expose("/notify/<provider>", methods=["POST"])
    def notify(self, provider):
        answer = payments.handle_notification(db.session, provider, request.form, request.remote_addr)
        return Response(answer.body, status=answer.status, content_type="text/plain; charset=utf-8")


class PaymentPortalView(BaseView):
    """The citizen's side: pay (to the gateway's page) and come back (the state read from the platform)."""

    route_base = "/portal/payments"
    default_view = "start"

    @expose("/start", methods=["POST"])
    @card_holder
    def start(self):
        case_no = request.form.get("case_no", "")
        fee = request.form.get("fee_item", "")
        body = schemas.payment_start_schema.load(
            {
                "case_no": case_no,
                "fee_item": int(fee) if fee.isdigit() and len(fee) < 10 else 0,
                "method": request.form.get("method", ""),
            }  # fmt: skip
        )
        try:
            started = payments.start_payment(db.session, current_actor(), body["case_no"], body["fee_item"],
                                             body["method"])  # fmt: skip
        except DomainError as exc:
            if exc.status == 404:
                raise
            flash(str(exc), "danger")
            return redirect(url_for("PortalView.case", case_no=case_no))
        # A page on our origin that sends the browser on (a Refresh header, and a link to click):
        # the portal's CSP (form-action 'self') forbids a form's redirect to the gateway's origin.
        page = render_template("payments/go.html", payment=started, methods=payments.METHOD_LABELS)
        return page, 200, {"Refresh": f"0; url={started.redirect_url}"}

    @expose("/<int:payment_id>/return", methods=["GET", "POST"])
    @card_holder
    def back(self, payment_id):
        # What the gateway put in this request is not believed: the state is the platform's own.
        try:
            found = payments.my_payment(db.session, current_actor(), payment_id)
        except NotFound as missing:
            return render_template("portal/missing.html", message=str(missing)), 404
        page = render_template("payments/return.html", payment=found, states=STATES, methods=payments.METHOD_LABELS)
        # until the notification settles it, the page asks again by itself (no script: a Refresh header)
        return page, 200, ({"Refresh": "3"} if found.state in ("created", "pending") else {})

    @expose("/<int:payment_id>/receipt.pdf")
    @card_holder
    def receipt(self, payment_id):
        from app.services.payments.receipt import receipt_pdf

        try:
            name, pdf = receipt_pdf(db.session, current_actor(), payment_id)
        except NotFound as missing:
            return render_template("portal/missing.html", message=str(missing)), 404
        headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
        return Response(pdf, content_type="application/pdf", headers=headers)


class MyPaymentApi(BaseApi):
    """Paying a fee over REST, with the JWT of the certificate sign-in."""

    resource_name = "me"
    openapi_spec_tag = "Portal"
    openapi_spec_component_schemas = schemas.COMPONENTS

    @expose("/payments", methods=["POST"])
    @protect()
    def start(self):
        """Pay a fee of one of my cases.
        ---
        post:
          summary: Start paying a fee of one of my cases; go to redirect_url to pay (audited)
          requestBody:
            required: true
            content:
              application/json:
                schema: {$ref: '#/components/schemas/PaymentStartSchema'}
          responses:
            201:
              description: The payment, pending, with the gateway's page to go to
              content:
                application/json:
                  schema: {$ref: '#/components/schemas/PaymentSchema'}
            400: {$ref: '#/components/responses/400'}
            401: {$ref: '#/components/responses/401'}
            403: {$ref: '#/components/responses/403'}
            404: {$ref: '#/components/responses/404'}
            409: {description: "Paid already, or the case is no longer open"}
            503: {description: The payment gateway cannot be reached; nothing was charged}
        """
        body = json_body(schemas.payment_start_schema)
        started = payments.start_payment(db.session, current_actor(), body["case_no"], body["fee_item"],
                                         body["method"])  # fmt: skip
        return self.response(201, **schemas.payment_schema.dump(started))

    @expose("/payments/<int:pk>", methods=["GET"])
    @protect()
    def payment(self, pk):
        """One of my payments.
        ---
        get:
          summary: One of my payments and its state (audited; another's is a 404, audited)
          parameters:
          - pk
          responses:
            200:
              description: The payment
              content:
                application/json:
                  schema: {$ref: '#/components/schemas/PaymentSchema'}
            401: {$ref: '#/components/responses/401'}
            403: {$ref: '#/components/responses/403'}
            404: {$ref: '#/components/responses/404'}
        """
        return self.response(200, **schemas.payment_schema.dump(payments.my_payment(db.session, current_actor(), pk)))


# --- the administrators' screens ---------------------------------------------------------


def _kind_choices() -> list[SelectChoice]:
    return [SelectChoice(value=kind, label=label) for kind, label in providers.choices()]


class AdminRecordInterface(CommandInterface):
    """A payment record kind whose writes are its administration commands, each given the
    signed-in actor: ``save`` creates and changes one, ``delete_one`` removes one (the screen
    and the API delete one at a time)."""

    save = delete_one = None

    def create(self, item) -> None:
        self.save(self.session, current_actor(), item)

    def update(self, item) -> None:
        self.save(self.session, current_actor(), item)

    def remove(self, items) -> None:
        for item in items:
            self.delete_one(self.session, current_actor(), item)


class ProviderInterface(AdminRecordInterface):
    save, delete_one = staticmethod(payments.save_provider), staticmethod(payments.delete_provider)


class FeeItemInterface(AdminRecordInterface):
    save, delete_one = staticmethod(payments.save_fee_item), staticmethod(payments.delete_fee_item)


def _screen_check(check):
    def validator(session, item):
        check(item)

    return staticmethod(validator)


class PaymentProviderView(PlatformModelView):
    datamodel = ProviderInterface(PaymentProvider)
    validator = _screen_check(payments.admin.check_provider)
    list_title = _l("Payment providers")
    show_title = add_title = edit_title = _l("Payment provider")
    label_columns = {
        "code": _l("Provider code"),
        "name": _l("Provider name"),
        "kind": _l("Provider kind"),
        "url": _l("Gateway URL"),
        "merchant_id": _l("Merchant ID"),
        "merchant_key": _l("Merchant key (HashKey)"),
        "merchant_iv": _l("Merchant IV (HashIV)"),
        "timeout": _l("Timeout (seconds)"),
        "enabled": _l("Enabled"),
        "last_checked_at": _l("Last checked"),
        "last_ok": _l("Last check succeeded"),
        "last_error": _l("Last error"),
    }
    edit_columns = add_columns = ["code", "name", "kind", "url", "merchant_id", "merchant_key", "merchant_iv",
                                  "timeout", "enabled"]  # fmt: skip
    list_columns = ["code", "name", "kind", "merchant_id", "enabled", "last_ok", "last_checked_at"]
    show_columns = ["code", "name", "kind", "url", "merchant_id", "timeout", "enabled", "last_checked_at", "last_ok",
                    "last_error"]  # fmt: skip
    search_columns = ["code", "name", "kind", "enabled"]
    formatters_columns = {
        "kind": providers.label_of,
        "enabled": yes_no,
        "last_ok": lambda v: "" if v is None else yes_no(v),
        "last_checked_at": format_roc_datetime,
    }
    add_form_extra_fields = edit_form_extra_fields = {
        "kind": SelectField(_l("Provider kind"), choices=_kind_choices),
        "merchant_key": PasswordField(
            _l("Merchant key (HashKey)"), description=_l("Leave empty to keep the stored key.")
        ),
        "merchant_iv": PasswordField(_l("Merchant IV (HashIV)"), description=_l("Leave empty to keep the stored IV.")),
    }

    def prefill_form(self, form, pk):
        form.merchant_key.data = ""
        form.merchant_iv.data = ""

    @action("test_provider", _l("Test the gateway"), None, "fa-plug", multiple=False)
    def test_provider(self, item):
        item = item[0] if isinstance(item, list) else item
        tested = payments.test_provider(self.datamodel.session, current_actor(), item)
        if tested.ok:
            flash(gettext("%(name)s answered in %(ms)s ms and took the credentials.", name=item.name,
                          ms=tested.latency_ms), "success")  # fmt: skip
        else:
            flash(gettext("%(name)s failed the test: %(reason)s", name=item.name, reason=tested.message), "danger")
        return redirect(self.get_redirect())


class FeeItemView(PlatformModelView):
    datamodel = FeeItemInterface(FeeItem)
    validator = _screen_check(payments.fees.check_fee_item)
    list_title = _l("Fee items")
    show_title = add_title = edit_title = _l("Fee item")
    label_columns = {
        "code": _l("Fee code"),
        "name": _l("Fee name"),
        "amount": _l("Amount (NT$)"),
        "agency": _l("Collecting agency"),
        "categories": _l("Applies to categories"),
        "due": _l("Due"),
        "refundable": _l("Refundable"),
        "active": _l("Active"),
    }
    add_columns = edit_columns = show_columns = ["code", "name", "amount", "agency", "categories", "due",
                                                 "refundable", "active"]  # fmt: skip
    list_columns = ["code", "name", "amount", "agency", "due", "refundable", "active"]
    search_columns = ["code", "name", "agency", "due", "active"]
    formatters_columns = {"due": lambda v: str(DUE.get(v, v)), "refundable": yes_no, "active": yes_no}
    add_form_extra_fields = edit_form_extra_fields = {
        "due": SelectField(_l("Due"), choices=[SelectChoice(k, v) for k, v in DUE.items()]),
    }


class PaymentListView(PlatformModelView):
    """Every payment, for finance staff (read only)."""

    datamodel = CommandInterface(Payment)
    base_permissions = ["can_list", "can_show"]
    list_title = _l("Payments")
    show_title = _l("Payment")
    label_columns = {
        "order_no": _l("Order number"),
        "case": _l("Case number"),
        "fee_item": _l("Fee item"),
        "provider": _l("Payment provider"),
        "amount": _l("Amount (NT$)"),
        "method": _l("Method"),
        "state": _l("State"),
        "provider_trade_no": _l("Gateway trade number"),
        "created_at": _l("Created"),
        "paid_at": _l("Paid"),
        "refunded_at": _l("Refunded"),
        "settled_by": _l("Settled by"),
    }
    list_columns = ["order_no", "case", "fee_item", "amount", "method", "state", "paid_at"]
    show_columns = ["order_no", "case", "fee_item", "provider", "amount", "method", "state", "provider_trade_no",
                    "created_at", "paid_at", "refunded_at", "settled_by"]  # fmt: skip
    search_columns = ["order_no", "state", "method", "paid_at"]
    search_choices = {"state": STATES, "method": payments.METHOD_LABELS}
    base_order = ("id", "desc")
    formatters_columns = {
        "state": lambda v: str(STATES.get(v, v)),
        "method": lambda v: str(payments.METHOD_LABELS.get(v, v)),
        "created_at": format_roc_datetime,
        "paid_at": lambda v: format_roc_datetime(v) if v else "",
        "refunded_at": lambda v: format_roc_datetime(v) if v else "",
    }


MISMATCHES = {
    "missing_in_file": _l("Paid on the platform, missing from the settlement file"),
    "unknown_to_platform": _l("In the settlement file, unknown to the platform"),
    "amount": _l("Amounts differ"),
    "state": _l("States differ"),
}


class MismatchView(PlatformModelView):
    """Every mismatch the settlement files showed, for finance staff."""

    datamodel = CommandInterface(ReconciliationMismatch)
    base_permissions = ["can_list", "can_show"]
    list_title = _l("Settlement mismatches")
    show_title = _l("Settlement mismatch")
    label_columns = {
        "reconciliation.day": _l("Settlement day"),
        "kind": _l("Mismatch"),
        "order_no": _l("Order number"),
        "platform_amount": _l("Platform amount"),
        "file_amount": _l("File amount"),
        "platform_state": _l("Platform state"),
        "file_state": _l("File state"),
    }
    list_columns = ["reconciliation.day", "kind", "order_no", "platform_amount", "file_amount", "platform_state",
                    "file_state"]  # fmt: skip
    show_columns = list_columns
    search_columns = ["kind", "order_no"]
    search_choices = {"kind": MISMATCHES}
    base_order = ("id", "desc")
    formatters_columns = {
        "kind": lambda v: str(MISMATCHES.get(v, v)),
        "platform_state": lambda v: str(STATES.get(v, v or "")),
        "file_state": lambda v: str(STATES.get(v, v or "")),
    }


class ReconciliationView(PlatformModelView):
    datamodel = CommandInterface(Reconciliation)
    base_permissions = ["can_list", "can_show"]
    list_title = _l("Settlement reconciliations")
    show_title = _l("Settlement reconciliation")
    label_columns = {
        "provider": _l("Payment provider"),
        "day": _l("Settlement day"),
        "rows": _l("Rows in the file"),
        "matched": _l("Matched"),
        "mismatched": _l("Mismatches"),
        "run_at": _l("Run at"),
        "run_by": _l("Run by"),
        "file_sha256": _l("File SHA-256"),
    }
    list_columns = ["provider", "day", "rows", "matched", "mismatched", "run_at"]
    show_columns = ["provider", "day", "rows", "matched", "mismatched", "run_at", "run_by", "file_sha256"]
    search_columns = ["day"]
    base_order = ("id", "desc")
    related_views = [MismatchView]
    formatters_columns = {"run_at": format_roc_datetime}


class CollectionsView(BaseView):
    """Daily collections per agency, fee item and method, with refunds; Excel export."""

    route_base = "/payments/collections"
    default_view = "index"

    def _range(self):
        today = datetime.date.today()
        try:
            first = datetime.date.fromisoformat(
                request.args.get("first") or (today - datetime.timedelta(days=6)).isoformat()
            )
            last = datetime.date.fromisoformat(request.args.get("last") or today.isoformat())
        except ValueError:
            raise DomainError(_l("Give the days as YYYY-MM-DD.")) from None
        return first, last

    @expose("/")
    @has_access
    def index(self):
        first, last = self._range()
        rows = payments.collections(db.session, current_actor(), first, last)
        return self.render_template("payments/collections.html", rows=rows, first=first, last=last,
                                    methods=payments.METHOD_LABELS, providers=payments.settling_providers(db.session),
                                    yesterday=datetime.date.today() - datetime.timedelta(days=1))  # fmt: skip

    @expose("/reconcile", methods=["POST"])
    @has_access
    def reconcile(self):
        """Reconcile one provider's settlement file of one day (the worker does yesterday's by itself)."""
        try:
            day = datetime.date.fromisoformat(request.form.get("day", ""))
            provider = int(request.form.get("provider", ""))
        except ValueError:
            flash(str(_l("Choose a payment provider and give the day as YYYY-MM-DD.")), "danger")
            return redirect(url_for("CollectionsView.index"))
        try:
            rec = payments.reconcile_day(db.session, current_actor(), provider, day)
        except DomainError as exc:
            flash(str(exc), "danger")
            return redirect(url_for("CollectionsView.index"))
        flash(str(_l("%(rows)d rows reconciled: %(matched)d matched, %(mismatched)d mismatches.",
                     rows=rec.rows, matched=rec.matched, mismatched=rec.mismatched)),
              "success" if not rec.mismatched else "warning")  # fmt: skip
        return redirect(url_for("ReconciliationView.show", pk=rec.id))

    @expose("/xlsx")
    @has_access
    def xlsx(self):
        first, last = self._range()
        rows = payments.collections(db.session, current_actor(), first, last)
        data = payments.collections_xlsx(rows, first, last)
        name = f"collections-{first.isoformat()}-{last.isoformat()}.xlsx"
        return Response(data, content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})  # fmt: skip


def _case_fees(case_no: str):
    """The portal's case page: the fees of the visitor's case (None: no fee applies)."""
    return payments.case_fees(db.session, current_actor(), case_no)


def _staff_case_fees(case_no: str):
    """The staff's case page (which checked the viewer may see the case)."""
    from sqlalchemy import select

    from app.models.notify import NotificationCase

    case_id = db.session.scalar(select(NotificationCase.id).where(NotificationCase.case_no == case_no))
    return payments.staff_case_fees(db.session, case_id) if case_id else None


def register(appbuilder) -> None:
    appbuilder.add_view_no_menu(PaymentNotifyView)
    appbuilder.add_view_no_menu(PaymentPortalView)
    appbuilder.add_api(MyPaymentApi)
    appbuilder.add_view(PaymentProviderView, "Payment providers", label=_l("Payment providers"), icon="fa-credit-card",
                        category="Payments", category_label=_l("Payments"), category_icon="fa-money")  # fmt: skip
    appbuilder.add_view(FeeItemView, "Fee items", label=_l("Fee items"), icon="fa-tags", category="Payments")
    appbuilder.add_view(PaymentListView, "Payments", label=_l("Payments"), icon="fa-list", category="Payments")
    appbuilder.add_view(ReconciliationView, "Settlement reconciliations", label=_l("Settlement reconciliations"),
                        icon="fa-balance-scale", category="Payments")  # fmt: skip
    appbuilder.add_view_no_menu(MismatchView)
    appbuilder.add_view(CollectionsView, "Daily collections", label=_l("Daily collections"), icon="fa-table",
                        category="Payments")  # fmt: skip
    app = current_app
    for view in appbuilder.baseviews:
        if isinstance(view, PaymentNotifyView) and view.blueprint is not None:
            csrf.exempt(view.blueprint)  # the gateway signs its posts; it has no session
            limit = current_app.config.get("PAYMENT_NOTIFY_RATE_LIMIT", "6000 per minute")
            appbuilder.sm.limiter.limit(limit)(view.blueprint)
    app.jinja_env.globals.update(case_fees=_case_fees, staff_case_fees=_staff_case_fees, payment_states=STATES,
                                 payment_due=DUE, payment_methods=payments.METHOD_LABELS)  # fmt: skip
