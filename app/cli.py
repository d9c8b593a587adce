"""Command-line operations: flask audit|outbox|roles|seed|worker|anomaly ..."""

import logging
import signal
import sys
import threading

import click
from flask import current_app
from flask.cli import AppGroup

from app.extensions import db

audit_cli = AppGroup("audit", help="Audit trail.")
outbox_cli = AppGroup("outbox", help="Mail outbox.")
roles_cli = AppGroup("roles", help="Roles and their permission sets.")
seed_cli = AppGroup("seed", help="Demo data.")
platform_cli = AppGroup("platform", help="The platform itself.")
transfer_cli = AppGroup("transfer", help="Confidential file transfer.")
report_cli = AppGroup("report", help="Reports.")
keys_cli = AppGroup("keys", help="Field-encryption keys.")
cards_cli = AppGroup("cards", help="Certificate cards: the trust settings, checking a certificate.")
ops_cli = AppGroup("ops", help="Operations: backup and restore (docs/backup.md).")
payments_cli = AppGroup("payments", help="Payments of fees: pending payments, refunds, settlement files.")
anomaly_cli = AppGroup("anomaly", help="Anomaly rules over the query log.")

accounts_cli = AppGroup("accounts", help="Staff accounts: dormant accounts, the quarterly review.")
worker_cli = AppGroup("worker", help="Background work, each kind in a process of its own (./run.sh starts them).")


@platform_cli.command("check")
def platform_check():
    """Can the platform database be reached? Exit 2 with the reason if not."""
    from sqlalchemy import text

    url = db.engine.url
    where = f"{url.get_backend_name()} {url.host or ''}{':' + str(url.port) if url.port else ''}/{url.database or ''}"
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0][:200]
        click.echo(f"無法連線到平台資料庫 / cannot reach the platform database ({where}): {reason}", err=True)
        sys.exit(2)
    click.echo(f"platform database OK ({where})")


@audit_cli.command("seal")
def audit_seal():
    """Link every committed but unsealed event into the hash chain (the sealer's work, by hand)."""
    from app.services.audit import seal_all, sealer

    refused: set[int] = set()
    replayed: set[int] = set()
    click.echo(f"sealed {seal_all(db.engine, refused=refused, replayed=replayed)} events")
    if refused:
        sealer.report_refused(sorted(refused - replayed), sorted(replayed))
        click.echo(
            f"refused {len(refused - replayed)} unsealed rows the platform did not write and {len(replayed)}"
            " replayed copies of events already written (see `flask audit verify`)",
            err=True,
        )
        sys.exit(1)


@audit_cli.command("verify")
@click.option(
    "--archive",
    "archive_mode",
    is_flag=True,
    help="Check the archive FILES offline instead of the database (signature, digests, links, and that "
    "each file continues the one before: give them oldest first).",
)
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
@click.option(
    "--checkpoints",
    "checkpoint_file",
    type=click.Path(dir_okay=False),
    help="Signed checkpoints to compare the chain with (default: AUDIT_CHECKPOINT_FILE).",
)
@click.option(
    "--public-key",
    "public_key_file",
    type=click.Path(exists=True, dir_okay=False),
    help="The auditors' copy of the public key (PEM) the checkpoints must be signed with "
    "(default: the one of AUDIT_SIGNING_KEY).",
)
@click.option(
    "--grace", type=float, help="Seconds an event may wait for the sealer (default: AUDIT_SEAL_GRACE_SECONDS)."
)
def audit_verify(archive_mode, files, checkpoint_file, public_key_file, grace):
    """Recompute the keyed chain and compare it with its head and the signed
    checkpoints; report forged or overdue unsealed events. Reads only (seals
    nothing); exit 1 naming what is wrong. With --archive FILE...: check
    archive files offline (no database), exit 1 naming each bad file."""
    from pathlib import Path

    from app.services.audit import checkpoints, verify

    cfg = current_app.config
    path = Path(checkpoint_file or cfg["AUDIT_CHECKPOINT_FILE"])
    if public_key_file:
        try:
            public = checkpoints.load_public_key(Path(public_key_file).read_bytes())
        except ValueError:
            click.echo(f"{public_key_file}: not an Ed25519 public key in PEM form", err=True)
            sys.exit(2)
    else:
        public = checkpoints.signing_key().public_key()
    if archive_mode or files:
        _verify_archives(archive_mode, files, public)
        return
    if checkpoint_file and not path.exists():
        click.echo(f"{checkpoint_file}: no such file", err=True)
        sys.exit(2)
    signed, problems = checkpoints.read(path, public)
    with db.engine.connect() as conn:
        _read_only(conn)
        try:
            result = verify(conn, signed, grace=grace)
        finally:
            conn.rollback()
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA query_only = OFF")
    problems = [*problems, *result.problems]
    from app.services.anomaly import record_check

    try:  # the auditor's desk shows when the chain was last verified and how it stood
        record_check(not problems, result.checked, len(problems))
    except Exception as exc:  # a database that refuses the write must not hide the verdict
        click.echo(f"note: the check could not be recorded for the auditor's desk ({type(exc).__name__})", err=True)
    if not signed:
        click.echo(f"note: no signed checkpoint in {path}: a cut-off tail cannot be told from a short chain", err=True)
    if not problems:
        click.echo(
            f"audit chain OK: {result.checked} events verified, {result.checkpoints} signed checkpoints matched"
            + (f"; {result.pending} events wait for the sealer (within the grace period)" if result.pending else "")
        )
        return
    for problem in problems:
        click.echo(f"audit chain BROKEN: {problem}", err=True)
    sys.exit(1)


