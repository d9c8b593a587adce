"""The FTPS channel for large transfers (`flask transfer ftp-serve`).

Each agency's transfer officers sign in with their platform account and land
in their agency's own folder (TRANSFER_FTP_ROOT/<agency code>), which they
cannot leave. TLS is required on the control and the data connection.

A file counts only once the server has received it whole: it is then moved
out of the folder into a ready queue; a broken upload is deleted. The poller
registers each ready file against its case by the upload number at the start
of its name (``TR1151127000001.p7m``): the sending agency's file is the
payload, the receiving agency's the result. A refused file goes back to the
folder as ``<name>.rejected`` with ``<name>.rejected.txt`` saying why.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import re
import threading
import time
from pathlib import Path

from flask import Flask
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from werkzeug.security import check_password_hash

from app.extensions import db
from app.models.org import PlatformUser
from app.services import actors, audit, transfer
from app.services.command import refuse, transaction
from app.services.errors import DomainError, InvalidInput

log = logging.getLogger(__name__)
READY = ".ready"
WORKING = ".working"  # files a poller has claimed
CLAIM_LEASE_SECONDS = 3600  # a claim older than this was left by a poller that died
PERMS = "elrdw"  # list, change dir inside the home, download, delete, upload: no mkdir, no rename
_UPLOAD_NO = re.compile(r"^([A-Za-z0-9_-]{1,40})\.")
CUT_OFF = _l(
    "The connection ended before the file was complete (no TLS close_notify): the upload was discarded; "
    "send the file again."
)
INCOMPLETE = _l("The upload did not finish (aborted or timed out): it was discarded; send the file again.")


def _agency_user(username: str) -> PlatformUser | None:
    user = db.session.scalar(select(PlatformUser).where(PlatformUser.username == username))
    if user is None or not user.active or user.agency is None:
        return None
    if not any(r.name == transfer.ROLE for r in user.roles):
        return None
    return user


def home_of(root: Path, agency_code: str) -> Path:
    home = root / agency_code
    home.mkdir(parents=True, exist_ok=True)
    return home


def make_authorizer(app: Flask, root: Path):
    from pyftpdlib.authorizers import AuthenticationFailed, DummyAuthorizer

    class PlatformAuthorizer(DummyAuthorizer):
        """Platform accounts with the Transferor role; home = their agency's folder."""

        def validate_authentication(self, username, password, handler):
            """The platform's password, behind the same failure counters as the
            form and API sign-ins (per account and per address): while either
            waits the password is not looked at. An unknown name is audited by
            its digest, never as typed (it may be an ID number)."""
            from app.services import signin
            from app.services.errors import TooManyAttempts

            with app.app_context():
                user = _agency_user(username)
                ip = handler.remote_ip if handler else None
                known_id = user.id if user is not None else None
                keys = [signin.account_key(username, known_id), signin.address_key(ip)]
                actor = actors.for_user(user, ip, session=db.session) if user is not None else actors.anonymous(ip)
                try:
                    signin.check(db.session, keys, actor, known_id)
                except TooManyAttempts:
                    db.session.remove()
                    raise AuthenticationFailed("Too many failed sign-ins: try again later.") from None
                ok = user is not None and bool(user.password) and check_password_hash(user.password, password)
                with transaction(db.session):
                    audit.record(
                        db.session,
                        "ftp.login" if ok else "ftp.login_failed",
                        outcome="ok" if ok else "refused",
                        detail=None if user is not None else {"name_digest": signin.account_key(username)},
                        actor=actor,
                    )
                if ok:
                    signin.clear(db.session, keys[:1])
                else:
                    signin.note_failure(db.session, keys, actor, known_id)
                    db.session.remove()
                    raise AuthenticationFailed("Authentication failed.")
                home = str(home_of(root, user.agency.code))
                db.session.remove()
            if self.has_user(username):
                self.remove_user(username)
            self.add_user(username, "", home, perm=PERMS)

        def get_home_dir(self, username):
            return self.user_table[username]["home"]

    return PlatformAuthorizer()


