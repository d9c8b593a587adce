"""Sign-in with certificate cards (issue 14): the one-time challenge, the local
signing component's simulator, the mapping of each kind of card to its account,
staff card plus password, every refusal of the issue through the API (each
audited, nothing half-bound), and the recheck of sessions signed in with a card.

The cards are the run's demo card PKI (tests.cards), checked by the real
certauth against the real openssl OCSP responders and CRL server."""

from __future__ import annotations

import base64
import datetime
import json
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from sqlalchemy import func, select, update

from app.extensions import db
from app.models.audit import AuditEvent
from app.models.cards import CardBinding, CardChallenge
from app.models.org import PlatformUser, UserSession
from app.simulators.signer import NO_CARD, WRONG_PIN, make_app
from tests.conftest import DEMO_PASSWORD, api_token, bearer, login

CHALLENGE = "/api/v1/security/cert/challenge"
LOGIN = "/api/v1/security/cert/login"


@pytest.fixture(scope="module")
def pki():
    from tests.cards import card_pki, responders

    responders()  # the OCSP responders and the CRL server, started if stopped
    return card_pki()


@pytest.fixture(scope="module")
def sim(pki):
    """The local signing component's simulator over the run's demo cards."""
    return make_app(pki["dir"], None, origins=("http://localhost",)).test_client()


def sign(sim, card: str | None, content: str, pin: str = "1234") -> dict:
    sim.post("/control/card", json={"name": card})
    package = {"func": "MakeSignature", "signatureType": "PKCS7", "tbs": quote(content), "tbsEncoding": "NONE",
               "hashAlgorithm": "SHA256", "pin": quote(pin), "nonce": content, "withCardSN": "false"}  # fmt: skip
    return sim.post("/sign", data={"tbsPackage": json.dumps(package)}, headers={"Origin": "http://localhost"})


def signature(sim, card: str, content: str) -> str:
    answer = sign(sim, card, content).json
    assert answer["ret_code"] == 0, answer
    return answer["signature"]


def challenge(client) -> dict:
    r = client.post(CHALLENGE)
    assert r.status_code == 200, r.json
    return r.json


def card_login(client, sim, card: str, **extra):
    c = challenge(client)
    return client.post(LOGIN, json={"challenge_id": c["challenge_id"], "signature": signature(sim, card, c["nonce"]),
                                    **extra})  # fmt: skip


def last_events(app, since: int, action: str | None = None) -> list[tuple[str, str, dict]]:
    with app.app_context():
        stmt = select(AuditEvent).where(AuditEvent.id > since).order_by(AuditEvent.id)
        if action:
            stmt = stmt.where(AuditEvent.action == action)
        rows = db.session.scalars(stmt).all()
        found = [(e.action, e.outcome, json.loads(e.detail or "{}"), e.object_id) for e in rows]
        db.session.remove()
        return found


def mark(app) -> int:
    with app.app_context():
        value = db.session.scalar(select(func.max(AuditEvent.id))) or 0
        db.session.remove()
        return value


def bindings(app) -> int:
    with app.app_context():
        n = db.session.scalar(select(func.count(CardBinding.id)))
        db.session.remove()
        return n


def card_info(pki, name: str) -> dict:
    return next(c for c in pki["cards"] if c["name"] == name)


# --- the simulator --------------------------------------------------------------------------


def test_the_simulator_signs_with_the_pin_refuses_a_wrong_one_and_knows_an_empty_reader(pki, sim):
    answer = sign(sim, "citizen-lin", "abc").json
    assert answer["ret_code"] == 0 and answer["signature"]
    der = base64.b64decode(answer["signature"])
    assert pkcs7.load_der_pkcs7_certificates(der)  # SignedData carrying the card's certificate
    assert sign(sim, "citizen-lin", "abc", pin="0000").json["ret_code"] == WRONG_PIN
    assert sign(sim, None, "abc").json["ret_code"] == NO_CARD
    info = sim.get("/pkcs11info?withcert=true", headers={"Origin": "http://localhost"})
    assert info.json["ret_code"] == NO_CARD
    sim.post("/control/card", json={"name": "citizen-lin"})
    info = sim.get("/pkcs11info?withcert=true", headers={"Origin": "http://localhost"})
    certs = info.json["slots"][0]["token"]["certs"]
    assert [c["label"] for c in certs] == ["sign", "enc"]
    assert info.headers["Access-Control-Allow-Origin"] == "http://localhost"
    # a page of another origin gets no CORS answer
    assert "Access-Control-Allow-Origin" not in sim.get("/pkcs11info", headers={"Origin": "http://evil"}).headers
    popup = sim.get("/popupForm")
    assert popup.status_code == 200 and "/popupForm.js" in popup.text
    assert "http://localhost" in sim.get("/popupForm.js").text