def _verify_archives(archive_mode, files, public) -> None:
    from app.services.audit import archive
    from app.services.audit.chain import chain_key

    if not (archive_mode and files):
        click.echo("give the archive files after --archive (oldest first)", err=True)
        sys.exit(2)
    try:
        key = chain_key()
    except RuntimeError:
        key = None
    checked = archive.verify_files(files, public, key)
    for problem in checked.problems:
        click.echo(f"archive BROKEN: {problem}", err=True)
    if not checked.ok:
        sys.exit(1)
    for check in checked.files:
        m = check.manifest
        click.echo(
            f"{check.path.name}: {m['month']} OK: events seq {m['first_seq']}..{m['last_seq']} ({m['events']}),"
            f" {m['query_logs']} query-log rows, signed by key {m['key']}"
        )
    click.echo(f"audit archives OK: {len(checked.files)} files, each continuing the one before")


@audit_cli.command("archive")
@click.option("--month", help="The month to archive, YYYY-MM (default: every month past AUDIT_RETENTION_MONTHS).")
@click.option("--keep", is_flag=True, help="Write the archive but leave the rows in the database.")
def audit_archive(month, keep):
    """Archive a month of audit events and query-log rows past the retention to a signed,
    compressed file in AUDIT_ARCHIVE_DIR, then remove them (the chain continues through a
    signed archive line in the checkpoint file). Without --month: the retention worker's
    round (stored snapshots past QUERY_SNAPSHOT_RETENTION_MONTHS blanked, every due month)."""
    from app.services.actors import OPERATOR
    from app.services.audit import archive

    try:
        if month is None:
            if keep:
                raise click.UsageError("--keep needs --month")
            done = archive.archive_due(db.session, OPERATOR)
        else:
            done = [archive.archive_month(db.session, OPERATOR, month)]
            if not keep:
                archive.remove_month(db.session, OPERATOR, month)
                done[0].removed = True
    except ValueError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    except archive.ArchiveRefused as exc:
        click.echo(f"archive refused: {exc}", err=True)
        sys.exit(1)
    for made in done:
        m = made.manifest
        click.echo(
            f"{made.month}: {m['events']} events, {m['query_logs']} query-log rows -> {made.path}"
            + ("; removed from the database" if made.removed else "; kept in the database")
        )
    if not done:
        click.echo("no month is past the retention")