def ensure_tls_certificate(cert_path: Path, key_path: Path, host: str) -> None:
    """A self-signed server certificate for the demo (a county installs its own)."""
    if cert_path.exists() and key_path.exists():
        return
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    try:
        alt = [x509.IPAddress(ipaddress.ip_address(host))]
    except ValueError:
        alt = [x509.DNSName(host)]
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _whole_file_dtp_handler():
    """A TLS data channel that counts an upload as whole only when it ends with TLS close_notify.

    Plain FTP cannot tell a finished upload from a dropped line (both end the
    data connection); TLS can: a client that finished sends close_notify, a
    line that drops (reset, or EOF without close_notify) does not. Such an
    upload is answered 426 at once and deleted, and the connection is closed
    without a TLS shutdown: after an end without close_notify OpenSSL refuses
    every shutdown, and pyftpdlib's shutdown would retry it (spinning its
    thread) for as long as the client keeps the connection half-open.
    """
    from OpenSSL import SSL
    from pyftpdlib.handlers import TLS_DTPHandler
    from pyftpdlib.handlers.ftp.data import DTPHandler

    class _CloseNotify(DTPHandler):
        # Below TLS_DTPHandler's SSL mixin in the MRO: its recv sees the raw
        # ZeroReturnError (close_notify) before the mixin turns it into an end of file.
        clean_end = False
        cut = False

        def recv(self, buffer_size):
            try:
                return super().recv(buffer_size)
            except SSL.ZeroReturnError:
                self.clean_end = True
                raise
            except (SSL.WantReadError, SSL.WantWriteError, SSL.SysCallError):
                raise  # the mixin's: retry, or (a reset, an EOF) handle_close below
            except SSL.Error:
                # OpenSSL 3 reports an EOF without close_notify as this fatal error,
                # which the mixin would let through: the upload would go unanswered.
                self.handle_close()
                return b""

        def handle_close(self):
            if self.connected and self.receive and not self.clean_end:
                if not self.cut:
                    self.cut = True
                    self.transfer_finished = False  # close() hands the file to on_incomplete_file_received
                    channel = self.cmd_channel
                    channel.upload_cut = True  # on_incomplete_file_received says why (audited, translated)
                    DTPHandler.close(self)  # the socket closed as is: no TLS shutdown with a peer that is gone
                    reply = getattr(channel, "discarded_reply", None) or "Connection lost; upload discarded."
                    channel.respond(f"426 {reply}", logfun=log.warning)
                return
            super().handle_close()

    class WholeFileDTPHandler(TLS_DTPHandler, _CloseNotify):
        """TLS_DTPHandler (TLS when PROT P, no sendfile, 522 on a failed handshake) plus _CloseNotify."""

    return WholeFileDTPHandler


def build_server(app: Flask, host: str | None = None, port: int | None = None):
    """The FTPS server (not started)."""
    from pyftpdlib.handlers import TLS_FTPHandler
    from pyftpdlib.servers import ThreadedFTPServer

    cfg = app.config
    root = Path(cfg["TRANSFER_FTP_ROOT"])
    (root / READY).mkdir(parents=True, exist_ok=True)
    host = host or cfg["TRANSFER_FTP_HOST"]
    cert, key = Path(cfg["TRANSFER_FTP_TLS_CERT"]), Path(cfg["TRANSFER_FTP_TLS_KEY"])
    ensure_tls_certificate(cert, key, host)

    class PlatformFTPHandler(TLS_FTPHandler):
        dtp_handler = _whole_file_dtp_handler()
        certfile = str(cert)
        keyfile = str(key)
        tls_control_required = True
        tls_data_required = True
        banner = "County platform FTPS: upload encrypted transfer files named <upload number>.p7m"

        def on_file_received(self, file):
            name = os.path.basename(file)
            if name.endswith((".rejected", ".rejected.txt")):
                return
            stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d%H%M%S%f")
            os.replace(file, root / READY / f"{stamp}__{self.username}__{name}")

        upload_cut = False  # set by the data channel when it ended without close_notify
        discarded_reply = None  # the 426's words, in the platform's language

        def on_incomplete_file_received(self, file):
            # A dropped connection leaves nothing behind; the refusal is audited.
            try:
                os.remove(file)
            except OSError:
                pass
            cut, self.upload_cut = self.upload_cut, False
            self.discarded_reply = record_discarded_upload(
                app, self.username, self.remote_ip, os.path.basename(file), cut
            )

    PlatformFTPHandler.authorizer = make_authorizer(app, root)
    ports = cfg.get("TRANSFER_FTP_PASSIVE_PORTS") or ""
    if re.fullmatch(r"\d+-\d+", ports):
        lo, hi = (int(p) for p in ports.split("-"))
        PlatformFTPHandler.passive_ports = range(lo, hi + 1)
    server = ThreadedFTPServer((host, cfg["TRANSFER_FTP_PORT"] if port is None else port), PlatformFTPHandler)
    server.max_cons = 64
    server.max_cons_per_ip = 8
    return server


