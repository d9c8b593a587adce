"""The demo household e-gate: serves the adapter protocol of
``app.connectors.egate`` from the demo household register (household.json).

    make_egate_blueprint("instance/seed/household.json")  # mount it anywhere

Demo and tests only. Every request is checked the way the adapter would
check it (the transaction, the query fields, the identifiers, the
requester); a malformed one gets HTTP 400 and ``{"status": "E400"}``,
never a stack trace. The requests it answered are kept in ``.requests``
of the blueprint (the last 200), so tests can see what was sent.
"""

from __future__ import annotations

import collections
import json
import re
from pathlib import Path

from flask import Blueprint, jsonify, request

from app.connectors.egate import TRANSACTIONS
from app.lib.identifiers import is_person_id

HOUSEHOLD_NO = re.compile(r"^[A-Z0-9]{8}$")


class Register:
    """The household register, indexed for the six transactions."""

    def __init__(self, document: dict):
        self.as_of = document.get("as_of")
        self.households = {h["household_no"]: h for h in document.get("households", [])}
        self.persons = {p["id_no"]: p for p in document.get("persons", [])}
        self.members = collections.defaultdict(list)  # household order kept from the file
        for p in document.get("persons", []):
            self.members[p.get("household_no")].append(p)
        self.name_changes = collections.defaultdict(list)
        for c in document.get("name_changes", []):
            self.name_changes[c["id_no"]].append(c)
        self.household_removals = collections.defaultdict(list)
        for c in document.get("household_removals", []):
            self.household_removals[c["household_no"]].append(c)
        self.person_removals = collections.defaultdict(list)
        for c in document.get("person_removals", []):
            self.person_removals[c["id_no"]].append(c)
        self.address_changes = collections.defaultdict(list)
        for c in document.get("address_changes", []):
            self.address_changes[c["household_no"]].append(c)

    @classmethod
    def from_file(cls, path) -> Register:
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    # -- records -------------------------------------------------------------------

    def person_record(self, p: dict) -> dict:
        h = self.households.get(p.get("household_no"), {})
        return {
            "household_no": p.get("household_no", ""),
            "household_kind": h.get("kind", ""),
            "office": h.get("office", ""),
            "address": h.get("address", ""),
            "head_id_no": h.get("head_id", ""),
            "household_status": h.get("status", ""),
            "relation": p.get("relation", ""),
            "name": p.get("name", ""),
            "id_no": p["id_no"],
            "sex": p.get("sex", ""),
            "birth_date": p.get("birth_date", ""),
            "father": p.get("father", ""),
            "mother": p.get("mother", ""),
            "spouse": p.get("spouse", ""),
            "birthplace": p.get("birthplace", ""),
            "birth_order": p.get("birth_order", ""),
            "military": p.get("military", ""),
            "indigenous": p.get("indigenous", ""),
            "status": p.get("status", ""),
            "notes": "；".join(p.get("notes") or []),
        }

    def _household_no(self, query: dict) -> str | None:
        if query.get("household_no"):
            return query["household_no"] if query["household_no"] in self.households else None
        p = self.persons.get(query.get("id_no", ""))
        return p.get("household_no") if p else None

    def _whole_removal_of(self, p: dict) -> dict | None:
        """The whole-household removal that took this person off the register, if any."""
        if p.get("status") != "除戶" or self.person_removals.get(p["id_no"]):
            return None
        removals = self.household_removals.get(p.get("household_no"), [])
        return removals[-1] if removals else None

    def answer(self, txn: str, query: dict) -> list[dict] | None:
        """The records, or None when no such person or household exists."""
        if txn == "RQ01":
            if query.get("id_no"):
                p = self.persons.get(query["id_no"])
                if p is None or p.get("status") != "現住":
                    return None
                household_no = p["household_no"]
            else:
                household_no = query["household_no"]
                if household_no not in self.households:
                    return None
            members = [self.person_record(m) for m in self.members[household_no] if m.get("status") == "現住"]
            return members or None
        if txn == "RQ02":
            p = self.persons.get(query["id_no"])
            return [self.person_record(p)] if p else None
        if txn == "RQ04":
            p = self.persons.get(query["id_no"])
            if p is None:
                return None
            return [
                {"id_no": p["id_no"], "name": p.get("name", ""), "old_name": c.get("old_name", ""),
                 "new_name": c.get("new_name", ""), "change_date": c.get("date", ""), "reason": c.get("reason", "")}
                for c in sorted(self.name_changes.get(p["id_no"], []), key=lambda c: c.get("date", ""))
            ]  # fmt: skip
        if txn == "RQ07":
            household_no = self._household_no(query)
            if household_no is None:
                return None
            h = self.households[household_no]
            records = []
            for removal in self.household_removals.get(household_no, []):
                for m in self.members[household_no]:
                    if self._whole_removal_of(m) is removal:
                        records.append(
                            {
                                "household_no": household_no,
                                "address": h.get("address", ""),
                                "removal_date": removal.get("date", ""),
                                "reason": removal.get("reason", ""),
                                "detail": removal.get("detail", ""),
                                "relation": m.get("relation", ""),
                                "name": m.get("name", ""),
                                "id_no": m["id_no"],
                            }  # fmt: skip
                        )
            return records
        if txn == "RQ08":
            p = self.persons.get(query["id_no"])
            if p is None:
                return None
            h = self.households.get(p.get("household_no"), {})
            removals = list(self.person_removals.get(p["id_no"], []))
            whole = self._whole_removal_of(p)
            if whole is not None:
                removals.append(whole)
            return [
                {"id_no": p["id_no"], "name": p.get("name", ""), "household_no": p.get("household_no", ""),
                 "address": h.get("address", ""), "removal_date": r.get("date", ""), "reason": r.get("reason", ""),
                 "detail": r.get("detail", "")}
                for r in sorted(removals, key=lambda r: r.get("date", ""))
            ]  # fmt: skip
        if txn == "RQ14":
            household_no = self._household_no(query)
            if household_no is None:
                return None
            return [
                {"household_no": household_no, "old_address": c.get("old_address", ""),
                 "new_address": c.get("new_address", ""), "change_date": c.get("date", ""),
                 "reason": c.get("reason", "")}
                for c in sorted(self.address_changes.get(household_no, []), key=lambda c: c.get("date", ""))
            ]  # fmt: skip
        raise KeyError(txn)