def _read_only(conn) -> None:
    """The database itself refuses any write by this connection (verify reads only):
    a read-only transaction (PostgreSQL, MySQL/MariaDB), ended by the caller's
    rollback; SQLite's ``query_only``, which the caller turns off again. Nothing
    outlives the transaction on the pooled connection."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
    elif conn.dialect.name in ("mysql", "mariadb"):
        # The first statement on the connection: the transaction starts read-only.
        conn.exec_driver_sql("START TRANSACTION READ ONLY")
    elif conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA query_only = ON")
    else:
        raise click.ClickException(f"verify cannot make a {conn.dialect.name} transaction read-only")


@audit_cli.command("checkpoint")
@click.option("--mail/--no-mail", default=True, help="Also queue it to the auditors (default: yes).")
def audit_checkpoint(mail):
    """Sign the chain's head now, append it to AUDIT_CHECKPOINT_FILE and mail it to the auditors."""
    from app.services.audit import checkpoints

    try:
        fields = checkpoints.write(db.engine)
    except checkpoints.CheckpointRefused as exc:
        click.echo(f"checkpoint refused: {exc}", err=True)
        sys.exit(1)
    if fields is None:
        click.echo("the chain has not moved since the last checkpoint: nothing signed")
        return
    from app.services import checkpoint_mail

    sent = checkpoint_mail.mail(db.engine, fields) if mail else 0
    click.echo(f"checkpoint at seq {fields['seq']} ({fields['count']} events) signed; mailed to {sent} auditors")


@audit_cli.command("public-key")
@click.option("--out", type=click.Path(dir_okay=False, writable=True), help="Write it to this file (default: print).")
def audit_public_key(out):
    """The public key that checks the signed checkpoints (PEM), for the auditors."""
    from app.services.audit import checkpoints

    key = checkpoints.signing_key()
    pem = checkpoints.public_pem(key)
    if out:
        with open(out, "w") as fh:
            fh.write(pem)
        click.echo(f"public key {checkpoints.key_id(key)} written to {out}")
    else:
        click.echo(pem, nl=False)


@outbox_cli.command("work")
@click.option("--loop/--once", default=False, help="Keep sending until SIGTERM (default: one round).")
def outbox_work(loop):
    """Send queued e-mails over SMTP (--loop: as `flask worker outbox`)."""
    from app.services import outbox

    if loop:
        _run_worker("outbox", outbox.run)
        return
    counts = outbox.work_once(db.session)
    click.echo("sent {sent}, retried {retried}, failed {failed}".format(**counts))


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT: the worker finishes its round and returns."""
    stop = threading.Event()

    def handle(signum, _frame):
        logging.getLogger("app.worker").info("stopping on %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop


def _run_worker(kind: str, loop) -> None:
    """Run ``loop(app, stop)`` in this process until SIGTERM/SIGINT."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO)
    line = logging.Formatter(f"%(asctime)s {kind}[%(process)d] %(levelname)s %(name)s: %(message)s")
    for handler in root.handlers:  # a worker's log: when, which worker, what
        handler.setFormatter(line)
    app = current_app._get_current_object()
    stop = stop_on_signals()
    logging.getLogger("app.worker").info("%s worker started", kind)
    loop(app, stop)
    logging.getLogger("app.worker").info("%s worker stopped", kind)


@worker_cli.command("outbox")
def worker_outbox():
    """Send the queued e-mails: woken by each commit that queues one (PostgreSQL), else every OUTBOX_POLL_SECONDS."""
    from app.services import outbox

    _run_worker("outbox", outbox.run)


@worker_cli.command("ftp-poller")
def worker_ftp_poller():
    """Register the FTP uploads that have arrived whole, every TRANSFER_FTP_POLL_SECONDS."""
    from app.services import ftp

    _run_worker("ftp-poller", ftp.run_poller)


@worker_cli.command("ftp-server")
def worker_ftp_server():
    """Serve the FTPS channel (per-agency folders); `flask worker ftp-poller` registers what arrives."""
    _serve_ftp()


def _serve_ftp() -> None:
    from app.services import ftp

    cfg = current_app.config
    click.echo(
        f"FTPS on {cfg['TRANSFER_FTP_HOST']}:{cfg['TRANSFER_FTP_PORT']}, folders under {cfg['TRANSFER_FTP_ROOT']}"
    )
    _run_worker("ftp-server", ftp.serve)


@worker_cli.command("sealer")
def worker_sealer():
    """Link committed audit events into the hash chain, a round every AUDIT_SEAL_SECONDS; write signed checkpoints."""
    import functools

    from app.services import checkpoint_mail
    from app.services.audit import sealer

    _run_worker("sealer", functools.partial(sealer.run, mailer=checkpoint_mail.mail))


@worker_cli.command("anomalies")
def worker_anomalies():
    """Apply the anomaly rules to the queries logged since the last round, every ANOMALY_POLL_SECONDS."""
    from app.services import anomaly

    _run_worker("anomalies", anomaly.run)


