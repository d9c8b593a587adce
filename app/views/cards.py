"""Sign-in with certificate cards: the sign-in pages (challenge signed through
the local signing component's popup window; a citizen's first sign-in with the
full ID number), a staff member's own card ("My certificate card"), the
administrators' card bindings, and the REST API
(``/api/v1/security/cert/challenge``, ``/login``, ``/mtls``).

Thin: each parses through ``app.schemas.cards``, calls ``app.services.cards``
and renders; refusals are domain errors answered by ``app.web``."""

from __future__ import annotations

import datetime
from types import SimpleNamespace

from flask import current_app, flash, g, jsonify, redirect, request, url_for
from flask import session as cookie_session
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.api import BaseApi
from flask_appbuilder.security.decorators import protect
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_jwt_extended import create_access_token, create_refresh_token
from flask_login import login_user
from sqlalchemy import select

from app.extensions import db
from app.models.cards import CardBinding
from app.models.org import PlatformUser
from app.schemas import cards as schemas
from app.services import cards
from app.views.base import json_body
from app.web import current_actor, forwarded_client_certificate

CHALLENGE_KEY = "card_challenge"  # the cookie session holds the page's challenge id
TICKET_KEY = "card_ticket"  # and a citizen's first sign-in ticket
KIND_LABELS = {
    "citizen": _l("Citizen certificate (MOICA)"),
    "business": _l("Business certificate (MOEACA)"),
    "government": _l("Government certificate (GCA)"),
    "organisation": _l("Organisation certificate (XCA)"),
}
FIRST_SIGN_IN = _l("First sign-in with this card: confirm who you are with your full ID number.")
BOUND = _l("The certificate card is bound to the account.")
UNBOUND = _l("The certificate card was unbound; sessions signed in with it have ended.")


def _form_body(form, **extra) -> dict:
    """A page's form as the JSON the API takes (blank fields left out)."""
    data = {k: form.get(k) for k in ("signature", "password", "id_number", "name") if form.get(k)}
    return {**data, **extra}


def _issue(purpose: str, user_id: int | None = None) -> SimpleNamespace:
    challenge_id, nonce, expires = cards.challenges.issue(db.session, purpose, user_id)
    left = max(0, int((expires - datetime.datetime.utcnow()).total_seconds()))
    return SimpleNamespace(challenge_id=challenge_id, nonce=nonce, expires_at=expires, expires_in=left)


def _page_challenge(purpose: str, user_id: int | None = None) -> dict:
    """A challenge for a page: its id stays in the (signed) cookie session, the page gets the nonce."""
    issued = _issue(purpose, user_id)
    cookie_session[CHALLENGE_KEY] = issued.challenge_id
    issued.challenge_id = None
    return schemas.challenge_schema.dump(issued)


def _signed_in_page(done: cards.SignedIn):
    user = db.session.get(PlatformUser, done.user_id)
    g.card_binding_id = done.binding_id  # the session keeps its card for the rechecks (app.security)
    login_user(user, remember=False)
    return redirect(url_for("HomeView.index") if "HomeView" in current_app.blueprints else "/")


class CardSignInView(BaseView):
    """Sign in with a certificate card (public pages)."""

    route_base = "/signin/card"
    default_view = "index"

    @expose("/", methods=["GET"])
    def index(self):
        return self.render_template("cards/signin.html", signer=current_app.config["CERT_SIGNER_URL"])

    @expose("/challenge", methods=["POST"])
    def challenge(self):
        """A new nonce for this browser (its id stays in the signed cookie session)."""
        return jsonify(_page_challenge("signin"))

    @expose("/", methods=["POST"])
    def sign_in(self):
        body = schemas.login_schema.load(_form_body(request.form, challenge_id=cookie_session.pop(CHALLENGE_KEY, "")))
        done = cards.sign_in(db.session, current_actor(), body["challenge_id"], body["signature"],
                             password=body["password"])  # fmt: skip
        if isinstance(done, cards.NeedsIdNumber):
            cookie_session[TICKET_KEY] = done.ticket
            flash(str(FIRST_SIGN_IN), "info")
            return redirect(url_for("CardSignInView.register"))
        return _signed_in_page(done)

    @expose("/register", methods=["GET", "POST"])
    def register(self):
        """A citizen's first sign-in: the full ID number and the name, as on the card."""
        if request.method == "GET":
            return self.render_template("cards/register.html", pending=bool(cookie_session.get(TICKET_KEY)))
        body = schemas.login_schema.load(_form_body(request.form, ticket=cookie_session.pop(TICKET_KEY, "")))
        done = cards.register(db.session, current_actor(), body["ticket"], body.get("id_number"), body.get("name"))
        return _signed_in_page(done)

    @expose("/tls", methods=["GET"])
    def tls(self):
        """Behind a proxy that verified the browser's client certificate (mTLS)."""
        return self.render_template("cards/tls.html", found=forwarded_client_certificate() is not None)

    @expose("/tls", methods=["POST"])
    def tls_sign_in(self):
        body = schemas.tls_login_schema.load(_form_body(request.form))
        done = cards.sign_in_certificate(db.session, current_actor(), forwarded_client_certificate(),
                                         password=body["password"])  # fmt: skip
        if isinstance(done, cards.NeedsIdNumber):
            cookie_session[TICKET_KEY] = done.ticket
            flash(str(FIRST_SIGN_IN), "info")
            return redirect(url_for("CardSignInView.register"))
        return _signed_in_page(done)