def record_discarded_upload(app: Flask, username: str, ip: str | None, name: str, cut: bool) -> str | None:
    """Audit an FTPS upload discarded before it was whole (cut off without TLS
    close_notify, or aborted): who, which case (by the upload number its name
    starts with, when it is one of the account's agency), which file (payload or
    result) and why; never the file's name or contents. Returns the reason in
    the platform's language (the 426's words), None if it could not be recorded."""
    try:
        with app.app_context(), force_locale(app.config.get("BABEL_DEFAULT_LOCALE", "zh_TW")):
            try:
                user = _agency_user(username)
                actor = actors.for_user(user, ip, session=db.session) if user is not None else actors.anonymous(ip)
                match = _UPLOAD_NO.match(name)
                case = transfer.find_by_upload_no(db.session, match.group(1)) if match and user else None
                case_id, kind = None, None
                if case is not None and user.agency_id in (case.sending_agency_id, case.receiving_agency_id):
                    case_id = case.id
                    kind = "payload" if user.agency_id == case.sending_agency_id else "result"
                error = InvalidInput(CUT_OFF if cut else INCOMPLETE)
                detail = {"channel": "ftp", "kind": kind, "cause": "no_close_notify" if cut else "incomplete"}
                refuse(db.session, error, actor, "transfer.upload_refused", object_type="TransferCase",
                       object_id=case_id, detail=detail)  # fmt: skip
                return str(error)
            finally:
                db.session.remove()
    except Exception as exc:  # the FTPS thread answers anyway; the failure is logged without data
        log.warning("FTP discarded upload not audited: %s", type(exc).__name__)
        return None


def _reject(root: Path, agency_code: str | None, name: str, path: Path, reason: str) -> None:
    if agency_code:
        home = home_of(root, agency_code)
        os.replace(path, home / f"{name}.rejected")
        (home / f"{name}.rejected.txt").write_text(reason + "\n", encoding="utf-8")
    else:
        path.unlink(missing_ok=True)


def _claim(root: Path, path: Path) -> Path | None:
    """Move a ready file into the working folder for this poller only (a rename
    is atomic: of two pollers, one gets it, the other finds it gone)."""
    working = root / WORKING
    working.mkdir(exist_ok=True)
    mine = working / path.name
    try:
        os.replace(path, mine)
    except FileNotFoundError:
        return None
    os.utime(mine)  # the claim's time, for the lease
    return mine


def _release_stale(root: Path) -> None:
    """Give back files that a poller claimed and never finished (it died)."""
    working = root / WORKING
    if not working.exists():
        return
    cutoff = time.time() - CLAIM_LEASE_SECONDS
    for path in working.iterdir():
        try:
            if path.stat().st_mtime < cutoff:
                os.replace(path, root / READY / path.name)
        except FileNotFoundError:
            continue


