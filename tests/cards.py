"""The demo card PKI for tests: made once per test run with free ports, and its
OCSP responders and CRL server, started once and restarted by whoever needs them.

    from tests.cards import card_pki, responders
    pki = card_pki()            # cards.json as a dict, plus "dir": the directory
    responders()                # the running Responders (started if stopped)

Kept in the environment (TEST_CARDPKI_DIR) like conftest's pki_dir: test modules
may import this file under two names.
"""

from __future__ import annotations

import atexit
import os
import random
import socket
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12

from app.simulators.cardpki import load_manifest, make_cardpki
from app.simulators.ocsp import Responders

_RUNNING: dict = {}


def free_port_base(count: int = 5) -> int:
    """A port with the `count` - 1 ports after it free too (the demo PKI's CRL and OCSP ports)."""
    # Below the kernel's range for outgoing connections, so no client's port takes one meanwhile.
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    top = max(low - count, 11000)
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(10000, top)
        sockets = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("0.0.0.0", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no free range of ports")


def card_pki_dir() -> Path:
    if "TEST_CARDPKI_DIR" not in os.environ:
        directory = Path(tempfile.mkdtemp(prefix="cardpki-"))
        make_cardpki(directory, pin="1234", port_base=free_port_base())
        os.environ["TEST_CARDPKI_DIR"] = str(directory)
    return Path(os.environ["TEST_CARDPKI_DIR"])


def card_pki() -> dict:
    directory = card_pki_dir()
    return {**load_manifest(directory), "dir": directory}


def card(name: str) -> dict:
    """One card of the manifest, by name, with absolute paths."""
    pki = card_pki()
    found = next(c for c in pki["cards"] if c["name"] == name)
    paths = ("sign", "sign_cert", "enc", "enc_cert")
    return {k: (pki["dir"] / v if k in paths and v else v) for k, v in found.items()}


def responders() -> Responders:
    """The OCSP responders and CRL server of the run's card PKI, started if any is stopped."""
    running = _RUNNING.get("responders")
    if running is None:
        running = _RUNNING["responders"] = Responders(card_pki_dir())
        atexit.register(running.stop)
    running.start_crl()
    running.start_ocsp()
    return running


def card_key(name: str, which: str = "sign", pin: str = "1234"):
    """(key, certificate, chain) of a demo card, opened with its PIN."""
    path = card(name)[which]
    return pkcs12.load_key_and_certificates(Path(path).read_bytes(), pin.encode())


def sign_pkcs7(name: str, content: bytes, *, detached: bool = False, chain: bool = True, pin: str = "1234") -> bytes:
    """DER CMS SignedData over `content` by a demo card, as the local signing component makes it:
    SHA-256, signed attributes (content type, signing time, message digest), the signer's certificate
    (and its CA's) inside; the content attached unless `detached`."""
    key, cert, cas = card_key(name, pin=pin)
    builder = pkcs7.PKCS7SignatureBuilder().set_data(content).add_signer(cert, key, hashes.SHA256())
    if chain:
        for ca in cas[:1]:
            builder = builder.add_certificate(ca)
    options = [pkcs7.PKCS7Options.Binary, pkcs7.PKCS7Options.NoCapabilities]
    if detached:
        options.append(pkcs7.PKCS7Options.DetachedSignature)
    return builder.sign(serialization.Encoding.DER, options)
