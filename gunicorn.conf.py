"""gunicorn settings for ./run.sh (and a starting point for production).

The web processes only answer requests: the outbox sender, the FTP poller and
the audit sealer run as `flask worker ...` processes beside them (./run.sh).
"""

import os
from pathlib import Path

port = os.environ.get("PORT", "8443")
# Loopback for nginx on the same host; GUNICORN_BIND (say 10.0.0.11:8000) for nginx on another
# (docs/operations.md, "Several hosts").
bind = os.environ.get("GUNICORN_BIND") or f"127.0.0.1:{port}"

# HTTPS: with TLS_CERT_FILE (the server certificate followed by its issuing CA's,
# so clients can build the path) and TLS_KEY_FILE, gunicorn serves TLS itself
# (./run.sh: the demo PKI's server certificate). Without them it speaks plain
# HTTP, for a proxy in front that terminates TLS (docs/operations.md, "HTTPS").
if os.environ.get("TLS_CERT_FILE"):
    certfile = os.environ["TLS_CERT_FILE"]
    keyfile = os.environ.get("TLS_KEY_FILE") or None
# gunicorn itself believes no X-Forwarded-* header from anyone (by default it
# would from 127.0.0.1): the app decides, by TRUSTED_PROXIES (app/lib/proxies.py).
forwarded_allow_ips = ""
_sqlite = not os.environ.get("DATABASE_URL", "").startswith(("postgresql", "mysql"))
# SQLite allows one writer at a time: one process with threads is enough.
workers = int(os.environ.get("WEB_CONCURRENCY", "1" if _sqlite else "4"))
threads = int(os.environ.get("WEB_THREADS", "4"))
timeout = 60
accesslog = "-"
# The default access log format prints the query string, which may hold an ID.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss'
# LOG_FORMAT=json: gunicorn's own lines (errors, the access log) as JSON objects
# too, like the app's (app/lib/logging.py, JsonFormatter).
if os.environ.get("LOG_FORMAT", "").strip().lower() == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "app.lib.logging.JsonFormatter"}},
        "handlers": {
            "error_console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"},
            "console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"},
        },
        "root": {"level": "INFO", "handlers": ["error_console"]},
        "loggers": {
            "gunicorn.error": {
                "level": "INFO",
                "handlers": ["error_console"],
                "propagate": False,
                "qualname": "gunicorn.error",
            },
            "gunicorn.access": {
                "level": "INFO",
                "handlers": ["console"],
                "propagate": False,
                "qualname": "gunicorn.access",
            },
        },
    }

# Each instance its own control socket (`gunicornc -s <path>`), in its instance
# folder and named by its port: two instances on one host never share
# ~/.gunicorn/gunicorn.ctl. GUNICORN_CONTROL_SOCKET overrides the path; "off"
# turns the control socket off.
_instance = Path(os.environ.get("INSTANCE_PATH", Path(__file__).resolve().parent / "instance"))
_control = os.environ.get("GUNICORN_CONTROL_SOCKET", str(_instance / f"gunicorn-{port}.ctl"))
if _control.lower() == "off":
    control_socket_disable = True
else:
    control_socket = _control

# /metrics adds up every worker's counts: prometheus_client's multiprocess mode
# keeps them in files in PROMETHEUS_MULTIPROC_DIR (default: the instance folder's
# metrics-<port>, one per instance), emptied when gunicorn starts and stops;
# a worker that ends is marked dead there (child_exit). Set here, before any
# worker imports prometheus_client (app/lib/metrics.py).
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(_instance / f"metrics-{port}"))


def on_starting(server):
    folder = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    for counts in folder.glob("*.db"):  # a previous run's: counters start at 0 with the server
        counts.unlink()


def on_exit(server):
    folder = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    for counts in folder.glob("*.db"):  # the counts end with the server
        counts.unlink()
    try:
        folder.rmdir()
    except OSError:  # not empty (something else of the operator's) or already gone
        pass


def child_exit(server, worker):
    # Not app.lib.metrics: importing it here would make the master count too.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker):
    """Each web worker that has loaded the app removes the temporary uploads a
    killed process left (``app.sweep_temporary_uploads``: only those no living
    process holds). Another app served with these settings (the benches' bare
    baseline) has no uploads to sweep. With GUNICORN_READY_DIR set (the
    benches), it then leaves a file named by its pid there."""
    if "TRANSFER_DIR" in getattr(worker.wsgi, "config", {}):
        from app import sweep_temporary_uploads

        sweep_temporary_uploads(worker.wsgi)
    ready = os.environ.get("GUNICORN_READY_DIR")
    if ready:
        Path(ready, str(worker.pid)).touch()