@anomaly_cli.command("evaluate")
def anomaly_evaluate():
    """One round of the anomalies worker: the rules applied to the queries logged since the last round."""
    from app.services import anomaly

    counts = anomaly.evaluate_round(db.session)
    click.echo("queries read {read}, flags raised {flags}".format(**counts))


@anomaly_cli.command("review-overdue")
def anomaly_review_overdue():
    """Tell the auditors by e-mail, once, of each agency's weekly review of the query log that is
    overdue (what the retention worker does each round)."""
    from app.services import anomaly
    from app.services.actors import OPERATOR

    told = anomaly.report_overdue(db.session, OPERATOR)
    weeks = ", ".join(f"{r.agency_code} {r.week_start.isoformat()}" for r in told)
    click.echo(f"overdue weekly reviews reported: {weeks or 'none'}")


@worker_cli.command("retention")
def worker_retention():
    """Once a RETENTION_ROUND_SECONDS: archive the months past the retention, warn and disable dormant
    accounts, report overdue account reviews and overdue weekly reviews to the auditors."""
    from app.services import retention

    _run_worker("retention", retention.run)


@accounts_cli.command("dormant")
def accounts_dormant():
    """Warn the staff accounts unused for ACCOUNT_DORMANT_DAYS by e-mail; disable those still unused
    ACCOUNT_DORMANT_GRACE_DAYS after the warning (never the last active Admin)."""
    from app.services import account_review
    from app.services.actors import OPERATOR

    counts = account_review.dormant_round(db.session, OPERATOR)
    click.echo("warned {warned}, disabled {disabled}, kept (the last Admin) {kept}".format(**counts))


@accounts_cli.command("review-overdue")
def accounts_review_overdue():
    """Tell the auditors of each agency whose account review of the last quarter is not completed."""
    from app.services import account_review
    from app.services.actors import OPERATOR

    codes = account_review.report_overdue(db.session, OPERATOR)
    click.echo(f"overdue reviews reported: {', '.join(codes) or 'none'}")


@worker_cli.command("payments")
def worker_payments():
    """Ask the gateways about payments pending past PAYMENT_PENDING_MINUTES and retry refunds, every
    PAYMENT_WORKER_SECONDS."""
    from app.services import payments

    _run_worker("payments", payments.run)


@payments_cli.command("settle")
@click.option("--older-than", type=float, default=None, help="Minutes pending (default PAYMENT_PENDING_MINUTES).")
def payments_settle(older_than):
    """One round of the payments worker: pending payments asked of the query API, refunds retried."""
    from app.services import payments

    click.echo(f"pending: {payments.settle_pending(db.session, older_than_minutes=older_than)}")
    click.echo(f"refunds: {payments.refund_payments(db.session)}")


@payments_cli.command("reconcile")
@click.option("--provider", "code", required=True, help="The payment provider's code.")
@click.option("--date", "day", required=True, help="The settlement day, YYYY-MM-DD.")
@click.option(
    "--file", "path", type=click.Path(exists=True, dir_okay=False), help="A settlement file (default: ask the gateway)."
)
def payments_reconcile(code, day, path):
    """Reconcile a day's settlement file; exit 1 when there are mismatches (listed)."""
    import datetime
    from pathlib import Path

    from sqlalchemy import select

    from app.models.payments import PaymentProvider
    from app.services import payments
    from app.services.actors import OPERATOR
    from app.services.errors import DomainError

    provider = db.session.scalar(select(PaymentProvider).where(PaymentProvider.code == code))
    if provider is None:
        click.echo(f"no payment provider {code}", err=True)
        sys.exit(2)
    try:
        when = datetime.date.fromisoformat(day)
        if path:
            rec = payments.reconcile(db.session, OPERATOR, provider, when, Path(path).read_text(encoding="utf-8"))
        else:
            rec = payments.fetch_and_reconcile(db.session, OPERATOR, provider, when)
    except (ValueError, DomainError) as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    click.echo(f"{rec.rows} rows, {rec.matched} matched, {rec.mismatched} mismatches")
    for m in rec.mismatches:
        click.echo(f"  {m.kind}: {m.order_no} platform {m.platform_amount} {m.platform_state or ''}"
                   f" file {m.file_amount} {m.file_state or ''}")  # fmt: skip
    sys.exit(1 if rec.mismatched else 0)


