"""The protocol of Taiwan's hosted-page gateways (ECPay's in outline), shared by the kinds.

Every message carries a CheckMacValue (``app.lib.checkmac``) over its fields
with the merchant's HashKey and HashIV, both ways: the platform signs its
requests and checks every answer and notification.

    POST {url}/checkout    signed order -> {RtnCode, PaymentURL, TradeNo, CheckMacValue}
    POST {url}/query       MerchantTradeNo -> {TradeStatus 1|0|failed|R, TradeNo, TradeAmt, CheckMacValue}
    POST {url}/refund      MerchantTradeNo, TradeNo, TotalAmount -> {RtnCode}
    POST {url}/settlement  Date -> the day's settlement CSV
    POST {url}/ping        -> {RtnCode}: the credentials are right
    the notification       form posted to our ReturnURL, acknowledged with "1|OK"
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Mapping

import httpx
from flask_babel import lazy_gettext as _l

from app.lib import checkmac
from app.services.payments.providers import (
    BadCheckValue,
    Checkout,
    Notice,
    Order,
    Provider,
    ProviderError,
    Status,
)

ACK = "1|OK"
_STATES = {"1": "paid", "0": "unpaid", "R": "refunded", "10200095": "failed"}


class GatewayProvider(Provider):
    """A kind of this protocol names only its ``choose_payment`` (the gateway's payment type)."""

    choose_payment = ""

    def _signed(self, fields: Mapping[str, object]) -> dict[str, str]:
        return checkmac.sign({"MerchantID": self.config.merchant_id, **fields}, self.config.key, self.config.iv)

    def _post(self, path: str, fields: Mapping[str, object]) -> httpx.Response:
        url = self.config.url.rstrip("/") + path
        try:
            response = httpx.post(url, data=self._signed(fields), timeout=self.config.timeout)
        except httpx.TimeoutException:
            raise ProviderError(_l("the payment gateway did not answer in time"), "timeout") from None
        except httpx.HTTPError:
            raise ProviderError(_l("the payment gateway cannot be reached"), "unreachable") from None
        if response.status_code >= 500:
            raise ProviderError(_l("the payment gateway is out of order"), "unreachable")
        return response

    def _answer(self, path: str, fields: Mapping[str, object]) -> dict[str, str]:
        """A signed JSON answer, its check value verified."""
        response = self._post(path, fields)
        try:
            body = response.json()
        except ValueError:
            raise ProviderError(_l("the payment gateway answered something unreadable"), "bad_response") from None
        if not isinstance(body, dict):
            raise ProviderError(_l("the payment gateway answered something unreadable"), "bad_response")
        body = {str(k): "" if v is None else str(v) for k, v in body.items()}
        if body.get("RtnCode", "1") != "1" and "TradeStatus" not in body:
            # a refusal changes nothing, so it is reported whatever its check value
            if "CheckMacValue" in body.get("RtnMsg", ""):
                raise ProviderError(_l("the gateway refused the merchant's credentials"), "refused")
            raise ProviderError(_l("the payment gateway refused the request"), "refused")
        if not checkmac.verify(body, self.config.key, self.config.iv):
            raise ProviderError(_l("the payment gateway's answer does not carry a valid check value"), "bad_response")
        return body

    def checkout(self, order: Order) -> Checkout:
        body = self._answer(
            "/checkout",
            {
                "MerchantTradeNo": order.order_no,
                "MerchantTradeDate": order.created_at,
                "PaymentType": "aio",
                "TotalAmount": order.amount,
                "Currency": "TWD",
                "TradeDesc": order.description,
                "ItemName": order.item_name,
                "ReturnURL": order.notify_url,
                "OrderResultURL": order.return_url,
                "ChoosePayment": self.choose_payment,
                "EncryptType": 1,
            },
        )
        if body.get("MerchantTradeNo") != order.order_no or not body.get("PaymentURL"):
            raise ProviderError(_l("the payment gateway answered something unreadable"), "bad_response")
        return Checkout(redirect_url=body["PaymentURL"], trade_no=body.get("TradeNo", ""))

    def notice(self, form: Mapping[str, str]) -> Notice:
        if not checkmac.verify(form, self.config.key, self.config.iv):
            raise BadCheckValue()
        amount = form.get("TradeAmt", "")
        return Notice(
            merchant_id=form.get("MerchantID", ""),
            order_no=form.get("MerchantTradeNo", ""),
            trade_no=form.get("TradeNo", ""),
            amount=int(amount) if amount.isdigit() and len(amount) <= 9 else None,
            currency=form.get("Currency", "TWD"),
            paid=form.get("RtnCode") == "1",
            rtn_code=form.get("RtnCode", "")[:10],
        )

    def query(self, order_no: str) -> Status:
        body = self._answer("/query", {"MerchantTradeNo": order_no, "TimeStamp": int(time.time())})
        if body.get("MerchantTradeNo") != order_no:
            raise ProviderError(_l("the payment gateway answered something unreadable"), "bad_response")
        amount = body.get("TradeAmt", "")
        return Status(
            order_no=order_no,
            state=_STATES.get(body.get("TradeStatus", ""), "unknown"),
            trade_no=body.get("TradeNo", ""),
            amount=int(amount) if amount.isdigit() else None,
        )

    def refund(self, order_no: str, trade_no: str, amount: int) -> None:
        self._answer(
            "/refund", {"MerchantTradeNo": order_no, "TradeNo": trade_no, "Action": "R", "TotalAmount": amount}
        )

    def settlement(self, day: datetime.date) -> str:
        response = self._post("/settlement", {"Date": day.isoformat(), "TimeStamp": int(time.time())})
        if response.status_code != 200:
            raise ProviderError(_l("the payment gateway refused the request"), "refused")
        return response.text

    def test(self) -> float:
        started = time.perf_counter()
        body = self._answer("/ping", {"TimeStamp": int(time.time())})
        if body.get("RtnCode") != "1":
            raise ProviderError(_l("the gateway refused the merchant's credentials"), "refused")
        return time.perf_counter() - started