# --- the challenge ---------------------------------------------------------------------------


def test_a_challenge_is_spent_once_and_expires(app):
    from app.services.cards import challenges

    with app.app_context():
        cid, nonce, _ = challenges.issue(db.session)
        assert challenges.spend(db.session, cid) == nonce
        with pytest.raises(challenges.ChallengeRefused) as replayed:
            challenges.spend(db.session, cid)
        assert replayed.value.reason == "replayed_challenge"
        with pytest.raises(challenges.ChallengeRefused) as unknown:
            challenges.spend(db.session, "no-such-challenge")
        assert unknown.value.reason == "unknown_challenge"
        app.config["CERT_CHALLENGE_SECONDS"] = -1
        try:
            cid, _, _ = challenges.issue(db.session)
        finally:
            app.config["CERT_CHALLENGE_SECONDS"] = 120
        with pytest.raises(challenges.ChallengeRefused) as expired:
            challenges.spend(db.session, cid)
        assert expired.value.reason == "expired_challenge"
        # a challenge for binding one's own card is no sign-in challenge
        cid, _, _ = challenges.issue(db.session, "bind", user_id=1)
        with pytest.raises(challenges.ChallengeRefused):
            challenges.spend(db.session, cid, "signin")
        # the database keeps the id's hash, never the id itself
        assert db.session.scalar(select(func.count()).where(CardChallenge.key_hash == cid)) == 0
        db.session.remove()


def test_the_challenge_api_answers_a_fresh_nonce_each_time(app):
    client = app.test_client()
    a, b = challenge(client), challenge(client)
    assert a["nonce"] != b["nonce"] and a["challenge_id"] != b["challenge_id"]
    assert 0 < a["expires_in"] <= 120 and a["expires_at"].endswith("Z")


# --- roles -----------------------------------------------------------------------------------


def test_citizen_and_business_roles_reach_nothing_of_the_back_office(app):
    from app.services.roles import ROLE_PERMISSIONS

    for role in ("Citizen", "Business"):
        views = {view for view, _perm in ROLE_PERMISSIONS[role]}
        assert views <= {r"^PlatformUserView$", r"^MenuApi$", r"^HomeView$", r"^PortalView$", r"^MeApi$",
                         r"^PortalApplyView$", r"^MeApplicationsApi$", r"^PaymentPortalView$", r"^MyPaymentApi$",
                         r"^Platform$"}, role  # fmt: skip


def test_a_password_alone_never_opens_an_account_that_requires_its_card(app):
    since = mark(app)
    client = app.test_client()
    page = login(client, "clerk.card")
    assert "憑證卡" in page.text and "/logout" not in page.text
    r = client.post("/api/v1/security/login", json={"username": "clerk.card", "password": DEMO_PASSWORD,
                                                   "provider": "db"})  # fmt: skip
    assert r.status_code == 403 and "憑證卡" in r.json["message"]
    refused = [e for e in last_events(app, since, "login_failed") if e[2].get("reason") == "card_required"]
    assert len(refused) == 2


def test_an_account_set_to_require_its_card_loses_its_password_sessions_and_tokens(app):
    client = app.test_client()
    token = api_token(client, "clerk")
    assert client.get("/api/v1/menu/", headers=bearer(token)).status_code == 200
    admin = bearer(api_token(client, "admin"))
    clerk_id = _user_id(app, "clerk")
    try:
        r = client.put(f"/api/v1/users/{clerk_id}", json={"card_required": True}, headers=admin)
        assert r.status_code == 200, r.json
        assert client.get("/api/v1/menu/", headers=bearer(token)).status_code == 401
        r = client.post(
            "/api/v1/security/login", json={"username": "clerk", "password": DEMO_PASSWORD, "provider": "db"}
        )
        assert r.status_code == 403
    finally:
        assert client.put(f"/api/v1/users/{clerk_id}", json={"card_required": False}, headers=admin).status_code == 200
    assert api_token(client, "clerk")