@roles_cli.command("sync")
@click.option("--reset", is_flag=True, help="Drop permissions not in the table.")
def roles_sync(reset):
    """Create or update the platform roles and their permission sets."""
    from app.services.roles import ROLE_PERMISSIONS, sync_roles

    sm = current_app.appbuilder.sm
    # Roles first: FAB grants every new permission to the Admin role as it goes.
    for name in [*ROLE_PERMISSIONS, sm.auth_role_public]:
        sm.find_role(name) or sm.add_role(name)
    current_app.appbuilder.add_permissions(update_perms=True)
    counts = sync_roles(sm, reset=reset)
    for name, n in counts.items():
        click.echo(f"{name}: {n} permissions")


@seed_cli.command("demo")
def seed_demo_cmd():
    """Create the demo agencies and accounts (idempotent)."""
    from pathlib import Path

    from app.services.seed import seed_demo, seed_query_world

    cfg = current_app.config
    result = seed_demo(current_app.appbuilder.sm, db.session, cfg["DEMO_PASSWORD"])
    click.echo(f"agencies: {result['agencies']}; accounts created: {', '.join(result['accounts_created']) or 'none'}")
    world = seed_query_world(db.session, Path(cfg["DEMO_SOURCES_DIR"]), cfg["SIMULATOR_URL"])
    click.echo(f"query forms created: {', '.join(world['forms_created']) or 'none'}")
    from app.services.seed import seed_agencies, seed_transfer

    made = seed_transfer(db.session, seed_agencies(db.session), Path(cfg["DEMO_PKI_DIR"]), cfg["DEMO_PKI_PIN"])
    click.echo(f"transfer certificates registered: {', '.join(made['certificates']) or 'none'}")
    from app.services.seed.cards import seed_card_accounts

    done = seed_card_accounts(current_app.appbuilder.sm, db.session, seed_agencies(db.session),
                              cfg["DEMO_PASSWORD"], Path(cfg["DEMO_CARD_PKI_DIR"]))  # fmt: skip
    click.echo(f"card accounts created: {', '.join(done['created']) or 'none'}; "
               f"cards bound: {', '.join(done['bound']) or 'none'}")  # fmt: skip
    from app.services.seed.payments import seed_payments

    paid = seed_payments(db.session, seed_agencies(db.session), cfg["PAYGATE_URL"])
    click.echo(f"payment providers and fees created: {', '.join(paid) or 'none'}")
    _summarise()


def _summarise() -> None:
    from app.services import reports

    done = reports.summarise(db.session)
    click.echo(
        f"report summary: {done['cases']:,} cases and {done['dispatches']:,} dispatches finished, "
        f"{done['responses']:,} survey responses and {done['queries']:,} queries, before "
        f"{done['cutoff']:%Y-%m-%d %H:%M} UTC, in {done['seconds']:.1f} s"
    )


@transfer_cli.command("ftp-serve")
def transfer_ftp_serve():
    """Serve the FTPS channel: the same as `flask worker ftp-server` (run `flask worker ftp-poller` beside it)."""
    _serve_ftp()


@transfer_cli.command("ftp-poll")
@click.option("--loop/--once", default=False, help="Keep polling until SIGTERM (default: one round).")
def transfer_ftp_poll(loop):
    """Register the FTP uploads that have arrived whole (--loop: as `flask worker ftp-poller`)."""
    from app.services import ftp

    if loop:
        _run_worker("ftp-poller", ftp.run_poller)
        return
    counts = ftp.poll_once(current_app._get_current_object())
    click.echo("registered {registered}, rejected {rejected}".format(**counts))


@transfer_cli.command("sweep")
def transfer_sweep():
    """Remove what killed processes left of uploads (the ftp-poller worker does it every TRANSFER_SWEEP_SECONDS)."""
    from app.services import ftp

    counts = ftp.sweep(current_app._get_current_object())
    click.echo("removed {parts} temporary, {ftp} partial FTP and {orphans} orphan files".format(**counts))


@transfer_cli.command("recheck-certs")
def transfer_recheck_certs():
    """Re-check every valid staff certificate against today's date and the CRLs."""
    from app.services import actors, transfer

    counts = transfer.recheck_certificates(db.session, actors.OPERATOR)
    click.echo("valid {valid}, expired {expired}, revoked {revoked}, no longer trusted {invalid}".format(**counts))


