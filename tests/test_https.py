"""HTTPS as it is served: gunicorn with TLS and the demo PKI's server certificate
(as ./run.sh starts it, through gunicorn.conf.py), and the plain-HTTP redirector."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.cards import card_pki
from tests.conftest import DEMO_PASSWORD, copied_app, csrf_token, free_port

ROOT = Path(__file__).resolve().parent.parent
ONE_YEAR = 365 * 86400

# What is served does not depend on the platform database: SQLite only.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture(scope="module")
def pki():
    return card_pki()


@pytest.fixture(scope="module")
def platform(backend, tmp_path_factory):
    with copied_app(backend, tmp_path_factory.mktemp("db"), TRUSTED_PROXIES=["127.0.0.1"]) as application:
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


def _sign_in(client: httpx.Client, base: str) -> httpx.Response:
    page = client.get(f"{base}/login/")
    assert page.status_code == 200, page.text
    return client.post(
        f"{base}/login/",
        data={"username": "clerk", "password": DEMO_PASSWORD, "csrf_token": csrf_token(page.text) or ""},
    )


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
