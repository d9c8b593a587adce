"""What does a certificate card sign-in cost beside a password sign-in? In one
process, on one seeded platform database, through the REST API (the Flask test
client, no network between client and platform):

* password sign-ins: POST /api/v1/security/login (clerk; the scrypt hash);
* card sign-ins: POST /api/v1/security/cert/challenge, the card signs the nonce
  (the client's work, not counted), POST /api/v1/security/cert/login: the PKCS#7,
  the path to the roots, validity, key usage, the OCSP answer (the real openssl
  ocsp responder; cached within its validity after the first), the mapping to the
  account and the JWT pair (business card: card only);
* card plus password (clerk.card: the card sign-in and the password's hash).

Each: sign-ins per second (platform time only), the p50 and the CPU per sign-in of
the platform's calls (this process; the database server's CPU is not counted).

    .venv/bin/python bench/signin_bench.py [--n 200] [--sqlite]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import socket
import statistics
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

PG_ADMIN = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _port_base(count: int = 5) -> int:
    for _ in range(200):
        base = random.randrange(20000, 60000)
        sockets = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no free range of ports")


def _app(url: str, cards_dir: str):
    from flask_migrate import upgrade

    from app import create_app
    from config import TestConfig

    class Cfg(TestConfig):
        SQLALCHEMY_DATABASE_URI = url
        DEMO_CARD_PKI_DIR = cards_dir
        CERT_TRUST_ROOTS = os.path.join(cards_dir, "roots.pem")
        CERT_CA_BUNDLE = os.path.join(cards_dir, "cas", "bundle.pem")
        AUDIT_CHECKPOINT_FILE = os.path.join(cards_dir, "checkpoints.jsonl")
        DEMO_SOURCES_DIR = tempfile.mkdtemp(prefix="bench-sources-")
        DEMO_PKI_DIR = tempfile.mkdtemp(prefix="bench-pki-")
        TRANSFER_CA_BUNDLE = os.path.join(DEMO_PKI_DIR, "ca-bundle.pem")
        TRANSFER_CRL_FILES = ""

    app = create_app(Cfg)
    with app.app_context():
        upgrade()
        runner = app.test_cli_runner()
        for args in (["roles", "sync"], ["seed", "demo"]):
            result = runner.invoke(args=args)
            assert result.exit_code == 0, result.output
    return app


class Timer:
    def __init__(self):
        self.wall: list[float] = []
        self.cpu = 0.0

    def __enter__(self):
        self._w, self._c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.cpu += time.process_time() - self._c
        self.wall.append(time.perf_counter() - self._w)

    def line(self, label: str) -> str:
        total = sum(self.wall)
        n = len(self.wall)
        return (f"{label:44s} {n / total:8.1f}/s   p50 {statistics.median(self.wall) * 1000:7.1f} ms"
                f"   CPU {self.cpu / n * 1000:7.1f} ms each")  # fmt: skip


def run(label: str, url: str, n: int) -> None:
    from app.simulators.cardpki import make_cardpki
    from app.simulators.ocsp import Responders
    from app.simulators.signer import Reader

    cards_dir = tempfile.mkdtemp(prefix="bench-cards-")
    make_cardpki(cards_dir, pin="1234", port_base=_port_base())
    with Responders(cards_dir):
        app = _app(url, cards_dir)
        reader = Reader(cards_dir)
        client = app.test_client()

        def password_sign_in(timer):
            with timer:
                r = client.post("/api/v1/security/login",
                                json={"username": "clerk", "password": "Demo-2026", "provider": "db"})  # fmt: skip
            assert r.status_code == 200, r.json

        def card_sign_in(timer, card: str, **extra):
            with timer:
                c = client.post("/api/v1/security/cert/challenge").json
            reader.insert(card)
            code, signature = reader.sign(c["nonce"].encode(), "1234")  # the card's work, on the client
            assert code == 0
            with timer:
                r = client.post("/api/v1/security/cert/login",
                                json={"challenge_id": c["challenge_id"], "signature": signature, **extra})  # fmt: skip
            assert r.status_code == 200, r.json

        card_sign_in(Timer(), "business-bank")  # the first: makes the account, asks OCSP
        card_sign_in(Timer(), "gov-clerk-card", password="Demo-2026")
        password_sign_in(Timer())
        timers = {"password": Timer(), "card": Timer(), "card+password": Timer()}
        for _ in range(n):  # interleaved: each sees the same machine
            password_sign_in(timers["password"])
            card_sign_in(timers["card"], "business-bank")
            card_sign_in(timers["card+password"], "gov-clerk-card", password="Demo-2026")
        print(f"--- {label}: {n} sign-ins each")
        print(timers["password"].line("password (clerk)"))
        print(timers["card"].line("certificate card (business, OCSP cached)"))
        print(timers["card+password"].line("certificate card plus password (clerk.card)"))
        ratio = timers["card"].cpu / timers["password"].cpu
        print(f"card sign-in CPU / password sign-in CPU: {ratio:.2f}")
        print(json.dumps({"backend": label, "n": n, **{
            k: {"per_s": len(t.wall) / sum(t.wall), "p50_ms": statistics.median(t.wall) * 1000,
                "cpu_ms": t.cpu / len(t.wall) * 1000} for k, t in timers.items()}}))  # fmt: skip
        from app.extensions import db

        with app.app_context():
            db.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--sqlite", action="store_true", help="on SQLite instead of PostgreSQL")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    if args.sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            run("sqlite", f"sqlite:///{tmp}/bench.db", args.n)
        return
    name = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        run("postgresql", make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False), args.n)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
