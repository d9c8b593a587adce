"""Verified payment notifications handled per second (POST /payments/notify/<provider>:
check value, order, amount and currency checked, the payment settled once under its
conditional UPDATE, the notification kept, the audit event written) beside a bare
endpoint doing the same single INSERT, in the same run; then a storm of 100 identical
notifications at once for one order: exactly one payment, 100 acknowledgements.

    .venv/bin/python bench/payment_bench.py [--orders 1500] [--rounds 3] [--concurrency 8]

Both servers run under gunicorn (gunicorn.conf.py) on PostgreSQL, with the audit sealer
beside the platform. The notify endpoint's rate limit is lifted for the run
(PAYMENT_NOTIFY_RATE_LIMIT): a gateway's real rate is far below it, but each request still
counts against it in Redis, as on several hosts.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.query_bench import _drop, _free_port, _pg_db, _sealer, _serve  # noqa: E402

MERCHANT, KEY, IV = "3002607", "pwFHCqoQZGmho4w6", "EkRm7iFT261dpevs"


def _prepare(url: str, orders: int) -> list[tuple[str, str]]:
    """Migrate, seed, one provider and fee, and ``orders`` pending payments (order number, trade number)."""
    from flask_migrate import upgrade
    from sqlalchemy import select

    from app import create_app
    from app.extensions import db
    from app.models.notify import NotificationCase, NotificationCategory
    from app.models.org import Agency
    from app.models.payments import FeeItem, Payment, PaymentProvider
    from config import Config

    class BenchConfig(Config):
        SQLALCHEMY_DATABASE_URI = url

    app = create_app(BenchConfig)
    with app.app_context():
        upgrade()
        runner = app.test_cli_runner()
        runner.invoke(args=["roles", "sync"])
        runner.invoke(args=["seed", "demo"])
        agency = db.session.scalar(select(Agency).where(Agency.code == "HH-EAST"))
        category = db.session.scalar(select(NotificationCategory).limit(1))
        provider = PaymentProvider(code="bench", name="bench", kind="card_gateway", url="http://127.0.0.1:9",
                                   merchant_id=MERCHANT, merchant_key=KEY, merchant_iv=IV)  # fmt: skip
        fee = FeeItem(code="BENCH", name="bench fee", amount=150, agency=agency, categories=[category],
                      due="after_approval")  # fmt: skip
        db.session.add_all([provider, fee])
        db.session.flush()
        made = []
        now = datetime.datetime.utcnow()
        for n in range(orders):
            case = NotificationCase(case_no=f"B{n:08d}", category=category, agency=agency, status="open",
                                    created_at=now)  # fmt: skip
            order_no, trade_no = f"P{n:018d}", f"T{n:018d}"
            db.session.add(case)
            db.session.add(Payment(order_no=order_no, case=case, fee_item=fee, provider=provider, amount=150,
                                   currency="TWD", method="card", state="pending", provider_trade_no=trade_no,
                                   created_at=now, pending_at=now))  # fmt: skip
            made.append((order_no, trade_no))
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return made


def _body(order_no: str, trade_no: str) -> bytes:
    from app.lib import checkmac

    fields = {"MerchantID": MERCHANT, "MerchantTradeNo": order_no, "RtnCode": "1", "RtnMsg": "Succeeded",
              "TradeNo": trade_no, "TradeAmt": "150", "Currency": "TWD", "PaymentDate": "2026/12/03 10:00:00",
              "PaymentType": "Credit", "SimulatePaid": "0"}  # fmt: skip
    return urllib.parse.urlencode(checkmac.sign(fields, KEY, IV)).encode()


def _load(port: int, path: str, bodies: list[bytes], concurrency: int) -> dict:
    chunks = [bodies[i::concurrency] for i in range(concurrency)]
    times: list[float] = []
    bad = [0]
    lock = threading.Lock()

    def work(mine):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        own = []
        for body in mine:
            t0 = time.perf_counter()
            conn.request("POST", path, body, {"Content-Type": "application/x-www-form-urlencoded"})
            answer = conn.getresponse()
            text = answer.read().decode()
            own.append(time.perf_counter() - t0)
            if answer.status != 200 or text != "1|OK":
                with lock:
                    bad[0] += 1
        with lock:
            times.extend(own)

    threads = [threading.Thread(target=work, args=(c,)) for c in chunks]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    times.sort()
    return {"rps": len(bodies) / elapsed, "p50": times[len(times) // 2] * 1000,
            "p95": times[int(len(times) * 0.95)] * 1000, "errors": bad[0]}  # fmt: skip


def _storm(port: int, url: str, order_no: str, trade_no: str) -> None:
    from sqlalchemy import create_engine, text

    body = _body(order_no, trade_no)
    barrier = threading.Barrier(100)
    answers: list[tuple[int, str]] = []
    lock = threading.Lock()

    def one():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        barrier.wait()
        conn.request("POST", "/payments/notify/bench", body, {"Content-Type": "application/x-www-form-urlencoded"})
        answer = conn.getresponse()
        with lock:
            answers.append((answer.status, answer.read().decode()))

    threads = [threading.Thread(target=one) for _ in range(100)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.perf_counter() - t0
    engine = create_engine(url)
    with engine.connect() as conn:
        state = conn.execute(text("SELECT state FROM payment WHERE order_no = :o"), {"o": order_no}).scalar()
        pid = conn.execute(text("SELECT id FROM payment WHERE order_no = :o"), {"o": order_no}).scalar()
        paid_events = conn.execute(
            text("SELECT count(*) FROM audit_event WHERE action = 'payment.paid' AND object_id = :i"), {"i": str(pid)}
        ).scalar()
        kept = dict(
            conn.execute(
                text("SELECT outcome, count(*) FROM payment_notification WHERE payment_id = :i GROUP BY outcome"),
                {"i": pid},
            ).all()
        )
    engine.dispose()
    acks = sum(1 for status, text_ in answers if status == 200 and text_ == "1|OK")
    print(f"  storm: 100 identical notifications at once for {order_no} in {took * 1000:.0f} ms: {acks} acknowledged "
          f"'1|OK'; payment {state}; payment.paid events {paid_events}; notifications kept {kept}")  # fmt: skip
    print(f"  storm verdict: {'OK' if acks == 100 and paid_events == 1 and state == 'paid' else 'FAILED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1500, help="notifications per side, over all rounds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=100, help="notifications per side before the rounds, not counted")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument(
        "--ratelimit-storage",
        default="redis://127.0.0.1:6379/14",
        help="the rate limits' store, as several hosts share it (memory:// for one host)",
    )
    args = parser.parse_args()
    name = f"bench_payments_{uuid.uuid4().hex[:8]}"
    url = _pg_db(name).render_as_string(hide_password=False)
    procs = []
    try:
        orders = _prepare(url, args.orders + args.warmup + 1)
        storm_order, warm, orders = orders[-1], orders[: args.warmup], orders[args.warmup : -1]
        env = {"DATABASE_URL": url, "PAYMENT_NOTIFY_RATE_LIMIT": "10000000 per minute",
               "RATELIMIT_STORAGE_URI": args.ratelimit_storage,
               "WEB_CONCURRENCY": str(args.workers), "WEB_THREADS": str(args.threads), "TMPDIR": tempfile.gettempdir()}  # fmt: skip
        platform_port = bare_port = _free_port()
        while bare_port == platform_port:
            bare_port = _free_port()
        procs.append(_serve("run:app", platform_port, env))
        procs.append(_serve("bench.bare_payment_app:app", bare_port, env))
        procs.append(_sealer(env))
        # Each gunicorn worker's first requests load what it keeps (permissions, plans): not counted.
        warm_bodies = [_body(*o) for o in warm]
        _load(platform_port, "/payments/notify/bench", warm_bodies, args.concurrency)
        _load(bare_port, "/bare", warm_bodies, args.concurrency)
        per_round = len(orders) // args.rounds
        rounds = []
        for r in range(args.rounds):
            bodies = [_body(*o) for o in orders[r * per_round : (r + 1) * per_round]]
            verified = _load(platform_port, "/payments/notify/bench", bodies, args.concurrency)
            bare = _load(bare_port, "/bare", bodies, args.concurrency)
            rounds.append((verified, bare))
            print(f"  round {r + 1}: verified {verified['rps']:6.1f}/s (errors {verified['errors']}), "
                  f"bare {bare['rps']:6.1f}/s, ratio {verified['rps'] / bare['rps']:.2f}")  # fmt: skip
        print(f"platform DB postgresql; gunicorn {args.workers} workers x {args.threads} threads; {args.rounds} rounds "
              f"of {per_round} notifications (each a different order, paid once), alternating; "
              f"{args.concurrency} clients; {args.warmup} notifications per side first, not counted")  # fmt: skip
        for label, k in (("verified /payments/notify", 0), ("bare INSERT endpoint", 1)):
            med = {key: statistics.median(rnd[k][key] for rnd in rounds) for key in ("rps", "p50", "p95")}
            print(f"  {label:26s} {med['rps']:7.1f} notifications/s   p50 {med['p50']:6.1f} ms   "
                  f"p95 {med['p95']:6.1f} ms  (median round)")  # fmt: skip
        ratio = statistics.median(v["rps"] / b["rps"] for v, b in rounds)
        print(f"  ratio verified/bare: {ratio:.2f} (target >= 0.5)")
        _storm(platform_port, url, *storm_order)
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        _drop(name)


if __name__ == "__main__":
    main()
