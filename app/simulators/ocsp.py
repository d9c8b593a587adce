"""The demo PKI's revocation services: one real `openssl ocsp` responder per issuing CA
(reading the CA's index file) and a small HTTP server publishing the CRLs.

    python -m app.simulators.ocsp OUTDIR [--log-dir DIR]

OUTDIR is what `python -m app.simulators.cardpki` wrote; the ports are those in
its cards.json (the certificates name them). Runs until SIGTERM or Ctrl-C and
stops its responders with itself. Tests: `Responders(OUTDIR)` as a context
manager; `stop_ocsp()` and `stop_crl()` take one service away mid-test.
"""

from __future__ import annotations

import argparse
import ctypes
import re
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from app.simulators.cardpki import OCSP_MINUTES, load_manifest

_CRL_PATH = re.compile(r"^/crl/([a-z][a-z0-9-]{0,31})\.crl(\.pem)?$")
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the starter dies, even by SIGKILL (Linux)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


class _CrlHandler(BaseHTTPRequestHandler):
    crl_dir: Path = Path()

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        m = _CRL_PATH.match(self.path)
        path = self.crl_dir / f"{m.group(1)}.crl{m.group(2) or ''}" if m else None
        if path is None or not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-pem-file" if m.group(2) else "application/pkix-crl")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args) -> None:  # noqa: A002 (http.server's signature)
        pass


class _Responder:
    """One `openssl ocsp` process; ready once it printed its ACCEPT line."""

    def __init__(self, outdir: Path, ca: str, port: int, log: Path | None):
        folder = outdir / "ocsp" / ca
        command = [
            "openssl", "ocsp", "-index", str(folder / "index.txt"), "-port", str(port),
            "-rsigner", str(folder / "responder.pem"), "-rkey", str(folder / "responder.key"),
            "-CA", str(folder / "ca.pem"), "-nmin", str(OCSP_MINUTES), "-ignore_err",
        ]  # fmt: skip
        self.ca, self.port = ca, port
        self.ready = threading.Event()
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )  # fmt: skip
        self._log = log.open("a", encoding="utf-8") if log else None
        self._drain = threading.Thread(target=self._read, name=f"ocsp-{ca}", daemon=True)
        self._drain.start()

    def _read(self) -> None:
        for raw in self.process.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            if len(self.lines) < 50:
                self.lines.append(line)
            if line.startswith("ACCEPT"):
                self.ready.set()
            if self._log:
                self._log.write(f"[{self.ca}] {line}\n")
                self._log.flush()
        self.ready.set()  # ended: whoever waits finds out from returncode

    def wait_ready(self, timeout: float) -> None:
        if not self.ready.wait(timeout) or self.process.poll() is not None:
            self.stop()
            detail = "; ".join(self.lines[-3:]) or "no output"
            raise RuntimeError(f"openssl ocsp for {self.ca} did not start on port {self.port}: {detail}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._drain.join(5)
        self.process.stdout.close()
        if self._log:
            self._log.close()
            self._log = None


class Responders:
    """The OCSP responders and the CRL server of one demo PKI directory."""

    def __init__(self, outdir, log_dir=None, host: str = "127.0.0.1"):
        self.outdir = Path(outdir)
        self.manifest = load_manifest(self.outdir)
        self.log_dir = Path(log_dir) if log_dir else None
        self.host = host
        self.ocsp: list[_Responder] = []
        self.crl_server: ThreadingHTTPServer | None = None
        self._crl_thread: threading.Thread | None = None

    def start(self, timeout: float = 20) -> Responders:
        self.start_crl()
        self.start_ocsp(timeout)
        return self

    def start_ocsp(self, timeout: float = 20) -> None:
        if self.ocsp:
            return
        log = self.log_dir / "ocsp.log" if self.log_dir else None
        try:
            for entry in self.manifest["ocsp"]:
                self.ocsp.append(_Responder(self.outdir, entry["ca"], entry["port"], log))
            for responder in self.ocsp:
                responder.wait_ready(timeout)
        except BaseException:
            self.stop_ocsp()
            raise

    def start_crl(self) -> None:
        if self.crl_server:
            return
        handler = type("CrlHandler", (_CrlHandler,), {"crl_dir": self.outdir / "crl"})
        self.crl_server = ThreadingHTTPServer((self.host, self.manifest["port_base"]), handler)
        self.crl_server.daemon_threads = True
        self._crl_thread = threading.Thread(target=self.crl_server.serve_forever, name="crl", daemon=True)
        self._crl_thread.start()

    def stop_ocsp(self) -> None:
        for responder in self.ocsp:
            responder.stop()
        self.ocsp = []

    def stop_crl(self) -> None:
        if self.crl_server:
            self.crl_server.shutdown()
            self.crl_server.server_close()
            self._crl_thread.join(5)
            self.crl_server = None

    def stop(self) -> None:
        self.stop_ocsp()
        self.stop_crl()

    def __enter__(self) -> Responders:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.simulators.ocsp", description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", type=Path, help="the directory python -m app.simulators.cardpki wrote")
    parser.add_argument("--log-dir", type=Path, help="append the responders' output to DIR/ocsp.log")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        responders = Responders(args.outdir, args.log_dir)
    except FileNotFoundError:
        print(f"no cards.json in {args.outdir} (run python -m app.simulators.cardpki first)", file=sys.stderr)
        return 2
    try:
        responders.start()
        m = responders.manifest
        services = ", ".join(f"{o['ca']} {o['url']}" for o in m["ocsp"])
        print(f"CRLs on {m['crl_url']}; OCSP: {services}", flush=True)
        while True:
            signal.pause()
    except KeyboardInterrupt:
        return 0
    finally:
        responders.stop()


if __name__ == "__main__":
    sys.exit(main())