def test_a_role_holding_card_and_password_requires_it_of_its_members(app):
    with app.app_context():
        sm = app.appbuilder.sm
        role = sm.find_role("Manager")
        permission = sm.find_permission_view_menu("card_and_password", "Platform")
        sm.add_permission_role(role, permission)
        db.session.remove()
    try:
        r = app.test_client().post("/api/v1/security/login",
                                   json={"username": "manager", "password": DEMO_PASSWORD, "provider": "db"})  # fmt: skip
        assert r.status_code == 403
    finally:
        with app.app_context():
            sm = app.appbuilder.sm
            sm.del_permission_role(
                sm.find_role("Manager"), sm.find_permission_view_menu("card_and_password", "Platform")
            )
            db.session.remove()
    assert api_token(app.test_client(), "manager")


# --- the sign-in of each kind of card ------------------------------------------------------------


def test_a_citizens_first_sign_in_asks_the_full_id_number_then_the_card_alone_opens_the_account(app, pki, sim, caplog):
    wang = card_info(pki, "citizen-wang")
    client = app.test_client()
    since = mark(app)
    first = card_login(client, sim, "citizen-wang")
    assert first.status_code == 409 and first.json["ticket"]
    # a wrong ID number (checksum) is refused, audited, and spends the ticket: nothing bound
    wrong = client.post(LOGIN, json={"ticket": first.json["ticket"], "id_number": "A123456780", "name": wang["holder"]})
    assert wrong.status_code == 400 and "身分證" in wrong.json["message"]
    again = client.post(LOGIN, json={"ticket": first.json["ticket"], "id_number": wang["id_number"],
                                     "name": wang["holder"]})  # fmt: skip
    assert again.status_code == 401 and again.json["message"]
    # a valid ID number of someone else (the card's last 4 differ), or another name: refused
    other = card_info(pki, "citizen-lin")["id_number"]
    for id_number, name in ((other, wang["holder"]), (wang["id_number"], "王大明")):
        r = card_login(client, sim, "citizen-wang", id_number=id_number, name=name)
        assert r.status_code == 400 and "不符" in r.json["message"]
    assert bindings(app) == 1  # clerk.card's only: nothing half-bound
    # the right number and name, in one go: the JWT pair of the password login
    ok = card_login(client, sim, "citizen-wang", id_number=wang["id_number"], name=wang["holder"], refresh=True)
    assert ok.status_code == 200 and ok.json["access_token"] and ok.json["refresh_token"]
    assert client.get("/api/v1/menu/", headers=bearer(ok.json["access_token"])).status_code == 200
    assert client.get("/api/v1/users/", headers=bearer(ok.json["access_token"])).status_code == 403
    # from then on the card alone
    again = card_login(client, sim, "citizen-wang")
    assert again.status_code == 200 and again.json["access_token"]
    with app.app_context():
        binding = db.session.scalar(select(CardBinding).where(CardBinding.kind == "citizen"))
        user = db.session.get(PlatformUser, binding.user_id)
        assert [r.name for r in user.roles] == ["Citizen"] and user.agency is None
        assert binding.subject_hash and wang["id_number"] not in user.username
        db.session.remove()
    events = last_events(app, since)
    assert ("login", "ok") in {(a, o) for a, o, _d, _i in events}
    reasons = {d.get("reason") for a, o, d, _i in events if a == "login_failed"}
    assert {"bad_id_number", "id_mismatch", "replayed_challenge"} <= reasons
    # the ID number is in no audit event and no log line
    assert wang["id_number"] not in json.dumps([e[2] for e in events])
    assert wang["id_number"] not in caplog.text


def test_business_and_organisation_cards_open_accounts_of_their_own_with_no_back_office(app, pki, sim):
    client = app.test_client()
    for card, username in (("business-bank", "biz-23582637"), ("organisation-assoc", "org-2.16.886.101.99100.1")):
        r = card_login(client, sim, card)
        assert r.status_code == 200, r.json
        token = r.json["access_token"]
        assert client.get("/api/v1/users/", headers=bearer(token)).status_code == 403
        assert client.get("/api/v1/transfers/", headers=bearer(token)).status_code == 403
        with app.app_context():
            user = db.session.scalar(select(PlatformUser).where(PlatformUser.username == username))
            assert [role.name for role in user.roles] == ["Business"]
            db.session.remove()
        assert card_login(client, sim, card).status_code == 200  # the same account again


