"""HTTPS as it is served: gunicorn with TLS and the demo PKI's server certificate
(as ./run.sh starts it, through gunicorn.conf.py), the plain-HTTP redirector,
and a real nginx (deploy/nginx/platform.conf, as shipped) in front of gunicorn
both ways: terminating TLS, and verifying a card's client certificate and
forwarding it to the platform, which believes it from nginx only."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from tests.cards import card, card_pki
from tests.conftest import DEMO_PASSWORD, copied_app, csrf_token, free_port

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "deploy" / "nginx" / "platform.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CLIENT = "127.0.0.2"  # the browser's address (Linux answers all of 127/8 on loopback); nginx is 127.0.0.1
ONE_YEAR = 365 * 86400

# What is served does not depend on the platform database: SQLite only.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture(scope="module")
def pki():
    return card_pki()


@pytest.fixture(scope="module")
def platform(backend, tmp_path_factory):
    # CSRF on, as in production: over HTTPS Flask-WTF also wants a Referer of the host the platform sees.
    overrides = {"TRUSTED_PROXIES": ["127.0.0.1"], "WTF_CSRF_ENABLED": True}
    with copied_app(backend, tmp_path_factory.mktemp("db"), **overrides) as application:
        yield application


def _roots_only(pki) -> ssl.SSLContext:
    """A client that trusts the demo root and nothing else (the server must send its chain)."""
    return ssl.create_default_context(cafile=str(pki["dir"] / pki["roots"]))


def _process_env(app, **extra) -> dict:
    settings = {k: v for k, v in app.config.items() if isinstance(v, str | int | float | bool) or v is None}
    settings["TRUSTED_PROXIES"] = app.config["TRUSTED_PROXIES"]
    return {**os.environ, "TEST_APP_CONFIG": json.dumps(settings), "GUNICORN_CONTROL_SOCKET": "off", **extra}


def _wait_served(proc: subprocess.Popen, port: int, context: ssl.SSLContext | None, what: str) -> None:
    """Until ``port`` answers an HTTP request (over TLS with ``context``), or the process ends."""
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as raw:
                with context.wrap_socket(raw, server_hostname="127.0.0.1") if context else raw as sock:
                    sock.sendall(
                        b"GET /static/transfer-upload.js HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                    )
                    if sock.recv(12).startswith(b"HTTP/1.1"):
                        return
        except OSError:
            pass
        assert proc.poll() is None, f"{what} ended with {proc.returncode}"
        assert time.monotonic() < deadline, f"{what} did not start"
        time.sleep(0.1)


class Gunicorn:
    """``gunicorn -c gunicorn.conf.py`` as ./run.sh runs it: with TLS (the demo server
    certificate) or, with ``tls=False``, plain HTTP for a proxy in front."""

    def __init__(self, app, pki, tls: bool):
        self.port = free_port()
        tls_env = {"TLS_CERT_FILE": "", "TLS_KEY_FILE": ""}
        if tls:
            tls_env = {
                "TLS_CERT_FILE": str(pki["dir"] / pki["tls"]["chain"]),
                "TLS_KEY_FILE": str(pki["dir"] / pki["tls"]["key"]),
            }
        env = _process_env(app, PORT=str(self.port), WEB_CONCURRENCY="1", WEB_THREADS="4", **tls_env)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--log-level", "warning"]
            + ["--access-logfile", "/dev/null", "tests.proxy_probe:app"],
            cwd=ROOT,
            env=env,
        )
        _wait_served(self.proc, self.port, _roots_only(pki) if tls else None, "gunicorn")

    def close(self):
        self.proc.terminate()
        self.proc.wait(30)


@pytest.fixture(scope="module")
def tls_gunicorn(platform, pki):
    server = Gunicorn(platform, pki, tls=True)
    yield server
    server.close()


@pytest.fixture(scope="module")
def plain_gunicorn(platform, pki):
    server = Gunicorn(platform, pki, tls=False)
    yield server
    server.close()


def _sign_in(client: httpx.Client, base: str) -> httpx.Response:
    """The sign-in form as a browser sends it (its CSRF token, and the page as Referer)."""
    page = client.get(f"{base}/login/")
    assert page.status_code == 200, page.text
    form = {"username": "clerk", "password": DEMO_PASSWORD, "csrf_token": csrf_token(page.text)}
    assert client.post(f"{base}/login/", data=form).status_code == 400  # no Referer: refused over HTTPS
    return client.post(f"{base}/login/", data=form, headers={"Referer": f"{base}/login/"})


def _session_cookie(response: httpx.Response) -> str:
    cookies = [c for c in response.headers.get_list("set-cookie") if c.startswith("session=")]
    assert cookies, response.headers
    return cookies[-1].lower()


# --- gunicorn with TLS, as ./run.sh serves it ------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_gunicorn_serves_https_with_the_demo_chain_hsts_and_secure_cookies(tls_gunicorn, pki, host):
    base = f"https://{host}:{tls_gunicorn.port}"
    with httpx.Client(verify=_roots_only(pki)) as client:
        page = client.get(f"{base}/login/")
        assert page.status_code == 200 and page.headers["strict-transport-security"] == f"max-age={ONE_YEAR}"
        signed_in = _sign_in(client, base)
        assert signed_in.status_code == 302, signed_in.text
        cookie = _session_cookie(signed_in)
        assert "; secure" in cookie and "; httponly" in cookie and "; samesite=lax" in cookie
        seen = client.get(f"{base}/test-proxy-probe").json()
        assert seen["scheme"] == "https" and seen["external"] == f"{base}/test-proxy-probe"


def test_a_client_that_does_not_trust_the_demo_root_is_refused_the_handshake(tls_gunicorn):
    with httpx.Client(verify=ssl.create_default_context()) as client, pytest.raises(httpx.ConnectError):
        client.get(f"https://127.0.0.1:{tls_gunicorn.port}/login/")


@pytest.fixture(scope="module")
def redirector(tls_gunicorn):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.lib.httpsredirect", "--bind", f"127.0.0.1:{port}"]
        + ["--to", f"https://127.0.0.1:{tls_gunicorn.port}"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr.readline().startswith("redirecting"), "the redirector did not start"  # it is listening
    yield port
    proc.terminate()
    assert proc.wait(30) == 0
    proc.stderr.close()


def test_the_plain_http_port_redirects_to_https_keeping_path_and_query(redirector, tls_gunicorn, pki):
    with httpx.Client(verify=_roots_only(pki), follow_redirects=True) as client:
        page = client.get(f"http://localhost:{redirector}/login/?next=%2Fcases")
        assert page.status_code == 200 and page.history[0].status_code == 301
        assert str(page.url) == f"https://localhost:{tls_gunicorn.port}/login/?next=%2Fcases"
        assert "strict-transport-security" not in page.history[0].headers
        posted = client.post(f"http://127.0.0.1:{redirector}/api/v1/security/login", follow_redirects=False, json={})
        assert posted.status_code == 308
        assert posted.headers["location"] == f"https://127.0.0.1:{tls_gunicorn.port}/api/v1/security/login"


# --- a real nginx in front ---------------------------------------------------------------


class Nginx:
    """nginx (the Debian package) in the foreground, with deploy/nginx/platform.conf as
    shipped, only its ports, upstream and file paths changed, under a temporary prefix."""

    def __init__(self, prefix: Path, pki, upstream: int):
        self.http_port, self.https_port = free_port(), free_port()
        prefix.chmod(0o755)  # nginx's workers (nobody, when started by root) spool under it
        card_cas = prefix / "card-cas.pem"
        card_cas.write_bytes((pki["dir"] / pki["roots"]).read_bytes() + (pki["dir"] / pki["bundle"]).read_bytes())
        changes = {
            "server 127.0.0.1:8000;": f"server 127.0.0.1:{upstream};",
            "listen 80;": f"listen 127.0.0.1:{self.http_port};",
            "listen 443 ssl;": f"listen 127.0.0.1:{self.https_port} ssl;",
            "return 308 https://$host$request_uri;": f"return 308 https://$host:{self.https_port}$request_uri;",
            "/etc/nginx/platform/chain.pem": str(pki["dir"] / pki["tls"]["chain"]),
            "/etc/nginx/platform/server.key": str(pki["dir"] / pki["tls"]["key"]),
            "/etc/nginx/platform/card-cas.pem": str(card_cas),
        }
        site = SAMPLE.read_text()
        for old, new in changes.items():
            assert site.count(old) == 1, f"deploy/nginx/platform.conf no longer has {old!r}"
            site = site.replace(old, new)
        (prefix / "platform.conf").write_text(site)
        temp = " ".join(
            f"{kind}_temp_path {prefix / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (prefix / "nginx.conf").write_text(
            f"daemon off;\npid {prefix / 'nginx.pid'};\nerror_log {prefix / 'error.log'} info;\n"
            "worker_processes 1;\nevents { worker_connections 64; }\n"
            f"http {{\n  access_log {prefix / 'access.log'};\n  {temp}\n  include {prefix / 'platform.conf'};\n}}\n"
        )
        self.error_log = prefix / "error.log"
        self.proc = subprocess.Popen(
            [NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(self.error_log)]
        )
        try:
            _wait_served(self.proc, self.https_port, _roots_only(pki), "nginx")
        except AssertionError:
            raise AssertionError(
                self.error_log.read_text() if self.error_log.exists() else "nginx did not start"
            ) from None

    def close(self):
        self.proc.terminate()
        self.proc.wait(30)


@pytest.fixture(scope="module")
def nginx(plain_gunicorn, pki, tmp_path_factory):
    server = Nginx(tmp_path_factory.mktemp("nginx"), pki, plain_gunicorn.port)
    yield server
    server.close()


def _from_client(pki, cert: tuple[Path, Path] | None = None) -> httpx.Client:
    """A browser at CLIENT that trusts the demo root, offering ``cert`` (PEM cert, key) if given."""
    context = _roots_only(pki)
    if cert:
        context.load_cert_chain(*cert)
    return httpx.Client(transport=httpx.HTTPTransport(verify=context, local_address=CLIENT), verify=context)


def _card_pem(name: str, tmp: Path) -> tuple[tuple[Path, Path], str]:
    """A demo card's signing certificate and key as PEM files (opened with its PIN), and
    the certificate's SHA-256."""
    entry, pki = card(name), card_pki()
    key, cert, _ = pkcs12.load_key_and_certificates(entry["sign"].read_bytes(), pki["pin"].encode())
    cert_path, key_path = tmp / f"{name}.crt", tmp / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return (cert_path, key_path), hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def test_behind_nginx_the_platform_sees_https_and_the_browsers_address(nginx, pki):
    base = f"https://127.0.0.1:{nginx.https_port}"
    with _from_client(pki) as client:
        # A browser's own X-Forwarded-For is kept to the left of what nginx appends: not believed.
        seen = client.get(f"{base}/test-proxy-probe", headers={"X-Forwarded-For": "198.51.100.66"}).json()
        assert seen == {
            "client": CLIENT,
            "scheme": "https",
            "secure": True,
            "external": f"{base}/test-proxy-probe",
            "certificate": None,
        }
        page = client.get(f"{base}/login/")
        assert page.headers["strict-transport-security"] == f"max-age={ONE_YEAR}"
        signed_in = _sign_in(client, base)
        assert signed_in.status_code == 302, signed_in.text
        assert "; secure" in _session_cookie(signed_in)
        plain = client.get(f"http://127.0.0.1:{nginx.http_port}/login/?lang=en")
        assert plain.status_code == 308 and plain.headers["location"] == f"{base}/login/?lang=en"


