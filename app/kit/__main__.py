"""`python -m app.kit encrypt|decrypt ...` (installed: `transfer-kit ...`): the command line of the kit."""

from __future__ import annotations

import argparse
import getpass
import os
import signal
import sys

from . import __version__
from .errors import KitError

EPILOG = """\
exit status: 0 success; 1 the file was refused (damaged, tampered, not for you,
bad signature, untrusted/revoked/expired signer, or with --config not signed by
the case's registered sender); 2 a problem with the key, PIN, certificate or
configuration given; 3 the output could not be written.
The PIN may also come from the KIT_PIN environment variable, or is asked for.
"""


def _prog() -> str:
    """How the user started us: `python -m app.kit`, `python -m county_transfer_kit` or `transfer-kit`."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if not name or name == "__main__.py" or name.startswith("-"):
        return f"python -m {__package__ or 'app.kit'}"
    return os.path.splitext(name)[0]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=_prog(),
        description="簽章加密工具 / sign-and-encrypt kit (CMS, readable by openssl cms)",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("encrypt", help="sign IN and encrypt it for the recipients into OUT", epilog=EPILOG)
    to = e.add_mutually_exclusive_group(required=True)
    to.add_argument("--to", action="append", metavar="CERT", help="a recipient's certificate (repeatable)")
    to.add_argument("--config", metavar="FILE", help="the transfer configuration file from the platform")
    e.add_argument("--sign-key", required=True, metavar="KEY", help="your key: PEM or PKCS#12 (.p12/.pfx)")
    e.add_argument("--sign-cert", metavar="CERT", help="your certificate (optional with a PKCS#12 key)")
    e.add_argument("--chain", action="append", default=[], metavar="CERT", help="CA certificates to include")
    e.add_argument("--pin", help="PIN / password of the key")
    e.add_argument("--trust", action="append", default=[], metavar="CA", help="recipients must chain to these roots")
    e.add_argument("--crl", action="append", default=[], metavar="CRL", help="CRL(s) to check the recipients with")
    e.add_argument("input", metavar="IN")
    e.add_argument("output", metavar="OUT")

    d = sub.add_parser("decrypt", help="decrypt IN, verify its signature and signer, write OUT", epilog=EPILOG)
    d.add_argument("--key", required=True, metavar="KEY", help="your key: PEM or PKCS#12 (.p12/.pfx)")
    d.add_argument("--cert", metavar="CERT", help="your certificate (optional with a PKCS#12 key)")
    d.add_argument(
        "--config",
        metavar="FILE",
        help="the case's configuration file: its trusted roots and CRLs are used, and a payload's signer "
        "must be the case's registered sender",
    )
    d.add_argument(
        "--trust", action="append", default=[], metavar="CA", help="trusted root(s), PEM or DER (or --config)"
    )
    d.add_argument("--crl", action="append", default=[], metavar="CRL", help="CRL(s) to check the signer with")
    d.add_argument(
        "--no-revocation-check",
        action="store_true",
        help="decrypt without CRLs, knowingly (the signer's revocation is then not checked)",
    )
    d.add_argument("--pin", help="PIN / password of the key")
    d.add_argument("input", metavar="IN")
    d.add_argument("output", metavar="OUT")
    return p


def _prompt() -> str | None:
    if not sys.stdin.isatty():
        return None
    return getpass.getpass("PIN: ")


def _encrypt(args: argparse.Namespace) -> None:
    from .commands import encrypt
    from .config import load_config
    from .keys import describe, load_identity, read_certificate, read_crls

    config = load_config(args.config) if args.config else None
    identity = load_identity(args.sign_key, args.sign_cert, args.pin, args.chain, _prompt)
    if config is not None:
        config.check_sender(identity.certificate)
        recipients = [r.certificate for r in config.recipients]
    else:
        recipients = [read_certificate(path) for path in args.to]
    roots = _roots(args.trust)
    crls = [der for path in args.crl for der in read_crls(path)]
    done = encrypt(args.input, args.output, identity, recipients, trust_roots=roots, crls=crls)
    if config is not None:
        print(f"案件 / case: {config.upload_no} ({config.item}) {config.sending_agency} -> {config.receiving_agency}")
    print(f"已簽章並加密 / signed and encrypted: {args.output} ({done.size} bytes)")
    print(f"  簽章者 / signer: {describe(identity.certificate)}")
    for cert in recipients:
        print(f"  收件人 / recipient: {describe(cert)}")
    if config is not None:
        print(f"上傳至 / upload to: {config.upload_url}")


def _decrypt(args: argparse.Namespace) -> None:
    from .commands import decrypt
    from .config import load_config
    from .errors import InputError
    from .keys import load_identity, read_crls

    config = load_config(args.config) if args.config else None
    if config is None and not args.trust:
        raise InputError("請以 --config 或 --trust 提供受信任根憑證 / give the trusted roots with --config or --trust")
    identity = load_identity(args.key, args.cert, args.pin, (), _prompt)
    sender = config.required_signer(identity.certificate) if config is not None else None
    roots = (config.trust_roots if config else []) + _roots(args.trust)
    crls = (config.crls if config else []) + [der for path in args.crl for der in read_crls(path)]
    if not roots:
        raise InputError(
            "設定檔沒有受信任根憑證，請加 --trust / the configuration file has no trusted roots; add --trust"
        )
    signers = decrypt(
        args.input,
        args.output,
        identity,
        roots,
        crls or None,
        check_revocation=not args.no_revocation_check,
        required_signer=sender,
    )
    if config is not None:
        print(f"案件 / case: {config.upload_no} ({config.item}) {config.sending_agency} -> {config.receiving_agency}")
    print(f"簽章有效，已解密 / signature valid, decrypted: {args.output}")
    for signer in signers:
        print("\n".join(signer.lines()))
    if sender is not None:
        print("簽章者即本案登記的寄件人 / the signer is the sender registered for this case")
    if not crls:
        print("注意 / note: --no-revocation-check，未確認撤銷狀態 / revocation was not checked, as asked")


def _roots(paths: list[str]) -> list[bytes]:
    from cryptography.hazmat.primitives import serialization

    from .keys import read_certificates

    return [c.public_bytes(serialization.Encoding.DER) for path in paths for c in read_certificates(path)]


def _terminate(signum, frame) -> None:
    raise SystemExit(128 + signum)  # unwinds, so temporary files are removed


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "encrypt":
            _encrypt(args)
        else:
            _decrypt(args)
    except KitError as exc:
        print(str(exc), file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        # the reader of our report went away (`| head`); the work itself was done
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except MemoryError:
        print("記憶體不足 / out of memory; no output file was left", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: say so in one line, trace only on request
        if os.environ.get("KIT_DEBUG"):
            raise
        print(f"內部錯誤 / internal error ({type(exc).__name__}); set KIT_DEBUG=1 for details", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("已中斷，未留下輸出檔 / interrupted; no output file was left", file=sys.stderr)
        return 130
    return 0


def cli() -> int:
    """The installed `transfer-kit` command (and `python -m`): main() with SIGTERM unwinding too."""
    signal.signal(signal.SIGTERM, _terminate)
    return main()


if __name__ == "__main__":
    sys.exit(cli())
