"""Sign+encrypt and decrypt+verify of one big file for 3 recipients: the kit
(`python -m app.kit`, one process each way) against openssl in the same run
(`openssl cms -sign -stream | openssl cms -encrypt -stream`, and
`openssl cms -decrypt | openssl cms -verify`).

    .venv/bin/python bench/crypto_bench.py [--size-mib 1024] [--rounds 1] [--dir /tmp] [--keep]

Prints wall time and peak RSS of each side (for a pipeline, the largest of its
processes, each measured under /usr/bin/time when it exists), and the ratios
kit/openssl. Both sides use PEM keys, SHA-256, AES-256-CBC, RSA 2048, and CRLs
when verifying. The kit also fsyncs its output before renaming it; openssl
does not.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MIB = 1 << 20
TIME = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
RECIPIENTS = ["bench.tax", "bench.land", "bench.fire"]


def _make_input(path: Path, size_mib: int) -> str:
    """A file of the given size (a random MiB, rotated), and its SHA-256."""
    block = os.urandom(MIB)
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        for i in range(size_mib):
            piece = block[i % MIB :] + block[: i % MIB]
            f.write(piece)
            digest.update(piece)
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _pipeline(stages: list[list[str]], tmp: Path) -> tuple[float, float, float, list[int]]:
    """Run commands piped into each other; wall seconds, seconds more until the output
    is on disk (the kit fsyncs before it exits, openssl leaves that to the kernel),
    largest peak RSS (MiB), exit codes."""
    os.sync()  # earlier runs' dirty pages are not this run's cost
    procs, rss_files = [], []
    errs = contextlib.ExitStack()
    t0 = time.perf_counter()
    prev = None
    for i, cmd in enumerate(stages):
        rss_file = tmp / f".rss-{i}"
        rss_files.append(rss_file)
        wrapped = [TIME, "-f", "%M", "-o", str(rss_file), *cmd] if TIME else cmd
        last = i == len(stages) - 1
        p = subprocess.Popen(wrapped, cwd=ROOT, stdin=prev.stdout if prev else subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL if last else subprocess.PIPE,
                             stderr=errs.enter_context(open(tmp / f".err-{i}", "wb")))  # fmt: skip
        if prev is not None:
            prev.stdout.close()
        procs.append(p)
        prev = p
    peaks, codes = [], []
    for i, (p, rss_file) in enumerate(zip(procs, rss_files)):
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        codes.append(p.returncode)
        if p.returncode:
            sys.stderr.write((tmp / f".err-{i}").read_text(errors="replace"))
        if TIME and rss_file.exists():
            peaks.append(int(rss_file.read_text().split()[-1]) / 1024)
            rss_file.unlink()
        else:
            peaks.append(usage.ru_maxrss / 1024)  # an upper bound: includes this process's RSS at fork
    errs.close()
    wall = time.perf_counter() - t0
    os.sync()
    return wall, time.perf_counter() - t0 - wall, max(peaks), codes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=1, help="repeat and keep each side's best time")
    parser.add_argument("--dir", default=None, help="where the files go (needs 5x the size free)")
    parser.add_argument("--keep", action="store_true", help="keep the files")
    args = parser.parse_args()

    from app.kit.demo_pki import make_pki

    work = Path(tempfile.mkdtemp(prefix="crypto-bench-", dir=args.dir))
    try:
        pki = make_pki(work / "pki", ["bench.social:社會處", *(f"{r}:機關" for r in RECIPIENTS)], pin="")
        s, rs = pki.staff["bench.social"], [pki.staff[r] for r in RECIPIENTS]
        r0 = rs[0]
        plain = work / "plain.bin"
        t0 = time.perf_counter()
        want = _make_input(plain, args.size_mib)
        print(f"input: {args.size_mib} MiB written in {time.perf_counter() - t0:.1f} s; "
              f"3 recipients, RSA 2048, SHA-256, AES-256-CBC; rusage via {TIME or 'wait4 (upper bound)'}")  # fmt: skip

        py = [sys.executable, "-m", "app.kit"]
        kit_enc = [*py, "encrypt", *sum((["--to", str(r.cert)] for r in rs), []), "--sign-key", str(s.key),
                   "--sign-cert", str(s.cert), "--chain", str(pki.intermediate_cert), str(plain), str(work / "kit.p7m")]  # fmt: skip
        ossl_enc = [
            ["openssl", "cms", "-sign", "-binary", "-nodetach", "-stream", "-in", str(plain), "-signer", str(s.cert),
             "-inkey", str(s.key), "-certfile", str(pki.intermediate_cert), "-md", "sha256", "-outform", "DER"],
            ["openssl", "cms", "-encrypt", "-stream", "-binary", "-aes-256-cbc", "-outform", "DER",
             "-out", str(work / "ossl.p7m"), *(str(r.cert) for r in rs)],
        ]  # fmt: skip
        crls = [str(c) for c in pki.crls]
        # openssl cms takes CRLs from its -CAfile
        with_crls = work / "ca-and-crls.pem"
        with_crls.write_bytes(pki.ca_bundle.read_bytes() + b"".join(c.read_bytes() for c in pki.crls))
        kit_dec = [*py, "decrypt", "--key", str(r0.key), "--cert", str(r0.cert), "--trust", str(pki.ca_bundle),
                   *sum((["--crl", c] for c in crls), []), str(work / "kit.p7m"), str(work / "kit.out")]  # fmt: skip
        ossl_dec = [
            ["openssl", "cms", "-decrypt", "-inform", "DER", "-in", str(work / "ossl.p7m"), "-recip", str(r0.cert),
             "-inkey", str(r0.key)],
            ["openssl", "cms", "-verify", "-inform", "DER", "-CAfile", str(with_crls), "-crl_check_all",
             "-out", str(work / "ossl.out")],
        ]  # fmt: skip

        results: dict[tuple[str, str], tuple[float, float, float]] = {}
        for _ in range(args.rounds):
            for key, stages in ((("encrypt", "openssl"), ossl_enc), (("encrypt", "kit"), [kit_enc]),
                                (("decrypt", "openssl"), ossl_dec), (("decrypt", "kit"), [kit_dec])):  # fmt: skip
                wall, flush, rss, codes = _pipeline(stages, work)
                if any(codes):
                    raise SystemExit(f"{key}: exit codes {codes}")
                best = results.get(key)
                results[key] = min((wall, flush, rss), best) if best else (wall, flush, rss)

        for name in ("kit.out", "ossl.out"):
            if _sha256(work / name) != want:
                raise SystemExit(f"{name} differs from the input")
        sizes = {n: (work / n).stat().st_size for n in ("kit.p7m", "ossl.p7m")}
        print(f"output: kit {sizes['kit.p7m']:,} bytes (DER), openssl {sizes['ossl.p7m']:,} bytes (BER -stream); "
              "both decrypted back to the input")  # fmt: skip
        print("  wall time (+ time until the output was on disk) and peak RSS")
        for op, label in (("encrypt", "sign+encrypt"), ("decrypt", "decrypt+verify")):
            (kt, kf, km), (ot, of, om) = results[(op, "kit")], results[(op, "openssl")]
            print(f"  {label:15s} kit {kt:6.2f} s (+{kf:4.2f}) {km:6.1f} MiB   openssl {ot:6.2f} s (+{of:4.2f}) "
                  f"{om:7.1f} MiB   kit/openssl {kt / ot:.2f} (to disk {(kt + kf) / (ot + of):.2f})")  # fmt: skip
    finally:
        if args.keep:
            print(f"files kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