@report_cli.command("weekly-queries")
@click.option("--agency", "agency_code", help="Agency code (default: every agency, one section each).")
@click.option("--week", help="Any day of the week as an ROC date, e.g. 115/11/23 (default: last week).")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, writable=True), help="PDF file to write.")
def report_weekly_queries(agency_code, week, out):
    """The weekly query log for supervisors, as PDF: each query by user with its purpose."""
    from app.lib.rocdate import format_roc
    from app.services import actors, reports
    from app.services.errors import DomainError

    try:
        reach = reports.weekly_reach(actors.SYSTEM, week, agency_code)
        export = reports.export_weekly_log(db.session, actors.SYSTEM, reach, via="cli")
    except DomainError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    with open(out, "wb") as fh:
        fh.write(export.data)
    total = sum(section.total for section in export.sections)
    period = f"{format_roc(reach.monday)}–{format_roc(reach.sunday)}"
    click.echo(f"{period}: {len(export.sections)} agencies, {total} queries -> {out}")


@report_cli.command("summarise")
def report_summarise():
    """Count the finished cases and dispatches into the report summary (run nightly, e.g. from cron)."""
    _summarise()


@keys_cli.command("rotate")
@click.option("--batch", default=500, show_default=True, help="Rows re-encrypted per transaction.")
def keys_rotate(batch):
    """Re-encrypt the data at rest under the newest of FIELD_ENCRYPTION_KEYS (put the new key first, then run this)."""
    from flask_appbuilder import Model

    from app.services.keyrotation import rotate

    result = rotate(db.session, db.engine, Model.metadata, batch=batch)  # every table lives on FAB's metadata
    for name, count in result.rotated.items():
        click.echo(f"{name}: {count} re-encrypted")
    click.echo(f"{result.total} values re-encrypted, {result.current} already under the newest key")
    if result.unreadable:
        for name, count in result.unreadable.items():
            click.echo(f"{name}: {count} values no configured key can decrypt (left as they are)", err=True)
        sys.exit(1)
    click.echo("nothing is left under an older key: it may be removed from FIELD_ENCRYPTION_KEYS")


@cards_cli.command("settings")
def cards_settings():
    """Where card sign-in takes its trust from (CERT_*), and what those files hold; exit 2 without roots."""
    from pathlib import Path

    from cryptography import x509

    cfg = current_app.config
    problem = False
    for name in ("CERT_TRUST_ROOTS", "CERT_CA_BUNDLE"):
        path = Path(cfg.get(name) or "")
        try:
            certs = x509.load_pem_x509_certificates(path.read_bytes())
            names = "; ".join(c.subject.rfc4514_string() for c in certs)
            click.echo(f"{name} = {path}: {len(certs)} certificate(s): {names}")
        except (OSError, ValueError) as exc:
            problem = problem or name == "CERT_TRUST_ROOTS"
            click.echo(f"{name} = {path}: unreadable ({type(exc).__name__})", err=True)
    own = "(the certificates' own)"
    click.echo(f"CERT_OCSP_URL = {cfg.get('CERT_OCSP_URL') or own}")
    click.echo(f"CERT_OCSP_TIMEOUT = {cfg.get('CERT_OCSP_TIMEOUT')}")
    click.echo(f"CERT_CRL_PATHS = {', '.join(cfg.get('CERT_CRL_PATHS') or []) or own}")
    if problem:
        sys.exit(2)


@cards_cli.command("check")
@click.argument("certificate", type=click.Path(exists=True, dir_okay=False))
def cards_check(certificate):
    """Check a card certificate (PEM or DER) as a sign-in would: path, validity, usage, revocation.
    Prints the card's kind and serial (never the holder's name); exit 1 with the reason when refused."""
    from pathlib import Path

    from app.services import certauth

    try:
        card = certauth.check_certificate(Path(certificate).read_bytes())
    except certauth.CardRefused as exc:
        click.echo(f"refused ({exc.reason}): {exc}", err=True)
        sys.exit(1)
    click.echo(f"accepted: {card.kind} card, serial {card.serial}, issuer {card.issuer}, revocation: {card.checked_by}")


