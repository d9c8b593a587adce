"""Serve the demo peers: the household e-gate under /egate and the business
registry under /business, from the files ``python -m seed_data.loader`` wrote.

    python -m app.simulators.serve --port 8031 --seed-dir instance/seed

Tests: ``make_app(seed_dir)`` and werkzeug's ``make_server`` in a thread.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from app.simulators.business import make_business_blueprint
from app.simulators.egate import make_egate_blueprint


def make_app(seed_dir, egate_credentials: tuple[str, str] | None = None) -> Flask:
    seed_dir = Path(seed_dir)
    missing = [n for n in ("household.json", "business.json") if not (seed_dir / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{', '.join(missing)} not found in {seed_dir} (run python -m seed_data.loader)")
    app = Flask("simulators")
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    egate = make_egate_blueprint(seed_dir / "household.json", credentials=egate_credentials)
    app.register_blueprint(egate, url_prefix="/egate")
    app.register_blueprint(make_business_blueprint(seed_dir / "business.json"), url_prefix="/business")
    app.extensions["egate_blueprint"] = egate

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return jsonify({"status": f"E{exc.code}", "error": exc.name}), exc.code

    @app.errorhandler(Exception)
    def any_error(exc: Exception):  # never a stack trace to the caller
        app.logger.exception("simulator error")
        return jsonify({"status": "E500", "error": "internal error"}), 500

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app.simulators.serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8031)
    parser.add_argument("--seed-dir", default="instance/seed", help="where household.json and business.json are")
    args = parser.parse_args(argv)
    try:
        app = make_app(args.seed_dir)
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None
    from werkzeug.serving import make_server

    server = make_server(args.host, args.port, app, threaded=True)
    print(f"simulators on http://{args.host}:{args.port}/egate and /business", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
