"""Notification cases registered per second through POST /api/v1/cases (three
receiving agencies each), and the time from registration until the outbox has
handed the citizen's first e-mail to a real SMTP server (p50/p95).

    .venv/bin/python bench/case_bench.py [--cases 600] [--concurrency 4] [--paced 20]

Both run under gunicorn with the outbox worker (`flask worker outbox`, its own
process, counted with the web part) beside it, against PostgreSQL.
The first phase sends as fast as the server answers (the machine saturated:
the mail's latency there is mostly queueing); with --paced RATE a second phase
then registers cases at that steady rate (a county's busy hour is a few cases
a second) and measures the mail's latency again.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.cpu import proc_cpu, server_and_database_cpu  # noqa: E402
from bench.query_bench import _drop, _free_port, _pg_db, _serve, _token  # noqa: E402


def _prepare(platform_url: str) -> int:
    os.environ["DATABASE_URL"] = platform_url
    from flask_migrate import upgrade
    from sqlalchemy import select

    from app import create_app
    from app.extensions import db
    from app.models.notify import NotificationCategory
    from app.models.org import Agency
    from config import Config

    class BenchConfig(Config):
        SQLALCHEMY_DATABASE_URI = platform_url

    app = create_app(BenchConfig)
    with app.app_context():
        upgrade()
        runner = app.test_cli_runner()
        runner.invoke(args=["roles", "sync"])
        runner.invoke(args=["seed", "demo"])
        agencies = {a.code: a for a in db.session.scalars(select(Agency))}
        cat = NotificationCategory(
            main_item="效能測試",
            sub_item="地址變更",
            kind="citizen",
            consent_required=False,
            due_days=7,
            active=True,
            notifying_agencies=[agencies["HH-EAST"]],
            default_receivers=[agencies["LAND"], agencies["TAX"], agencies["MOTOR"]],
        )
        db.session.add(cat)
        db.session.commit()
        return cat.id


def _worker(args):
    port, token, bodies, interval, start = args
    conn = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    out = []
    for n, (tag, body) in enumerate(bodies):
        if interval:  # paced: this client's n-th request at its scheduled time
            time.sleep(max(0.0, start + n * interval - time.time()))
        t0 = time.time()
        conn.request("POST", "/api/v1/cases/", body, headers)
        resp = conn.getresponse()
        payload = json.loads(resp.read())
        out.append((tag, t0, time.time(), resp.status, payload.get("case_no")))
    return out


class Sink:
    def __init__(self):
        self.arrivals: dict[str, float] = {}
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        from email import message_from_bytes
        from email.header import decode_header, make_header

        subject = str(make_header(decode_header(message_from_bytes(envelope.original_content)["Subject"])))
        m = re.search(r"\d{7}-\d{4}", subject)
        with self.lock:
            self.count += 1
            if m and "已受理" in subject:
                self.arrivals.setdefault(m.group(0), time.time())
        return "250 OK"


# A port of its own: two benches at once must never talk to each other's server.
PORT = _free_port()


def _cpu_by_part(server_pid: int, database: str, outbox_pid: int) -> dict[str, float]:
    """CPU seconds so far of the web server (master and workers) with the
    outbox worker process, the PostgreSQL backends of the bench database, and
    this process (the SMTP sink) with its finished children (the clients)."""
    web, pg = server_and_database_cpu(server_pid, [database])
    web += proc_cpu(outbox_pid)
    t = os.times()
    return {"web": web, "postgresql": pg, "sink": t.user + t.system, "clients": t.children_user + t.children_system}


def _wait_for_workers(ready_dir: Path, workers: int, timeout: float = 120) -> None:
    """Until every worker has loaded the app (gunicorn.conf.py's post_worker_init
    leaves a file in GUNICORN_READY_DIR): a worker still importing while the
    clients start would spend the measured phase's CPU on its start."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(list(ready_dir.iterdir())) >= workers:
            time.sleep(0.5)
            return
        time.sleep(0.2)
    raise RuntimeError("the web workers did not start")