def test_a_business_number_failing_its_checksum_is_refused_and_audited(app, pki):
    """The demo MOEACA issues only good numbers: the card certauth read is given another number."""
    import dataclasses

    from app.services import actors, cards, certauth

    der = (pki["dir"] / card_info(pki, "business-bank")["sign_cert"]).read_bytes()
    since = mark(app)
    with app.test_request_context():
        good = certauth.check_certificate(der)
        bad = dataclasses.replace(good, business_no="23582638", fingerprint="f" * 64, serial="ABC")
        with pytest.raises(cards.SignInRefused) as refused:
            cards.sign_in_card(db.session, actors.anonymous("127.0.0.1"), bad)
        assert "統一編號" in str(refused.value)
        assert not db.session.scalar(select(PlatformUser.id).where(PlatformUser.username == "biz-23582638"))
        db.session.remove()
    assert [d["reason"] for _a, _o, d, _i in last_events(app, since, "login_failed")] == ["bad_business_number"]


def test_clerk_card_signs_in_with_card_plus_password_only(app, pki, sim):
    client = app.test_client()
    since = mark(app)
    assert card_login(client, sim, "gov-clerk-card").status_code == 401
    assert card_login(client, sim, "gov-clerk-card", password="not-the-password").status_code == 401
    ok = card_login(client, sim, "gov-clerk-card", password=DEMO_PASSWORD, refresh=True)
    assert ok.status_code == 200
    assert client.get("/api/v1/query/forms", headers=bearer(ok.json["access_token"])).status_code in (200, 404)
    # a refresh rechecks the card and keeps it in the new pair
    r = client.post("/api/v1/security/refresh", headers=bearer(ok.json["refresh_token"]))
    assert r.status_code == 200 and r.json["access_token"]
    events = last_events(app, since)
    reasons = [d.get("reason") for a, _o, d, _i in events if a == "login_failed"]
    assert reasons == ["password_needed", "wrong_password"]
    logins = [d for a, _o, d, _i in events if a == "login"]
    assert logins and logins[0]["method"] == "card" and logins[0]["kind"] == "government"


# --- each refusal of the issue, through the API ---------------------------------------------------


def _refused(client, body, status, reason, app, since):
    r = client.post(LOGIN, json=body)
    assert r.status_code == status, (reason, r.status_code, r.json)
    assert r.json["message"]
    found = [d.get("reason") for a, _o, d, _i in last_events(app, since, "login_failed")]
    assert found and found[-1] == reason, found
    return r


def test_each_refusal_is_answered_and_audited_and_binds_nothing(app, pki, sim):

    client = app.test_client()
    since = mark(app)
    # a wrong nonce: another challenge's
    a, b = challenge(client), challenge(client)
    _refused(client, {"challenge_id": a["challenge_id"], "signature": signature(sim, "citizen-lin", b["nonce"])},
             403, "wrong_content", app, since)  # fmt: skip
    # replayed: the same challenge and signature twice
    c = challenge(client)
    body = {"challenge_id": c["challenge_id"], "signature": signature(sim, "business-bank", c["nonce"])}
    assert client.post(LOGIN, json=body).status_code == 200
    before = bindings(app)  # from here on, nothing is bound
    _refused(client, body, 401, "replayed_challenge", app, since)
    # expired
    app.config["CERT_CHALLENGE_SECONDS"] = -1
    try:
        c = challenge(client)
    finally:
        app.config["CERT_CHALLENGE_SECONDS"] = 120
    body = {"challenge_id": c["challenge_id"], "signature": signature(sim, "business-bank", c["nonce"])}
    _refused(client, body, 401, "expired_challenge", app, since)
    # a signature over other content
    c = challenge(client)
    body = {"challenge_id": c["challenge_id"], "signature": signature(sim, "business-bank", "something else")}
    _refused(client, body, 403, "wrong_content", app, since)
    # no certificate in the PKCS#7
    key, cert, _chain = pkcs12.load_key_and_certificates(
        (pki["dir"] / card_info(pki, "business-bank")["sign"]).read_bytes(), b"1234"
    )
    c = challenge(client)
    bare = (
        pkcs7.PKCS7SignatureBuilder().set_data(c["nonce"].encode()).add_signer(cert, key, hashes.SHA256())
        .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.NoCerts, pkcs7.PKCS7Options.Binary])
    )  # fmt: skip
    body = {"challenge_id": c["challenge_id"], "signature": base64.b64encode(bare).decode()}
    _refused(client, body, 403, "no_certificate", app, since)
    # cards refused by certauth: untrusted issuer, revoked (OCSP), expired, encryption-only
    for card, reason in (("citizen-wrong-issuer", "untrusted"), ("citizen-revoked", "revoked"),
                         ("citizen-expired", "expired"), ("citizen-wrong-usage", "wrong_usage")):  # fmt: skip
        c = challenge(client)
        _refused(client, {"challenge_id": c["challenge_id"], "signature": signature(sim, card, c["nonce"])},
                 403, reason, app, since)  # fmt: skip
    # a government card nobody bound
    c = challenge(client)
    _refused(client, {"challenge_id": c["challenge_id"], "signature": signature(sim, "gov-clerk-social", c["nonce"]),
                      "password": DEMO_PASSWORD}, 401, "not_bound", app, since)  # fmt: skip
    assert bindings(app) == before