def test_metrics_are_refused_through_nginx_and_answered_on_gunicorns_loopback_only(nginx, plain_gunicorn, pki):
    """/metrics: nginx answers 404 itself (deploy/nginx/platform.conf); the monitoring
    host scrapes gunicorn directly, from an address in METRICS_ALLOW (loopback)."""
    base = f"https://127.0.0.1:{nginx.https_port}"
    with _from_client(pki) as client:
        refused = client.get(f"{base}/metrics")
        assert refused.status_code == 404 and "platform_" not in refused.text
        assert "nginx" in refused.text  # nginx's own page: the request never reached gunicorn
        assert client.get(f"{base}/health/live").json() == {"status": "live"}
    direct = f"http://127.0.0.1:{plain_gunicorn.port}/metrics"
    scraped = httpx.get(direct)
    assert scraped.status_code == 200 and "platform_http_requests_total" in scraped.text
    with httpx.Client(transport=httpx.HTTPTransport(local_address=CLIENT)) as other:
        assert other.get(direct).status_code == 404  # 127.0.0.2 is not in METRICS_ALLOW


def test_nginx_forwards_a_verified_card_certificate_and_the_platform_reads_it(nginx, pki, tmp_path):
    base = f"https://127.0.0.1:{nginx.https_port}"
    for name in ("citizen-wang", "gov-clerk-card"):
        cert, fingerprint = _card_pem(name, tmp_path)
        with _from_client(pki, cert) as client:
            seen = client.get(f"{base}/test-proxy-probe").json()
        assert seen["certificate"] == fingerprint and seen["client"] == CLIENT