def _passphrase(path, confirm: bool) -> str:
    from app.services import backup

    if path:
        return backup.read_passphrase(path)
    if not sys.stdin.isatty():
        raise backup.BackupError("give the key bundle's passphrase with --keys-passphrase-file")
    return click.prompt("Key bundle passphrase", hide_input=True, confirmation_prompt=confirm)


@ops_cli.command("backup")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="New (or empty) folder for the backup.")
@click.option(
    "--keys-out",
    type=click.Path(dir_okay=False),
    help="Where to write the encrypted key bundle (default: OUT/keys.enc); keep it apart from the backup.",
)
@click.option(
    "--keys-passphrase-file",
    type=click.Path(exists=True, dir_okay=False),
    help="File whose first line is the key bundle's passphrase (default: asked on the terminal).",
)
def ops_backup(out, keys_out, keys_passphrase_file):
    """Back up the database (one snapshot), the transfer storage, the audit checkpoint file,
    the settings, and the keys (encrypted with a passphrase, in a file of their own)."""
    from pathlib import Path

    from app.services import backup

    try:
        made = backup.backup(Path(out), _passphrase(keys_passphrase_file, True), Path(keys_out) if keys_out else None)
    except backup.BackupError as exc:
        click.echo(f"backup refused: {exc}", err=True)
        sys.exit(1)
    m = made.manifest
    for name, part in m["parts"].items():
        click.echo(f"{name}: {part['size']} bytes, sha256 {part['sha256']}")
    click.echo(f"key bundle {made.keys_file}: {m['keys']['size']} bytes (keep it apart from {made.folder})")
    click.echo(
        f"backup {m['backup_id']} written to {made.folder} in {made.seconds:.1f} s: migration head"
        f" {m['migration_head']}, audit chain seq {m['audit_head']['seq']}, {m['transfer_files']} transfer files"
    )


@ops_cli.command("restore")
@click.option("--from", "source", required=True, type=click.Path(exists=True, file_okay=False), help="The backup.")
@click.option("--keys", type=click.Path(exists=True, dir_okay=False), help="The key bundle (default: FROM/keys.enc).")
@click.option(
    "--keys-passphrase-file",
    type=click.Path(exists=True, dir_okay=False),
    help="File whose first line is the key bundle's passphrase (default: asked on the terminal).",
)
@click.option(
    "--instance",
    type=click.Path(file_okay=False),
    help="The instance folder the keys are written into (default: INSTANCE_PATH's).",
)
@click.option("--check-only", is_flag=True, help="Only check the backup's parts and key bundle; change nothing.")
@click.option("--force", is_flag=True, help="Replace a database with tables, stored files and another checkpoint file.")
def ops_restore(source, keys, keys_passphrase_file, instance, check_only, force):
    """Restore a backup into this configuration's database, transfer storage, checkpoint file
    and instance folder, after checking every part; then check what was restored."""
    from pathlib import Path

    from app.services import backup

    keys_file = Path(keys) if keys else Path(source) / backup.KEYS_FILE
    try:
        phrase = _passphrase(keys_passphrase_file, False)
        if check_only:
            manifest, _bundle = backup.check(Path(source), keys_file, phrase)
            click.echo(f"backup {manifest['backup_id']} of {manifest['created']}: every part and the key bundle check")
            return
        done = backup.restore(Path(source), keys_file, phrase, Path(instance) if instance else None, force=force)
    except backup.BackupError as exc:
        click.echo(f"restore refused: {exc}", err=True)
        sys.exit(1)
    for line in done.checks:
        click.echo(f"check: {line}")
    for line in done.notes:
        click.echo(f"note: {line}")
    for line in done.problems:
        click.echo(f"PROBLEM: {line}", err=True)
    m = done.manifest
    click.echo(f"backup {m['backup_id']} of {m['created']} restored in {done.seconds:.1f} s")
    if done.problems:
        sys.exit(1)
    click.echo("restart every process (web, workers) so that they read the restored keys")


def register(app) -> None:
    for group in (
        audit_cli,
        outbox_cli,
        roles_cli,
        seed_cli,
        platform_cli,
        transfer_cli,
        report_cli,
        keys_cli,
        worker_cli,
        cards_cli,
        ops_cli,
        payments_cli,
        anomaly_cli,
        accounts_cli,
    ):
        app.cli.add_command(group)