def test_revocation_is_seen_by_the_crl_when_ocsp_is_down_and_both_down_fail_closed(app, pki, sim):
    from app.services import certauth
    from tests.cards import responders

    client = app.test_client()
    since = mark(app)
    running = responders()
    certauth.clear_cache()
    running.stop_ocsp()
    try:
        c = challenge(client)
        _refused(client, {"challenge_id": c["challenge_id"], "signature": signature(sim, "citizen-revoked", c["nonce"])},
                 403, "revoked", app, since)  # fmt: skip
        running.stop_crl()
        certauth.clear_cache()
        c = challenge(client)
        r = _refused(client, {"challenge_id": c["challenge_id"], "signature": signature(sim, "citizen-lin", c["nonce"])},
                     503, "revocation_unknown", app, since)  # fmt: skip
        assert "OCSP" in r.json["message"] and ("CRL" in r.json["message"] or "廢止清冊" in r.json["message"])
    finally:
        responders()
        certauth.clear_cache()


# --- binding staff cards, on the screens -----------------------------------------------------------


def _card_pem(pki, name: str) -> bytes:
    return (pki["dir"] / card_info(pki, name)["sign_cert"]).read_bytes()


def _page_sign_in(client, sim, card: str, headers=None, **form):
    nonce = client.post("/signin/card/challenge").json["nonce"]
    return client.post("/signin/card/", data={"signature": signature(sim, card, nonce), **form}, headers=headers)


def test_staff_bind_their_own_card_after_a_password_sign_in_and_a_card_bound_elsewhere_is_refused(app, pki, sim):
    from io import BytesIO

    since, count = mark(app), bindings(app)
    staff = app.test_client()
    login(staff, "clerk.social")
    assert "我的憑證卡" in staff.get("/mycard/").text
    # clerk.card's card is bound already: refused, audited, nothing bound
    nonce = staff.post("/mycard/challenge").json["nonce"]
    staff.post("/mycard/bind", data={"signature": signature(sim, "gov-clerk-card", nonce)})
    assert bindings(app) == count
    refused = [e for e in last_events(app, since, "card_bind") if e[1] == "refused"]
    assert refused and refused[-1][2]["via"] == "self"
    # an Admin binding it to a second account is refused the same way
    admin = app.test_client()
    login(admin, "admin")
    with app.app_context():
        clerk_id = db.session.scalar(select(PlatformUser.id).where(PlatformUser.username == "clerk"))
        db.session.remove()
    page = admin.post("/cardbindings/bind", data={"user_id": str(clerk_id),
                      "certificate": (BytesIO(_card_pem(pki, "gov-clerk-card")), "card.pem")},
                      follow_redirects=True)  # fmt: skip
    assert "已綁定其他帳號" in page.text and bindings(app) == count
    # a citizen's card is no staff card
    page = admin.post("/cardbindings/bind", data={"user_id": str(clerk_id),
                      "certificate": (BytesIO(_card_pem(pki, "citizen-lin")), "card.pem")},
                      follow_redirects=True)  # fmt: skip
    assert "政府憑證" in page.text and bindings(app) == count
    # the staff member's own card, signed: bound
    nonce = staff.post("/mycard/challenge").json["nonce"]
    staff.post("/mycard/bind", data={"signature": signature(sim, "gov-clerk-social", nonce)})
    assert bindings(app) == count + 1
    assert "政府憑證（GCA）" in staff.get("/mycard/").text
    # a bind challenge is no sign-in challenge, and the other way round
    nonce = staff.post("/mycard/challenge").json["nonce"]
    assert "已使用" not in _page_sign_in(app.test_client(), sim, "gov-clerk-social").text
    ok = [e for e in last_events(app, since, "card_bind") if e[1] == "ok"]
    assert len(ok) == 1 and ok[0][2]["via"] == "self"
    # the Admin's screen lists it and unbinds it, audited
    page = admin.get("/cardbindings/")
    assert "clerk.social" in page.text and "clerk.card" in page.text
    with app.app_context():
        binding_id = db.session.scalar(
            select(CardBinding.id).join(PlatformUser, PlatformUser.id == CardBinding.user_id)
            .where(PlatformUser.username == "clerk.social")
        )  # fmt: skip
        db.session.remove()
    admin.post(f"/cardbindings/unbind/{binding_id}")
    assert bindings(app) == count
    assert [e[1] for e in last_events(app, since, "card_unbind")] == ["ok"]
    # and an Admin binds it from its certificate file
    admin.post("/cardbindings/bind", data={"user_id": str(_user_id(app, "clerk.social")),
               "certificate": (BytesIO(_card_pem(pki, "gov-clerk-social")), "card.pem")})  # fmt: skip
    assert bindings(app) == count + 1
    assert [e[2]["via"] for e in last_events(app, since, "card_bind") if e[1] == "ok"] == ["self", "admin"]


