"""Trusted proxies and HTTPS in the app: forwarding headers and a forwarded client
certificate are believed from TRUSTED_PROXIES only (never an error when
malformed), HSTS and Secure cookies over HTTPS, HTTPS_ONLY, and the plain-HTTP
redirector ./run.sh starts."""

from __future__ import annotations

import datetime
import http.client
import threading
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from flask import Flask, jsonify, request, url_for
from sqlalchemy import select

from app.extensions import db
from app.lib import httpsredirect, proxies
from app.lib.proxies import TrustedProxies, forwarded_client_certificate
from tests.conftest import DEMO_PASSWORD, csrf_token

TRUSTED = ("10.0.0.5", "192.168.7.0/24", "fd00::/8")
PROXY = "10.0.0.5"
STRANGER = "203.0.113.9"


def _certificate(name: str = "王小明") -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )


CERT = _certificate()
DER = CERT.public_bytes(serialization.Encoding.DER)
PEM = CERT.public_bytes(serialization.Encoding.PEM).decode()
ESCAPED = quote(PEM, safe="")  # as nginx's $ssl_client_escaped_cert


def _headers(cert: str | None = ESCAPED, verify: str | None = "SUCCESS") -> dict:
    headers = {}
    if cert is not None:
        headers["X-SSL-Client-Cert"] = cert
    if verify is not None:
        headers["X-SSL-Client-Verify"] = verify
    return headers


# --- the forwarded client certificate -------------------------------------------------


@pytest.mark.parametrize("peer", [PROXY, "192.168.7.200", "fd00::1", "::ffff:10.0.0.5"])
def test_a_certificate_forwarded_by_a_trusted_proxy_is_read(peer):
    assert forwarded_client_certificate(peer, _headers(), TRUSTED) == DER


@pytest.mark.parametrize("peer", [STRANGER, "10.0.0.6", "192.168.8.1", "::1", "", None, "not-an-address"])
def test_the_certificate_header_from_anyone_else_is_ignored(peer):
    assert forwarded_client_certificate(peer, _headers(), TRUSTED) is None


def test_no_trusted_proxy_configured_means_no_forwarded_certificate():
    assert forwarded_client_certificate(PROXY, _headers(), ()) is None
    assert forwarded_client_certificate(PROXY, _headers(), "") is None


@pytest.mark.parametrize("verify", [None, "NONE", "FAILED:certificate has expired", "success!", ""])
def test_a_certificate_the_proxy_did_not_verify_is_ignored(verify):
    assert forwarded_client_certificate(PROXY, _headers(verify=verify), TRUSTED) is None


def test_the_verify_header_can_be_left_out_by_setting():
    assert forwarded_client_certificate(PROXY, _headers(verify=None), TRUSTED, "X-SSL-Client-Cert", None) == DER


@pytest.mark.parametrize(
    "value",
    [
        PEM.replace("\n", " "),  # line breaks folded (Apache's SSL_CLIENT_CERT through a header)
        PEM.replace("\n", "\t"),  # nginx's older $ssl_client_cert
        "".join(PEM.splitlines()[1:-1]),  # bare base64 DER
        quote(PEM),  # escaped, slashes kept
    ],
)
def test_other_spellings_of_one_certificate_are_read(value):
    assert forwarded_client_certificate(PROXY, _headers(cert=value), TRUSTED) == DER


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        "%ZZ%",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ESCAPED[: len(ESCAPED) // 2],  # cut off
        quote(PEM + _certificate("someone else").public_bytes(serialization.Encoding.PEM).decode(), safe=""),  # two
        quote("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", safe=""),
        "TUlJQ" * 5000,  # far too long
        "\x00\xff" * 10,
    ],
)
def test_a_malformed_certificate_header_is_none_never_an_error(value):
    assert forwarded_client_certificate(PROXY, _headers(cert=value), TRUSTED) is None


def test_a_repeated_certificate_header_is_ignored():
    from werkzeug.datastructures import Headers

    headers = Headers(
        [("X-SSL-Client-Cert", ESCAPED), ("X-SSL-Client-Cert", ESCAPED), ("X-SSL-Client-Verify", "SUCCESS")]
    )
    assert forwarded_client_certificate(PROXY, headers, TRUSTED) is None


def test_a_bad_trusted_proxies_entry_is_refused_by_name():
    with pytest.raises(ValueError, match="'1'"):
        proxies.parse_networks("10.0.0.5, 1")


# --- forwarding headers: the middleware ----------------------------------------------


@pytest.fixture(scope="module")
def echo():
    """A bare Flask app behind the middleware, answering what it was told."""
    app = Flask(__name__)

    @app.route("/echo")
    def _echo():
        return jsonify(
            addr=request.remote_addr,
            peer=request.environ.get(proxies.PEER_ADDR),
            scheme=request.scheme,
            host=request.host,
            url=url_for("_echo", _external=True),
            cert=request.headers.get("X-SSL-Client-Cert"),
            forwarded=request.headers.get("X-Forwarded-For"),
        )

    app.wsgi_app = TrustedProxies(app.wsgi_app, TRUSTED, strip=("X-SSL-Client-Cert", "X-SSL-Client-Verify"))
    return app.test_client()


