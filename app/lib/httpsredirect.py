"""The plain-HTTP port: every request is sent on to HTTPS, nothing else is served.

    python -m app.lib.httpsredirect --bind 127.0.0.1:8080 --to https://127.0.0.1:8443

A process of its own beside gunicorn (./run.sh starts it): it reads no body,
sets no cookie and knows nothing of the platform. GET and HEAD get a 301, any
other method a 308 (the browser repeats it, with its body, over HTTPS); the
path and query are kept. The host is kept when it is one of ``--hosts`` (the
names the server certificate is for), otherwise the target's own is used: a
Host header never sends anyone elsewhere.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# A client that sends nothing for this long is dropped (one thread each while they wait).
IDLE_SECONDS = 10


def redirect_target(target: str, hosts: tuple[str, ...], host_header: str | None, path: str) -> str:
    """Where a plain-HTTP request for ``path`` (path and query, as sent) goes."""
    parts = urlsplit(target)
    netloc = parts.netloc
    asked = _host_name(host_header or "")
    if asked and asked in hosts:
        port = f":{parts.port}" if parts.port and parts.port != 443 else ""
        name = f"[{asked}]" if ":" in asked else asked
        netloc = f"{name}{port}"
    if not path.startswith("/") or path.startswith("//"):
        path = "/"  # an absolute-form or odd request target: the home page
    return f"https://{netloc}{path}"


def _host_name(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def make_handler(target: str, hosts: tuple[str, ...]):
    class Redirect(BaseHTTPRequestHandler):
        timeout = IDLE_SECONDS
        protocol_version = "HTTP/1.1"  # every answer says Connection: close
        server_version = "platform-redirect"
        sys_version = ""

        def _redirect(self):
            status = 301 if self.command in ("GET", "HEAD") else 308
            location = redirect_target(target, hosts, self.headers.get("Host"), self.path)
            self.send_response(status)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True

        def __getattr__(self, name):
            if name.startswith("do_"):
                return self._redirect
            raise AttributeError(name)

        def log_message(self, format, *args):  # noqa: A002 (the stdlib's name)
            # The path is not logged: its query string may hold an ID number.
            sys.stderr.write(f"{self.address_string()} {self.command} -> https {args[1] if len(args) > 1 else ''}\n")

    return Redirect


def serve(bind: str, target: str, hosts: tuple[str, ...]) -> ThreadingHTTPServer:
    host, _, port = bind.rpartition(":")
    server = ThreadingHTTPServer((host.strip("[]") or "127.0.0.1", int(port)), make_handler(target, hosts))
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Redirect plain HTTP to the platform's HTTPS address.")
    parser.add_argument("--bind", default="127.0.0.1:8080", help="address:port to listen on")
    parser.add_argument("--to", required=True, help="the HTTPS base address, e.g. https://127.0.0.1:8443")
    parser.add_argument("--hosts", default="127.0.0.1,localhost", help="host names kept as asked (comma-separated)")
    args = parser.parse_args(argv)
    if not args.to.startswith("https://"):
        parser.error("--to must be an https:// address")
    hosts = tuple(h.strip().lower() for h in args.hosts.split(",") if h.strip())
    server = serve(args.bind, args.to.rstrip("/"), hosts)

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"redirecting http://{args.bind}/ to {args.to}", file=sys.stderr, flush=True)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