def _user_id(app, username: str) -> int:
    with app.app_context():
        found = db.session.scalar(select(PlatformUser.id).where(PlatformUser.username == username))
        db.session.remove()
        return found


def test_a_card_session_is_rechecked_and_ends_when_the_card_is_revoked(app, pki, sim):
    from app.services import certauth
    from app.simulators.cardpki import set_revoked

    browser = app.test_client()
    r = _page_sign_in(browser, sim, "gov-clerk-card", password=DEMO_PASSWORD)
    assert r.status_code == 302
    assert browser.get("/query/").status_code == 200
    user_id = _user_id(app, "clerk.card")
    api = app.test_client()
    pair = card_login(api, sim, "gov-clerk-card", password=DEMO_PASSWORD, refresh=True).json
    since = mark(app)
    set_revoked(pki["dir"], "gov-clerk-card", True)
    certauth.clear_cache()
    try:
        # within CERT_RECHECK_MINUTES the session holds without asking again
        assert browser.get("/query/").status_code == 200
        with app.app_context():
            db.session.execute(
                update(UserSession)
                .where(UserSession.user_id == user_id, UserSession.ended_at.is_(None))
                .values(card_checked_at=datetime.datetime.utcnow() - datetime.timedelta(minutes=16))
            )
            db.session.commit()
            db.session.remove()
        assert browser.get("/query/").status_code in (302, 401, 403)
        with app.app_context():
            ended = db.session.scalars(select(UserSession.end_reason).where(UserSession.user_id == user_id)).all()
            db.session.remove()
        assert "card_refused" in ended
        assert [(e[1], e[2]["reason"]) for e in last_events(app, since, "card_recheck")] == [("refused", "revoked")]
        # an API token signed in with the card: its refresh rechecks the card
        assert api.post("/api/v1/security/refresh", headers=bearer(pair["refresh_token"])).status_code == 401
        # and the revoked card opens nothing any more
        again = app.test_client()
        _page_sign_in(again, sim, "gov-clerk-card", password=DEMO_PASSWORD, headers={"Referer": "/signin/card/"})
        assert again.get("/query/").status_code != 200
        assert [e[2]["reason"] for e in last_events(app, since, "login_failed")] == ["revoked"]
    finally:
        set_revoked(pki["dir"], "gov-clerk-card", False)
        certauth.clear_cache()


# --- mTLS: the client certificate a trusted proxy verified -------------------------------------------


