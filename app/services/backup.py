"""Backup and restore of the platform's own parts (`flask ops backup`, `flask ops restore`).

A backup is a folder of parts and a manifest (docs/backup.md):

- ``database.dump`` (PostgreSQL: ``pg_dump --format=custom`` of one exported
  snapshot) or ``database.sqlite`` (SQLite's online backup API);
- ``checkpoints.jsonl``: the audit checkpoint file, copied *before* the
  database snapshot, so every checkpoint it holds is inside the dumped chain;
- ``files.tar``: the transfer storage (``TRANSFER_DIR``, without temporary
  uploads), taken *after* the snapshot, so every file a dumped row names is in it;
- ``config.tar``: the settings in force without their secrets, and the trust
  files they name (CA bundles, CRLs, certificates), for the operator to compare;
- ``keys.enc``: the secrets, encrypted with a passphrase (scrypt, AES-256-GCM),
  meant to be kept apart from the rest; it also holds the parts' SHA-256, so a
  part and the manifest cannot both be changed without the passphrase;
- ``manifest.json``, written last: what each part is, its size and SHA-256, the
  migration head, the audit chain's head, the time.

Restore checks every part against the manifest and the key bundle before it
touches anything, refuses a target database that holds tables (unless forced),
then puts the keys, the files and the database in place and checks the result.
Nothing here logs or prints personal data: counts, sizes, digests and names of
settings only.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import io
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import tarfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from flask import current_app
from sqlalchemy import Text, create_engine, select, text, type_coerce
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
KEYS_FILE = "keys.enc"
MANIFEST_FORMAT = "platform-backup/1"
BUNDLE_FORMAT = "platform-key-bundle/1"
MIN_PASSPHRASE = 12
# scrypt: 2**17 × 8 × 128 bytes = 128 MiB and about half a second to try one passphrase.
SCRYPT = {"n": 2**17, "r": 8, "p": 1}

# The secrets the platform reads (config.py), each generated into the instance folder
# under this file name when no environment variable gives it.
INSTANCE_SECRETS = {
    "SECRET_KEY": "secret_key",
    "FIELD_ENCRYPTION_KEYS": "field_encryption_keys",
    "SUBJECT_HASH_KEY": "subject_hash_key",
    "ATTACHMENT_SEAL_KEY": "attachment_seal_key",
    "AUDIT_CHAIN_KEY": "audit_chain_key",
    "AUDIT_SIGNING_KEY": "audit_signing_key",
}
# Other secrets among the settings: kept in the key bundle, never in config.tar.
OTHER_SECRETS = ("MAIL_PASSWORD",)
# Files holding private keys, by the setting that names them.
SECRET_FILES = ("TRANSFER_FTP_TLS_KEY",)
# Trust files (public), by the setting that names them (comma-separated lists allowed).
TRUST_FILES = (
    "TRANSFER_CA_BUNDLE",
    "TRANSFER_CRL_FILES",
    "TRANSFER_FTP_TLS_CERT",
    "CERT_TRUST_ROOTS",
    "CERT_CA_BUNDLE",
    "CERT_CRL_PATHS",
)
_SECRET_WORDS = ("PASSWORD", "SECRET", "_KEY", "PASSPHRASE", "TOKEN")


class BackupError(Exception):
    """A backup or restore refused or failed; the message says why (no personal data)."""


@dataclass
class Part:
    name: str
    what: str
    size: int = 0
    sha256: str = ""


@dataclass
class BackupResult:
    folder: Path
    keys_file: Path
    manifest: dict
    seconds: float


@dataclass
class RestoreResult:
    manifest: dict
    seconds: float
    checks: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --- small helpers -------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_private(path: Path, data: bytes) -> None:
    """Write a file readable by its owner only (0600), replacing any file of that name atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _is_secret(name: str) -> bool:
    return name in INSTANCE_SECRETS or name in OTHER_SECRETS or any(w in name for w in _SECRET_WORDS)


def _paths(value) -> list[Path]:
    if not value:
        return []
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    return [Path(item.strip()) for item in items if str(item).strip()]


