"""A simulator of the citizen's local signing component (HiPKI-like), holding the
demo cards' keys, for the demo and the tests. Never imported by the platform.

    python -m app.simulators.signer instance/pki/cards [--port 61161] [--card citizen-wang]
           [--origin https://127.0.0.1:8443 --origin https://localhost:8443]

It reads ``cards.json`` of the demo card PKI (``python -m app.simulators.cardpki``).
One card is "inserted" at a time: ``--card``, or ``POST /control/card`` with
``{"name": "..."}`` (``null`` takes the card out) — the tests' and the demo's way
to swap cards. Its interface is the real component's (DOMAIN.md):

* ``POST /sign`` with the form field ``tbsPackage`` (JSON: ``func: "MakeSignature"``,
  ``signatureType: "PKCS7"``, ``tbs`` and ``pin`` URI-encoded, ``tbsEncoding``
  ``"NONE"`` or ``"base64"``, ``hashAlgorithm: "SHA256"``, ``nonce``) answers JSON
  ``{"func", "signature" (base64 PKCS#7 SignedData, content attached), "ret_code"
  (0 = success), "last_error"}``; the key is opened with the PIN (the card's PKCS#12);
* ``GET /popupForm``: the small window pages open; it posts ``{"func": "getTbs"}`` to
  its opener, takes the tbsPackage JSON back by ``postMessage`` (from an allowed
  origin only), signs, posts ``{"func": "sign", "signature", "ret_code",
  "last_error"}`` back and closes;
* ``GET /pkcs11info?withcert=true`` lists the inserted card and its certificates.

Answers to browsers carry CORS headers for the allowed origins only.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import threading
from pathlib import Path
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from flask import Flask, Response, jsonify, request

DEFAULT_PORT = 61161
DEFAULT_ORIGINS = ("https://127.0.0.1:8443", "https://localhost:8443")

# The simulator's answer codes (0 = success; the others name what went wrong, as the real component's do).
OK = 0
NO_CARD = 0x76000001  # no card in the reader
WRONG_PIN = 0x76000002  # the PIN does not open the card
BAD_PACKAGE = 0x76000003  # tbsPackage missing, not JSON, or an unsupported function/type/hash
PIN_LOCKED = 0x76000004  # too many wrong PINs: the card is locked (take it out and insert it again)
MESSAGES = {
    NO_CARD: "no card in the reader",
    WRONG_PIN: "wrong PIN",
    BAD_PACKAGE: "bad tbsPackage",
    PIN_LOCKED: "card locked after too many wrong PINs",
}
MAX_PIN_TRIES = 3


class Reader:
    """The card reader: which card is inserted, its keys opened with the PIN."""

    def __init__(self, pki_dir: Path, card: str | None = None):
        self.dir = Path(pki_dir)
        self.manifest = json.loads((self.dir / "cards.json").read_text(encoding="utf-8"))
        self.cards = {c["name"]: c for c in self.manifest["cards"]}
        self.lock = threading.Lock()
        self.opened: dict[tuple[str, str], tuple] = {}
        self.tries = 0
        self.inserted = None
        self.insert(card)

    def insert(self, name: str | None) -> None:
        if name is not None and name not in self.cards:
            raise KeyError(name)
        with self.lock:
            self.inserted, self.tries = name, 0

    def card(self) -> dict | None:
        return self.cards.get(self.inserted) if self.inserted else None

    def _open(self, card: dict, which: str, pin: str):
        key = (card["name"], which)
        if key not in self.opened:
            data = (self.dir / card[which]).read_bytes()
            self.opened[key] = pkcs12.load_key_and_certificates(data, pin.encode())
        return self.opened[key]

    def sign(self, tbs: bytes, pin: str) -> tuple[int, str | None]:
        with self.lock:
            card = self.card()
            if card is None:
                return NO_CARD, None
            if self.tries >= MAX_PIN_TRIES:
                return PIN_LOCKED, None
            if pin != str(self.manifest["pin"]):
                self.tries += 1
                return (PIN_LOCKED if self.tries >= MAX_PIN_TRIES else WRONG_PIN), None
            self.tries = 0
            key, cert, chain = self._open(card, "sign", pin)
        builder = pkcs7.PKCS7SignatureBuilder().set_data(tbs).add_signer(cert, key, hashes.SHA256())
        for extra in chain or []:
            builder = builder.add_certificate(extra)
        der = builder.sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary, pkcs7.PKCS7Options.NoCapabilities])
        return OK, base64.b64encode(der).decode()

    def certificates(self) -> list[dict]:
        card = self.card()
        if card is None:
            return []
        found = []
        for which, field in (("sign", "sign_cert"), ("enc", "enc_cert")):
            if not card.get(field) or (which == "enc" and card[field] == card.get("sign_cert")):
                continue
            cert = x509.load_pem_x509_certificate((self.dir / card[field]).read_bytes())
            found.append({
                "label": which, "certb64": base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode(),
                "subjectDN": cert.subject.rfc4514_string(), "issuerDN": cert.issuer.rfc4514_string(),
                "serialNumber": format(cert.serial_number, "x"),
            })  # fmt: skip
        return found


def _package(raw: str | None) -> dict | None:
    try:
        package = json.loads(raw or "")
    except ValueError:
        return None
    if not isinstance(package, dict) or package.get("func") != "MakeSignature":
        return None
    if package.get("signatureType", "PKCS7") != "PKCS7" or package.get("hashAlgorithm", "SHA256") != "SHA256":
        return None
    if not isinstance(package.get("tbs"), str) or not isinstance(package.get("pin", ""), str):
        return None
    return package


_POPUP = """<!doctype html><html lang="zh-Hant"><head><meta charset="utf-8">
<title>HiPKI 簽章元件（模擬） / Signing component (simulator)</title>
<style>body{font-family:sans-serif;margin:1.5em}</style></head><body>
<h3>簽章元件（模擬） Signing component (simulator)</h3>
<p id="status">等待網頁傳送簽章資料… Waiting for the page…</p>
<script src="/popupForm.js"></script></body></html>"""

_POPUP_JS = """(function () {
  "use strict";
  var allowed = %(origins)s, status = document.getElementById("status");
  function answer(origin, body) {
    if (window.opener) { window.opener.postMessage(JSON.stringify(body), origin); }
    window.close();
  }
  window.addEventListener("message", function (event) {
    if (allowed.indexOf(event.origin) < 0) { return; }
    status.textContent = "簽章中… Signing…";
    var form = new URLSearchParams();
    form.append("tbsPackage", typeof event.data === "string" ? event.data : JSON.stringify(event.data));
    fetch("/sign", {method: "POST", body: form}).then(function (r) { return r.json(); }).then(function (result) {
      answer(event.origin, {func: "sign", signature: result.signature || "", ret_code: result.ret_code,
                            last_error: result.last_error});
    }, function () { answer(event.origin, {func: "sign", signature: "", ret_code: %(bad)d, last_error: %(bad)d}); });
  });
  if (window.opener) { window.opener.postMessage(JSON.stringify({func: "getTbs"}), "*"); }
})();
"""


def make_app(pki_dir, card: str | None = None, origins=DEFAULT_ORIGINS) -> Flask:
    reader = Reader(Path(pki_dir), card)
    allowed = list(origins)
    app = Flask("signer")
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    app.extensions["reader"] = reader

    @app.after_request
    def cors(response: Response) -> Response:
        origin = request.headers.get("Origin")
        if origin in allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = "Content-Type"
            response.headers["Access-Control-Allow-Private-Network"] = "true"
        return response

    @app.route("/sign", methods=["POST", "OPTIONS"])
    def sign():
        if request.method == "OPTIONS":
            return "", 204
        package = _package(request.form.get("tbsPackage"))
        if package is None:
            return jsonify(func="MakeSignature", signature="", ret_code=BAD_PACKAGE, last_error=BAD_PACKAGE)
        tbs_text = unquote(package["tbs"])
        if str(package.get("tbsEncoding", "NONE")).lower() == "base64":
            try:
                tbs = base64.b64decode(tbs_text, validate=True)
            except ValueError:
                return jsonify(func="MakeSignature", signature="", ret_code=BAD_PACKAGE, last_error=BAD_PACKAGE)
        else:
            tbs = tbs_text.encode("utf-8")
        code, signature = reader.sign(tbs, unquote(package.get("pin", "")))
        return jsonify(func="MakeSignature", signature=signature or "", ret_code=code, last_error=code,
                       message=MESSAGES.get(code, ""))  # fmt: skip

    @app.get("/popupForm")
    def popup():
        return Response(_POPUP, mimetype="text/html")

    @app.get("/popupForm.js")
    def popup_js():
        js = _POPUP_JS % {"origins": json.dumps(allowed), "bad": BAD_PACKAGE}
        return Response(js, mimetype="text/javascript")

    @app.get("/pkcs11info")
    def pkcs11info():
        card = reader.card()
        if card is None:
            return jsonify(func="pkcs11info", ret_code=NO_CARD, last_error=NO_CARD, slots=[])
        token = {"serialNumber": card.get("card_no", ""), "label": card["name"]}
        if request.args.get("withcert") == "true":
            token["certs"] = reader.certificates()
        return jsonify(func="pkcs11info", ret_code=OK, last_error=OK,
                       slots=[{"slotDescription": "Demo card reader 0", "token": token}])  # fmt: skip

    @app.post("/control/card")
    def control():
        body = request.get_json(silent=True) or {}
        try:
            reader.insert(body.get("name"))
        except KeyError:
            return jsonify(error="no such card"), 404
        return jsonify(inserted=reader.inserted)

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.simulators.signer", description=__doc__.split("\n\n")[0])
    parser.add_argument("pki_dir", help="the demo card PKI (its cards.json)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--card", default=None, help="the card inserted at start (a name in cards.json)")
    parser.add_argument("--origin", action="append", help="a page origin allowed to ask for signatures (repeat)")
    args = parser.parse_args(argv)
    from werkzeug.serving import make_server

    app = make_app(args.pki_dir, args.card, tuple(args.origin or DEFAULT_ORIGINS))
    server = make_server(args.host, args.port, app, threaded=True)
    print(f"signing component simulator on http://{args.host}:{args.port}/", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