def test_a_certificate_forwarded_by_a_trusted_proxy_signs_in_and_from_anyone_else_is_ignored(backend, pki, tmp_path):
    from tests.conftest import copied_app

    pem = _card_pem(pki, "organisation-assoc").decode()
    headers = {"X-SSL-Client-Cert": quote(pem), "X-SSL-Client-Verify": "SUCCESS"}
    with copied_app(backend, tmp_path, TRUSTED_PROXIES=["127.0.0.1"]) as app:
        client = app.test_client()
        since = mark(app)
        r = client.post("/api/v1/security/cert/mtls", json={"refresh": True}, headers=headers)
        assert r.status_code == 200 and r.json["access_token"] and r.json["refresh_token"]
        # from a peer that is no trusted proxy the header is not even read
        r = client.post("/api/v1/security/cert/mtls", json={}, headers=headers,
                        environ_overrides={"REMOTE_ADDR": "10.9.9.9"})  # fmt: skip
        assert r.status_code == 401
        # the proxy did not verify it: ignored too
        r = client.post("/api/v1/security/cert/mtls", json={},
                        headers={**headers, "X-SSL-Client-Verify": "FAILED:certificate expired"})  # fmt: skip
        assert r.status_code == 401
        # the same checks as a signed challenge: an expired card forwarded by the proxy is refused
        expired = {**headers, "X-SSL-Client-Cert": quote(_card_pem(pki, "citizen-expired").decode())}
        assert client.post("/api/v1/security/cert/mtls", json={}, headers=expired).status_code == 403
        # a staff card needs the password
        staff = {**headers, "X-SSL-Client-Cert": quote(_card_pem(pki, "gov-clerk-card").decode())}
        assert client.post("/api/v1/security/cert/mtls", json={}, headers=staff).status_code == 401
        ok = client.post("/api/v1/security/cert/mtls", json={"password": DEMO_PASSWORD}, headers=staff)
        assert ok.status_code == 200
        # the page: the browser's card, then signed in
        browser = app.test_client()
        assert "tls-sign-in" in browser.get("/signin/card/tls", headers=headers).text
        assert "tls-none" in browser.get("/signin/card/tls").text
        r = browser.post("/signin/card/tls", data={}, headers=headers)
        assert r.status_code == 302 and browser.get("/api/v1/menu/").status_code == 200
        reasons = [d.get("reason") for a, _o, d, _i in last_events(app, since, "login_failed")]
        assert reasons == ["no_client_certificate", "no_client_certificate", "expired", "password_needed"]
        vias = [d.get("via") for a, _o, d, _i in last_events(app, since, "login")]
        assert vias == ["mtls", "mtls", "mtls"]


def test_staff_bind_their_own_card_over_the_api_and_each_refusal_is_audited(app, pki, sim):
    client = app.test_client()
    with app.app_context():  # the card of clerk.social, whoever bound it before in this module
        db.session.execute(CardBinding.__table__.delete().where(CardBinding.user_id == _user_id(app, "clerk.social")))
        db.session.commit()
        db.session.remove()

    def bind(username: str, card: str):
        token = bearer(api_token(client, username))
        c = client.post("/api/v1/security/cert/bind/challenge", headers=token).json
        body = {"challenge_id": c["challenge_id"], "signature": signature(sim, card, c["nonce"])}
        return client.post("/api/v1/security/cert/bind", json=body, headers=token)

    since, count = mark(app), bindings(app)
    assert bind("clerk.social", "gov-clerk-card").status_code == 409  # bound to clerk.card
    assert bind("clerk.social", "citizen-lin").status_code == 400  # no staff card
    assert bind("handler.tax", "gov-clerk-social").status_code == 403  # made out to 李社福
    assert bind("clerk.social", "citizen-revoked").status_code == 403  # certauth: revoked
    assert bindings(app) == count
    r = bind("clerk.social", "gov-clerk-social")
    assert r.status_code == 201 and r.json["result"]["kind"] == "government"
    assert bind("clerk.social", "gov-clerk-social").status_code == 409  # already this account's
    events = last_events(app, since)
    assert [e[1] for e in events if e[0] == "card_bind"] == ["refused", "refused", "refused", "ok", "refused"]
    assert [d.get("reason") for a, _o, d, _i in events if a == "login_failed"] == ["revoked"]
    # a citizen's token may not bind anything
    citizen = card_login(client, sim, "business-bank").json["access_token"]
    assert client.post("/api/v1/security/cert/bind/challenge", headers=bearer(citizen)).status_code == 403
    # and the card now signs clerk.social in, with the password
    assert card_login(client, sim, "gov-clerk-social", password=DEMO_PASSWORD).status_code == 200