def test_a_card_from_a_ca_outside_the_roots_is_refused_by_nginx(nginx, pki, tmp_path):
    cert, _ = _card_pem("citizen-wrong-issuer", tmp_path)
    with _from_client(pki, cert) as client:
        assert client.get(f"https://127.0.0.1:{nginx.https_port}/test-proxy-probe").status_code == 400


def test_a_forged_certificate_header_is_ignored_through_nginx_and_from_untrusted_peers(
    nginx, plain_gunicorn, pki, tmp_path
):
    _, fingerprint = _card_pem("gov-clerk-card", tmp_path)
    forged = {
        "X-SSL-Client-Cert": quote(card("gov-clerk-card")["sign_cert"].read_text(), safe=""),
        "X-SSL-Client-Verify": "SUCCESS",
    }
    # Through nginx without a certificate: nginx replaces both headers (verdict NONE).
    with _from_client(pki) as client:
        seen = client.get(f"https://127.0.0.1:{nginx.https_port}/test-proxy-probe", headers=forged).json()
    assert seen["certificate"] is None
    # Straight to gunicorn from an address that is not a trusted proxy: ignored.
    with httpx.Client(transport=httpx.HTTPTransport(local_address=CLIENT)) as direct:
        seen = direct.get(f"http://127.0.0.1:{plain_gunicorn.port}/test-proxy-probe", headers=forged).json()
    assert seen["certificate"] is None and seen["client"] == CLIENT and seen["scheme"] == "http"
    # The trust is the peer's address: whatever runs as 127.0.0.1 speaks for nginx.
    with httpx.Client() as local:
        seen = local.get(f"http://127.0.0.1:{plain_gunicorn.port}/test-proxy-probe", headers=forged).json()
    assert seen["certificate"] == fingerprint


