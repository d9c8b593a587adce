"""The demo payment gateway: a hosted payment page for credit card, chip financial
card (晶片金融卡, WebATM) and bank account debit, in the outline of Taiwan's
gateways (ECPay's): every message signed with a CheckMacValue over the
merchant's HashKey and HashIV (``app.lib.checkmac``).

    POST /checkout          the shop's signed order -> {RtnCode, PaymentURL, TradeNo} (signed)
    GET  /pay/<token>       the payment page: pay, fail or cancel
    POST /pay/<token>       the payer's choice; the browser goes back to OrderResultURL
                            (unsigned: a shop must not believe it), and the signed
                            notification is posted to ReturnURL, retried until the shop
                            answers exactly "1|OK"
    POST /query             an order's state (signed answer)
    POST /refund            refund a paid order
    POST /settlement        the day's settlement file (CSV)
    POST /ping              the credentials are right
    GET  /control/orders/<order_no>, POST /control: for tests and demos (lose the
                            next notifications, add or leave out settlement rows)

    python -m app.simulators.paygate --port 8032 --merchant-id 3002607 \
        --hash-key pwFHCqoQZGmho4w6 --hash-iv EkRm7iFT261dpevs

Demo and tests only; never imported by the platform.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import html
import io
import secrets
import threading
import time

import httpx
from flask import Flask, Response, abort, jsonify, redirect, request

from app.lib import checkmac

ACK = "1|OK"
METHODS = {
    "Credit": "信用卡 Credit card",
    "WebATM": "晶片金融卡 Chip financial card",
    "AccountDebit": "存款帳戶 Bank account",
}
TAIPEI = datetime.timezone(datetime.timedelta(hours=8))


class Gateway:
    def __init__(self, merchant_id: str, key: str, iv: str, retry_seconds: float = 1.0, max_tries: int = 30):
        self.merchant_id, self.key, self.iv = merchant_id, key, iv
        self.retry_seconds, self.max_tries = retry_seconds, max_tries
        self.orders: dict[str, dict] = {}
        self.tokens: dict[str, str] = {}
        self.lock = threading.Lock()
        self.drop_notifications = 0
        self.settlement_extra: list[dict] = []
        self.settlement_omit: set[str] = set()
        self.amount_override: dict[str, int] = {}

    def sign(self, fields: dict) -> dict:
        return checkmac.sign({"MerchantID": self.merchant_id, **fields}, self.key, self.iv)

    def verified(self, form) -> bool:
        return form.get("MerchantID") == self.merchant_id and checkmac.verify(form, self.key, self.iv)

    def notification(self, order: dict) -> dict:
        return self.sign(
            {
                "MerchantTradeNo": order["order_no"],
                "RtnCode": "1" if order["state"] == "paid" else "10200095",
                "RtnMsg": "Succeeded" if order["state"] == "paid" else "Failed",
                "TradeNo": order["trade_no"],
                "TradeAmt": order["amount"],
                "Currency": "TWD",
                "PaymentDate": order.get("paid_at") or "",
                "PaymentType": order["payment"],
                "SimulatePaid": "0",
            }
        )

    def notify(self, order: dict) -> None:
        """Post the signed notification until the shop acknowledges it with "1|OK"."""
        fields = self.notification(order)
        for attempt in range(1, self.max_tries + 1):
            order["notify_attempts"] = attempt
            try:
                answer = httpx.post(order["notify_url"], data=fields, timeout=10)
                if answer.status_code == 200 and answer.text.strip() == ACK:
                    order["acknowledged"] = True
                    return
            except httpx.HTTPError:
                pass
            time.sleep(min(self.retry_seconds * attempt, 60))


def make_app(gateway: Gateway) -> Flask:
    app = Flask("paygate")
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    app.extensions["paygate"] = gateway
    gw = gateway

    def refused(message: str, status: int = 400):
        return jsonify(gw.sign({"RtnCode": "0", "RtnMsg": message})), status

    @app.get("/")
    def health():
        return jsonify({"status": "ok", "orders": len(gw.orders)})

    @app.post("/ping")
    def ping():
        if not gw.verified(request.form):
            return refused("CheckMacValue error")
        return jsonify(gw.sign({"RtnCode": "1", "RtnMsg": "OK"}))

    @app.post("/checkout")
    def checkout():
        form = request.form
        if not gw.verified(form):
            return refused("CheckMacValue error")
        order_no = form.get("MerchantTradeNo", "")
        amount = form.get("TotalAmount", "")
        if not (order_no.isalnum() and len(order_no) <= 20) or not amount.isdigit() or int(amount) <= 0:
            return refused("MerchantTradeNo or TotalAmount error")
        if form.get("ChoosePayment") not in METHODS or form.get("Currency", "TWD") != "TWD":
            return refused("ChoosePayment error")
        with gw.lock:
            if order_no in gw.orders:
                return refused("MerchantTradeNo duplicate")
            token = secrets.token_urlsafe(16)
            order = {
                "order_no": order_no,
                "trade_no": time.strftime("%y%m%d%H%M%S") + f"{secrets.randbelow(10**6):06d}",
                "amount": int(amount),
                "item": form.get("ItemName", ""),
                "payment": form.get("ChoosePayment"),
                "notify_url": form.get("ReturnURL", ""),
                "return_url": form.get("OrderResultURL", ""),
                "state": "unpaid",
                "token": token,
                "notify_attempts": 0,
                "acknowledged": False,
            }
            gw.orders[order_no] = order
            gw.tokens[token] = order_no
        url = request.host_url.rstrip("/") + f"/pay/{token}"
        return jsonify(
            gw.sign({"RtnCode": "1", "MerchantTradeNo": order_no, "TradeNo": order["trade_no"], "PaymentURL": url})
        )

    def order_of(token: str) -> dict:
        order_no = gw.tokens.get(token)
        if order_no is None:
            abort(404)
        return gw.orders[order_no]

    @app.get("/pay/<token>")
    def page(token):
        order = order_of(token)
        return Response(_page(order), content_type="text/html; charset=utf-8")

    @app.post("/pay/<token>")
    def choose(token):
        order = order_of(token)
        action = request.form.get("action")
        if action not in ("pay", "fail", "cancel"):
            abort(400)
        with gw.lock:
            if order["state"] != "unpaid":
                abort(409)
            if action == "pay":
                order["state"] = "paid"
                order["paid_at"] = datetime.datetime.now(TAIPEI).strftime("%Y/%m/%d %H:%M:%S")
            elif action == "fail":
                order["state"] = "failed"
            else:
                order["state"] = "cancelled"
            lost = action != "cancel" and gw.drop_notifications > 0
            if lost:
                gw.drop_notifications -= 1
        if action != "cancel" and not lost and order["notify_url"]:
            threading.Thread(target=gw.notify, args=(order,), daemon=True).start()
        # The browser's way back carries no check value; a tampering payer may change it.
        code = "1" if action == "pay" else "0"
        target = order["return_url"] or request.host_url
        sep = "&" if "?" in target else "?"
        return redirect(
            f"{target}{sep}MerchantTradeNo={order['order_no']}&RtnCode={code}&TradeAmt={order['amount']}", 303
        )

    @app.post("/query")
    def query():
        if not gw.verified(request.form):
            return refused("CheckMacValue error")
        order = gw.orders.get(request.form.get("MerchantTradeNo", ""))
        if order is None:
            return jsonify(gw.sign({"MerchantTradeNo": request.form.get("MerchantTradeNo", ""), "TradeStatus": "0"}))
        status = {"paid": "1", "refunded": "R", "failed": "10200095"}.get(order["state"], "0")
        return jsonify(
            gw.sign(
                {
                    "MerchantTradeNo": order["order_no"],
                    "TradeNo": order["trade_no"],
                    "TradeAmt": order["amount"],
                    "TradeStatus": status,
                    "PaymentDate": order.get("paid_at", ""),
                }
            )
        )

    @app.post("/refund")
    def refund():
        form = request.form
        if not gw.verified(form):
            return refused("CheckMacValue error")
        with gw.lock:
            order = gw.orders.get(form.get("MerchantTradeNo", ""))
            if order is None or order["trade_no"] != form.get("TradeNo") or order["state"] != "paid":
                return refused("Trade not found or not refundable")
            if str(order["amount"]) != form.get("TotalAmount"):
                return refused("TotalAmount error")
            order["state"] = "refunded"
            order["refunded_at"] = datetime.datetime.now(TAIPEI).strftime("%Y/%m/%d %H:%M:%S")
        return jsonify(gw.sign({"RtnCode": "1", "RtnMsg": "OK", "MerchantTradeNo": order["order_no"]}))

    @app.post("/settlement")
    def settlement():
        if not gw.verified(request.form):
            return refused("CheckMacValue error")
        try:
            day = datetime.date.fromisoformat(request.form.get("Date", ""))
        except ValueError:
            return refused("Date error")
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["date", "merchant_trade_no", "trade_no", "payment_type", "amount", "status"])
        prefix = day.strftime("%Y/%m/%d")
        for order in list(gw.orders.values()):
            if order["state"] in ("paid", "refunded") and order.get("paid_at", "").startswith(prefix):
                if order["order_no"] in gw.settlement_omit:
                    continue
                amount = gw.amount_override.get(order["order_no"], order["amount"])
                writer.writerow([day.isoformat(), order["order_no"], order["trade_no"], order["payment"], amount,
                                 order["state"]])  # fmt: skip
        for row in gw.settlement_extra:
            writer.writerow([day.isoformat(), row["order_no"], row.get("trade_no", "X"), "Credit", row["amount"],
                             row.get("status", "paid")])  # fmt: skip
        return Response(out.getvalue(), content_type="text/csv; charset=utf-8")

    @app.get("/control/orders/<order_no>")
    def control_order(order_no):
        order = gw.orders.get(order_no)
        if order is None:
            abort(404)
        return jsonify({k: v for k, v in order.items() if k != "token"})

    @app.post("/control")
    def control():
        body = request.get_json(silent=True) or {}
        with gw.lock:
            if "drop_notifications" in body:
                gw.drop_notifications = int(body["drop_notifications"])
            if "settlement_extra" in body:
                gw.settlement_extra = list(body["settlement_extra"])
            if "settlement_omit" in body:
                gw.settlement_omit = set(body["settlement_omit"])
            if "amount_override" in body:
                gw.amount_override = {str(k): int(v) for k, v in body["amount_override"].items()}
        return jsonify({"status": "ok"})

    return app


def _page(order: dict) -> str:
    e = html.escape
    kind = order["payment"]
    if kind == "Credit":
        fields = (
            '<label>卡號 Card number <input name="card" value="4311-9522-2222-2222" autocomplete="off"></label>'
            '<label>有效期限 Expiry <input name="expiry" value="12/30"></label>'
            '<label>末三碼 CVC <input name="cvc" value="222"></label>'
        )
    elif kind == "WebATM":
        fields = (
            "<p>請將晶片金融卡插入讀卡機 / Insert your chip financial card into the reader.</p>"
            '<label>晶片卡密碼 Card PIN <input name="pin" type="password" value="123456"></label>'
        )
    else:
        fields = (
            '<label>銀行代碼 Bank code <input name="bank" value="812"></label>'
            '<label>帳號 Account <input name="account" value="00012345678901"></label>'
        )
    done = order["state"] != "unpaid"
    buttons = (
        f"<p class=done>此訂單已處理 / This order is {e(order['state'])}.</p>"
        if done
        else '<button name="action" value="pay" id="pay">確認付款 Pay</button>'
        '<button name="action" value="fail" id="fail">付款失敗 Fail</button>'
        '<button name="action" value="cancel" id="cancel">取消 Cancel</button>'
    )
    return f"""<!doctype html><html lang="zh-Hant-TW"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>示範金流 Demo payment gateway</title>