def _reply(status: str, message: str, records=None, http: int = 200):
    body = {"status": status, "message": message}
    if records is not None:
        body["records"] = records
    return jsonify(body), http


def make_egate_blueprint(household_json_path, credentials: tuple[str, str] | None = None) -> Blueprint:
    """A blueprint serving ``GET /ping`` and ``POST /rq/<TXN>``. With
    ``credentials`` (account, secret) every request must bring them as HTTP
    basic auth (E401 otherwise)."""
    register = Register.from_file(household_json_path)
    bp = Blueprint("egate_simulator", __name__)
    bp.requests = collections.deque(maxlen=200)  # type: ignore[attr-defined]
    bp.household_register = register  # type: ignore[attr-defined]

    @bp.before_request
    def _auth():
        if credentials is None:
            return None
        auth = request.authorization
        if auth is None or (auth.username, auth.password) != tuple(credentials):
            return _reply("E401", "authentication required", http=401)
        return None

    @bp.get("/ping")
    def ping():
        return jsonify({"status": "0000", "message": "ok", "as_of": register.as_of})

    @bp.post("/rq/<txn>")
    def transaction(txn: str):
        txn = txn.upper()
        if txn not in TRANSACTIONS:
            return _reply("E400", f"unknown transaction {txn[:10]}", http=400)
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return _reply("E400", "the body must be a JSON object", http=400)
        if body.get("txn") not in (None, txn):
            return _reply("E400", "txn does not match the URL", http=400)
        query, requester = body.get("query"), body.get("requester")
        if not isinstance(query, dict) or not query:
            return _reply("E400", "query must be an object with the query fields", http=400)
        allowed = TRANSACTIONS[txn][1]
        unknown = [k for k in query if k not in allowed]
        if unknown:
            return _reply("E400", f"{txn} accepts only {', '.join(allowed)}", http=400)
        if not all(isinstance(v, str) for v in query.values()):
            return _reply("E400", "query values must be strings", http=400)
        query = {k: v.strip().upper() for k, v in query.items() if v.strip()}
        if not query:
            return _reply("E400", f"{txn} needs {' or '.join(allowed)}", http=400)
        if "id_no" in query and not is_person_id(query["id_no"]):
            return _reply("E400", "id_no is not a valid ID number", http=400)
        if "household_no" in query and not HOUSEHOLD_NO.match(query["household_no"]):
            return _reply("E400", "household_no must be 8 letters or digits", http=400)
        if not isinstance(requester, dict) or not str(requester.get("agency") or "").strip():
            return _reply("E400", "requester.agency is required", http=400)
        if not (str(requester.get("case_no") or "").strip() or str(requester.get("reason") or "").strip()):
            return _reply("E400", "requester.case_no or requester.reason is required", http=400)
        bp.requests.append({"txn": txn, "query": query, "requester": requester})  # type: ignore[attr-defined]
        records = register.answer(txn, query)
        if records is None:
            return _reply("E404", "no such person or household")
        return _reply("0000", f"{TRANSACTIONS[txn][0]} {len(records)} records", records)

    return bp