class MyCardView(BaseView):
    """我的憑證卡: staff bind their own government card after a password sign-in."""

    route_base = "/mycard"
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        mine = cards.bindings.of_user(db.session, current_actor().user_id)
        return self.render_template("cards/mycard.html", bindings=mine, kinds=KIND_LABELS,
                                    signer=current_app.config["CERT_SIGNER_URL"])  # fmt: skip

    @expose("/challenge", methods=["POST"])
    @has_access
    def challenge(self):
        return jsonify(_page_challenge("bind", current_actor().user_id))

    @expose("/bind", methods=["POST"])
    @has_access
    def bind(self):
        who = current_actor()
        body = schemas.login_schema.load(_form_body(request.form, challenge_id=cookie_session.pop(CHALLENGE_KEY, "")))
        card = cards.verify(db.session, who, body["challenge_id"], body["signature"], "bind", who.user_id)
        cards.bindings.bind(db.session, who, who.user_id, card, "self")
        flash(str(BOUND), "success")
        return redirect(url_for("MyCardView.index"))

    @expose("/unbind/<int:binding_id>", methods=["POST"])
    @has_access
    def unbind(self, binding_id):
        cards.bindings.unbind(db.session, current_actor(), binding_id)
        flash(str(UNBOUND), "success")
        return redirect(url_for("MyCardView.index"))


class CardBindingView(BaseView):
    """憑證卡綁定: administrators bind a staff account to a GCA card certificate, or unbind one."""

    route_base = "/cardbindings"
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        rows = db.session.execute(
            select(CardBinding, PlatformUser.username).join(PlatformUser, PlatformUser.id == CardBinding.user_id)
            .order_by(PlatformUser.username, CardBinding.id)
        ).all()  # fmt: skip
        staff = db.session.scalars(
            select(PlatformUser).where(PlatformUser.active.is_(True)).order_by(PlatformUser.username)
        ).all()
        staff = [u for u in staff if not ({r.name for r in u.roles} & {cards.CITIZEN_ROLE, cards.BUSINESS_ROLE})]
        return self.render_template("cards/admin.html", rows=rows, staff=staff, kinds=KIND_LABELS)

    @expose("/bind", methods=["POST"])
    @has_access
    def bind(self):
        who = current_actor()
        upload = request.files.get("certificate")
        raw = upload.read(100_000) if upload is not None else b""
        user_id = request.form.get("user_id", "")
        if not user_id.isdigit() or len(user_id) > 18:
            flash(gettext("Choose the staff account."), "danger")
            return redirect(url_for("CardBindingView.index"))
        der = cards.bindings.certificate_der(raw)
        card = cards.check(db.session, who, der, user_id=int(user_id))
        cards.bindings.bind(db.session, who, int(user_id), card, "admin")
        flash(str(BOUND), "success")
        return redirect(url_for("CardBindingView.index"))

    @expose("/unbind/<int:binding_id>", methods=["POST"])
    @has_access
    def unbind(self, binding_id):
        cards.bindings.unbind(db.session, current_actor(), binding_id)
        flash(str(UNBOUND), "success")
        return redirect(url_for("CardBindingView.index"))


def _tokens(done: cards.SignedIn, refresh: bool) -> dict:
    """The same JWT pair as the password login's, with the card the refreshes recheck."""
    claims = {"card": done.binding_id}
    answer = {"access_token": create_access_token(identity=str(done.user_id), fresh=True, additional_claims=claims)}
    if refresh:
        answer["refresh_token"] = create_refresh_token(identity=str(done.user_id), additional_claims=claims)
    return answer


