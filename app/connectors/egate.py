"""The household registration e-gate (戶役政資訊電子閘門) client.

No public specification of the Ministry of the Interior's messages exists, so
this module defines OUR adapter protocol. A site maps it to the ministry's
real interface with a small adapter service (or replaces this module); the
rest of the platform only sees the records below. The demo and the tests
serve it from ``app.simulators.egate``.

Transport
---------
JSON over HTTP(S), UTF-8. The source's ``url`` is the adapter's base URL.
Optional authentication as for web services: ``options.auth`` "basic"
(account/secret), "bearer" or "header"; ``options.client_cert`` /
``client_key`` for TLS client authentication; ``options.verify`` a CA bundle.

``GET  {url}/ping``  -> ``{"status": "0000", "message": "ok"}`` (test connection)

``POST {url}/rq/{TXN}`` with the request::

    {"txn": "RQ02",
     "query": {"id_no": "A123456789"},
     "requester": {"agency": "<agency code>", "user": "<login>",
                   "case_no": "<case or document number>", "reason": "<why>"}}

and the answer (HTTP 200 whenever the adapter understood the request)::

    {"status": "0000", "message": "...", "records": [{...}, ...]}

Status codes::

    0000  success: ``records`` holds the records (possibly none)
    E400  the request is malformed (unknown field, invalid ID or household number,
          requester missing)                                  -> SourceError config
    E401  the adapter did not accept the credentials          -> SourceError refused
    E403  the requester may not run this transaction          -> SourceError refused
    E404  no such person or household                         -> empty Result
    E429  too many requests; E503 the ministry's side is down -> SourceError unreachable
    E500  anything else                                       -> SourceError bad_response

Every request must carry the requester (agency, user, and a case number or a
reason): the adapter logs it, as the ministry does. Dates are ISO 8601
(``YYYY-MM-DD``); the platform formats them as ROC dates.

Transactions and their records
------------------------------
Query fields: ``id_no`` (national ID, 10 characters) and ``household_no``
(8 characters); each transaction accepts the fields listed and needs one.

RQ01 全戶戶籍 (id_no | household_no): the household's current members, in
household order (戶長, 配偶, 直系尊親屬, 直系卑親屬, ..., 寄居人), one record each,
with the household's fields repeated::

    household_no, household_kind (戶別), office, address, head_id_no,
    household_status, relation (稱謂), name, id_no, sex (男/女), birth_date,
    father, mother, spouse, birthplace, birth_order (出生別), military (役別),
    indigenous (原住民身分及族別), status (現住/除戶), notes (記事, "；"-joined)

RQ02 個人戶籍 (id_no): one record for the person, same fields as RQ01.

RQ04 個人姓名更改 (id_no): one record per change of name, oldest first::

    id_no, name (current), old_name, new_name, change_date, reason

RQ07 全戶除戶 (household_no | id_no): the removal of a whole household, one
record per member it had::

    household_no, address, removal_date, reason, detail, relation, name, id_no

RQ08 個人除戶 (id_no): the person's removals (death, moving out, ...)::

    id_no, name, household_no, address, removal_date, reason, detail

RQ14 門牌異動 (household_no | id_no): changes of the household's door plate::

    household_no, old_address, new_address, change_date, reason

In a form section, ``target`` is the transaction code and the filters map
inputs to the query fields (operator eq). Every record's ``id_no`` (a
household's: each member's) is given back as ``Result.subjects``, shown or
not: the platform records their keyed hashes as the query's data subjects, so
each member sees the query in "who read my data".
"""

from __future__ import annotations

import re
import time

from flask_babel import lazy_gettext as _l
from marshmallow import fields

from app.connectors.base import Entity, Field, Result, SectionSpec, SourceError, register, text
from app.connectors.rest import HttpOptions, HttpSettings, HttpSource, order

TRANSACTIONS = {
    "RQ01": ("全戶戶籍", ("id_no", "household_no")),
    "RQ02": ("個人戶籍", ("id_no",)),
    "RQ04": ("個人姓名更改", ("id_no",)),
    "RQ07": ("全戶除戶", ("household_no", "id_no")),
    "RQ08": ("個人除戶", ("id_no",)),
    "RQ14": ("門牌異動", ("household_no", "id_no")),
}

PERSON_FIELDS = (
    "household_no",
    "household_kind",
    "office",
    "address",
    "head_id_no",
    "household_status",
    "relation",
    "name",
    "id_no",
    "sex",
    "birth_date",
    "father",
    "mother",
    "spouse",
    "birthplace",
    "birth_order",
    "military",
    "indigenous",
    "status",
    "notes",
)
RECORD_FIELDS = {
    "RQ01": PERSON_FIELDS,
    "RQ02": PERSON_FIELDS,
    "RQ04": ("id_no", "name", "old_name", "new_name", "change_date", "reason"),
    "RQ07": ("household_no", "address", "removal_date", "reason", "detail", "relation", "name", "id_no"),
    "RQ08": ("id_no", "name", "household_no", "address", "removal_date", "reason", "detail"),
    "RQ14": ("household_no", "old_address", "new_address", "change_date", "reason"),
}

