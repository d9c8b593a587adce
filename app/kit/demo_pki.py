"""A test PKI for demos and tests: root CA -> intermediate CA -> staff certificates,
plus one revoked, one expired, one untrusted (another root) and one unsuitable
(key usage neither signing nor encryption) certificate to try refusals with.

    from app.kit.demo_pki import StaffSpec, make_pki
    pki = make_pki(directory, [StaffSpec("transfer.social", "社會處")], pin="1234")
    pki.staff["transfer.social"].p12, pki.ca_bundle, pki.crls

    python -m app.kit.demo_pki OUTDIR --staff transfer.social:社會處 --staff transfer.tax:地方稅務局 --pin 1234

Made once per directory: a later `make_pki` on the same directory reads it back,
adds staff it does not have yet (issued by the same CAs), re-exports the
PKCS#12 files when the PIN changed, and refreshes the CRLs. Keys are RSA 2048
and the CA keys lie in the directory unencrypted: demo only.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from .keys import certificate_sha256

MANIFEST = "pki.json"
UTC = datetime.UTC
DAY = datetime.timedelta(days=1)
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
ROOT_NAME = "示範縣政府根憑證 Demo County Root CA"
INTERMEDIATE_NAME = "示範縣政府員工憑證 Demo County Staff CA"
UNTRUSTED_NAME = "不受信任的根憑證 Untrusted Root CA"
DEMO_ORG = "示範縣政府 Demo County Government"
REFUSALS = ("revoked", "expired", "untrusted", "unsuitable")


@dataclass(frozen=True)
class StaffSpec:
    """A staff member to issue a certificate for: user name (files, default CN) and agency (O=)."""

    username: str
    agency: str
    common_name: str | None = None


@dataclass(frozen=True)
class StaffFiles:
    """One holder's files: PEM key (unencrypted), PEM and DER certificate, PKCS#12 (PIN, chain inside)."""

    username: str
    agency: str
    common_name: str
    key: Path
    cert: Path
    cert_der: Path
    p12: Path
    fingerprint: str
    serial: int


@dataclass(frozen=True)
class DemoPKI:
    """Paths of everything `make_pki` wrote."""

    directory: Path
    pin: str
    root_cert: Path
    root_key: Path
    intermediate_cert: Path
    intermediate_key: Path
    untrusted_root_cert: Path
    ca_bundle: Path  # root + intermediate, PEM
    root_crl: Path  # PEM
    root_crl_der: Path
    intermediate_crl: Path  # PEM; lists `revoked`
    intermediate_crl_der: Path
    staff: dict[str, StaffFiles] = field(default_factory=dict)
    revoked: StaffFiles | None = None
    expired: StaffFiles | None = None
    untrusted: StaffFiles | None = None  # issued by untrusted_root_cert
    unsuitable: StaffFiles | None = None  # key usage: dataEncipherment only

    @property
    def crls(self) -> list[Path]:
        return [self.root_crl, self.intermediate_crl]

    @property
    def crls_der(self) -> list[Path]:
        return [self.root_crl_der, self.intermediate_crl_der]


# --- files ---------------------------------------------------------------------


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o600 if private else 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load_key(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def _load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


# --- certificates ------------------------------------------------------------------


def _name(cn: str, org: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "TW"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _usage(**on: bool) -> x509.KeyUsage:
    names = (
        "digital_signature content_commitment key_encipherment data_encipherment key_agreement "
        "key_cert_sign crl_sign encipher_only decipher_only"
    ).split()
    return x509.KeyUsage(**{n: on.get(n, False) for n in names})


def _issue(
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: rsa.RSAPrivateKey,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    ca: bool,
    usage: x509.KeyUsage,
) -> x509.Certificate:
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer else subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    aki_source = issuer.public_key() if issuer else public
    builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(aki_source), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _crl(
    issuer: x509.Certificate, key: rsa.RSAPrivateKey, revoked: Iterable[int], now: datetime.datetime
) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(now - datetime.timedelta(hours=1))
        .next_update(now + 30 * DAY)
        .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
    )
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now - DAY).build()
        )
    return builder.sign(key, hashes.SHA256())


def _spec(item: StaffSpec | str) -> StaffSpec:
    if isinstance(item, StaffSpec):
        spec = item
    else:
        username, _, agency = item.partition(":")
        spec = StaffSpec(username, agency or DEMO_ORG)
    if not _USERNAME.match(spec.username):
        raise ValueError(f"not a usable user name for file names: {spec.username!r}")
    return spec