FORWARDED = {
    "X-Forwarded-For": "198.51.100.1, 198.51.100.7",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "portal.county.gov.tw",
}


def test_a_trusted_proxy_tells_the_client_address_scheme_and_host(echo):
    seen = echo.get("/echo", headers=FORWARDED, environ_base={"REMOTE_ADDR": PROXY}).json
    # The rightmost entry is what our proxy appended; the left one the client wrote itself.
    assert seen["addr"] == "198.51.100.7" and seen["peer"] == PROXY
    assert seen["scheme"] == "https" and seen["host"] == "portal.county.gov.tw"
    assert seen["url"] == "https://portal.county.gov.tw/echo"


def test_behind_two_trusted_proxies_the_client_is_the_first_untrusted_hop(echo):
    headers = {**FORWARDED, "X-Forwarded-For": "1.2.3.4, 198.51.100.7, 192.168.7.3"}
    seen = echo.get("/echo", headers=headers, environ_base={"REMOTE_ADDR": PROXY}).json
    assert seen["addr"] == "198.51.100.7"


def test_forwarding_headers_from_anyone_else_change_nothing_and_are_removed(echo):
    headers = {**FORWARDED, **_headers()}
    seen = echo.get("/echo", headers=headers, environ_base={"REMOTE_ADDR": STRANGER}).json
    assert seen["addr"] == STRANGER and seen["scheme"] == "http" and seen["host"] == "localhost"
    assert seen["url"] == "http://localhost/echo"
    assert seen["cert"] is None and seen["forwarded"] is None


def test_a_garbage_forwarded_for_entry_stops_at_the_proxy(echo):
    headers = {"X-Forwarded-For": "not an address", "X-Forwarded-Proto": "gopher", "X-Forwarded-Host": "a b/c"}
    seen = echo.get("/echo", headers=headers, environ_base={"REMOTE_ADDR": PROXY}).json
    assert seen["addr"] == PROXY and seen["scheme"] == "http" and seen["host"] == "localhost"


# --- the platform: HSTS, cookies, HTTPS_ONLY, the audited address ----------------------


@pytest.fixture(scope="module")
def platform(backend, tmp_path_factory):
    from tests.conftest import copied_app

    with copied_app(backend, tmp_path_factory.mktemp("db"), TRUSTED_PROXIES=list(TRUSTED)) as application:
        yield application


def _sign_in(client, **kwargs):
    page = client.get("/login/", **kwargs)
    return client.post(
        "/login/",
        data={"username": "clerk", "password": DEMO_PASSWORD, "csrf_token": csrf_token(page.text) or ""},
        **kwargs,
    )


def _session_cookie(response) -> str:
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert cookies, response.headers
    return cookies[-1]


def test_over_https_responses_carry_hsts_and_the_session_cookie_is_secure(platform):
    client = platform.test_client()
    r = client.get("/login/", base_url="https://localhost")
    assert r.headers["Strict-Transport-Security"] == f"max-age={365 * 86400}"
    signed_in = _sign_in(client, base_url="https://localhost")
    assert signed_in.status_code == 302
    cookie = _session_cookie(signed_in).lower()
    assert "; secure" in cookie and "; httponly" in cookie and "; samesite=lax" in cookie


def test_over_plain_http_no_hsts_and_no_secure_flag(platform):
    client = platform.test_client()
    r = client.get("/login/")
    assert "Strict-Transport-Security" not in r.headers
    cookie = _session_cookie(_sign_in(client)).lower()
    assert "; secure" not in cookie and "; httponly" in cookie


def test_https_seen_by_a_trusted_proxy_counts_as_https_and_from_others_not(platform):
    client = platform.test_client()
    through = client.get("/login/", headers={"X-Forwarded-Proto": "https"}, environ_base={"REMOTE_ADDR": PROXY})
    assert "Strict-Transport-Security" in through.headers
    forged = client.get("/login/", headers={"X-Forwarded-Proto": "https"}, environ_base={"REMOTE_ADDR": STRANGER})
    assert "Strict-Transport-Security" not in forged.headers


def test_hsts_max_age_is_a_setting(platform):
    platform.config["HSTS_MAX_AGE"], platform.config["HSTS_INCLUDE_SUBDOMAINS"] = 600, True
    try:
        r = platform.test_client().get("/login/", base_url="https://localhost")
        assert r.headers["Strict-Transport-Security"] == "max-age=600; includeSubDomains"
        platform.config["HSTS_MAX_AGE"] = 0
        assert "Strict-Transport-Security" not in platform.test_client().get("/", base_url="https://localhost").headers
    finally:
        platform.config["HSTS_MAX_AGE"], platform.config["HSTS_INCLUDE_SUBDOMAINS"] = 365 * 86400, False