class CertSignInApi(BaseApi):
    """Sign in over REST with a certificate card."""

    resource_name = "security/cert"
    openapi_spec_tag = "Security"
    openapi_spec_component_schemas = (
        schemas.CardChallengeSchema, schemas.CardLoginSchema, schemas.CardTlsLoginSchema, schemas.CardBindingSchema,
    )  # fmt: skip

    @expose("/challenge", methods=["POST"])
    def challenge(self):
        """A new one-time challenge.
        ---
        post:
          summary: A one-time challenge for a card to sign (short-lived, spent by one login)
          responses:
            200:
              description: The challenge
              content:
                application/json:
                  schema: {$ref: '#/components/schemas/CardChallengeSchema'}
            429: {description: Too many sign-in requests from this address}
        """
        return self.response(200, **schemas.challenge_schema.dump(_issue("signin")))

    @expose("/login", methods=["POST"])
    def login(self):
        """Sign in with the card's signature over the challenge.
        ---
        post:
          summary: Sign in with a certificate card; the same JWT pair as the password login
          description: >-
            The PKCS#7 (base64) over the challenge's nonce is checked (content, signature, path to the
            configured roots, validity, key usage, revocation by OCSP or CRL: fail closed) and the card
            mapped to its account. Staff cards and accounts that require card plus password need the
            password. A citizen's first sign-in needs the full ID number and the name; without them the
            answer is 409 with a ticket to send them with. Every sign-in and refusal is audited.
          requestBody:
            required: true
            content:
              application/json:
                schema: {$ref: '#/components/schemas/CardLoginSchema'}
          responses:
            200: {$ref: '#/components/responses/tokens'}
            400: {$ref: '#/components/responses/400'}
            401: {description: 'Refused, with the reason (challenge, signature, certificate, password)'}
            409:
              description: A citizen's first sign-in; send id_number and name with this ticket
              content:
                application/json:
                  schema:
                    type: object
                    properties:
                      message: {type: string}
                      ticket: {type: string}
            429: {description: Too many failed sign-ins; try again later}
        """
        body = json_body(schemas.login_schema)
        who = current_actor()
        if body.get("ticket"):
            done = cards.register(db.session, who, body["ticket"], body.get("id_number"), body.get("name"))
        else:
            done = cards.sign_in(db.session, who, body["challenge_id"], body["signature"], password=body["password"],
                                 id_number=body["id_number"], name=body["name"])  # fmt: skip
        if isinstance(done, cards.NeedsIdNumber):
            return self.response(409, message=str(FIRST_SIGN_IN), ticket=done.ticket)
        return self.response(200, **_tokens(done, body["refresh"]))

    @expose("/bind/challenge", methods=["POST"])
    @protect()
    def bind_challenge(self):
        """A challenge for binding the caller's own card.
        ---
        post:
          summary: A one-time challenge the caller's government card signs to bind it to the caller's account
          responses:
            200:
              description: The challenge
              content:
                application/json:
                  schema: {$ref: '#/components/schemas/CardChallengeSchema'}
            401: {$ref: '#/components/responses/401'}
            403: {$ref: '#/components/responses/403'}
        """
        return self.response(200, **schemas.challenge_schema.dump(_issue("bind", current_actor().user_id)))

    @expose("/bind", methods=["POST"])
    @protect()
    def bind(self):
        """Bind the caller's own government card.
        ---
        post:
          summary: Bind the caller's own government card (signed bind challenge); audited, refusals too
          requestBody:
            required: true
            content:
              application/json:
                schema: {$ref: '#/components/schemas/CardLoginSchema'}
          responses:
            201:
              description: The card is bound
              content:
                application/json:
                  schema:
                    type: object
                    properties:
                      result: {$ref: '#/components/schemas/CardBindingSchema'}
            400: {description: Not a government card}
            401: {description: 'Refused: the challenge or the signature'}
            403: {description: 'Refused: the card (certauth), or made out to another name'}
            409: {description: 'The card is already bound, to another account or to this one'}
        """
        who = current_actor()
        body = json_body(schemas.login_schema)
        card = cards.verify(db.session, who, body["challenge_id"], body["signature"], "bind", who.user_id)
        binding = cards.bindings.bind(db.session, who, who.user_id, card, "self")
        return self.response(201, result=schemas.binding_schema.dump(binding))

    @expose("/mtls", methods=["POST"])
    def mtls(self):
        """Sign in with the client certificate a trusted proxy verified.
        ---
        post:
          summary: Sign in with the client certificate a trusted reverse proxy verified (mTLS)
          description: >-
            Only from a proxy in TRUSTED_PROXIES, with its verdict SUCCESS, is the forwarded certificate
            (CLIENT_CERT_HEADER) read; it then goes through the same checks and mapping as a signed
            challenge. From anyone else the header is ignored (401, no certificate).
          requestBody:
            required: false
            content:
              application/json:
                schema: {$ref: '#/components/schemas/CardTlsLoginSchema'}
          responses:
            200: {$ref: '#/components/responses/tokens'}
            400: {$ref: '#/components/responses/400'}
            401: {description: 'Refused, with the reason (no certificate, certificate, password)'}
            409: {description: "A citizen's first sign-in: send id_number and name too"}
            429: {description: Too many failed sign-ins; try again later}
        """
        body = schemas.tls_login_schema.load(request.get_json(silent=True) or {})
        done = cards.sign_in_certificate(db.session, current_actor(), forwarded_client_certificate(),
                                         password=body["password"], id_number=body["id_number"],
                                         name=body["name"])  # fmt: skip
        if isinstance(done, cards.NeedsIdNumber):
            return self.response(409, message=str(FIRST_SIGN_IN), ticket=done.ticket)
        return self.response(200, **_tokens(done, body["refresh"]))


def register(appbuilder) -> None:
    doors = [appbuilder.add_view_no_menu(CardSignInView)]
    appbuilder.add_view_no_menu(MyCardView)
    appbuilder.add_view(
        CardBindingView,
        "Certificate cards",
        label=_l("Certificate cards"),
        icon="fa-id-card",
        category="Security",
    )
    doors.append(appbuilder.add_api(CertSignInApi))
    for view in doors:  # one burst limit with the password sign-in (app.security)
        appbuilder.sm.limit_sign_in(view)
