"""gunicorn settings for ./run.sh (and a starting point for production)."""

import os

bind = f"127.0.0.1:{os.environ.get('PORT', '8080')}"
_sqlite = not os.environ.get("DATABASE_URL", "").startswith(("postgresql", "mysql"))
# SQLite allows one writer at a time: one process with threads is enough.
workers = int(os.environ.get("WEB_CONCURRENCY", "1" if _sqlite else "4"))
threads = int(os.environ.get("WEB_THREADS", "4"))
timeout = 60
accesslog = "-"
# The default access log format prints the query string, which may hold an ID.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss'


def post_worker_init(worker):
    if os.environ.get("OUTBOX_THREAD", "").lower() in ("1", "true", "yes"):
        from app.services.outbox import OutboxThread

        OutboxThread(worker.wsgi).start()