def _phase(sink, token, category, numbers, concurrency: int, rate: float, label: str, meter=None) -> None:
    bodies = [
        (
            i,
            json.dumps(
                {
                    "category": category,
                    "content": f"效能測試 {i}",
                    "citizen": {
                        "name": "王小明",
                        "id_no": "A123456789",
                        "email": f"citizen{i}@example.tw",
                        "address": "示範縣東區中正路一段128號",
                    },
                }
            ),
        )
        for i in numbers
    ]
    interval = concurrency / rate if rate else 0
    start = time.time() + 0.5
    chunks = [
        (PORT, token, bodies[i::concurrency], interval, start + i * (interval / concurrency))
        for i in range(concurrency)
    ]
    before = meter() if meter else None
    t0 = time.perf_counter()
    with multiprocessing.Pool(concurrency) as pool:
        results = [r for chunk in pool.map(_worker, chunks) for r in chunk]
    elapsed = time.perf_counter() - t0 - (0.5 if rate else 0)
    ok = [r for r in results if r[3] == 201]
    deadline = time.time() + 60
    while time.time() < deadline and any(r[4] not in sink.arrivals for r in ok):
        time.sleep(0.1)
    latencies = sorted((sink.arrivals[r[4]] - r[1]) * 1000 for r in ok if r[4] in sink.arrivals)
    request_ms = sorted((r[2] - r[1]) * 1000 for r in ok)
    print(
        f"  {label}: registered {len(ok)}/{len(results)} at {len(ok) / elapsed:.1f} cases/s "
        f"(request p50 {statistics.median(request_ms):.1f} ms, p95 {request_ms[int(len(request_ms) * 0.95)]:.1f} ms)"
    )
    if latencies:
        print(
            f"    registration -> citizen's mail at the SMTP server: p50 {statistics.median(latencies):.0f} ms, "
            f"p95 {latencies[int(len(latencies) * 0.95)]:.0f} ms ({len(latencies)} mails)"
        )
    else:
        print("    no citizen mail arrived")
    if meter and ok:
        # the staff mails may still be going out: until the server has had none for a second
        deadline, seen = time.time() + 120, -1
        while time.time() < deadline and sink.count != seen:
            seen = sink.count
            time.sleep(1.0)
        after = meter()
        per_case = {part: (after[part] - before[part]) * 1000 / len(ok) for part in after}
        total = sum(per_case.values())
        print(
            "    CPU per case: "
            + ", ".join(f"{part} {ms:.1f} ms" for part, ms in per_case.items())
            + f"; {total:.1f} ms in all, so 2 cores bound this at {2000 / total:.0f} cases/s"
        )


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--paced",
        type=float,
        default=0,
        metavar="RATE",
        help="then register --cases more at RATE cases/s and measure the mail latency there",
    )
    return parser.parse_args()


def _free_smtp_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(url: str, smtp_port: int, args) -> tuple[subprocess.Popen, subprocess.Popen, dict]:
    """gunicorn serving the app, and the outbox worker, on the bench database."""
    env = {
        "DATABASE_URL": url,
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": str(smtp_port),
        "OUTBOX_POLL_SECONDS": "0.05",
        "AUTH_RATE_LIMITED": "false",
        "WEB_CONCURRENCY": str(args.workers),
        "WEB_THREADS": str(args.threads),
        "GUNICORN_READY_DIR": tempfile.mkdtemp(),
    }
    proc = _serve("run:app", PORT, env)
    sender = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "run.py", "worker", "outbox"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc, sender, env


def _outbox_summary(url: str, sink: Sink) -> str:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT status, count(*), sum(attempts), max(attempts) FROM outbox_message "
                "GROUP BY status ORDER BY status"
            )
        ).all()
        errors = conn.execute(
            text(
                "SELECT split_part(last_error, ':', 1), count(*) FROM outbox_message "
                "WHERE last_error IS NOT NULL GROUP BY 1"
            )
        ).all()
    engine.dispose()
    return (
        "  outbox: "
        + ", ".join(f"{st} {n} (attempts {a}, at most {m})" for st, n, a, m in rows)
        + (f"; errors: {dict(errors)}" if errors else "")
        + f"; mails at the server: {sink.count}"
    )


def main() -> None:
    args = _arguments()
    import logging

    logging.disable(logging.WARNING)
    from aiosmtpd.controller import Controller

    smtp_port = _free_smtp_port()
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    name = f"bench_cases_{uuid.uuid4().hex[:8]}"
    url = _pg_db(name).render_as_string(hide_password=False)
    proc = sender = None
    try:
        category = _prepare(url)
        proc, sender, env = _start(url, smtp_port, args)
        token = _token(PORT, "notifier")
        _wait_for_workers(Path(env["GUNICORN_READY_DIR"]), args.workers)
        print(
            f"gunicorn {args.workers} workers x {args.threads} threads, PostgreSQL platform DB, "
            f"{args.cases} cases x 3 receiving agencies, {args.concurrency} clients"
        )
        meter = lambda: _cpu_by_part(proc.pid, name, sender.pid)  # noqa: E731
        _phase(sink, token, category, range(args.cases), args.concurrency, 0, "as fast as answered", meter)
        if args.paced:
            paced = range(args.cases, 2 * args.cases)
            label = f"paced at {args.paced:g} cases/s"
            _phase(sink, token, category, paced, args.concurrency, args.paced, label)
        print(_outbox_summary(url, sink))
    finally:
        for child in (proc, sender):
            if child is not None:
                child.terminate()
                child.wait()
        controller.stop()
        _drop(name)


if __name__ == "__main__":
    main()