def test_https_only_sends_plain_http_to_the_public_address(platform):
    platform.config["HTTPS_ONLY"], platform.config["PUBLIC_BASE_URL"] = True, "https://portal.example:8443/"
    try:
        client = platform.test_client()
        r = client.get("/login/?next=%2Fcases&lang=en", headers={"Host": "elsewhere.example"})
        assert (
            r.status_code == 301 and r.headers["Location"] == "https://portal.example:8443/login/?next=%2Fcases&lang=en"
        )
        r = client.post("/api/v1/security/login", json={"username": "clerk", "password": DEMO_PASSWORD})
        assert r.status_code == 308 and r.headers["Location"] == "https://portal.example:8443/api/v1/security/login"
        assert client.get("/login/", base_url="https://portal.example:8443").status_code == 200
        # Through a trusted proxy that terminated TLS: served, not redirected.
        through = client.get("/login/", headers={"X-Forwarded-Proto": "https"}, environ_base={"REMOTE_ADDR": PROXY})
        assert through.status_code == 200
    finally:
        platform.config["HTTPS_ONLY"], platform.config["PUBLIC_BASE_URL"] = False, "https://127.0.0.1:8443"


def _last_login_ip(app) -> str:
    from app.models.audit import AuditEvent

    with app.app_context():
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "login").order_by(AuditEvent.id.desc()).limit(1)
        ).one()
        db.session.remove()
        return event.client_ip


def test_the_audited_address_is_the_forwarded_one_only_from_a_trusted_proxy(platform):
    forwarded = {"X-Forwarded-For": "198.51.100.23", "X-Forwarded-Proto": "https"}
    _sign_in(platform.test_client(), headers=forwarded, environ_base={"REMOTE_ADDR": PROXY})
    assert _last_login_ip(platform) == "198.51.100.23"
    _sign_in(platform.test_client(), headers=forwarded, environ_base={"REMOTE_ADDR": STRANGER})
    assert _last_login_ip(platform) == STRANGER


def _api_login(client, username, password, peer, forwarded_for=None):
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return client.post(
        "/api/v1/security/login",
        json={"username": username, "password": password, "provider": "db"},
        headers=headers,
        environ_base={"REMOTE_ADDR": peer},
    )


def test_failed_sign_ins_lock_the_forwarded_client_not_the_proxy_and_not_a_forged_address(platform):
    limit = platform.config["LOGIN_ADDRESS_LOCK_AFTER_FAILURES"]
    platform.config["LOGIN_ADDRESS_LOCK_AFTER_FAILURES"] = 3
    try:
        client = platform.test_client()
        for n in range(3):  # one client behind the proxy guessing at many accounts
            assert _api_login(client, f"nobody-{n}", "x", PROXY, "198.51.100.40").status_code == 401
        assert _api_login(client, "clerk", DEMO_PASSWORD, PROXY, "198.51.100.40").status_code == 429
        # Another client behind the same proxy is not held for it.
        assert _api_login(client, "clerk", DEMO_PASSWORD, PROXY, "198.51.100.41").status_code == 200
        # A client that is no proxy cannot dodge its own lock by writing X-Forwarded-For.
        for n in range(3):
            assert _api_login(client, f"nobody-{n}", "x", "203.0.113.50", f"192.0.2.{n}").status_code == 401
        assert _api_login(client, "clerk", DEMO_PASSWORD, "203.0.113.50", "192.0.2.99").status_code == 429
    finally:
        platform.config["LOGIN_ADDRESS_LOCK_AFTER_FAILURES"] = limit


def test_the_app_reads_a_forwarded_certificate_only_from_a_trusted_proxy(platform):
    from app.web import forwarded_client_certificate as from_request

    with platform.test_request_context("/", headers=_headers(), environ_base={"REMOTE_ADDR": PROXY}):
        assert from_request() == DER
    with platform.test_request_context("/", headers=_headers(), environ_base={"REMOTE_ADDR": STRANGER}):
        assert from_request() is None
    with platform.test_request_context("/", headers=_headers(cert="%%%"), environ_base={"REMOTE_ADDR": PROXY}):
        assert from_request() is None


# --- the plain-HTTP redirector ---------------------------------------------------------


@pytest.fixture(scope="module")
def redirector():
    server = httpsredirect.serve("127.0.0.1:0", "https://127.0.0.1:8443", ("127.0.0.1", "localhost"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _ask(port: int, method: str, path: str, host: str, body: bytes | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Host": host})
        r = conn.getresponse()
        return r.status, r.getheader("Location"), r.getheader("Set-Cookie")
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("method", "path", "host", "status", "location"),
    [
        ("GET", "/login/?next=/cases&a=1", "127.0.0.1:8080", 301, "https://127.0.0.1:8443/login/?next=/cases&a=1"),
        ("HEAD", "/", "localhost:8080", 301, "https://localhost:8443/"),
        ("POST", "/api/v1/security/login", "localhost", 308, "https://localhost:8443/api/v1/security/login"),
        ("GET", "/x", "evil.example:8080", 301, "https://127.0.0.1:8443/x"),
        ("GET", "//evil.example/x", "127.0.0.1", 301, "https://127.0.0.1:8443/evil.example/x"),
    ],
)
def test_plain_http_is_redirected_to_https_keeping_path_and_query(redirector, method, path, host, status, location):
    body = b'{"username": "a"}' if method == "POST" else None
    assert _ask(redirector, method, path, host, body) == (status, location, None)
