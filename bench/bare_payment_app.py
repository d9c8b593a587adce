"""The baseline for bench/payment_bench.py: the same single INSERT of a received
notification as the platform's handler makes, behind a bare Flask endpoint with no
check value, no lock, no audit."""

import datetime
import os

from flask import Flask, request
from sqlalchemy import MetaData, Table, create_engine, insert

app = Flask(__name__)
engine = create_engine(os.environ["DATABASE_URL"], pool_size=5)
notifications = Table("payment_notification", MetaData(), autoload_with=engine)


@app.post("/bare")
def bare():
    form = request.form
    with engine.begin() as conn:
        conn.execute(
            insert(notifications).values(
                order_no=form.get("MerchantTradeNo"),
                trade_no=form.get("TradeNo"),
                amount=form.get("TradeAmt"),
                rtn_code=form.get("RtnCode"),
                outcome="accepted",
                received_at=datetime.datetime.utcnow(),
                client_ip=request.remote_addr,
            )
        )
    return "1|OK", 200, {"Content-Type": "text/plain; charset=utf-8"}