STATUS_OK = "0000"
STATUS_NOT_FOUND = "E404"
_STATUS_REASON = {"E400": "config", "E401": "refused", "E403": "refused", "E429": "unreachable", "E503": "unreachable"}
# What each status says, in the reader's language (the e-gate and its status code filled in).
_STATUS_WORDS = {
    "E400": lambda where, status: _l(
        "%(where)s rejected the query as malformed (%(status)s)", where=where, status=status
    ),
    "E401": lambda where, status: _l(
        "%(where)s did not accept the credentials (%(status)s)", where=where, status=status
    ),
    "E403": lambda where, status: _l(
        "%(where)s does not allow this agency to run the transaction (%(status)s)", where=where, status=status
    ),
    "E429": lambda where, status: _l("%(where)s is busy: too many requests (%(status)s)", where=where, status=status),
    "E503": lambda where, status: _l(
        "%(where)s reports the ministry's system as unavailable (%(status)s)", where=where, status=status
    ),
}
_STATUS_CODE = re.compile(r"[A-Za-z0-9]{1,8}")


def status_message(where, status: str):
    """The plain words for an e-gate status other than success or not found; an
    unknown status is named only when it looks like a code (the peer's text is never echoed)."""
    words = _STATUS_WORDS.get(status)
    if words is not None:
        return words(where, status)
    if _STATUS_CODE.fullmatch(status):
        return _l("%(where)s reported an error (%(code)s)", where=where, code=status)
    return _l("%(where)s reported an error", where=where)


class EgateOptions(HttpOptions):
    agency = text(20)  # the requesting agency's code when the query carries none


class EgateSettings(HttpSettings):
    options = fields.Nested(EgateOptions, load_default=dict)


@register("egate")
class EgateConnector(HttpSource):
    label = _l("Household e-gate")
    order = 40
    settings_schema = EgateSettings

    @property
    def where(self):
        return _l("the household e-gate at %(host)s", host=self.host)

    def describe(self) -> list[Entity]:
        """The protocol's transactions, their records' fields and the fields each is asked by."""
        return [
            Entity(
                target=txn,
                kind="transaction",
                label=name,
                inputs=inputs,
                columns=tuple(Field(f, "date" if f.endswith("_date") else "text") for f in RECORD_FIELDS[txn]),
            )
            for txn, (name, inputs) in TRANSACTIONS.items()
        ]

    def test(self) -> float:
        started = time.perf_counter()
        response = self.send("GET", "/ping")
        self.check_status(response)
        answer = self.json_of(response)
        if not isinstance(answer, dict) or answer.get("status") != STATUS_OK:
            raise SourceError(_l("%(where)s did not answer the ping", where=self.where), "bad_response")
        return time.perf_counter() - started

    def build_request(self, section: SectionSpec, params: dict) -> dict:
        txn = (section.target or "").strip().upper()
        if txn not in TRANSACTIONS:
            known = ", ".join(TRANSACTIONS)
            message = _l("unknown e-gate transaction '%(txn)s' (known: %(known)s)", txn=section.target, known=known)
            raise SourceError(message, "config")
        allowed = TRANSACTIONS[txn][1]
        fields_ = " / ".join(allowed)
        query = {}
        for flt in section.filters:
            if flt.column not in allowed:
                message = _l(
                    "%(txn)s has no query field '%(field)s' (use %(fields)s)", txn=txn, field=flt.column, fields=fields_
                )
                raise SourceError(message, "config")
            if (flt.op or "eq") != "eq":
                raise SourceError(_l("%(txn)s queries by equality only", txn=txn), "config")
            value = self.filter_value(flt, params)
            if value is not None and str(value).strip():
                query[flt.column] = str(value).strip().upper()
        if not query:
            raise SourceError(_l("%(txn)s needs %(fields)s", txn=txn, fields=fields_), "config")
        requester = params.get("_requester")
        if not isinstance(requester, dict):
            requester = {}
        opts = self.options
        requester = {
            "agency": requester.get("agency") or opts.get("agency") or "",
            "user": requester.get("user") or "",
            "case_no": requester.get("case_no") or "",
            "reason": requester.get("reason") or "",
        }
        return {"txn": txn, "query": query, "requester": requester}

    def fetch(self, section: SectionSpec, params: dict) -> Result:
        body = self.build_request(section, params)
        txn = body["txn"]
        response = self.send("POST", f"/rq/{txn}", json=body)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or "status" not in answer:
            self.check_status(response)
            raise SourceError(_l("%(where)s did not answer in the e-gate protocol", where=self.where), "bad_response")
        status = str(answer.get("status"))
        if status == STATUS_NOT_FOUND:
            return Result(columns=list(section.columns) or list(RECORD_FIELDS[txn]), rows=[], truncated=False)
        if status != STATUS_OK:
            raise SourceError(status_message(self.where, status), _STATUS_REASON.get(status, "bad_response"))
        records = answer.get("records") or []
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise SourceError(_l("%(where)s sent records in an unexpected shape", where=self.where), "bad_response")
        known = RECORD_FIELDS[txn]
        rows = []
        for record in records:  # the protocol's field order first, then any extra fields
            row = {k: record[k] for k in known if k in record}
            row.update({k: v for k, v in record.items() if k not in row})
            rows.append(row)
        if section.order_by:
            rows = order(rows, section.order_by)
        result = self.project(rows, section)
        if not section.columns and not rows:
            result.columns = list(known)
        # every record read names its person (a household's: each member), shown or not
        read = rows[: self.source.row_cap]
        result.subjects = tuple(dict.fromkeys(r["id_no"] for r in read if isinstance(r.get("id_no"), str)))
        return result