def poll_once(app: Flask) -> dict[str, int]:
    """Register every complete FTP upload; returns counts (registered, rejected).

    Two pollers (two processes, or two hosts sharing the folder) never take
    the same file: each claims a file by renaming it before reading it.
    """
    root = Path(app.config["TRANSFER_FTP_ROOT"])
    ready = root / READY
    counts = {"registered": 0, "rejected": 0}
    if not ready.exists():
        return counts
    _release_stale(root)
    for found in sorted(ready.iterdir()):
        parts = found.name.split("__", 2)
        if len(parts) != 3:
            found.unlink(missing_ok=True)
            continue
        path = _claim(root, found)
        if path is None:  # another poller took it
            continue
        _stamp, username, name = parts
        with app.app_context(), force_locale(app.config.get("BABEL_DEFAULT_LOCALE", "zh_TW")):
            user = _agency_user(username)
            agency_code = user.agency.code if user else None
            try:
                if user is None:
                    raise InvalidInput(_l("The account is no longer a transfer officer."))
                actor = actors.for_user(user, "ftp", session=db.session)
                match = _UPLOAD_NO.match(name)
                case = transfer.find_by_upload_no(db.session, match.group(1)) if match else None
                if case is None or user.agency_id not in (case.sending_agency_id, case.receiving_agency_id):
                    raise InvalidInput(
                        _l("No transfer of your agency has this upload number; name the file <upload number>.p7m.")
                    )
                if not case.item.ftp_allowed:
                    raise InvalidInput(_l("This transfer item does not allow FTP; upload on the web page instead."))
                do = transfer.upload_payload if user.agency_id == case.sending_agency_id else transfer.upload_result
                with open(path, "rb") as fh:
                    do(db.session, actor, case.id, fh, "ftp")
                db.session.commit()
            except DomainError as exc:
                db.session.rollback()
                _reject(root, agency_code, name, path, str(exc))
                counts["rejected"] += 1
                log.warning("FTP upload refused: %s", type(exc).__name__)
            else:
                path.unlink(missing_ok=True)
                counts["registered"] += 1
            finally:
                db.session.remove()
    return counts


def sweep(app: Flask) -> dict[str, int]:
    """Remove what killed processes left of uploads (``transfer.sweep``): temporary
    files, partial FTP uploads, stored files no case refers to."""
    cfg = app.config
    with app.app_context():
        try:
            return transfer.sweep(
                db.session, Path(cfg["TRANSFER_DIR"]), Path(cfg["TRANSFER_FTP_ROOT"]), cfg["TRANSFER_STALE_SECONDS"]
            )
        finally:
            db.session.remove()


def run_poller(app: Flask, stop: threading.Event, on_round=None) -> None:
    """The FTP poller (``flask worker ftp-poller``): a round every
    TRANSFER_FTP_POLL_SECONDS until ``stop`` is set (the round in hand is finished);
    a sweep (``sweep``) at start and every TRANSFER_SWEEP_SECONDS."""
    every = app.config["TRANSFER_FTP_POLL_SECONDS"]
    next_sweep = 0.0
    while not stop.is_set():
        counts = {"registered": 0, "rejected": 0}
        try:
            if time.monotonic() >= next_sweep:
                sweep(app)
                next_sweep = time.monotonic() + app.config["TRANSFER_SWEEP_SECONDS"]
            counts = poll_once(app)
        except Exception as exc:  # keep polling; the error is logged without data
            log.warning("FTP poller round failed: %s", type(exc).__name__)
        if counts["registered"] or counts["rejected"]:
            log.info("FTP poller: registered %(registered)s, rejected %(rejected)s", counts)
        if on_round is not None:
            on_round(counts)
        stop.wait(every)


def serve(app: Flask, stop: threading.Event, server=None) -> None:
    """The FTPS server (``flask worker ftp-server``; ``server``: one from
    ``build_server``) until ``stop`` is set. It only receives files:
    ``flask worker ftp-poller`` registers them."""
    server = server or build_server(app)
    try:
        while not stop.is_set():
            server.serve_forever(timeout=0.5, blocking=False, handle_exit=False)
    finally:
        server.close_all()
