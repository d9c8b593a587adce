"""Configuration read from environment variables.

Secrets are never committed: when SECRET_KEY or FIELD_ENCRYPTION_KEYS are not
given, they are generated once into instance/ (for the demo and development).
"""

import datetime
import os
import secrets
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.fernet import Fernet

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = Path(os.environ.get("INSTANCE_PATH", BASE_DIR / "instance"))


def _instance_secret(name: str, make) -> str:
    """Read instance/<name>, creating it (mode 0600) on first use."""
    INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
    path = INSTANCE_DIR / name
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(make())
    return path.read_text().strip()


def _list(name: str, default: list[str]) -> list[str]:
    """A comma-separated setting; set but empty: an empty list."""
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def _host_port(url: str) -> str:
    """``host:port`` of an http(s) URL (its scheme's port when it names none)."""
    parts = urlsplit(url)
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname
    return f"{host}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


def _bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


class Config:
    APP_NAME = "跨機關便民服務平台"
    APP_ICON = ""
    DEBUG = _bool("FLASK_DEBUG", False)

    SECRET_KEY = os.environ.get("SECRET_KEY") or _instance_secret("secret_key", lambda: secrets.token_hex(32))
    # Comma-separated Fernet keys; the first encrypts, all decrypt (rotation).
    FIELD_ENCRYPTION_KEYS = os.environ.get("FIELD_ENCRYPTION_KEYS") or _instance_secret(
        "field_encryption_keys", lambda: Fernet.generate_key().decode()
    )

    # Key for the keyed hashes of data subjects' ID numbers in the query log.
    SUBJECT_HASH_KEY = os.environ.get("SUBJECT_HASH_KEY") or _instance_secret(
        "subject_hash_key", lambda: secrets.token_hex(32)
    )
    VERIFY_VALID_DAYS = int(os.environ.get("VERIFY_VALID_DAYS", "90"))
    # The query form the notifier's register lookup runs (app/services/notify/lookup.py), and the
    # business item its query log names.
    NOTIFY_LOOKUP_FORM = os.environ.get("NOTIFY_LOOKUP_FORM", "notify.citizen")
    NOTIFY_LOOKUP_ITEM = os.environ.get("NOTIFY_LOOKUP_ITEM", "HH-NOTIFY")
    # The audit chain is keyed: each link is an HMAC-SHA256 under this secret,
    # kept outside the database, so whoever can write the database cannot
    # recompute the chain. Web processes (inline sealing) and the sealer need it;
    # so does an auditor who verifies a copy of the database. Back it up apart
    # from the database: without it the chain cannot be verified.
    AUDIT_CHAIN_KEY = os.environ.get("AUDIT_CHAIN_KEY") or _instance_secret(
        "audit_chain_key", lambda: secrets.token_hex(32)
    )
    # The sealer signs checkpoints of the chain (head, count, time) with this
    # Ed25519 private key (64 hex digits); `flask audit public-key` prints the
    # public key auditors verify them with.
    AUDIT_SIGNING_KEY = os.environ.get("AUDIT_SIGNING_KEY") or _instance_secret(
        "audit_signing_key", lambda: secrets.token_hex(32)
    )
    # Notification attachments: size limit, and the key that seals their SHA-256.
    ATTACHMENT_MAX_BYTES = int(os.environ.get("ATTACHMENT_MAX_BYTES", str(10 * 1024 * 1024)))
    ATTACHMENT_SEAL_KEY = os.environ.get("ATTACHMENT_SEAL_KEY") or _instance_secret(
        "attachment_seal_key", lambda: secrets.token_hex(32)
    )
    # Bounded decoding of uploaded images, checked from their headers before any pixel is
    # decoded: the pixels of all frames together (every page of a TIFF) and the number of
    # frames. 50 million is five A4 pages at 300 dpi, or one at 600 dpi; a decoded frame
    # takes up to 4 bytes a pixel in the web worker (200 MB at the default).
    ATTACHMENT_MAX_PIXELS = int(os.environ.get("ATTACHMENT_MAX_PIXELS", "50000000"))
    ATTACHMENT_MAX_PAGES = int(os.environ.get("ATTACHMENT_MAX_PAGES", "100"))

    SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'platform.db'}")
    SQLALCHEMY_TRACK_MODIFICATIONS = False
    # A PostgreSQL streaming replica for the reports, the survey statistics and the
    # weekly query log (app.services.reports.replica; blank: they read the primary).
    # Used while it answers and is at most REPLICA_MAX_LAG_SECONDS behind, checked at
    # most every REPLICA_CHECK_SECONDS; one that did not answer within
    # REPLICA_CONNECT_TIMEOUT is left alone for REPLICA_RETRY_SECONDS. Pages say which
    # database answered and how fresh the figures are.
    DATABASE_REPLICA_URL = os.environ.get("DATABASE_REPLICA_URL", "")
    REPLICA_MAX_LAG_SECONDS = float(os.environ.get("REPLICA_MAX_LAG_SECONDS", "300"))
    REPLICA_CHECK_SECONDS = float(os.environ.get("REPLICA_CHECK_SECONDS", "2"))
    REPLICA_CONNECT_TIMEOUT = float(os.environ.get("REPLICA_CONNECT_TIMEOUT", "2"))
    REPLICA_RETRY_SECONDS = float(os.environ.get("REPLICA_RETRY_SECONDS", "10"))
    # How long a check waits for the replica to replay up to the primary's position just read.
    REPLICA_CATCHUP_SECONDS = float(os.environ.get("REPLICA_CATCHUP_SECONDS", "0.2"))
    # Bound parameters (ID numbers, names) must never reach logs or error pages.
    SQLALCHEMY_ENGINE_OPTIONS = {"hide_parameters": True, "pool_pre_ping": True}

    # Flask-AppBuilder
    AUTH_TYPE = 1  # AUTH_DB
    AUTH_ROLE_ADMIN = "Admin"
    AUTH_ROLE_PUBLIC = "Public"
    FAB_SECURITY_MANAGER_CLASS = "app.security.PlatformSecurityManager"
    # The schema comes from Alembic migrations, and permissions from
    # `flask roles sync`, never as a side effect of starting the app.
    FAB_CREATE_DB = False
    FAB_UPDATE_PERMS = _bool("FAB_UPDATE_PERMS", False)
    # The OpenAPI document at /api/v1/_openapi and Swagger UI at /swagger/v1 (both for Admin only).
    FAB_API_SWAGGER_UI = _bool("FAB_API_SWAGGER_UI", True)
    FAB_ADD_OPENAPI_VIEWS = False  # app.views.openapi registers them (FAB's hides failures as a bare 500)
    FAB_ADD_SECURITY_API = False  # our own user API enforces our rules
    AUTH_RATE_LIMITED = _bool("AUTH_RATE_LIMITED", True)
    AUTH_RATE_LIMIT = os.environ.get("AUTH_RATE_LIMIT", "10 per 20 second")
    RATELIMIT_ENABLED = _bool("RATELIMIT_ENABLED", True)
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI", "memory://")
    # Several web hosts share their limits through Redis (redis://host:6379/1). Should it stop
    # answering, a rate-limited request is refused (503), never let through unlimited.
    RATELIMIT_STORAGE_OPTIONS = {"socket_connect_timeout": 2, "socket_timeout": 2}
    RATELIMIT_SWALLOW_ERRORS = False
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = False
    FAB_PASSWORD_COMPLEXITY_ENABLED = False
    # Role/permission answers are cached this long per process (an edit of a
    # role's permissions takes effect within it).
    PERMISSION_CACHE_SECONDS = float(os.environ.get("PERMISSION_CACHE_SECONDS", "10"))
    # A query form edited in one process reaches the others within this long.
    FORM_PLAN_CHECK_SECONDS = float(os.environ.get("FORM_PLAN_CHECK_SECONDS", "1"))

    # Language: Traditional Chinese (Taiwan) first, English second.
    BABEL_DEFAULT_LOCALE = "zh_TW"
    BABEL_DEFAULT_TIMEZONE = "Asia/Taipei"
    BABEL_TRANSLATION_DIRECTORIES = str(BASE_DIR / "app" / "translations")
    LANGUAGES = {
        "zh_TW": {"flag": "tw", "name": "繁體中文"},
        "en": {"flag": "gb", "name": "English"},
    }

    # Sessions and forms
    WTF_CSRF_ENABLED = True
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    # Cookies are Secure on every response to a request that came over HTTPS
    # (directly, or through a proxy in TRUSTED_PROXIES): app.web's session
    # interface. True here (or HTTPS_ONLY) makes them Secure on plain HTTP too.
    SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", False)
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SECURE = True  # FAB signs in without "remember me": should one be set, HTTPS only
    REMEMBER_COOKIE_SAMESITE = "Lax"
    # A signed-in browser is a server-side session (app.services.sessions): it
    # ends at logout, after this many minutes without a request, and this many
    # hours after signing in however busy; and for every session and token of
    # the user when their password changes, they are deactivated or lose a role.
    SESSION_IDLE_MINUTES = float(os.environ.get("SESSION_IDLE_MINUTES", "30"))
    SESSION_MAX_HOURS = float(os.environ.get("SESSION_MAX_HOURS", "8"))
    # A session's last request is written at most this often (not on every request).
    SESSION_TOUCH_SECONDS = float(os.environ.get("SESSION_TOUCH_SECONDS", "60"))
    # An API token's user (credential epoch, active) is read from the database at
    # most this often per process: a revocation made on another web host holds
    # within this time (on the host that made it, at once). 0: on every call.
    TOKEN_CHECK_SECONDS = float(os.environ.get("TOKEN_CHECK_SECONDS", "1"))
    PERMANENT_SESSION_LIFETIME = int(SESSION_MAX_HOURS * 3600)
    # API tokens (POST /api/v1/security/login): an access token lives this many
    # minutes; a refresh token this many hours, is spent when used (the answer
    # carries a new one) and never outlives SESSION_MAX_HOURS after the sign-in.
    JWT_ACCESS_TOKEN_EXPIRES = datetime.timedelta(minutes=float(os.environ.get("API_ACCESS_TOKEN_MINUTES", "15")))
    JWT_REFRESH_TOKEN_EXPIRES = datetime.timedelta(hours=float(os.environ.get("API_REFRESH_TOKEN_HOURS", "8")))

    # Passwords set on the user screens, the user API and "reset my password"
    # are at least this long, not in the common-password list (one a line,
    # compared without case) and do not contain the user name.
    PASSWORD_MIN_LENGTH = int(os.environ.get("PASSWORD_MIN_LENGTH", "12"))
    PASSWORD_COMMON_LIST = os.environ.get(
        "PASSWORD_COMMON_LIST", str(BASE_DIR / "app" / "services" / "common_passwords.txt")
    )
    # Failed sign-ins (form and API alike): after this many for one account name
    # it waits LOGIN_LOCK_SECONDS, doubled for each further failure up to
    # LOGIN_LOCK_MAX_SECONDS (an Admin can unlock it); a client address waits the
    # same after LOGIN_ADDRESS_LOCK_AFTER_FAILURES failures (over all accounts:
    # offices behind one NAT share an address, so it is set higher). Failures are
    # forgotten LOGIN_FAILURE_MEMORY_SECONDS after the last one, or at a success.
    LOGIN_LOCK_AFTER_FAILURES = int(os.environ.get("LOGIN_LOCK_AFTER_FAILURES", "5"))
    LOGIN_ADDRESS_LOCK_AFTER_FAILURES = int(os.environ.get("LOGIN_ADDRESS_LOCK_AFTER_FAILURES", "50"))
    LOGIN_LOCK_SECONDS = float(os.environ.get("LOGIN_LOCK_SECONDS", "30"))
    LOGIN_LOCK_MAX_SECONDS = float(os.environ.get("LOGIN_LOCK_MAX_SECONDS", "3600"))
    LOGIN_FAILURE_MEMORY_SECONDS = float(os.environ.get("LOGIN_FAILURE_MEMORY_SECONDS", "86400"))
    # Where the failure counters live: blank for the platform database, or
    # redis://host:port/db to keep them in Redis (shared by every web process).
    LOGIN_THROTTLE_STORAGE_URI = os.environ.get("LOGIN_THROTTLE_STORAGE_URI", "")
    # Sign-in with certificate cards (app.services.cards). A sign-in page's or API
    # client's challenge (the nonce the card signs) lives this many seconds and is
    # spent once; a citizen's first sign-in waits this long for the full ID number;
    # sessions and API tokens signed in with a card have the card rechecked
    # (validity, path, OCSP/CRL) at least every CERT_RECHECK_MINUTES.
    CERT_CHALLENGE_SECONDS = float(os.environ.get("CERT_CHALLENGE_SECONDS", "120"))
    CERT_REGISTRATION_SECONDS = float(os.environ.get("CERT_REGISTRATION_SECONDS", "600"))
    CERT_RECHECK_MINUTES = float(os.environ.get("CERT_RECHECK_MINUTES", "15"))
    # The portal: the days a querying agency's Auditor has to answer an "I don't recognise this" flag.
    ACCESS_FLAG_ANSWER_DAYS = int(os.environ.get("ACCESS_FLAG_ANSWER_DAYS", "10"))
    # Anomaly rules (`flask worker anomalies`): a round every ANOMALY_POLL_SECONDS over the queries
    # logged at least ANOMALY_SETTLE_SECONDS ago (a flag within a minute of its query).
    ANOMALY_POLL_SECONDS = float(os.environ.get("ANOMALY_POLL_SECONDS", "15"))
    ANOMALY_SETTLE_SECONDS = float(os.environ.get("ANOMALY_SETTLE_SECONDS", "5"))
    # A week's query log is due for its supervisor's signed review this many days after the week ends.
    WEEKLY_REVIEW_DAYS = int(os.environ.get("WEEKLY_REVIEW_DAYS", "7"))
    # The citizen's local signing component (HiPKI-like; the demo's simulator: app.simulators.signer).
    CERT_SIGNER_URL = os.environ.get("CERT_SIGNER_URL", "http://127.0.0.1:61161")
    # HTTPS. The platform is served over HTTPS (./run.sh: gunicorn with TLS, or
    # behind nginx); HTTPS responses carry HSTS for this many seconds (0: none;
    # never sent over plain HTTP). HTTPS_ONLY: a request that reached the app over
    # plain HTTP is redirected to PUBLIC_BASE_URL (./run.sh answers its HTTP port
    # with a redirector of its own, so gunicorn never sees plain HTTP).
    HSTS_MAX_AGE = int(os.environ.get("HSTS_MAX_AGE", str(365 * 86400)))
    HSTS_INCLUDE_SUBDOMAINS = _bool("HSTS_INCLUDE_SUBDOMAINS", False)
    HTTPS_ONLY = _bool("HTTPS_ONLY", False)
    # External URLs built outside a request (CLI, workers).
    PREFERRED_URL_SCHEME = os.environ.get("PREFERRED_URL_SCHEME", "https")
    # Reverse proxies the platform believes (addresses or CIDR networks,
    # comma-separated; default none): only from these peers are
    # X-Forwarded-For/Proto/Host/Port read (the client address audited and
    # rate-limited is then the forwarded one) and the client certificate the
    # proxy verified (CLIENT_CERT_HEADER: nginx's $ssl_client_escaped_cert, with
    # CLIENT_VERIFY_HEADER: $ssl_client_verify, which must say SUCCESS). From
    # anyone else these headers are removed before the app sees the request.
    TRUSTED_PROXIES = _list("TRUSTED_PROXIES", [])
    CLIENT_CERT_HEADER = os.environ.get("CLIENT_CERT_HEADER", "X-SSL-Client-Cert")
    CLIENT_VERIFY_HEADER = os.environ.get("CLIENT_VERIFY_HEADER", "X-SSL-Client-Verify")

    # Health and metrics (docs/operations.md, "Health and metrics"). /metrics answers
    # only these client addresses or CIDR networks (the client as TRUSTED_PROXIES
    # make it out; default loopback), 404 to anyone else. /health/ready answers 503
    # when one of HEALTH_REQUIRED fails (database, redis, smtp; a Redis that no
    # setting names is not checked); each check waits at most HEALTH_TIMEOUT
    # seconds, and an SMTP check is reused for HEALTH_SMTP_CACHE_SECONDS.
    METRICS_ALLOW = _list("METRICS_ALLOW", ["127.0.0.1", "::1"])
    HEALTH_REQUIRED = _list("HEALTH_REQUIRED", ["database", "redis"])
    HEALTH_TIMEOUT = float(os.environ.get("HEALTH_TIMEOUT", "2"))
    HEALTH_SMTP_CACHE_SECONDS = float(os.environ.get("HEALTH_SMTP_CACHE_SECONDS", "15"))
    # Log lines as text (default) or one JSON object a line (json), personal data masked either way.
    LOG_FORMAT = os.environ.get("LOG_FORMAT", "text").strip().lower()

    # Mail
    MAIL_SERVER = os.environ.get("MAIL_SERVER", "127.0.0.1")
    MAIL_PORT = int(os.environ.get("MAIL_PORT", "25"))
    MAIL_USE_TLS = _bool("MAIL_USE_TLS", False)
    MAIL_USE_SSL = _bool("MAIL_USE_SSL", False)
    MAIL_USERNAME = os.environ.get("MAIL_USERNAME")
    MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD")
    MAIL_DEFAULT_SENDER = os.environ.get("MAIL_DEFAULT_SENDER", "platform@county.gov.tw")
    MAIL_TIMEOUT = float(os.environ.get("MAIL_TIMEOUT", "10"))
    OUTBOX_MAX_ATTEMPTS = int(os.environ.get("OUTBOX_MAX_ATTEMPTS", "12"))
    OUTBOX_BACKOFF_SECONDS = float(os.environ.get("OUTBOX_BACKOFF_SECONDS", "5"))
    OUTBOX_BACKOFF_MAX_SECONDS = float(os.environ.get("OUTBOX_BACKOFF_MAX_SECONDS", "600"))
    OUTBOX_POLL_SECONDS = float(os.environ.get("OUTBOX_POLL_SECONDS", "2"))
    # After a commit wakes the worker, it waits this long to take what else arrives into the same round.
    OUTBOX_GATHER_SECONDS = float(os.environ.get("OUTBOX_GATHER_SECONDS", "0.01"))
    # The worker (`flask worker outbox`) takes at most this many messages a round: a citizen's
    # mail committed meanwhile waits at most one short round before it goes first.
    OUTBOX_ROUND_LIMIT = int(os.environ.get("OUTBOX_ROUND_LIMIT", "10"))
    # A citizen's progress mails (an agency accepted, an agency finished) wait this long, and the
    # changes of the case queued meanwhile (by any agency) go out with them as one mail.
    CITIZEN_MAIL_WINDOW_MINUTES = float(os.environ.get("CITIZEN_MAIL_WINDOW_MINUTES", "10"))
    # The worker keeps its SMTP connection open between rounds, at most this long without mail.
    OUTBOX_SMTP_IDLE_SECONDS = float(os.environ.get("OUTBOX_SMTP_IDLE_SECONDS", "30"))
    # Audit events are linked into the hash chain "inline" (in the request's
    # transaction) or in the "background" by the sealer process (`flask worker
    # sealer`, app.services.audit.sealer) a moment after the commit, so
    # requests do not queue on the chain's lock. Blank: inline on SQLite,
    # background on PostgreSQL/MySQL.
    AUDIT_SEALING = os.environ.get("AUDIT_SEALING", "")
    # The sealer's round: each costs about the same whatever it links, so a
    # quarter second gathers enough events that the rounds cost little per query.
    AUDIT_SEAL_SECONDS = float(os.environ.get("AUDIT_SEAL_SECONDS", "0.25"))
    # `flask audit verify` reports (never seals) events waiting for the sealer longer than this.
    AUDIT_SEAL_GRACE_SECONDS = float(os.environ.get("AUDIT_SEAL_GRACE_SECONDS", "300"))
    # Signed checkpoints are appended to this file (JSON lines; keep it where the
    # database's writers cannot rewrite it: another host, append-only storage)
    # by the sealer when the chain has grown and this many seconds have passed...
    AUDIT_CHECKPOINT_FILE = os.environ.get("AUDIT_CHECKPOINT_FILE", str(INSTANCE_DIR / "audit_checkpoints.jsonl"))
    AUDIT_CHECKPOINT_SECONDS = float(os.environ.get("AUDIT_CHECKPOINT_SECONDS", "60"))
    # ...and e-mailed through the outbox this often to these addresses
    # (comma-separated; blank: every active account holding the role named below).
    AUDIT_CHECKPOINT_MAIL_SECONDS = float(os.environ.get("AUDIT_CHECKPOINT_MAIL_SECONDS", "86400"))
    AUDIT_CHECKPOINT_MAIL_TO = os.environ.get("AUDIT_CHECKPOINT_MAIL_TO", "")
    AUDIT_CHECKPOINT_ROLE = os.environ.get("AUDIT_CHECKPOINT_ROLE", "Auditor")
    # Retention (docs/operations.md): query-log rows and audit events older than
    # this many months are archived, one signed compressed file a month into
    # AUDIT_ARCHIVE_DIR (`flask audit archive`), then removed; the stored result
    # snapshots of queries may be kept shorter (then blanked, their digest kept).
    AUDIT_RETENTION_MONTHS = int(os.environ.get("AUDIT_RETENTION_MONTHS", "60"))
    QUERY_SNAPSHOT_RETENTION_MONTHS = int(os.environ.get("QUERY_SNAPSHOT_RETENTION_MONTHS", "60"))
    AUDIT_ARCHIVE_DIR = os.environ.get("AUDIT_ARCHIVE_DIR", str(INSTANCE_DIR / "audit-archive"))
    # Accounts unused this many days are warned by e-mail, and disabled when
    # still unused ACCOUNT_DORMANT_GRACE_DAYS after the warning.
    ACCOUNT_DORMANT_DAYS = int(os.environ.get("ACCOUNT_DORMANT_DAYS", "90"))
    ACCOUNT_DORMANT_GRACE_DAYS = int(os.environ.get("ACCOUNT_DORMANT_GRACE_DAYS", "7"))
    # `flask worker retention` runs its round (archives, dormant accounts, overdue reviews) this often.
    RETENTION_ROUND_SECONDS = float(os.environ.get("RETENTION_ROUND_SECONDS", "86400"))

    DEMO_PASSWORD = os.environ.get("DEMO_PASSWORD", "Demo-2026")
    MAX_CONTENT_LENGTH = int(os.environ.get("MAX_CONTENT_LENGTH", str(40 * 1024 * 1024)))
    # Demo only: where the demo agencies' files live, and the e-gate and
    # business-registry simulators (./run.sh starts them).
    DEMO_SOURCES_DIR = os.environ.get("DEMO_SOURCES_DIR", str(INSTANCE_DIR / "sources"))
    SIMULATOR_URL = os.environ.get("SIMULATOR_URL", "http://127.0.0.1:8031")
    PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "https://127.0.0.1:8443")
    # The county's own GIS: a map section links its parcels there, {lon} and {lat} in WGS84
    # degrees (for example https://gis.county.gov.tw/map?x={lon}&y={lat}&z=19); unset: no link.
    GIS_LINK_URL = os.environ.get("GIS_LINK_URL") or None

    # Payments (app.services.payments, docs/payments.md). Where the gateways post their
    # notifications (default PUBLIC_BASE_URL); a payment pending this long is asked of the
    # gateway's query API by `flask worker payments` (a round every PAYMENT_WORKER_SECONDS),
    # and expired when still unpaid after PAYMENT_EXPIRE_MINUTES.
    PAYMENT_NOTIFY_BASE_URL = os.environ.get("PAYMENT_NOTIFY_BASE_URL", "")
    PAYMENT_PENDING_MINUTES = float(os.environ.get("PAYMENT_PENDING_MINUTES", "15"))
    PAYMENT_EXPIRE_MINUTES = float(os.environ.get("PAYMENT_EXPIRE_MINUTES", "60"))
    PAYMENT_WORKER_SECONDS = float(os.environ.get("PAYMENT_WORKER_SECONDS", "30"))
    PAYMENT_NOTIFY_RATE_LIMIT = os.environ.get("PAYMENT_NOTIFY_RATE_LIMIT", "6000 per minute")
    PAYGATE_URL = os.environ.get("PAYGATE_URL", "http://127.0.0.1:8032")  # demo seeding: the gateway simulator

    # Where data sources may reach (app.lib.confinement), set by the operators,
    # never on the admin screen; checked when a source is saved and on every use.
    # Text-file and SQLite sources: only files under these folders
    # (comma-separated; links and ".." resolved first). Whatever they hold, the
    # instance folder (unless a root lies inside it, as the demo's sources do),
    # the platform's database and its transfer, FTP and PKI folders are never a source.
    INSTANCE_FOLDER = str(INSTANCE_DIR)  # the generated secrets, the SQLite database, the demo files
    SOURCE_FILE_ROOTS = _list("SOURCE_FILE_ROOTS", [DEMO_SOURCES_DIR])
    # Web-service and e-gate sources: only to these endpoints (comma-separated):
    # an address or CIDR network with an optional port or port range
    # ("10.20.0.0/16:443", "192.168.5.7:8000-8099", "[fd00::/8]:443"), or a host
    # name (trusting its DNS). Every address a URL's host has must match, and
    # the connection goes to those checked addresses only. Default: the demo
    # simulators' address; empty: no web-service or e-gate source at all.
    SOURCE_URL_ALLOW = _list("SOURCE_URL_ALLOW", [_host_port(SIMULATOR_URL)])

    # Work lists show this many rows a page.
    WORKLIST_PAGE_SIZE = int(os.environ.get("WORKLIST_PAGE_SIZE", "50"))
    # The case search shows this many cases a page.
    CASE_SEARCH_PAGE_SIZE = int(os.environ.get("CASE_SEARCH_PAGE_SIZE", "20"))
    # Satisfaction survey links stay valid this many days; report queries may
    # sort this much in memory (PostgreSQL work_mem, per report transaction).
    SURVEY_INVITATION_DAYS = int(os.environ.get("SURVEY_INVITATION_DAYS", "30"))
    REPORT_WORK_MEM = os.environ.get("REPORT_WORK_MEM", "64MB")

    # Confidential file transfer. The platform stores ciphertext only, here:
    TRANSFER_DIR = os.environ.get("TRANSFER_DIR", str(INSTANCE_DIR / "transfer"))
    TRANSFER_MAX_BYTES = int(os.environ.get("TRANSFER_MAX_BYTES", str(8 * 1024**3)))
    # What killed processes leave is swept (`flask transfer sweep`; each web worker as
    # it starts, temporary uploads only; the ftp-poller worker at its start and every
    # TRANSFER_SWEEP_SECONDS; never another `flask` command): temporary uploads no
    # living process holds at once, and partial FTP uploads or stored files no case
    # refers to once not written to for TRANSFER_STALE_SECONDS (the FTPS server drops
    # a data connection idle for 5 minutes, so a live upload is never that old).
    TRANSFER_STALE_SECONDS = float(os.environ.get("TRANSFER_STALE_SECONDS", "900"))
    TRANSFER_SWEEP_SECONDS = float(os.environ.get("TRANSFER_SWEEP_SECONDS", "600"))
    # Staff certificates must chain to these CAs and are checked against these
    # CRLs (comma-separated paths; `flask seed demo` writes a demo PKI there).
    # Demo only: `flask seed demo` writes a test PKI here (keys as PKCS#12 with this PIN).
    DEMO_PKI_DIR = os.environ.get("DEMO_PKI_DIR", str(INSTANCE_DIR / "pki"))
    DEMO_PKI_PIN = os.environ.get("DEMO_PKI_PIN", "1234")
    TRANSFER_CA_BUNDLE = os.environ.get("TRANSFER_CA_BUNDLE", str(Path(DEMO_PKI_DIR) / "ca-bundle.pem"))
    TRANSFER_CRL_FILES = os.environ.get(
        "TRANSFER_CRL_FILES", f"{Path(DEMO_PKI_DIR) / 'root.crl'},{Path(DEMO_PKI_DIR) / 'intermediate.crl'}"
    )
    # Where a kit may fetch fresh CRLs and ask OCSP (comma-separated; written into each case's
    # configuration file for information: the kit checks the CRLs the file embeds).
    TRANSFER_CRL_URLS = os.environ.get("TRANSFER_CRL_URLS", "")
    TRANSFER_OCSP_URLS = os.environ.get("TRANSFER_OCSP_URLS", "")
    # The FTPS channel (`flask transfer ftp-serve`): one folder per agency.
    TRANSFER_FTP_HOST = os.environ.get("TRANSFER_FTP_HOST", "127.0.0.1")
    TRANSFER_FTP_PORT = int(os.environ.get("TRANSFER_FTP_PORT", "2121"))
    TRANSFER_FTP_ROOT = os.environ.get("TRANSFER_FTP_ROOT", str(INSTANCE_DIR / "ftp"))
    TRANSFER_FTP_PASSIVE_PORTS = os.environ.get("TRANSFER_FTP_PASSIVE_PORTS", "60000-60099")
    TRANSFER_FTP_TLS_CERT = os.environ.get("TRANSFER_FTP_TLS_CERT", str(INSTANCE_DIR / "ftp-tls.pem"))
    TRANSFER_FTP_TLS_KEY = os.environ.get("TRANSFER_FTP_TLS_KEY", str(INSTANCE_DIR / "ftp-tls.key"))
    TRANSFER_FTP_POLL_SECONDS = float(os.environ.get("TRANSFER_FTP_POLL_SECONDS", "2"))

    # Certificate cards (app.services.certauth, docs/certificates.md). The roots the
    # platform trusts for card sign-in (PEM), the issuing CAs below them (PEM bundle),
    # how long to wait for an OCSP responder or a CRL download (seconds), CRL files
    # read before the certificates' own distribution points (comma-separated; a
    # county's copies of the GRCA CRLs), and an OCSP URL used instead of the
    # certificates' own (blank: theirs). The demo's cards (`python -m
    # app.simulators.cardpki`, run by ./run.sh) are in DEMO_CARD_PKI_DIR (`flask seed demo` binds the
    # staff accounts its government cards name, clerk.card, to them).
    DEMO_CARD_PKI_DIR = os.environ.get("DEMO_CARD_PKI_DIR", str(Path(DEMO_PKI_DIR) / "cards"))
    CERT_TRUST_ROOTS = os.environ.get("CERT_TRUST_ROOTS", str(Path(DEMO_CARD_PKI_DIR) / "roots.pem"))
    CERT_CA_BUNDLE = os.environ.get("CERT_CA_BUNDLE", str(Path(DEMO_CARD_PKI_DIR) / "cas" / "bundle.pem"))
    CERT_OCSP_TIMEOUT = float(os.environ.get("CERT_OCSP_TIMEOUT", "3"))
    CERT_CRL_PATHS = _list("CERT_CRL_PATHS", [])
    CERT_OCSP_URL = os.environ.get("CERT_OCSP_URL", "")
    # An OCSP answer is kept until its nextUpdate but no longer than this (0: ask every time): a card
    # revoked meanwhile is refused at most this many seconds late.
    CERT_OCSP_CACHE_SECONDS = float(os.environ.get("CERT_OCSP_CACHE_SECONDS", "300"))


class TestConfig(Config):
    TESTING = True
    # Flask's test client asks over this scheme: plain HTTP unless a test says
    # base_url="https://..." (as the HTTPS tests do).
    PREFERRED_URL_SCHEME = "http"
    # The tests make their agencies' files under the temporary folder and serve
    # their simulators and listeners on free loopback ports.
    SOURCE_FILE_ROOTS = [tempfile.gettempdir()]
    SOURCE_URL_ALLOW = ["127.0.0.0/8"]
    MAIL_SUPPRESS_SEND = False  # tests talk to a real SMTP server
    WTF_CSRF_ENABLED = False
    AUTH_RATE_LIMITED = False
    RATELIMIT_ENABLED = False
    OUTBOX_BACKOFF_SECONDS = 0.05
    OUTBOX_BACKOFF_MAX_SECONDS = 0.2
    # Every test client signs in from 127.0.0.1: the address limit is the tests' own.
    LOGIN_ADDRESS_LOCK_AFTER_FAILURES = 100000