# --- card sign-in through nginx (mTLS) ---------------------------------------------------


def _mtls_logins(app) -> list[tuple[str, str | None, str]]:
    """The platform's card sign-in events through a proxy, newest first: (outcome, client address, reason)."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models.audit import AuditEvent

    with app.app_context():
        events = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action.in_(["login", "login_failed"])).order_by(AuditEvent.id.desc())
        ).all()
        found = []
        for event in events:
            detail = json.loads(event.detail or "{}")
            if detail.get("via") == "mtls" or detail.get("reason") == "no_client_certificate":
                found.append((event.action, event.client_ip, detail.get("reason")))
        db.session.remove()
        return found


def test_a_card_signs_in_through_nginx_and_a_forged_header_straight_to_gunicorn_does_not(
    nginx, plain_gunicorn, platform, pki, tmp_path
):
    from tests.cards import responders

    responders()  # the platform checks the card again, revocation by OCSP included
    base = f"https://127.0.0.1:{nginx.https_port}"
    before = len(_mtls_logins(platform))
    clerk_card, _ = _card_pem("gov-clerk-card", tmp_path)
    with _from_client(pki, clerk_card) as client:
        # clerk.card must give the password too; with it, the same JWT pair as a password sign-in
        assert client.post(f"{base}/api/v1/security/cert/mtls", json={}).status_code == 401
        done = client.post(f"{base}/api/v1/security/cert/mtls", json={"password": DEMO_PASSWORD, "refresh": True})
        assert done.status_code == 200, done.text
        token = done.json()["access_token"]
        assert done.json()["refresh_token"]
        me = client.get(f"{base}/api/v1/menu/", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200
    # The sign-in page: the browser's card, its form (CSRF on), signed in.
    organisation, _ = _card_pem("organisation-assoc", tmp_path)
    with _from_client(pki, organisation) as browser:
        page = browser.get(f"{base}/signin/card/tls")
        assert page.status_code == 200 and 'id="tls-sign-in"' in page.text
        signed_in = browser.post(
            f"{base}/signin/card/tls",
            data={"csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)},
            headers={"Referer": str(page.url)},
        )
        assert signed_in.status_code == 302, signed_in.text
        assert "; secure" in _session_cookie(signed_in)
        assert browser.get(f"{base}/api/v1/menu/").status_code == 200
    # Without a card, through nginx: the page says none came.
    with _from_client(pki) as nobody:
        assert 'id="tls-none"' in nobody.get(f"{base}/signin/card/tls").text
    # A forged certificate header straight to gunicorn from an address that is no trusted proxy.
    forged = {"X-SSL-Client-Cert": quote(clerk_card[0].read_text(), safe=""), "X-SSL-Client-Verify": "SUCCESS"}
    with httpx.Client(transport=httpx.HTTPTransport(local_address=CLIENT)) as direct:
        r = direct.post(
            f"http://127.0.0.1:{plain_gunicorn.port}/api/v1/security/cert/mtls",
            json={"password": DEMO_PASSWORD},
            headers=forged,
        )
        assert r.status_code == 401
    # Audited with the browser's address (as nginx saw it), each by what happened.
    assert _mtls_logins(platform)[: len(_mtls_logins(platform)) - before][::-1] == [
        ("login_failed", CLIENT, "password_needed"),
        ("login", CLIENT, None),
        ("login", CLIENT, None),
        ("login_failed", CLIENT, "no_client_certificate"),
    ]


# --- in chromium --------------------------------------------------------------------------


@pytest.mark.browser
def test_in_chromium_http_leads_to_https_and_a_card_signs_in_through_nginx(
    browser, redirector, tls_gunicorn, nginx, pki, tmp_path
):
    from tests.cards import responders
    from tests.conftest import ARTIFACTS

    ARTIFACTS.mkdir(exist_ok=True)
    # Chromium does not know the demo root (it has no option to add one): certificate errors are let
    # through here; the clients above check the chain.
    context = browser.new_context(ignore_https_errors=True, locale="zh-TW", viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(f"http://127.0.0.1:{redirector}/login/")
    assert page.url == f"https://127.0.0.1:{tls_gunicorn.port}/login/"
    page.fill("input[name=username]", "clerk")
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "/login/" not in page.url
    session = next(c for c in context.cookies() if c["name"] == "session")
    assert session["secure"] and session["httpOnly"] and session["sameSite"] == "Lax"
    page.screenshot(path=str(ARTIFACTS / "https-signed-in.png"), full_page=True)
    context.close()

    responders()
    (cert, key), _ = _card_pem("organisation-assoc", tmp_path)
    base = f"https://127.0.0.1:{nginx.https_port}"
    card = [{"origin": base, "certPath": str(cert), "keyPath": str(key)}]
    context = browser.new_context(ignore_https_errors=True, locale="zh-TW", client_certificates=card)
    page = context.new_page()
    page.goto(f"{base}/signin/card/tls")
    page.screenshot(path=str(ARTIFACTS / "https-nginx-card.png"), full_page=True)
    page.click("#tls-sign-in")
    page.wait_for_load_state("networkidle")
    assert "/signin/card/tls" not in page.url
    assert next(c for c in context.cookies() if c["name"] == "session")["secure"]
    page.screenshot(path=str(ARTIFACTS / "https-nginx-card-signed-in.png"), full_page=True)
    context.close()
