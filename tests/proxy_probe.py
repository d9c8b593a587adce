"""``tests.process_app`` with one more page for the HTTPS tests: what the platform
made of a request (client address, scheme, an external URL, the forwarded client
certificate's SHA-256), as a view would see them. Served by gunicorn as
``tests.proxy_probe:app``; never part of the platform."""

from __future__ import annotations

import hashlib

from flask import jsonify, request, url_for

from app.web import forwarded_client_certificate
from tests.process_app import app


def probe():
    der = forwarded_client_certificate()
    return jsonify(
        client=request.remote_addr,
        scheme=request.scheme,
        secure=request.is_secure,
        external=url_for("proxy_probe", _external=True),
        certificate=hashlib.sha256(der).hexdigest() if der else None,
    )


app.add_url_rule("/test-proxy-probe", "proxy_probe", probe)