def read_passphrase(path: str | Path) -> str:
    """The passphrase in a file (its first line), at least MIN_PASSPHRASE characters."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    phrase = lines[0] if lines else ""
    if len(phrase) < MIN_PASSPHRASE:
        raise BackupError(f"the key bundle's passphrase must have at least {MIN_PASSPHRASE} characters")
    return phrase


# --- the key bundle ------------------------------------------------------------------------------


def _derive(passphrase: str, salt: bytes, params: dict) -> bytes:
    return Scrypt(salt=salt, length=32, n=params["n"], r=params["r"], p=params["p"]).derive(passphrase.encode())


def _bundle_header(salt: bytes, nonce: bytes) -> dict:
    return {
        "format": BUNDLE_FORMAT,
        "kdf": {"name": "scrypt", **SCRYPT, "salt": base64.b64encode(salt).decode()},
        "cipher": "AES-256-GCM",
        "nonce": base64.b64encode(nonce).decode(),
    }


def _aad(header: dict) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def seal_bundle(payload: dict, passphrase: str) -> bytes:
    """The key bundle: a JSON header (scrypt parameters, nonce) and the AES-256-GCM
    ciphertext of ``payload`` (JSON), the header bound as associated data."""
    salt, nonce = os.urandom(16), os.urandom(12)
    header = _bundle_header(salt, nonce)
    key = _derive(passphrase, salt, SCRYPT)
    plain = json.dumps(payload, sort_keys=True).encode()
    sealed = AESGCM(key).encrypt(nonce, plain, _aad(header))
    return json.dumps({**header, "ciphertext": base64.b64encode(sealed).decode()}, indent=1).encode() + b"\n"


def open_bundle(data: bytes, passphrase: str) -> dict:
    try:
        doc = json.loads(data)
        header = {k: doc[k] for k in ("format", "kdf", "cipher", "nonce")}
        if header["format"] != BUNDLE_FORMAT or header["cipher"] != "AES-256-GCM" or doc["kdf"]["name"] != "scrypt":
            raise BackupError("the key bundle is of an unknown format")
        salt = base64.b64decode(doc["kdf"]["salt"])
        key = _derive(passphrase, salt, doc["kdf"])
        plain = AESGCM(key).decrypt(base64.b64decode(doc["nonce"]), base64.b64decode(doc["ciphertext"]), _aad(header))
    except InvalidTag:
        raise BackupError("the key bundle cannot be opened: wrong passphrase, or the file was changed") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"the key bundle is damaged ({type(exc).__name__})") from None
    return json.loads(plain)


# --- what the database says ---------------------------------------------------------------------


def _state(conn) -> dict:
    """Migration head and audit chain head, as this connection's transaction sees them."""
    head = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    audit = conn.execute(text("SELECT seq, hash FROM audit_head WHERE id = 1")).first()
    events = conn.execute(text("SELECT count(*) FROM audit_event")).scalar()
    return {
        "migration_head": ",".join(sorted(head)),
        "audit_head": {"seq": audit[0], "hash": audit[1]} if audit else {"seq": 0, "hash": None},
        "audit_events": events,
    }


def _libpq(url) -> tuple[list[str], dict]:
    """pg_dump/pg_restore connection options from an SQLAlchemy URL; the password goes by PGPASSWORD."""
    args = []
    if url.host:
        args += ["--host", url.host]
    if url.port:
        args += ["--port", str(url.port)]
    if url.username:
        args += ["--username", url.username]
    env = {**os.environ}
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    sslmode = url.query.get("sslmode")
    if sslmode:
        env["PGSSLMODE"] = sslmode if isinstance(sslmode, str) else sslmode[0]
    return args, env


def _run(argv: list[str], env: dict, what: str) -> None:
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        # The gist: the tool's error lines, without a server's DETAIL (which may quote a row's
        # values, e.g. a duplicate key), ID numbers and addresses masked all the same.
        from app.lib.logging import scrub

        errors = [line for line in done.stderr.splitlines() if ": error:" in line or "FATAL" in line]
        gist = " / ".join(line.split("DETAIL:")[0].strip() for line in errors[-2:]) or "see the server's log"
        raise BackupError(f"{what} failed (exit {done.returncode}): {scrub(gist)[:400]}")


