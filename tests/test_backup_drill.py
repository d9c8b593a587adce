"""The restore drill: a county's IT staff back up a platform in use, lose the machine,
and bring it back on a fresh PostgreSQL cluster (or a fresh SQLite file) and a fresh
instance folder. Nothing may be lost: the audit chain verifies against its signed
checkpoints, a stored query result reopens with its verification code, a transfer
file downloads with the same SHA-256, and a queued e-mail is sent exactly once.
A backup with a tampered part is refused before anything is touched."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, func, select, text

from app.extensions import db
from app.lib import fieldcrypt
from app.models.outbox import OutboxMessage
from app.models.transfer import TransferCase
from app.services import backup as backup_service
from app.services import outbox
from config import TestConfig
from tests import factories
from tests.conftest import api_token, bearer, build_app, copied_app, free_port
from tests.test_transfer import _download, _email_of, _register, kit_encrypt, staff

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PASSPHRASE = "correct horse battery staple 2026"


@contextmanager
def fresh_postgresql_cluster():
    """A new PostgreSQL cluster of its own (initdb into a temporary folder, on a free port,
    trust on loopback), with an empty database ``platform``; stopped and removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="pgdrill-"))
    as_postgres = []
    if os.geteuid() == 0:  # the server refuses to run as root
        shutil.chown(base, "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    data, port = base / "data", free_port()

    def run(*argv):
        subprocess.run([*as_postgres, *map(str, argv)], check=True, capture_output=True, timeout=120)

    run(PG_BIN / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(PG_BIN / "pg_ctl", "-D", data, "-o", options, "-l", base / "server.log", "-w", "start")
    try:
        admin = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE platform"))
        admin.dispose()
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/platform"
    finally:
        run(PG_BIN / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def fresh_target(backend):
    if backend.backend == "postgresql":
        with fresh_postgresql_cluster() as url:
            yield url
    else:
        folder = Path(tempfile.mkdtemp(prefix="sqlitedrill-"))
        try:
            yield f"sqlite:///{folder / 'platform.db'}"
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def new_host_settings(root: Path) -> dict:
    """A new machine's folders, and the keys its config.py would have generated on first start."""
    instance = root / "instance"
    instance.mkdir(parents=True)
    return {
        "INSTANCE_FOLDER": str(instance),
        "TRANSFER_DIR": str(root / "transfer"),
        "AUDIT_CHECKPOINT_FILE": str(root / "audit" / "checkpoints.jsonl"),
        "SECRET_KEY": secrets.token_hex(32),
        "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "SUBJECT_HASH_KEY": secrets.token_hex(32),
        "ATTACHMENT_SEAL_KEY": secrets.token_hex(32),
        "AUDIT_CHAIN_KEY": secrets.token_hex(32),
        "AUDIT_SIGNING_KEY": secrets.token_hex(32),
    }


def keys_in(instance: Path) -> dict:
    """The secrets as config.py reads them from an instance folder."""
    return {name: (instance / file).read_text().strip() for name, file in backup_service.INSTANCE_SECRETS.items()}


@pytest.fixture(autouse=True)
def _field_keys_back():
    yield
    fieldcrypt.configure(TestConfig.FIELD_ENCRYPTION_KEYS)  # other modules' apps share this process


def _used(app, tmp_path) -> dict:
    """The platform in use: a query with a stored result, a transfer file uploaded (its e-mail
    to the receiver queued while the mail server is away), the chain sealed and checkpointed."""
    client = app.test_client()
    with app.app_context():
        src = factories.sqlite_source(f"SRC-{uuid.uuid4().hex[:6]}", factories.people_db(tmp_path / "people.db"))
        form = factories.people_form(f"drill.{uuid.uuid4().hex[:6]}", src).code
    clerk = api_token(client, "clerk")
    body = {"form": form, "case_no": "1151203-0007", "reason": "", "business_item": "TAX-CHECK",
            "params": {"id_no": "A123456789"}}  # fmt: skip
    query = client.post("/api/v1/query/run", json=body, headers=bearer(clerk))
    assert query.status_code == 200, query.json
    assert client.get(f"/api/v1/verify/{query.json['verification_code']}").json["valid"] is True

    social = api_token(client, "transfer.social")
    case = _register(client, social).json["result"]
    (tmp_path / "data.csv").write_bytes("身分證字號,所得\nA123456789,123456\n".encode() * 100)
    sealed = kit_encrypt(
        staff("transfer.social"), tmp_path / "data.csv", tmp_path / "data.p7m", "--to", staff("transfer.tax").cert
    )
    r = client.put(f"/api/v1/transfers/{case['id']}/payload", data=sealed, headers=bearer(social))
    assert r.status_code == 200, r.json

    runner = app.test_cli_runner()
    for args in (["audit", "seal"], ["audit", "checkpoint", "--no-mail"]):
        result = runner.invoke(args=args)
        assert result.exit_code == 0, result.output
    with app.app_context():
        queued = db.session.scalars(select(OutboxMessage).where(OutboxMessage.status == "queued")).all()
        to_tax = [m for m in queued if m.recipient == _email_of(app, "transfer.tax")]
    assert to_tax, "the upload queued an e-mail to the receiving officer"
    return {
        "query": query.json,
        "case": case["id"],
        "sha256": hashlib.sha256(sealed).hexdigest(),
        "queued": len(queued),
    }


def _restore(app, backup_dir: Path, keys: Path, phrase_file: Path, *extra) -> object:
    return app.test_cli_runner().invoke(
        args=["ops", "restore", "--from", str(backup_dir), "--keys", str(keys),
              "--keys-passphrase-file", str(phrase_file), *extra]
    )  # fmt: skip


def _nothing_restored(app, host: dict) -> None:
    with app.app_context():
        db.session.remove()
        with db.engine.connect() as conn:
            tables = conn.execute(
                text("SELECT count(*) FROM sqlite_master WHERE type = 'table'")
                if conn.dialect.name == "sqlite"
                else text("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
            ).scalar()
        db.engine.dispose()
    assert tables == 0
    assert not any(Path(host["INSTANCE_FOLDER"]).iterdir())
    assert not Path(host["TRANSFER_DIR"]).exists() or not any(
        p.is_file() for p in Path(host["TRANSFER_DIR"]).rglob("*")
    )
    assert not Path(host["AUDIT_CHECKPOINT_FILE"]).exists()


def test_a_used_platform_is_backed_up_lost_and_restored_on_a_fresh_machine_with_nothing_lost(
    backend, tmp_path, smtp_down
):
    # 1. A platform in use; the mail server is down, so the receiver's e-mail waits in the outbox.
    (tmp_path / "old").mkdir()
    with copied_app(backend, tmp_path / "old", MAIL_PORT=smtp_down.port) as old:
        used = _used(old, tmp_path)
        old_transfer_dir = Path(old.config["TRANSFER_DIR"])

        # 2. The nightly backup; the key bundle goes elsewhere, under a passphrase.
        phrase = tmp_path / "passphrase"
        phrase.write_text(PASSPHRASE + "\n")
        backup_dir, vault = tmp_path / "backup", tmp_path / "vault"
        made = old.test_cli_runner().invoke(
            args=["ops", "backup", "--out", str(backup_dir), "--keys-out", str(vault / "keys.enc"),
                  "--keys-passphrase-file", str(phrase)]
        )  # fmt: skip
        assert made.exit_code == 0, made.output
        again = old.test_cli_runner().invoke(
            args=["ops", "backup", "--out", str(backup_dir), "--keys-passphrase-file", str(phrase)]
        )
        assert again.exit_code == 1 and "never overwrites" in again.output
    shutil.rmtree(old_transfer_dir)  # the old machine is gone

    manifest = json.loads((backup_dir / "manifest.json").read_text())
    assert set(manifest["parts"]) == {"database.dump" if backend.backend == "postgresql" else "database.sqlite",
                                      "files.tar", "checkpoints.jsonl", "config.tar"}  # fmt: skip
    assert manifest["transfer_files"] == 1 and manifest["audit_head"]["seq"] > 0 and manifest["migration_head"]
    assert not (backup_dir / "keys.enc").exists() and (vault / "keys.enc").stat().st_mode & 0o077 == 0
    everything = b"".join(p.read_bytes() for p in backup_dir.iterdir() if p.suffix != ".dump")
    for secret in (TestConfig.FIELD_ENCRYPTION_KEYS, TestConfig.AUDIT_CHAIN_KEY, TestConfig.SECRET_KEY):
        assert secret.encode() not in everything and secret.encode() not in (vault / "keys.enc").read_bytes()
    bytes_total = sum(p["size"] for p in manifest["parts"].values()) + manifest["keys"]["size"]

    # 3. A fresh machine: a new database server, new folders, keys of its own (generated at first start).
    with fresh_target(backend) as url:
        host = {**new_host_settings(tmp_path / "new"), "MAIL_PORT": smtp_down.port}
        target = build_app(url, migrate=False, DEMO_SOURCES_DIR=backend.sources_dir, **host)

        # A tampered part is refused before anything is touched...
        tampered = tmp_path / "tampered"
        shutil.copytree(backup_dir, tampered)
        with open(tampered / "files.tar", "r+b") as fh:
            fh.seek(600)
            byte = fh.read(1)
            fh.seek(600)
            fh.write(bytes([byte[0] ^ 0x01]))
        refused = _restore(target, tampered, vault / "keys.enc", phrase)
        assert refused.exit_code == 1 and "files.tar does not match its SHA-256" in refused.output
        _nothing_restored(target, host)
        # ...and so is a part changed together with the manifest, which the key bundle contradicts.
        info = json.loads((tampered / "manifest.json").read_text())
        info["parts"]["files.tar"]["sha256"] = hashlib.sha256((tampered / "files.tar").read_bytes()).hexdigest()
        (tampered / "manifest.json").write_text(json.dumps(info))
        refused = _restore(target, tampered, vault / "keys.enc", phrase)
        assert refused.exit_code == 1 and "does not agree with the key bundle" in refused.output
        _nothing_restored(target, host)
        wrong = tmp_path / "wrong"
        wrong.write_text("not the passphrase at all\n")
        refused = _restore(target, backup_dir, vault / "keys.enc", wrong)
        assert refused.exit_code == 1 and "wrong passphrase" in refused.output
        _nothing_restored(target, host)

        # 4. The restore.
        started = time.monotonic()
        restored = _restore(target, backup_dir, vault / "keys.enc", phrase)
        restore_seconds = time.monotonic() - started
        assert restored.exit_code == 0, restored.output
        assert "audit chain OK" in restored.output and "1 transfer files present" in restored.output
        decrypted = re.search(r"(\d+) encrypted values decrypted with the restored keys", restored.output)
        assert decrypted and int(decrypted.group(1)) > 0  # the stored result, the queued mail...
        # Into a database that now holds tables, only with --force (which replaces it).
        twice = _restore(target, backup_dir, vault / "keys.enc", phrase)
        assert twice.exit_code == 1 and "the target database holds tables" in twice.output
        checked = _restore(target, backup_dir, vault / "keys.enc", phrase, "--check-only")
        assert checked.exit_code == 0 and "every part and the key bundle check" in checked.output
        forced = _restore(target, backup_dir, vault / "keys.enc", phrase, "--force")
        assert forced.exit_code == 0 and "audit chain OK" in forced.output, forced.output
        with target.app_context():
            db.session.remove()
            db.engine.dispose()

        # 5. The platform restarted on the restored machine, with the keys as config.py reads them.
        keys = keys_in(Path(host["INSTANCE_FOLDER"]))
        assert keys["FIELD_ENCRYPTION_KEYS"] == TestConfig.FIELD_ENCRYPTION_KEYS
        app = build_app(url, migrate=False, DEMO_SOURCES_DIR=backend.sources_dir, **{**host, **keys})
        try:
            _nothing_is_lost(app, used, smtp_down)
        finally:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
    sizes = ", ".join(f"{name} {part['size'] / 1024:.0f} KiB" for name, part in manifest["parts"].items())
    print(
        f"\n[{backend.backend}] backup {manifest['seconds']:.2f} s, {bytes_total / 1024:.0f} KiB ({sizes}); "
        f"restore {restore_seconds:.2f} s"
    )


def _nothing_is_lost(app, used: dict, smtp) -> None:
    runner = app.test_cli_runner()
    # The audit chain verifies, and against the checkpoint file restored with it.
    verified = runner.invoke(args=["audit", "verify"])
    assert verified.exit_code == 0, verified.output
    assert "signed checkpoints matched" in verified.output and " 0 signed" not in verified.output

    # The stored query result reopens, and its verification code still checks.
    client = app.test_client()
    clerk = api_token(client, "clerk")
    query = used["query"]
    again = client.get(f"/api/v1/query/history/{query['query_id']}", headers=bearer(clerk))
    assert again.status_code == 200, again.json
    assert again.json["result"]["sections"][0]["rows"] == query["sections"][0]["rows"]
    assert again.json["verification_code"] == query["verification_code"]
    check = app.test_client().get(f"/api/v1/verify/{query['verification_code']}")
    assert check.status_code == 200 and check.json["valid"] is True

    # The transfer file downloads whole, from the restored storage.
    tax = api_token(client, "transfer.tax")
    got = _download(client, f"/api/v1/transfers/{used['case']}/payload", bearer(tax))
    assert got.status_code == 200 and hashlib.sha256(got.data).hexdigest() == used["sha256"]
    with app.app_context():
        stored = db.session.get(TransferCase, used["case"]).payload_path
    assert not Path(stored).exists()  # the row names the lost machine's folder; the restored copy served

    # The queued e-mail is sent, once, when the mail server is back.
    smtp.start()
    with app.app_context():
        outbox.work_once(db.session)
        mails = smtp.sink.wait_for(used["queued"])
        outbox.work_once(db.session)
        left = db.session.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status != "sent"))
    time.sleep(0.3)
    assert len(smtp.sink.messages) == used["queued"] == len(mails) and left == 0
    assert sum(_email_of(app, "transfer.tax") in m.rcpt_tos for m in mails) == 1
