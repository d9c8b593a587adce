"""The demo business registry web service (JSON), from business.json.

    GET /companies/<ban>        one company, or 404 {"error": ...}
    GET /companies?name=...     companies whose name contains the text:
                                {"data": {"items": [...], "total": n}}
                                optional: status=..., limit=1..500 (default 100)
    GET /                       {"status": "ok", "companies": n}

Demo and tests only. Invalid input gets HTTP 400 with {"error": ...}.
"""

from __future__ import annotations

import json
from pathlib import Path

from flask import Blueprint, jsonify, request

from app.lib.identifiers import is_business_number


def make_business_blueprint(business_json_path) -> Blueprint:
    document = json.loads(Path(business_json_path).read_text(encoding="utf-8"))
    companies = document if isinstance(document, list) else document.get("companies", [])
    by_ban = {c["ban"]: c for c in companies}
    bp = Blueprint("business_simulator", __name__)

    @bp.get("/")
    def health():
        return jsonify({"status": "ok", "companies": len(companies)})

    @bp.get("/companies/<ban>")
    def one(ban: str):
        if not is_business_number(ban):
            return jsonify({"error": "not a valid business number (8 digits with a valid checksum)"}), 400
        company = by_ban.get(ban)
        if company is None:
            return jsonify({"error": "no company with this business number"}), 404
        return jsonify(company)

    @bp.get("/companies")
    def search():
        name = (request.args.get("name") or "").strip()
        if not name or len(name) > 100:
            return jsonify({"error": "name is required (1 to 100 characters)"}), 400
        try:
            limit = int(request.args.get("limit", 100))
        except ValueError:
            return jsonify({"error": "limit must be a number"}), 400
        if not 1 <= limit <= 500:
            return jsonify({"error": "limit must be between 1 and 500"}), 400
        status = (request.args.get("status") or "").strip()
        found = [c for c in companies if name in c.get("name", "") and (not status or c.get("status") == status)]
        return jsonify({"data": {"items": found[:limit], "total": len(found)}})

    return bp