def _replace_postgresql(url, dump: Path) -> None:
    """Replace a database's contents with the dump (``restore --force``) in ONE transaction: psql runs
    a dropped and recreated public schema, then the dump's SQL (``pg_restore --file=-``), so a failure
    leaves the database as it was. (``pg_restore --clean`` drops object by object, and PostgreSQL
    refuses to drop a partition's inherited constraints that way: the monthly partitions.)"""
    args, env = _libpq(url)
    script = subprocess.run(["pg_restore", "--no-owner", "--no-privileges", "--file=-", str(dump)], env=env,
                            capture_output=True)  # fmt: skip
    if script.returncode != 0:
        raise BackupError(f"pg_restore failed (exit {script.returncode}): the dump could not be read")
    sql = b"DROP SCHEMA public CASCADE;\nCREATE SCHEMA public;\n" + script.stdout
    done = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", *args,
                           "--dbname", url.database, "-f", "-"], input=sql, env=env, capture_output=True)  # fmt: skip
    if done.returncode != 0:
        from app.lib.logging import scrub

        errors = [line for line in done.stderr.decode(errors="replace").splitlines() if "ERROR" in line]
        gist = " / ".join(line.split("DETAIL:")[0].strip() for line in errors[-2:]) or "see the server's log"
        raise BackupError(f"psql failed (exit {done.returncode}): {scrub(gist)[:400]}")


def _dump_postgresql(url, target: Path) -> dict:
    """pg_dump of one snapshot, exported by a transaction that also reads the heads."""
    engine = create_engine(url.render_as_string(hide_password=False), isolation_level="REPEATABLE READ")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            snapshot = conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar()
            state = _state(conn)
            args, env = _libpq(url)
            _run(
                ["pg_dump", "--format=custom", "--compress=6", f"--snapshot={snapshot}", *args,
                 "--file", str(target), "--dbname", url.database],
                env,
                "pg_dump",
            )  # fmt: skip
            conn.rollback()
    finally:
        engine.dispose()
    return state


def _dump_sqlite(path: Path, target: Path) -> dict:
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)
    finally:
        source.close()
    try:
        rows = copy.execute("SELECT version_num FROM alembic_version").fetchall()
        audit = copy.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
        events = copy.execute("SELECT count(*) FROM audit_event").fetchone()[0]
    finally:
        copy.close()
    return {
        "migration_head": ",".join(sorted(r[0] for r in rows)),
        "audit_head": {"seq": audit[0], "hash": audit[1]} if audit else {"seq": 0, "hash": None},
        "audit_events": events,
    }


def _sqlite_path(url) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(url.database)


# --- backup --------------------------------------------------------------------------------------


def _tar_transfer(root: Path, target: Path) -> int:
    """The transfer storage without temporary uploads; returns the number of files."""
    count = 0
    with tarfile.open(target, "w") as tar:
        if root.is_dir():
            for path in sorted(root.rglob("*")):
                rel = path.relative_to(root)
                if rel.parts[0] == "tmp" or path.name.endswith(".part") or not path.is_file():
                    continue
                tar.add(path, arcname=str(rel), recursive=False)
                count += 1
    return count


def _settings(cfg) -> dict:
    """The settings in force, secrets left out, database and Redis URLs without passwords."""
    from config import Config

    out = {}
    for name in sorted(n for n in dir(Config) if n.isupper()):
        if _is_secret(name) or name not in cfg:
            continue
        value = cfg[name]
        if isinstance(value, str) and "://" in value:
            try:
                value = make_url(value).render_as_string(hide_password=True)
            except Exception:  # not an SQLAlchemy URL (http://...): no password expected there
                pass
        if isinstance(value, datetime.timedelta):
            value = value.total_seconds()
        if isinstance(value, str | int | float | bool | list | dict) or value is None:
            out[name] = value
    return out