class _Builder:
    """Writes holders' files in a PKI directory."""

    def __init__(self, directory: Path, pin: str, now: datetime.datetime, key_size: int):
        self.dir = directory
        self.pin = pin
        self.now = now
        self.key_size = key_size

    def new_key(self) -> rsa.RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=self.key_size)

    def export_p12(self, folder: Path, username: str, key, cert, chain: list[x509.Certificate]) -> Path:
        encryption = (
            serialization.BestAvailableEncryption(self.pin.encode()) if self.pin else serialization.NoEncryption()
        )
        data = pkcs12.serialize_key_and_certificates(username.encode(), key, cert, chain, encryption)
        _write(folder / "identity.p12", data, private=True)
        return folder / "identity.p12"

    def holder(
        self,
        folder: Path,
        spec: StaffSpec,
        issuer: x509.Certificate,
        issuer_key: rsa.RSAPrivateKey,
        chain: list[x509.Certificate],
        not_before: datetime.datetime,
        not_after: datetime.datetime,
        usage: x509.KeyUsage,
    ) -> StaffFiles:
        key = self.new_key()
        cn = spec.common_name or spec.username
        cert = _issue(_name(cn, spec.agency), key, issuer, issuer_key, not_before, not_after, False, usage)
        _write(folder / "key.pem", _key_pem(key), private=True)
        _write(folder / "cert.pem", _pem(cert))
        _write(folder / "cert.der", cert.public_bytes(serialization.Encoding.DER))
        p12 = self.export_p12(folder, spec.username, key, cert, chain)
        return StaffFiles(
            spec.username,
            spec.agency,
            cn,
            folder / "key.pem",
            folder / "cert.pem",
            folder / "cert.der",
            p12,
            certificate_sha256(cert),
            cert.serial_number,
        )


STAFF_USAGE = _usage(digital_signature=True, content_commitment=True, key_encipherment=True)
CA_USAGE = _usage(key_cert_sign=True, crl_sign=True)


def make_pki(
    directory: str | os.PathLike,
    staff: Iterable[StaffSpec | str] = (),
    pin: str = "1234",
    *,
    now: datetime.datetime | None = None,
    key_size: int = 2048,
) -> DemoPKI:
    """Create (or read back and complete) the demo PKI in `directory`.

    `staff` items are StaffSpec or "username[:agency]" strings. Raises ValueError
    for a user name that cannot be a file name.
    """
    directory = Path(directory)
    now = (now or datetime.datetime.now(UTC)).replace(microsecond=0)
    specs = [_spec(s) for s in staff]
    b = _Builder(directory, pin, now, key_size)
    if (directory / MANIFEST).exists():
        pki = load_pki(directory)
    else:
        pki = _make_cas(b, now)
    root, inter = _load_cert(pki.root_cert), _load_cert(pki.intermediate_cert)
    root_key, inter_key = _load_key(pki.root_key), _load_key(pki.intermediate_key)
    chain = [inter, root]
    holders = dict(pki.staff)
    if pki.pin != pin:
        for files in [*holders.values(), *(getattr(pki, r) for r in REFUSALS)]:
            b.export_p12(files.p12.parent, files.username, _load_key(files.key), _load_cert(files.cert), chain)
    for spec in specs:
        if spec.username not in holders:
            holders[spec.username] = b.holder(
                directory / "staff" / spec.username, spec, inter, inter_key, chain, now - DAY, now + 730 * DAY,
                STAFF_USAGE,
            )  # fmt: skip
    revoked_serial = pki.revoked.serial if pki.revoked else None
    if revoked_serial is None:
        raise RuntimeError("the demo PKI has no revoked certificate")
    _write(pki.root_crl, _crl(root, root_key, [], now).public_bytes(serialization.Encoding.PEM))
    _write(pki.root_crl_der, _crl(root, root_key, [], now).public_bytes(serialization.Encoding.DER))
    crl = _crl(inter, inter_key, [revoked_serial], now)
    _write(pki.intermediate_crl, crl.public_bytes(serialization.Encoding.PEM))
    _write(pki.intermediate_crl_der, crl.public_bytes(serialization.Encoding.DER))
    pki = DemoPKI(**{**pki.__dict__, "pin": pin, "staff": holders})
    _save_manifest(pki)
    return pki


