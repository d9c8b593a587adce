"""gunicorn settings for ./run.sh (and a starting point for production).

The web processes only answer requests: the outbox sender, the FTP poller and
the audit sealer run as `flask worker ...` processes beside them (./run.sh).
"""

import os
from pathlib import Path

port = os.environ.get("PORT", "8443")
bind = f"127.0.0.1:{port}"

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