def _tar_config(cfg, target: Path) -> list[str]:
    missing = []
    with tarfile.open(target, "w") as tar:
        data = json.dumps(_settings(cfg), indent=1, ensure_ascii=False, sort_keys=True).encode()
        info = tarfile.TarInfo("settings.json")
        info.size, info.mtime = len(data), int(time.time())
        tar.addfile(info, io.BytesIO(data))
        for name in TRUST_FILES:
            for i, path in enumerate(_paths(cfg.get(name))):
                if path.is_file():
                    tar.add(path, arcname=f"trust/{name}.{i}/{path.name}", recursive=False)
                else:
                    missing.append(name)
    return missing


def _secrets(cfg) -> dict:
    settings = {name: cfg.get(name) for name in (*INSTANCE_SECRETS, *OTHER_SECRETS) if cfg.get(name)}
    files = {}
    for name in SECRET_FILES:
        path = cfg.get(name)
        if path and Path(path).is_file():
            files[name] = {"path": str(path), "content": base64.b64encode(Path(path).read_bytes()).decode()}
    return {"settings": settings, "files": files}


def backup(out: Path, passphrase: str, keys_out: Path | None = None) -> BackupResult:
    """Command (`flask ops backup`, by the operator): write a backup of the platform into
    ``out`` (which must not exist, or be empty) and its key bundle into ``keys_out``
    (default ``out/keys.enc``); record it in the audit trail."""
    cfg = current_app.config
    started = time.monotonic()
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BackupError(f"{out} exists and is not empty: a backup never overwrites")
    keys_out = Path(keys_out) if keys_out else out / KEYS_FILE
    if keys_out.exists():
        raise BackupError(f"{keys_out} exists: a backup never overwrites")
    if len(passphrase) < MIN_PASSPHRASE:
        raise BackupError(f"the key bundle's passphrase must have at least {MIN_PASSPHRASE} characters")
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    url = make_url(cfg["SQLALCHEMY_DATABASE_URI"])
    backend = url.get_backend_name()
    parts: list[Part] = []

    # 1. The checkpoint file, before the snapshot: every line it holds is inside the dumped chain.
    checkpoints = Path(cfg["AUDIT_CHECKPOINT_FILE"])
    part = Part("checkpoints.jsonl", "audit checkpoint file (AUDIT_CHECKPOINT_FILE), copied before the snapshot")
    if checkpoints.is_file():
        shutil.copyfile(checkpoints, out / part.name)
    else:
        (out / part.name).write_bytes(b"")
    parts.append(part)

    # 2. The database, one snapshot.
    if backend == "postgresql":
        part = Part("database.dump", "PostgreSQL database, pg_dump --format=custom of one snapshot")
        state = _dump_postgresql(url, out / part.name)
    elif backend == "sqlite":
        part = Part("database.sqlite", "SQLite database, online backup API")
        state = _dump_sqlite(_sqlite_path(url), out / part.name)
    else:
        raise BackupError(f"no backup for a {backend} database here: use its own tools (docs/backup.md)")
    parts.append(part)

    # 3. Files after the snapshot: every file a dumped row names was stored before it.
    part = Part("files.tar", "transfer storage (TRANSFER_DIR) without temporary uploads, taken after the snapshot")
    files = _tar_transfer(Path(cfg["TRANSFER_DIR"]), out / part.name)
    parts.append(part)
    part = Part("config.tar", "settings in force without secrets (settings.json) and the trust files they name")
    missing_trust = _tar_config(cfg, out / part.name)
    parts.append(part)

    for part in parts:
        path = out / part.name
        path.chmod(0o600)  # the dump and the files hold personal data
        part.size, part.sha256 = path.stat().st_size, _sha256(path)
    backup_id = str(uuid.uuid4())
    created = _now()
    secrets = _secrets(cfg)
    bundle = seal_bundle(
        {"backup_id": backup_id, "created": created, **secrets, "parts": {p.name: p.sha256 for p in parts}},
        passphrase,
    )
    _write_private(keys_out, bundle)
    manifest = {
        "format": MANIFEST_FORMAT,
        "backup_id": backup_id,
        "created": created,
        "database": backend,
        **state,
        "transfer_files": files,
        "trust_files_missing": missing_trust,
        "parts": {p.name: {"what": p.what, "size": p.size, "sha256": p.sha256} for p in parts},
        "keys": {
            "file": keys_out.name,
            "what": "secrets (" + ", ".join(sorted(secrets["settings"]) + sorted(secrets["files"])) + "), "
            "scrypt + AES-256-GCM under a passphrase; keep apart from this folder",
            "size": len(bundle),
            "sha256": hashlib.sha256(bundle).hexdigest(),
        },
    }
    manifest["seconds"] = round(time.monotonic() - started, 3)
    _write_private(out / MANIFEST, json.dumps(manifest, indent=1).encode() + b"\n")
    _record("backup_made", manifest)
    log.info(
        "backup %s written: %s bytes in %d parts, %d transfer files, audit seq %s, %.1f s",
        backup_id, sum(p.size for p in parts), len(parts), files, state["audit_head"]["seq"], manifest["seconds"],
    )  # fmt: skip
    return BackupResult(out, keys_out, manifest, manifest["seconds"])