def _make_cas(b: _Builder, now: datetime.datetime) -> DemoPKI:
    d = b.dir
    root_key, inter_key, other_key = b.new_key(), b.new_key(), b.new_key()
    root = _issue(_name(ROOT_NAME, DEMO_ORG), root_key, None, root_key, now - DAY, now + 7300 * DAY, True, CA_USAGE)
    inter = _issue(
        _name(INTERMEDIATE_NAME, DEMO_ORG), inter_key, root, root_key, now - DAY, now + 3650 * DAY, True, CA_USAGE
    )
    other = _issue(
        _name(UNTRUSTED_NAME, "不明機構 Unknown"), other_key, None, other_key, now - DAY, now + 3650 * DAY, True,
        CA_USAGE,
    )  # fmt: skip
    for name, cert, key in (("root", root, root_key), ("intermediate", inter, inter_key), ("untrusted-root", other, other_key)):  # fmt: skip
        _write(d / "ca" / f"{name}.pem", _pem(cert))
        _write(d / "ca" / f"{name}.key", _key_pem(key), private=True)
    _write(d / "ca-bundle.pem", _pem(root) + _pem(inter))
    chain = [inter, root]
    agency = "示範機關 Demo Agency"
    refusals = {
        "revoked": b.holder(d / "refusals" / "revoked", StaffSpec("demo.revoked", agency, "已撤銷 Revoked Staff"),
                            inter, inter_key, chain, now - 10 * DAY, now + 730 * DAY, STAFF_USAGE),
        "expired": b.holder(d / "refusals" / "expired", StaffSpec("demo.expired", agency, "已過期 Expired Staff"),
                            inter, inter_key, chain, now - 400 * DAY, now - 30 * DAY, STAFF_USAGE),
        "untrusted": b.holder(d / "refusals" / "untrusted", StaffSpec("demo.untrusted", agency, "不受信任 Untrusted Staff"),
                              other, other_key, [other], now - DAY, now + 730 * DAY, STAFF_USAGE),
        "unsuitable": b.holder(d / "refusals" / "unsuitable", StaffSpec("demo.unsuitable", agency, "用途不符 Unsuitable Staff"),
                               inter, inter_key, chain, now - DAY, now + 730 * DAY, _usage(data_encipherment=True)),
    }  # fmt: skip
    return DemoPKI(
        directory=d,
        pin=b.pin,
        root_cert=d / "ca" / "root.pem",
        root_key=d / "ca" / "root.key",
        intermediate_cert=d / "ca" / "intermediate.pem",
        intermediate_key=d / "ca" / "intermediate.key",
        untrusted_root_cert=d / "ca" / "untrusted-root.pem",
        ca_bundle=d / "ca-bundle.pem",
        root_crl=d / "root.crl",
        root_crl_der=d / "root-crl.der",
        intermediate_crl=d / "intermediate.crl",
        intermediate_crl_der=d / "intermediate-crl.der",
        **refusals,
    )


# --- manifest ------------------------------------------------------------------------


def _files_dict(f: StaffFiles, base: Path) -> dict:
    return {k: (str(v.relative_to(base)) if isinstance(v, Path) else v) for k, v in f.__dict__.items()}


def _files_from(d: dict, base: Path) -> StaffFiles:
    paths = {"key", "cert", "cert_der", "p12"}
    return StaffFiles(**{k: (base / v if k in paths else v) for k, v in d.items()})


def _save_manifest(pki: DemoPKI) -> None:
    base = pki.directory
    out: dict = {"format": "demo-pki/1"}
    for k, v in pki.__dict__.items():
        if k == "directory":
            continue
        if isinstance(v, Path):
            out[k] = str(v.relative_to(base))
        elif isinstance(v, StaffFiles):
            out[k] = _files_dict(v, base)
        elif k == "staff":
            out[k] = {name: _files_dict(f, base) for name, f in v.items()}
        else:
            out[k] = v
    _write(base / MANIFEST, json.dumps(out, ensure_ascii=False, indent=2).encode())


def load_pki(directory: str | os.PathLike) -> DemoPKI:
    """The PKI a previous `make_pki` wrote in `directory`; FileNotFoundError if none."""
    base = Path(directory)
    data = json.loads((base / MANIFEST).read_text(encoding="utf-8"))
    data.pop("format", None)
    kwargs: dict = {"directory": base}
    for k, v in data.items():
        if k == "staff":
            kwargs[k] = {name: _files_from(f, base) for name, f in v.items()}
        elif k in REFUSALS:
            kwargs[k] = _files_from(v, base)
        elif k == "pin":
            kwargs[k] = v
        else:
            kwargs[k] = base / v
    return DemoPKI(**kwargs)


# --- command line ----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.kit.demo_pki", description="Write a demo PKI (root, intermediate, staff) to OUTDIR."
    )
    parser.add_argument("outdir", type=Path)
    parser.add_argument(
        "--staff", action="append", default=[], metavar="NAME:AGENCY", help="a staff member (repeatable)"
    )
    parser.add_argument("--pin", default="1234", help="PIN of the PKCS#12 files (default 1234)")
    args = parser.parse_args(argv)
    try:
        pki = make_pki(args.outdir, args.staff, pin=args.pin)
    except ValueError as exc:
        parser.error(str(exc))
    print(f"CA bundle:        {pki.ca_bundle}")
    print(f"CRLs:             {' '.join(map(str, pki.crls))}")
    for name, f in sorted(pki.staff.items()):
        print(f"{name}: {f.p12} (PIN), {f.key}, {f.cert}  sha256={f.fingerprint}")
    for r in REFUSALS:
        f = getattr(pki, r)
        print(f"{r + ':':<17} {f.p12}, {f.cert}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