<style>body{{font-family:sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem}}label{{display:block;margin:.5rem 0}}
input{{display:block;width:100%;padding:.4rem}}button{{margin:.5rem .5rem 0 0;padding:.5rem 1rem}}
.amount{{font-size:1.5rem;font-weight:bold}}</style></head><body>
<h1>示範金流付款頁 Demo payment page</h1>
<p>訂單編號 Order <strong id="order">{e(order["order_no"])}</strong></p>
<p>{e(order["item"])}</p><p class="amount" id="amount">NT$ {order["amount"]}</p>
<p>付款方式 Method: {e(METHODS.get(kind, kind))}</p>
<form method="post">{fields}{buttons}</form></body></html>"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app.simulators.paygate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8032)
    parser.add_argument("--merchant-id", default="3002607")
    parser.add_argument("--hash-key", default="pwFHCqoQZGmho4w6")
    parser.add_argument("--hash-iv", default="EkRm7iFT261dpevs")
    parser.add_argument("--retry-seconds", type=float, default=1.0, help="first wait between notification retries")
    args = parser.parse_args(argv)
    from werkzeug.serving import make_server

    gateway = Gateway(args.merchant_id, args.hash_key, args.hash_iv, retry_seconds=args.retry_seconds)
    server = make_server(args.host, args.port, make_app(gateway), threaded=True)
    print(f"payment gateway simulator on http://{args.host}:{args.port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