def _record(action: str, manifest: dict, outcome: str = "ok", extra: dict | None = None) -> None:
    from app.extensions import db
    from app.services import actors, audit
    from app.services.command import transaction

    with transaction(db.session):
        audit.record(
            db.session,
            action,
            object_type="Backup",
            object_id=manifest["backup_id"],
            outcome=outcome,
            detail={
                "created": manifest["created"],
                "audit_seq": manifest["audit_head"]["seq"],
                "bytes": sum(p["size"] for p in manifest["parts"].values()),
                **(extra or {}),
            },
            actor=actors.OPERATOR,
        )


# --- restore -------------------------------------------------------------------------------------


def read_manifest(folder: Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise BackupError(f"{path}: no manifest (an incomplete backup, or not a backup folder)")
    try:
        manifest = json.loads(path.read_text())
    except ValueError:
        raise BackupError(f"{path}: the manifest is not JSON") from None
    if manifest.get("format") != MANIFEST_FORMAT:
        raise BackupError(f"{path}: unknown manifest format")
    return manifest


def check(folder: Path, keys_file: Path, passphrase: str) -> tuple[dict, dict]:
    """Every part is there with the size and SHA-256 the manifest gives, and the key bundle
    (which opens with the passphrase) names the same digests. Reads only."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    problems = []
    for name, info in manifest["parts"].items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif path.stat().st_size != info["size"] or _sha256(path) != info["sha256"]:
            problems.append(f"{name} does not match its SHA-256 in the manifest")
    if not Path(keys_file).is_file():
        problems.append(f"the key bundle {keys_file} is missing")
    if problems:
        raise BackupError("the backup is damaged, nothing was restored: " + "; ".join(problems))
    data = Path(keys_file).read_bytes()
    if hashlib.sha256(data).hexdigest() != manifest["keys"]["sha256"]:
        raise BackupError("the key bundle is not the one of this backup (its SHA-256 differs): nothing was restored")
    bundle = open_bundle(data, passphrase)
    if bundle.get("backup_id") != manifest["backup_id"] or bundle.get("parts") != {
        name: info["sha256"] for name, info in manifest["parts"].items()
    }:
        raise BackupError("the manifest does not agree with the key bundle (it was changed): nothing was restored")
    return manifest, bundle


def _pg_empty(url) -> bool:
    engine = create_engine(url.render_as_string(hide_password=False))
    try:
        with engine.connect() as conn:
            count = conn.execute(
                text("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                     "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S') "
                     "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'")
            ).scalar()  # fmt: skip
    finally:
        engine.dispose()
    return count == 0


def _sqlite_empty(path: Path) -> bool:
    if not path.exists() or path.stat().st_size == 0:
        return True
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0] == 0
    finally:
        conn.close()


def _folder_empty(path: Path) -> bool:
    return not path.exists() or not any(p for p in path.rglob("*") if p.is_file())


def restore(folder: Path, keys_file: Path | None, passphrase: str, instance: Path | None = None, force=False):
    """Command (`flask ops restore`, by the operator): check the backup, then restore the keys
    (into the instance folder), the transfer storage, the checkpoint file and the database of
    the running configuration; then check what was restored."""
    from app.extensions import db

    cfg = current_app.config
    started = time.monotonic()
    folder = Path(folder)
    keys_file = Path(keys_file) if keys_file else folder / KEYS_FILE
    manifest, bundle = check(folder, keys_file, passphrase)
    result = RestoreResult(manifest, 0.0)

    url = make_url(cfg["SQLALCHEMY_DATABASE_URI"])
    backend = url.get_backend_name()
    if backend != manifest["database"]:
        raise BackupError(f"the backup holds a {manifest['database']} database; this platform is on {backend}")
    transfer_dir = Path(cfg["TRANSFER_DIR"])
    checkpoint_file = Path(cfg["AUDIT_CHECKPOINT_FILE"])
    instance = Path(instance or cfg["INSTANCE_FOLDER"])
    # Nothing is touched before every refusal has had its chance.
    db.session.remove()
    db.engine.dispose()
    empty = _pg_empty(url) if backend == "postgresql" else _sqlite_empty(_sqlite_path(url))
    refusals = []
    if not empty:
        refusals.append("the target database holds tables")
    if not _folder_empty(transfer_dir):
        refusals.append(f"the transfer storage {transfer_dir} holds files")
    backup_checkpoints = folder / "checkpoints.jsonl"
    replace_checkpoints = (
        checkpoint_file.exists()
        and checkpoint_file.stat().st_size > 0
        and checkpoint_file.read_bytes() != backup_checkpoints.read_bytes()
    )
    if replace_checkpoints:
        refusals.append(f"the checkpoint file {checkpoint_file} holds other checkpoints")
    if refusals and not force:
        raise BackupError("refused, nothing was restored: " + "; ".join(refusals) + " (--force replaces them)")

    # 1. Keys: into the instance folder, as config.py reads them.
    for name, filename in INSTANCE_SECRETS.items():
        value = bundle["settings"].get(name)
        if value is None:
            continue
        _write_private(instance / filename, value.encode())  # as config.py writes them
        if os.environ.get(name) and os.environ[name] != value:
            result.notes.append(f"{name} is set in the environment to another value: set it to the restored one")
        cfg[name] = value  # the checks below, in this process, use the restored keys
    from app.lib import fieldcrypt

    fieldcrypt.configure(cfg["FIELD_ENCRYPTION_KEYS"])
    others = {k: v for k, v in bundle["settings"].items() if k not in INSTANCE_SECRETS}
    if others or bundle["files"]:
        kept = instance / "restored-secrets"
        for name, value in others.items():
            _write_private(kept / name, value.encode())
        for name, item in bundle["files"].items():
            _write_private(kept / f"{name}-{Path(item['path']).name}", base64.b64decode(item["content"]))
        result.notes.append(f"other secrets ({', '.join(sorted([*others, *bundle['files']]))}) are in {kept}: "
                            "put them where the configuration expects them")  # fmt: skip

    # 2. Files: the transfer storage, the checkpoint file, the configuration for the operator.
    if transfer_dir.exists() and force:
        for child in transfer_dir.iterdir():
            if child.name != "tmp":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    transfer_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(folder / "files.tar") as tar:
        tar.extractall(transfer_dir, filter="data")
    if replace_checkpoints:
        aside = checkpoint_file.with_name(f"{checkpoint_file.name}.before-restore-{int(time.time())}")
        checkpoint_file.rename(aside)
        result.notes.append(f"the checkpoint file there before was moved to {aside} (keep it)")
    checkpoint_file.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(backup_checkpoints, checkpoint_file)
    config_copy = instance / "restored-config" / manifest["backup_id"]
    config_copy.mkdir(parents=True, exist_ok=True)
    with tarfile.open(folder / "config.tar") as tar:
        tar.extractall(config_copy, filter="data")
    result.notes.append(f"the backed-up settings and trust files are in {config_copy}: compare with this host's")

    # 3. The database.
    if backend == "postgresql":
        args, env = _libpq(url)
        if empty:
            argv = ["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction", *args]
            _run([*argv, "--dbname", url.database, str(folder / "database.dump")], env, "pg_restore")
        else:
            _replace_postgresql(url, folder / "database.dump")
    else:
        target = _sqlite_path(url)
        target.parent.mkdir(parents=True, exist_ok=True)
        source = sqlite3.connect(f"file:{folder / 'database.sqlite'}?mode=ro", uri=True)
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)
        finally:
            source.close()
            copy.close()

    # 4. The checks.
    checks(result, transfer_dir, checkpoint_file)
    result.seconds = round(time.monotonic() - started, 3)
    _record(
        "backup_restored",
        manifest,
        outcome="ok" if not result.problems else "error",
        extra={"problems": len(result.problems), "seconds": result.seconds},
    )
    log.info("backup %s restored in %.1f s, %d problems", manifest["backup_id"], result.seconds, len(result.problems))
    return result


def checks(result: RestoreResult, transfer_dir: Path, checkpoint_file: Path) -> None:
    """What a restore must prove: the heads match the manifest, the audit chain verifies
    against the checkpoints, the stored files are whole, the encrypted columns decrypt."""
    from flask_appbuilder import Model

    from app.extensions import db
    from app.lib import fieldcrypt
    from app.models.transfer import TransferCase
    from app.services.audit import checkpoints, verify
    from app.services.keyrotation import encrypted_columns

    manifest = result.manifest
    with db.engine.connect() as conn:
        state = _state(conn)
        if state["audit_head"] != manifest["audit_head"] or state["migration_head"] != manifest["migration_head"]:
            result.problems.append("the restored database's heads differ from the manifest's")
        else:
            result.checks.append(
                f"migration head {state['migration_head']}, audit chain head seq {state['audit_head']['seq']}"
            )
        signed, problems = checkpoints.read(checkpoint_file, checkpoints.signing_key().public_key())
        conn.exec_driver_sql("PRAGMA query_only = ON") if conn.dialect.name == "sqlite" else None
        try:
            verified = verify(conn, signed)
        finally:
            conn.rollback()
            conn.exec_driver_sql("PRAGMA query_only = OFF") if conn.dialect.name == "sqlite" else None
        problems = [*problems, *verified.problems]
        if problems:
            result.problems += [f"audit chain: {p}" for p in problems]
        else:
            result.checks.append(
                f"audit chain OK: {verified.checked} events, {verified.checkpoints} signed checkpoints matched"
            )

        rows = conn.execute(
            select(TransferCase.id, TransferCase.payload_path, TransferCase.payload_sha256,
                   TransferCase.result_path, TransferCase.result_sha256)
        ).all()  # fmt: skip
        whole = 0
        for case_id, *stored in rows:
            for path, sha in ((stored[0], stored[1]), (stored[2], stored[3])):
                if not path:
                    continue
                here = transfer_dir / str(case_id) / Path(path).name
                if not here.is_file() or _sha256(here) != sha:
                    result.problems.append(f"transfer case {case_id}: a stored file is missing or differs")
                else:
                    whole += 1
        result.checks.append(f"{whole} transfer files present with their SHA-256")

        unreadable, read = 0, 0
        for _table, key, column in encrypted_columns(Model.metadata):
            raw = select(key, type_coerce(column, Text)).where(column.is_not(None))  # the ciphertext as stored
            for _pk, token in conn.execute(raw.order_by(key.desc()).limit(200)):
                try:
                    fieldcrypt.decrypt_bytes(token)
                    read += 1
                except ValueError:
                    unreadable += 1
        if unreadable:
            result.problems.append(f"{unreadable} encrypted values cannot be decrypted with the restored keys")
        result.checks.append(f"{read} encrypted values decrypted with the restored keys (up to 200 a column)")
